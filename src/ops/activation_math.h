/* activation_math.h — the scalar math of the activations and of the unary ops' derivatives,
 * written once for the float64 reference kernels, the float32 CPU kernels and (through KN_HD)
 * CUDA. Every function comes in a double (_f64) and a float (_f32) flavour generated from
 * one definition, and takes the same (x, a, b) arguments so kernels can be stamped out per
 * op: a and b are the op's float attributes (leaky_relu: a = slope; clamp: a = lo, b = hi),
 * ignored by the others.
 *
 * Conventions at kinks follow PyTorch: relu'(0) = 0, leaky_relu'(0) = slope, abs'(0) = 0,
 * clamp' = 1 on the closed interval [lo, hi]. GELU is the exact erf form.
 * Not here: the loops (kernel files) and anything that needs memory or the graph. */
#ifndef KN_OPS_ACTIVATION_MATH_H
#define KN_OPS_ACTIVATION_MATH_H

#include <math.h>

#include "../core/hd.h"

#define KN__SQRT1_2 0.70710678118654752440    /* 1/√2 */
#define KN__INV_SQRT_2PI 0.39894228040143267794 /* 1/√(2π) */

/* T: the scalar type; S: the suffix; EXP/TANH/ERF/SQRT: that type's libm functions. */
#define KN__ACT_MATH(T, S, EXP, TANH, ERF, SQRT)                                                   \
    /* forward */                                                                               \
    KN_HD T kn__relu_##S(T x, T a, T b) { (void)a; (void)b; return x > (T)0 ? x : (T)0; }      \
    KN_HD T kn__leaky_relu_##S(T x, T a, T b) { (void)b; return x > (T)0 ? x : a * x; }        \
    KN_HD T kn__sigmoid_##S(T x, T a, T b)                                                     \
    {                                                                                          \
        (void)a; (void)b;                                                                      \
        /* never exponentiates a large positive number */                                      \
        if (x >= (T)0)                                                                         \
            return (T)1 / ((T)1 + EXP(-x));                                                    \
        T e = EXP(x);                                                                          \
        return e / ((T)1 + e);                                                                 \
    }                                                                                          \
    KN_HD T kn__tanh_##S(T x, T a, T b) { (void)a; (void)b; return TANH(x); }                  \
    KN_HD T kn__gelu_##S(T x, T a, T b)                                                        \
    {                                                                                          \
        (void)a; (void)b;                                                                      \
        return (T)0.5 * x * ((T)1 + ERF(x * (T)KN__SQRT1_2));                                  \
    }                                                                                          \
    KN_HD T kn__silu_##S(T x, T a, T b) { return x * kn__sigmoid_##S(x, a, b); }               \
    KN_HD T kn__clamp_##S(T x, T a, T b) { return x < a ? a : (x > b ? b : x); }               \
    /* derivatives f'(x) */                                                                    \
    KN_HD T kn__relu_d_##S(T x, T a, T b) { (void)a; (void)b; return x > (T)0 ? (T)1 : (T)0; } \
    KN_HD T kn__leaky_relu_d_##S(T x, T a, T b) { (void)b; return x > (T)0 ? (T)1 : a; }       \
    KN_HD T kn__sigmoid_d_##S(T x, T a, T b)                                                   \
    {                                                                                          \
        T s = kn__sigmoid_##S(x, a, b);                                                        \
        return s * ((T)1 - s);                                                                 \
    }                                                                                          \
    KN_HD T kn__tanh_d_##S(T x, T a, T b)                                                      \
    {                                                                                          \
        (void)a; (void)b;                                                                      \
        T t = TANH(x);                                                                         \
        return (T)1 - t * t;                                                                   \
    }                                                                                          \
    KN_HD T kn__gelu_d_##S(T x, T a, T b) /* Φ(x) + x·φ(x) */                                  \
    {                                                                                          \
        (void)a; (void)b;                                                                      \
        T cdf = (T)0.5 * ((T)1 + ERF(x * (T)KN__SQRT1_2));                                     \
        return cdf + x * (T)KN__INV_SQRT_2PI * EXP((T)-0.5 * x * x);                           \
    }                                                                                          \
    KN_HD T kn__silu_d_##S(T x, T a, T b) /* σ(x)·(1 + x·(1 − σ(x))) */                        \
    {                                                                                          \
        T s = kn__sigmoid_##S(x, a, b);                                                        \
        return s * ((T)1 + x * ((T)1 - s));                                                    \
    }                                                                                          \
    KN_HD T kn__abs_d_##S(T x, T a, T b)                                                       \
    {                                                                                          \
        (void)a; (void)b;                                                                      \
        return x > (T)0 ? (T)1 : (x < (T)0 ? (T)-1 : (T)0);                                    \
    }                                                                                          \
    KN_HD T kn__clamp_d_##S(T x, T a, T b) { return x >= a && x <= b ? (T)1 : (T)0; }          \
    KN_HD T kn__sqrt_d_##S(T x, T a, T b) { (void)a; (void)b; return (T)0.5 / SQRT(x); }       \
    KN_HD T kn__log_d_##S(T x, T a, T b) { (void)a; (void)b; return (T)1 / x; }

KN__ACT_MATH(double, f64, exp, tanh, erf, sqrt)
KN__ACT_MATH(float, f32, expf, tanhf, erff, sqrtf)

#undef KN__ACT_MATH

#endif
