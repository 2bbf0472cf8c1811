/* activation.c — float32 CPU kernels for relu, leaky_relu, sigmoid, tanh, gelu, silu and
 * unary_bwd (dy·f'(x), f one of those or abs, clamp, sqrt, log). The scalar math is the
 * shared activation_math.h; each (op) gets its own flat loop, chosen once outside it, so the
 * compiler inlines f and vectorises where it can; large tensors are split over OpenMP threads.
 * Not here: fused bias/activation kernels (a later graph pass). */
#include "../../ops/activation_math.h"
#include "../backend.h"

#define PAR_MIN 16384 /* elements below which threading costs more than it gains */

/* y[i] = F(x[i], a, b) */
#define FWD(F)                                                           \
    do {                                                                 \
        _Pragma("omp parallel for schedule(static) if (m >= PAR_MIN)")  \
        for (int64_t i = 0; i < m; i++)                                  \
            y[i] = F(x[i], a, b);                                        \
    } while (0)

/* dx[i] = dy[i] · D(x[i], a, b) */
#define BWD(D)                                                           \
    do {                                                                 \
        _Pragma("omp parallel for schedule(static) if (m >= PAR_MIN)")  \
        for (int64_t i = 0; i < m; i++)                                  \
            dx[i] = dy[i] * D(x[i], a, b);                               \
    } while (0)

static kn_status act_f32(const kn__kargs *k)
{
    const kn_node *n = k->node;
    const float *x = k->src[0];
    float *y = k->dst;
    const float a = (float)n->af[0], b = (float)n->af[1];
    const int64_t m = kn__numel(n);
    switch (n->op) {
    case KN_OP_RELU: FWD(kn__relu_f32); break;
    case KN_OP_LEAKY_RELU: FWD(kn__leaky_relu_f32); break;
    case KN_OP_SIGMOID: FWD(kn__sigmoid_f32); break;
    case KN_OP_TANH: FWD(kn__tanh_f32); break;
    case KN_OP_GELU: FWD(kn__gelu_f32); break;
    case KN_OP_SILU: FWD(kn__silu_f32); break;
    default: return KN_ERR_UNSUPPORTED;
    }
    return KN_OK;
}

static kn_status unary_bwd_f32(const kn__kargs *k)
{
    const kn_node *n = k->node;
    const float *x = k->src[0], *dy = k->src[1];
    float *dx = k->dst;
    const float a = (float)n->af[0], b = (float)n->af[1];
    const int64_t m = kn__numel(n);
    switch (n->ai[0]) {
    case KN_OP_RELU: BWD(kn__relu_d_f32); break;
    case KN_OP_LEAKY_RELU: BWD(kn__leaky_relu_d_f32); break;
    case KN_OP_SIGMOID: BWD(kn__sigmoid_d_f32); break;
    case KN_OP_TANH: BWD(kn__tanh_d_f32); break;
    case KN_OP_GELU: BWD(kn__gelu_d_f32); break;
    case KN_OP_SILU: BWD(kn__silu_d_f32); break;
    case KN_OP_ABS: BWD(kn__abs_d_f32); break;
    case KN_OP_CLAMP: BWD(kn__clamp_d_f32); break;
    case KN_OP_SQRT: BWD(kn__sqrt_d_f32); break;
    case KN_OP_LOG: BWD(kn__log_d_f32); break;
    default: return KN_ERR_UNSUPPORTED;
    }
    return KN_OK;
}

void kn__cpu_register_activation(kn__backend_kernel *t)
{
    t[KN_OP_RELU] = t[KN_OP_LEAKY_RELU] = t[KN_OP_SIGMOID] = t[KN_OP_TANH] = t[KN_OP_GELU] = t[KN_OP_SILU] =
        (kn__backend_kernel){.fn = act_f32};
    t[KN_OP_UNARY_BWD] = (kn__backend_kernel){.fn = unary_bwd_f32};
}
