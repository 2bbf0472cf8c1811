/* matmul_internal.h — batch indexing shared by the matmul reference and CPU kernels: batch
 * dims (all but the last two) broadcast NumPy-style between the inputs and the output. */
#ifndef KN_OPS_MATMUL_INTERNAL_H
#define KN_OPS_MATMUL_INTERNAL_H

#include "op_table.h"

/* Offset, in elements, of output batch index bi inside input `in` (batch dims broadcast). */
static inline int64_t kn__matmul_batch_offset(const kn_node *out, const kn_node *in, int64_t bi)
{
    int nb = out->ndim - 2, lead = out->ndim - in->ndim;
    int64_t off = 0, stride = in->shape[in->ndim - 1] * in->shape[in->ndim - 2];
    for (int d = nb - 1; d >= 0; d--) {
        int64_t idx = bi % out->shape[d];
        bi /= out->shape[d];
        int di = d - lead;
        if (di < 0)
            continue;
        if (in->shape[di] != 1)
            off += idx * stride;
        stride *= in->shape[di];
    }
    return off;
}

#endif
