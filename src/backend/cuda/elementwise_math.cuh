/* elementwise_math.cuh — the scalar f32 math of the elementwise ops on the device, shared by
 * their one-op kernels (elementwise.cu) and the fused chain kernel (chain.cu), so that a chain
 * computes what its ops compute one by one. The arithmetic of add, sub, mul and div is written
 * with the round-to-nearest intrinsics (__fadd_rn, ...): the same IEEE results as `u + v`, but
 * the compiler may not contract them with a neighbouring multiply into an FMA. In a one-op
 * kernel nothing could contract anyway; in a chain (mul then add, or mul then a sum) an FMA
 * would round once where the unfused ops round twice, and the fused plan would no longer match
 * the unfused one bit for bit. The activations come from the shared src/ops/activation_math.h.
 * Included only by .cu files of the CUDA backend. */
#ifndef KN_CUDA_ELEMENTWISE_MATH_CUH
#define KN_CUDA_ELEMENTWISE_MATH_CUH

#include "cuda_kern_util.cuh"

#include "ops/activation_math.h"

template <int OP> __device__ __forceinline__ float kn__cu_binary_op(float u, float v)
{
    switch (OP) {
    case KN_OP_ADD: return __fadd_rn(u, v);
    case KN_OP_SUB: return __fsub_rn(u, v);
    case KN_OP_MUL: return __fmul_rn(u, v);
    case KN_OP_DIV: return __fdiv_rn(u, v);
    default: return powf(u, v);
    }
}

template <int OP> __device__ __forceinline__ float kn__cu_unary_op(float x, float a, float b)
{
    switch (OP) {
    case KN_OP_NEG: return -x;
    case KN_OP_EXP: return expf(x);
    case KN_OP_LOG: return logf(x);
    case KN_OP_SQRT: return sqrtf(x);
    case KN_OP_ABS: return fabsf(x);
    case KN_OP_CLAMP: return kn__clamp_f32(x, a, b);
    case KN_OP_SCALE: return a * x + b;
    case KN_OP_RELU: return kn__relu_f32(x, a, b);
    case KN_OP_LEAKY_RELU: return kn__leaky_relu_f32(x, a, b);
    case KN_OP_SIGMOID: return kn__sigmoid_f32(x, a, b);
    case KN_OP_TANH: return kn__tanh_f32(x, a, b);
    /* erfc(−x/√2)/2 = Φ(x) without 1 + erf's cancellation for x ≪ 0 */
    case KN_OP_GELU: return 0.5f * x * erfcf(-x * (float)KN__SQRT1_2);
    default: return kn__silu_f32(x, a, b);
    }
}

/* Whether op is one of the binary ops above. */
__host__ __device__ static inline bool kn__cu_is_binary(int op)
{
    return op == KN_OP_ADD || op == KN_OP_SUB || op == KN_OP_MUL || op == KN_OP_DIV || op == KN_OP_POW;
}

/* The same, op chosen at run time (the chain kernel). */
__device__ static inline float kn__cu_binary(int op, float u, float v)
{
    switch (op) {
    case KN_OP_ADD: return kn__cu_binary_op<KN_OP_ADD>(u, v);
    case KN_OP_SUB: return kn__cu_binary_op<KN_OP_SUB>(u, v);
    case KN_OP_MUL: return kn__cu_binary_op<KN_OP_MUL>(u, v);
    case KN_OP_DIV: return kn__cu_binary_op<KN_OP_DIV>(u, v);
    default: return kn__cu_binary_op<KN_OP_POW>(u, v);
    }
}

__device__ static inline float kn__cu_unary(int op, float x, float a, float b)
{
    switch (op) {
    case KN_OP_NEG: return kn__cu_unary_op<KN_OP_NEG>(x, a, b);
    case KN_OP_EXP: return kn__cu_unary_op<KN_OP_EXP>(x, a, b);
    case KN_OP_LOG: return kn__cu_unary_op<KN_OP_LOG>(x, a, b);
    case KN_OP_SQRT: return kn__cu_unary_op<KN_OP_SQRT>(x, a, b);
    case KN_OP_ABS: return kn__cu_unary_op<KN_OP_ABS>(x, a, b);
    case KN_OP_CLAMP: return kn__cu_unary_op<KN_OP_CLAMP>(x, a, b);
    case KN_OP_SCALE: return kn__cu_unary_op<KN_OP_SCALE>(x, a, b);
    case KN_OP_RELU: return kn__cu_unary_op<KN_OP_RELU>(x, a, b);
    case KN_OP_LEAKY_RELU: return kn__cu_unary_op<KN_OP_LEAKY_RELU>(x, a, b);
    case KN_OP_SIGMOID: return kn__cu_unary_op<KN_OP_SIGMOID>(x, a, b);
    case KN_OP_TANH: return kn__cu_unary_op<KN_OP_TANH>(x, a, b);
    case KN_OP_GELU: return kn__cu_unary_op<KN_OP_GELU>(x, a, b);
    default: return kn__cu_unary_op<KN_OP_SILU>(x, a, b);
    }
}

#endif
