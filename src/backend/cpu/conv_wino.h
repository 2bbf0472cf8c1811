/* conv_wino.h — Winograd F(2×2, 3×3) for the CPU conv kernels (conv_wino.c): the forward pass,
 * the backward-data pass (a forward pass on dy with flipped, transposed weights) and the
 * weight gradient of a 3×3, stride-1, undilated convolution with enough channels per group
 * that the 16 GEMMs of the transformed domain are worth it. Private to src/backend/cpu. */
#ifndef KN_BACKEND_CPU_CONV_WINO_H
#define KN_BACKEND_CPU_CONV_WINO_H

#include <stddef.h>

#include "../../ops/conv_internal.h"

/* True when the forward (bwd = false) or backward-data (bwd = true) pass of q runs here. */
bool kn__wino_ok(const kn__conv_geom *q, bool bwd);
/* Workspace bytes the pass needs. */
size_t kn__wino_workspace(const kn__conv_geom *q, bool bwd);
/* Forward: out = y [N, O, OH, OW] from in = x, w [O, C/G, 3, 3], bias [O] or NULL, then the
 * fused epilogue epi (NULL: none) on each image while it is in cache.
 * Backward data: out = dx [N, C, H, W] from in = dy, w; bias and epi NULL. Threads: OpenMP, at most
 * the workspace's slices; results do not depend on the thread count. */
void kn__wino_run(const kn__conv_geom *q, bool bwd, const float *in, const float *w, const float *bias,
                  const kn__epilogue *epi, float *out, float *work);

/* Weight gradient dw [O, C/G, 3, 3] from x and dy (same conditions as the forward pass). */
bool kn__wino_dw_ok(const kn__conv_geom *q);
size_t kn__wino_dw_workspace(const kn__conv_geom *q);
void kn__wino_dw_run(const kn__conv_geom *q, const float *x, const float *dy, float *dw, float *work);

#endif
