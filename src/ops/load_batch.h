/* load_batch.h — what every load_batch kernel (the float64 reference in src/ops/data.c, the
 * CPU kernel in src/backend/cpu/data.c, the CUDA kernel in src/backend/cuda/data.cu) reads off
 * the node: the table's geometry and the augmentation attributes, in one place. */
#ifndef KN_OPS_LOAD_BATCH_H
#define KN_OPS_LOAD_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "../graph/graph_internal.h"

typedef struct kn__load_batch_geom {
    int64_t N, B;   /* table rows, batch examples */
    int64_t per;    /* elements per example (C·H·W, or F) */
    int C, H, W;    /* image layout (C = 1 for [N, H, W]; H = W = 1 for [N, F]) */
    int crop;       /* ai[0] */
    bool flip;      /* ai[1] */
    bool augment;   /* crop or flip */
    uint64_t seed;  /* ai[2], the bits */
} kn__load_batch_geom;

static inline kn__load_batch_geom kn__load_batch_geom_of(const kn_node *n)
{
    const kn_node *t = n->src[0];
    kn__load_batch_geom g;
    g.N = t->shape[0];
    g.B = n->shape[0];
    g.per = 1;
    for (int d = 1; d < t->ndim; d++)
        g.per *= t->shape[d];
    g.C = t->ndim == 4 ? (int)t->shape[1] : 1;
    g.H = t->ndim >= 3 ? (int)t->shape[t->ndim - 2] : 1;
    g.W = t->ndim >= 3 ? (int)t->shape[t->ndim - 1] : 1;
    g.crop = (int)n->ai[0];
    g.flip = n->ai[1] != 0;
    g.augment = g.crop > 0 || g.flip;
    g.seed = (uint64_t)n->ai[2];
    return g;
}

#endif
