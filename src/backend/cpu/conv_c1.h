/* conv_c1.h — the forward pass of a first-layer convolution (one input channel, 3×3, stride 1,
 * undilated, no groups) as a direct AVX-512 kernel (conv_c1.c). Its im2col GEMM has K = 9:
 * the register tile's stores outweigh its nine FMAs, so a GEMM runs it at half of the peak;
 * the direct kernel loads the nine shifted input vectors of 16 output pixels once and reuses
 * them for every output channel. Private to src/backend/cpu. */
#ifndef KN_BACKEND_CPU_CONV_C1_H
#define KN_BACKEND_CPU_CONV_C1_H

#include <stddef.h>

#include "../../ops/conv_internal.h"

/* True when q's forward pass runs here (needs AVX-512). */
bool kn__conv_c1_ok(const kn__conv_geom *q);
size_t kn__conv_c1_workspace(const kn__conv_geom *q);
/* y [N, O, OH, OW] = conv(x, w) + bias (NULL: none), then the epilogue epi (NULL: none) on each
 * image. Threads split the images; results do not depend on the thread count. */
void kn__conv_c1_run(const kn__conv_geom *q, const float *x, const float *w, const float *bias,
                     const kn__epilogue *epi, float *y, float *work);

#endif
