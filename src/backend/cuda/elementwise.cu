/* elementwise.cu — CUDA kernels of the elementwise families, f32: binary ops with NumPy
 * broadcasting (add, sub, mul, div, pow), unary ops (neg, exp, log, sqrt, abs, clamp, scale),
 * activations (relu, leaky_relu, sigmoid, tanh, gelu, silu) and unary_bwd (dy·f'(x)), plus
 * cast between any two dtypes (bit-exact with kn_convert: f16/bf16 round to nearest even,
 * float→int truncates and saturates, NaN→0). The scalar math is the shared
 * src/ops/activation_math.h (through elementwise_math.cuh, which the fused chains of chain.cu
 * share), so the GPU computes what the CPU computes. One grid-stride kernel per (op) via
 * templates; a fast path when no input broadcasts.
 * Not here: f16/bf16 arithmetic (cast first). */
#include "elementwise_math.cuh"

/* ---- binary with broadcasting ------------------------------------------------------------- */

/* The output shape and each input's element strides (0 on broadcast dims). */
struct kn__cu_bcast {
    int nd;
    int64_t dim[KN_MAX_DIMS];
    int64_t sa[KN_MAX_DIMS];
    int64_t sb[KN_MAX_DIMS];
};

/* Same shapes: y[i] = a[i] op b[i]. */
template <int OP>
__global__ void binary_f32_kernel(int64_t n, const float *__restrict__ a, const float *__restrict__ b,
                                  float *__restrict__ y)
{
    KN_CU_GRID_LOOP(i, n)
    y[i] = kn__cu_binary_op<OP>(a[i], b[i]);
}

/* Broadcasting: the offsets of output index i in a and b from the shape walk. */
template <int OP>
__global__ void binary_bcast_f32_kernel(int64_t n, const float *__restrict__ a, const float *__restrict__ b,
                                        float *__restrict__ y, kn__cu_bcast s)
{
    KN_CU_GRID_LOOP(i, n)
    {
        int64_t rem = i, oa = 0, ob = 0;
        for (int d = s.nd - 1; d >= 0; d--) {
            int64_t idx = rem % s.dim[d];
            rem /= s.dim[d];
            oa += idx * s.sa[d];
            ob += idx * s.sb[d];
        }
        y[i] = kn__cu_binary_op<OP>(a[oa], b[ob]);
    }
}

template <int OP> static kn_status binary_launch(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node, *x = n->src[0], *z = n->src[1];
    int64_t m = kn__numel(n);
    if (m == 0)
        return KN_OK;
    unsigned blocks = kn__cu_blocks(ctx, m, KN_CU_THREADS);
    if (kn__same_shape(x, n) && kn__same_shape(z, n)) {
        binary_f32_kernel<OP><<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(m, (const float *)a->src[0],
                                                                         (const float *)a->src[1], (float *)a->dst);
        return KN_CU_LAUNCHED(a, "binary_f32_kernel");
    }
    kn__cu_bcast s;
    s.nd = n->ndim;
    for (int d = 0; d < n->ndim; d++)
        s.dim[d] = n->shape[d];
    kn__broadcast_strides(n->ndim, n->shape, x->ndim, x->shape, s.sa);
    kn__broadcast_strides(n->ndim, n->shape, z->ndim, z->shape, s.sb);
    binary_bcast_f32_kernel<OP><<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(
        m, (const float *)a->src[0], (const float *)a->src[1], (float *)a->dst, s);
    return KN_CU_LAUNCHED(a, "binary_bcast_f32_kernel");
}

static kn_status binary_f32(const kn__kargs *a)
{
    switch (a->node->op) {
    case KN_OP_ADD: return binary_launch<KN_OP_ADD>(a);
    case KN_OP_SUB: return binary_launch<KN_OP_SUB>(a);
    case KN_OP_MUL: return binary_launch<KN_OP_MUL>(a);
    case KN_OP_DIV: return binary_launch<KN_OP_DIV>(a);
    case KN_OP_POW: return binary_launch<KN_OP_POW>(a);
    default: return kn__cu_fail(a, KN_ERR_UNSUPPORTED, "not a binary op");
    }
}

/* ---- unary ops and activations: y = f(x; a, b) --------------------------------------------- */

template <int OP>
__global__ void unary_f32_kernel(int64_t n, const float *__restrict__ x, float *__restrict__ y, float a, float b)
{
    KN_CU_GRID_LOOP(i, n)
    y[i] = kn__cu_unary_op<OP>(x[i], a, b);
}

template <int OP> static kn_status unary_launch(const kn__kargs *k)
{
    KN_CU_CTX(k, ctx);
    const kn_node *n = k->node;
    int64_t m = kn__numel(n);
    if (m == 0)
        return KN_OK;
    unary_f32_kernel<OP><<<kn__cu_blocks(ctx, m, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        m, (const float *)k->src[0], (float *)k->dst, (float)n->af[0], (float)n->af[1]);
    return KN_CU_LAUNCHED(k, "unary_f32_kernel");
}

static kn_status unary_f32(const kn__kargs *a)
{
    switch (a->node->op) {
    case KN_OP_NEG: return unary_launch<KN_OP_NEG>(a);
    case KN_OP_EXP: return unary_launch<KN_OP_EXP>(a);
    case KN_OP_LOG: return unary_launch<KN_OP_LOG>(a);
    case KN_OP_SQRT: return unary_launch<KN_OP_SQRT>(a);
    case KN_OP_ABS: return unary_launch<KN_OP_ABS>(a);
    case KN_OP_CLAMP: return unary_launch<KN_OP_CLAMP>(a);
    case KN_OP_SCALE: return unary_launch<KN_OP_SCALE>(a);
    case KN_OP_RELU: return unary_launch<KN_OP_RELU>(a);
    case KN_OP_LEAKY_RELU: return unary_launch<KN_OP_LEAKY_RELU>(a);
    case KN_OP_SIGMOID: return unary_launch<KN_OP_SIGMOID>(a);
    case KN_OP_TANH: return unary_launch<KN_OP_TANH>(a);
    case KN_OP_GELU: return unary_launch<KN_OP_GELU>(a);
    case KN_OP_SILU: return unary_launch<KN_OP_SILU>(a);
    default: return kn__cu_fail(a, KN_ERR_UNSUPPORTED, "not a unary op");
    }
}

/* ---- unary_bwd(x, dy) = dy·f'(x), f = node->ai[0] -------------------------------------------- */

/* Where the shared f32 formulas cancel (1 − σ(x), 1 − tanh²(x), 1 + erf(x/√2) in the tails), the
 * GPU uses the same functions written without the cancellation: σ(x)·σ(−x), 1/cosh²(x),
 * erfc(−x/√2)/2. Mathematically identical, and within 1e-6 of the float64 reference where the
 * shared forms lose up to 1e-5 (the CPU's f32 kernels keep the shared forms; both pass their
 * tolerances). */
template <int OP> __device__ __forceinline__ float deriv_op(float x, float a, float b)
{
    switch (OP) {
    case KN_OP_RELU: return kn__relu_d_f32(x, a, b);
    case KN_OP_LEAKY_RELU: return kn__leaky_relu_d_f32(x, a, b);
    case KN_OP_SIGMOID: return kn__sigmoid_f32(x, a, b) * kn__sigmoid_f32(-x, a, b);
    case KN_OP_TANH: {
        float c = coshf(x); /* inf beyond |x| ≈ 89: the derivative 0 */
        return 1.0f / (c * c);
    }
    case KN_OP_GELU: /* Φ(x) + x·φ(x) */
        return 0.5f * erfcf(-x * (float)KN__SQRT1_2) + x * (float)KN__INV_SQRT_2PI * expf(-0.5f * x * x);
    case KN_OP_SILU: /* σ(x)·(1 + x·σ(−x)) */
        return kn__sigmoid_f32(x, a, b) * (1.0f + x * kn__sigmoid_f32(-x, a, b));
    case KN_OP_ABS: return kn__abs_d_f32(x, a, b);
    case KN_OP_CLAMP: return kn__clamp_d_f32(x, a, b);
    case KN_OP_SQRT: return kn__sqrt_d_f32(x, a, b);
    default: return kn__log_d_f32(x, a, b);
    }
}

template <int OP>
__global__ void unary_bwd_f32_kernel(int64_t n, const float *__restrict__ x, const float *__restrict__ dy,
                                     float *__restrict__ dx, float a, float b)
{
    KN_CU_GRID_LOOP(i, n)
    dx[i] = dy[i] * deriv_op<OP>(x[i], a, b);
}

template <int OP> static kn_status unary_bwd_launch(const kn__kargs *k)
{
    KN_CU_CTX(k, ctx);
    const kn_node *n = k->node;
    int64_t m = kn__numel(n);
    if (m == 0)
        return KN_OK;
    unary_bwd_f32_kernel<OP><<<kn__cu_blocks(ctx, m, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        m, (const float *)k->src[0], (const float *)k->src[1], (float *)k->dst, (float)n->af[0], (float)n->af[1]);
    return KN_CU_LAUNCHED(k, "unary_bwd_f32_kernel");
}

static kn_status unary_bwd_f32(const kn__kargs *a)
{
    switch (a->node->ai[0]) {
    case KN_OP_RELU: return unary_bwd_launch<KN_OP_RELU>(a);
    case KN_OP_LEAKY_RELU: return unary_bwd_launch<KN_OP_LEAKY_RELU>(a);
    case KN_OP_SIGMOID: return unary_bwd_launch<KN_OP_SIGMOID>(a);
    case KN_OP_TANH: return unary_bwd_launch<KN_OP_TANH>(a);
    case KN_OP_GELU: return unary_bwd_launch<KN_OP_GELU>(a);
    case KN_OP_SILU: return unary_bwd_launch<KN_OP_SILU>(a);
    case KN_OP_ABS: return unary_bwd_launch<KN_OP_ABS>(a);
    case KN_OP_CLAMP: return unary_bwd_launch<KN_OP_CLAMP>(a);
    case KN_OP_SQRT: return unary_bwd_launch<KN_OP_SQRT>(a);
    case KN_OP_LOG: return unary_bwd_launch<KN_OP_LOG>(a);
    default: return kn__cu_fail(a, KN_ERR_UNSUPPORTED, "unary_bwd: forward op without a derivative kernel");
    }
}

static bool unary_bwd_supports(const kn_node *n)
{
    switch (n->ai[0]) {
    case KN_OP_RELU: case KN_OP_LEAKY_RELU: case KN_OP_SIGMOID: case KN_OP_TANH: case KN_OP_GELU:
    case KN_OP_SILU: case KN_OP_ABS: case KN_OP_CLAMP: case KN_OP_SQRT: case KN_OP_LOG:
        return n->dtype == KN_F32 && n->src[0]->dtype == KN_F32 && n->src[1]->dtype == KN_F32;
    default: return false;
    }
}

/* ---- cast: any dtype to any dtype, as kn_convert ------------------------------------------- */

__device__ static inline double sat(double v, double lo, double hi)
{
    if (isnan(v))
        return 0;
    return v < lo ? lo : v > hi ? hi : v;
}

/* src/core/dtype.c's store: floats narrow through f32 (f64→f16 rounds twice, like the CPU). */
__device__ static inline void store_any(void *p, int dt, int64_t i, double v)
{
    switch (dt) {
    case KN_F32: ((float *)p)[i] = (float)v; break;
    case KN_F64: ((double *)p)[i] = v; break;
    case KN_F16: ((uint16_t *)p)[i] = kn__cu_f32_to_f16((float)v); break;
    case KN_BF16: ((uint16_t *)p)[i] = kn__cu_f32_to_bf16((float)v); break;
    case KN_I8: ((int8_t *)p)[i] = (int8_t)sat(trunc(v), -128, 127); break;
    case KN_I32: ((int32_t *)p)[i] = (int32_t)sat(trunc(v), -2147483648.0, 2147483647.0); break;
    case KN_I64: ((int64_t *)p)[i] = (int64_t)sat(trunc(v), -9223372036854775808.0, 9223372036854774784.0); break;
    case KN_U8: ((uint8_t *)p)[i] = (uint8_t)sat(trunc(v), 0, 255); break;
    default: break;
    }
}

__global__ void cast_any_kernel(int64_t n, const void *__restrict__ x, int from, void *__restrict__ y, int to)
{
    KN_CU_GRID_LOOP(i, n)
    store_any(y, to, i, kn__cu_load(x, from, i));
}

/* The common f32 ↔ bf16/f16 casts without the detour through double. */
__global__ void cast_f32_bf16_kernel(int64_t n, const float *__restrict__ x, uint16_t *__restrict__ y)
{
    KN_CU_GRID_LOOP(i, n)
    y[i] = kn__cu_f32_to_bf16(x[i]);
}

__global__ void cast_f32_f16_kernel(int64_t n, const float *__restrict__ x, uint16_t *__restrict__ y)
{
    KN_CU_GRID_LOOP(i, n)
    y[i] = kn__cu_f32_to_f16(x[i]);
}

static kn_status cast_any(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int from = n->src[0]->dtype, to = n->dtype;
    int64_t m = kn__numel(n);
    if (m == 0)
        return KN_OK;
    if (from == to) {
        if (a->dst == a->src[0])
            return KN_OK;
        return kn__cu_check(a,
                            cudaMemcpyAsync(a->dst, a->src[0], (size_t)m * kn_dtype_size((kn_dtype)to),
                                            cudaMemcpyDeviceToDevice, ctx->stream),
                            "cudaMemcpyAsync (cast to the same dtype)");
    }
    unsigned blocks = kn__cu_blocks(ctx, m, KN_CU_THREADS);
    if (from == KN_F32 && to == KN_BF16) {
        cast_f32_bf16_kernel<<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(m, (const float *)a->src[0],
                                                                        (uint16_t *)a->dst);
        return KN_CU_LAUNCHED(a, "cast_f32_bf16_kernel");
    }
    if (from == KN_F32 && to == KN_F16) {
        cast_f32_f16_kernel<<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(m, (const float *)a->src[0],
                                                                       (uint16_t *)a->dst);
        return KN_CU_LAUNCHED(a, "cast_f32_f16_kernel");
    }
    cast_any_kernel<<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(m, a->src[0], from, a->dst, to);
    return KN_CU_LAUNCHED(a, "cast_any_kernel");
}

static bool cast_supports(const kn_node *n)
{
    return kn_dtype_size(n->dtype) && kn_dtype_size(n->src[0]->dtype);
}

extern "C" void kn__cuda_register_elementwise(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.supports = kn__cu_f32_only;
    k.fn = binary_f32;
    t[KN_OP_ADD] = t[KN_OP_SUB] = t[KN_OP_MUL] = t[KN_OP_DIV] = t[KN_OP_POW] = k;
    k.fn = unary_f32;
    t[KN_OP_NEG] = t[KN_OP_EXP] = t[KN_OP_LOG] = t[KN_OP_SQRT] = t[KN_OP_ABS] = t[KN_OP_CLAMP] =
        t[KN_OP_SCALE] = k;
    t[KN_OP_RELU] = t[KN_OP_LEAKY_RELU] = t[KN_OP_SIGMOID] = t[KN_OP_TANH] = t[KN_OP_GELU] =
        t[KN_OP_SILU] = k;
    k.fn = unary_bwd_f32;
    k.supports = unary_bwd_supports;
    t[KN_OP_UNARY_BWD] = k;
    k.fn = cast_any;
    k.supports = cast_supports;
    t[KN_OP_CAST] = k;
}
