/* view.c — float32 CPU kernels for reshape (a copy, used only outside plans: plans alias a
 * reshape to its input) and expand (broadcast copy, row by row). */
#include <string.h>

#include "../../ops/broadcast.h"
#include "../backend.h"

static kn_status reshape_f32(const kn__kargs *k)
{
    if (k->dst != k->src[0])
        memmove(k->dst, k->src[0], (size_t)kn__numel(k->node) * sizeof(float));
    return KN_OK;
}

static kn_status expand_f32(const kn__kargs *k)
{
    const kn_node *n = k->node, *x = n->src[0];
    int64_t total = kn__numel(n);
    if (total == 0)
        return KN_OK;
    if (n->ndim == 0) {
        ((float *)k->dst)[0] = ((const float *)k->src[0])[0];
        return KN_OK;
    }
    int64_t st[KN_MAX_DIMS];
    kn__broadcast_strides(n->ndim, n->shape, x->ndim, x->shape, st);
    int64_t len = n->shape[n->ndim - 1], rows = total / len, s = st[n->ndim - 1];
    const float *in = k->src[0];
    float *out = k->dst;
#pragma omp parallel for schedule(static) if (total >= 32768)
    for (int64_t r = 0; r < rows; r++) {
        const float *src = in + kn__offset_of(n->ndim, n->shape, st, r * len);
        float *dst = out + r * len;
        if (s)
            memcpy(dst, src, (size_t)len * sizeof(float));
        else
            for (int64_t j = 0; j < len; j++)
                dst[j] = src[0];
    }
    return KN_OK;
}

void kn__cpu_register_view(kn__backend_kernel *t)
{
    t[KN_OP_RESHAPE] = (kn__backend_kernel){.fn = reshape_f32};
    t[KN_OP_EXPAND] = (kn__backend_kernel){.fn = expand_f32};
}
