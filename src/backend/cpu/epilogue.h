/* epilogue.h — applies a fused epilogue (kn__epilogue, set by the fusion pass) to a block of
 * a conv2d/linear kernel's output right after the kernel wrote it, while it is in cache:
 * batch norm in inference form for one channel, then an activation. The arithmetic is the
 * very expression of the batch_norm kernel (norm.c: y = (x − m)·a + b with a computed in
 * double and rounded once) and of the activation kernels (activation_math.h), so a fused plan
 * computes bit-identical values. Not here: choosing what to fuse (src/passes/fuse.c). */
#ifndef KN_BACKEND_CPU_EPILOGUE_H
#define KN_BACKEND_CPU_EPILOGUE_H

#include <math.h>

#include "../../ops/activation_math.h"
#include "../backend.h"

#define KN__EPI_LOOP(F)                                                                    \
    do {                                                                                   \
        for (int64_t i = 0; i < n; i++)                                                    \
            y[i] = F(y[i], a, b);                                                          \
    } while (0)

/* y[0 .. n) of channel ch (dim 1 of the output; ignored without batch norm). */
static inline void kn__epi_apply(const kn__epilogue *e, float *restrict y, int64_t ch, int64_t n)
{
    if (!e)
        return;
    if (e->bn_gamma) {
        float fm = e->bn_mean[ch], fb = e->bn_beta[ch];
        float fa = (float)(e->bn_gamma[ch] / sqrt((double)e->bn_var[ch] + e->bn_eps));
#pragma omp simd
        for (int64_t i = 0; i < n; i++)
            y[i] = (y[i] - fm) * fa + fb;
    }
    const float a = e->a, b = e->b;
    switch (e->act) {
    case KN_OP_RELU: KN__EPI_LOOP(kn__relu_f32); break;
    case KN_OP_LEAKY_RELU: KN__EPI_LOOP(kn__leaky_relu_f32); break;
    case KN_OP_SIGMOID: KN__EPI_LOOP(kn__sigmoid_f32); break;
    case KN_OP_TANH: KN__EPI_LOOP(kn__tanh_f32); break;
    case KN_OP_GELU: KN__EPI_LOOP(kn__gelu_f32); break;
    case KN_OP_SILU: KN__EPI_LOOP(kn__silu_f32); break;
    default: break;
    }
}

#undef KN__EPI_LOOP

#endif
