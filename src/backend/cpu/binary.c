/* binary.c — float32 CPU kernels for add, sub, mul, div, pow with broadcasting.
 * The output is walked row by row (a row = the last output dimension); each input's row is
 * either contiguous (stride 1) or a broadcast scalar (stride 0), so the inner loops are
 * plain vectorisable loops, one per (op, stride pattern). Rows are spread over OpenMP
 * threads when the tensor is large. */
#include <math.h>

#include "../../ops/broadcast.h"
#include "../backend.h"

#define PAR_MIN 32768 /* elements below which threading costs more than it gains */

#define ROW_LOOP(EXPR)                                                   \
    do {                                                                 \
        if (sa == 1 && sb == 1)                                          \
            for (int64_t j = 0; j < len; j++) {                          \
                float u = x[j], v = y[j];                                \
                o[j] = (EXPR);                                           \
            }                                                            \
        else if (sa == 1)                                                \
            for (int64_t j = 0; j < len; j++) {                          \
                float u = x[j], v = y[0];                                \
                o[j] = (EXPR);                                           \
            }                                                            \
        else if (sb == 1)                                                \
            for (int64_t j = 0; j < len; j++) {                          \
                float u = x[0], v = y[j];                                \
                o[j] = (EXPR);                                           \
            }                                                            \
        else                                                             \
            for (int64_t j = 0; j < len; j++) {                          \
                float u = x[0], v = y[0];                                \
                o[j] = (EXPR);                                           \
            }                                                            \
    } while (0)

static void row(int op, float *o, const float *x, const float *y, int64_t sa, int64_t sb, int64_t len)
{
    switch (op) {
    case KN_OP_ADD: ROW_LOOP(u + v); break;
    case KN_OP_SUB: ROW_LOOP(u - v); break;
    case KN_OP_MUL: ROW_LOOP(u * v); break;
    case KN_OP_DIV: ROW_LOOP(u / v); break;
    default: ROW_LOOP(powf(u, v)); break;
    }
}

static kn_status binary_f32(const kn__kargs *k)
{
    const kn_node *n = k->node, *a = n->src[0], *b = n->src[1];
    const float *x = k->src[0], *y = k->src[1];
    float *out = k->dst;
    int64_t total = kn__numel(n);
    if (total == 0)
        return KN_OK;
    if (n->ndim == 0) {
        row(n->op, out, x, y, 1, 1, 1);
        return KN_OK;
    }
    int64_t sta[KN_MAX_DIMS], stb[KN_MAX_DIMS];
    kn__broadcast_strides(n->ndim, n->shape, a->ndim, a->shape, sta);
    kn__broadcast_strides(n->ndim, n->shape, b->ndim, b->shape, stb);
    int64_t len = n->shape[n->ndim - 1];
    int64_t rows = total / len;
    int64_t sa = sta[n->ndim - 1], sb = stb[n->ndim - 1];
    if (kn__same_shape(a, b)) { /* no broadcasting: contiguous chunks */
        const int64_t chunk = 16384, chunks = (total + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (total >= PAR_MIN)
        for (int64_t c = 0; c < chunks; c++) {
            int64_t first = c * chunk, m = total - first < chunk ? total - first : chunk;
            row(n->op, out + first, x + first, y + first, 1, 1, m);
        }
        return KN_OK;
    }
#pragma omp parallel for schedule(static) if (total >= PAR_MIN && rows > 1)
    for (int64_t r = 0; r < rows; r++) {
        int64_t first = r * len;
        row(n->op, out + first, x + kn__offset_of(n->ndim, n->shape, sta, first),
            y + kn__offset_of(n->ndim, n->shape, stb, first), sa, sb, len);
    }
    return KN_OK;
}

void kn__cpu_register_binary(kn__backend_kernel *t)
{
    t[KN_OP_ADD] = t[KN_OP_SUB] = t[KN_OP_MUL] = t[KN_OP_DIV] = t[KN_OP_POW] =
        (kn__backend_kernel){.fn = binary_f32};
}
