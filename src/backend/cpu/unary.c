/* unary.c — float32 CPU kernels for neg, exp, log, sqrt, abs, clamp, scale, and cast between
 * any two dtypes. Each op is one flat loop over the contiguous buffer (vectorisable; the op
 * is chosen once, outside the loop), split over OpenMP threads when the tensor is large.
 * Not here: the gradient kernels (abs/clamp/sqrt use unary_bwd in activation.c). */
#include <math.h>

#include "../backend.h"

#define PAR_MIN 32768 /* elements below which threading costs more than it gains */

/* y[i] = EXPR(v) with v = x[i], for i in [0, m). */
#define MAP(EXPR)                                                        \
    do {                                                                 \
        _Pragma("omp parallel for schedule(static) if (m >= PAR_MIN)")  \
        for (int64_t i = 0; i < m; i++) {                                \
            float v = x[i];                                              \
            y[i] = (EXPR);                                               \
        }                                                                \
    } while (0)

static kn_status unary_f32(const kn__kargs *k)
{
    const kn_node *n = k->node;
    const float *x = k->src[0];
    float *y = k->dst;
    const float a = (float)n->af[0], b = (float)n->af[1];
    const int64_t m = kn__numel(n);
    switch (n->op) {
    case KN_OP_NEG: MAP(-v); break;
    case KN_OP_EXP: MAP(expf(v)); break;
    case KN_OP_LOG: MAP(logf(v)); break;
    case KN_OP_SQRT: MAP(sqrtf(v)); break;
    case KN_OP_ABS: MAP(fabsf(v)); break;
    case KN_OP_CLAMP: MAP(v < a ? a : (v > b ? b : v)); break;
    case KN_OP_SCALE: MAP(a * v + b); break;
    default: return KN_ERR_UNSUPPORTED;
    }
    return KN_OK;
}

/* Any dtype to any dtype through kn_convert, in chunks spread over threads. */
static kn_status cast_any(const kn__kargs *k)
{
    const kn_node *n = k->node;
    kn_dtype from = n->src[0]->dtype, to = n->dtype;
    const size_t in_size = kn_dtype_size(from), out_size = kn_dtype_size(to);
    const int64_t m = kn__numel(n), chunk = 65536, chunks = (m + chunk - 1) / chunk;
    int failed = 0;
#pragma omp parallel for schedule(static) if (m >= PAR_MIN) reduction(| : failed)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t first = c * chunk, len = m - first < chunk ? m - first : chunk;
        failed |= kn_convert((char *)k->dst + (size_t)first * out_size, to,
                             (const char *)k->src[0] + (size_t)first * in_size, from, len) != KN_OK;
    }
    return failed ? KN_ERR_UNSUPPORTED : KN_OK;
}

static bool cast_supports(const kn_node *n)
{
    return kn_dtype_size(n->dtype) && kn_dtype_size(n->src[0]->dtype);
}

void kn__cpu_register_unary(kn__backend_kernel *t)
{
    t[KN_OP_NEG] = t[KN_OP_EXP] = t[KN_OP_LOG] = t[KN_OP_SQRT] = t[KN_OP_ABS] = t[KN_OP_CLAMP] =
        t[KN_OP_SCALE] = (kn__backend_kernel){.fn = unary_f32};
    t[KN_OP_CAST] = (kn__backend_kernel){.fn = cast_any, .supports = cast_supports};
}
