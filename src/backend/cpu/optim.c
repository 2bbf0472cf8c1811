/* optim.c — f32 CPU kernels of the optimizer updates (SGD with momentum/Nesterov/weight decay,
 * Adam/AdamW). One pass over the parameter, in place: the output is the parameter itself
 * (a->dst == a->src[0]). Per-step scalars (lr, bias corrections) are computed once in double;
 * the loops are branch-free (one loop per SGD variant) so they vectorise, and split over
 * OpenMP threads for large parameters. Adam's loop calls sqrtf, which GCC will not vectorise
 * (errno), so with AVX-512 it is also written with intrinsics (same steps, 16 lanes).
 *
 * Not here: the update rules' definition, checks and float64 reference (src/ops/optim.c).
 * lr and t may be f32 or f64 (read once); everything else is f32. */
#include <math.h>
#include <string.h>
#if defined(__AVX512F__) && !defined(KN_CPU_NO_AVX512)
#include <immintrin.h>
#define OPTIM_AVX512 1
#endif

#include "../../core/core_internal.h"
#include "../backend.h"

#define PAR_ELEMS (1 << 15)

static double scalar_in(const kn__kargs *a, int i)
{
    return kn__load_f64(a->src[i], a->node->src[i]->dtype, 0);
}

static void store_out(const kn__kargs *a, const float *p, int64_t n)
{
    if (a->dst != a->src[0]) /* never on the CPU path; kept for safety */
        memcpy(a->dst, p, (size_t)n * sizeof(float));
}

static kn_status sgd_cpu(const kn__kargs *a)
{
    const kn_node *n = a->node;
    int64_t numel = kn__numel(n);
    float *restrict p = a->src[0];
    const float *restrict grad = a->src[1];
    float *restrict buf = n->nsrc > 3 ? a->src[3] : NULL;
    const float lr = (float)scalar_in(a, 2), mu = (float)n->af[0], wd = (float)n->af[1];
    bool par = numel >= PAR_ELEMS;
    if (!isfinite(lr)) { /* the numerical guard: skip (see src/ops/optim.c) */
        store_out(a, p, numel);
        return KN_OK;
    }
    if (n->af[0] == 0) {
#pragma omp parallel for simd schedule(static) if(par)
        for (int64_t i = 0; i < numel; i++)
            p[i] -= lr * (grad[i] + wd * p[i]);
    } else if (!n->ai[0]) {
#pragma omp parallel for simd schedule(static) if(par)
        for (int64_t i = 0; i < numel; i++) {
            float b = mu * buf[i] + (grad[i] + wd * p[i]);
            buf[i] = b;
            p[i] -= lr * b;
        }
    } else {
#pragma omp parallel for simd schedule(static) if(par)
        for (int64_t i = 0; i < numel; i++) {
            float g = grad[i] + wd * p[i];
            float b = mu * buf[i] + g;
            buf[i] = b;
            p[i] -= lr * (g + mu * b);
        }
    }
    store_out(a, p, numel);
    return KN_OK;
}

static kn_status adam_cpu(const kn__kargs *a)
{
    const kn_node *n = a->node;
    int64_t numel = kn__numel(n);
    float *restrict p = a->src[0], *restrict m = a->src[4], *restrict v = a->src[5];
    const float *restrict grad = a->src[1];
    double lr = scalar_in(a, 2), t = scalar_in(a, 3);
    if (!(t >= 1))
        return kn__kerr(a, "adam_update: step t = %g, expected >= 1 (t counts steps from 1)", t);
    if (!isfinite(lr)) { /* the numerical guard: skip (see src/ops/optim.c) */
        store_out(a, p, numel);
        return KN_OK;
    }
    double b1 = n->af[0], b2 = n->af[1], wd = n->af[3];
    const float fb1 = (float)b1, fb2 = (float)b2, c1 = (float)(1 - b1), c2 = (float)(1 - b2);
    const float eps = (float)n->af[2];
    const float step = (float)(lr / (1 - pow(b1, t)));         /* lr / bias correction 1 */
    const float inv_bc2 = (float)(1 / sqrt(1 - pow(b2, t)));   /* 1 / sqrt(bias correction 2) */
    /* AdamW scales p by decay; Adam adds l2·p to the gradient. One of them is a no-op. */
    const float decay = n->ai[0] ? (float)(1 - lr * wd) : 1.0f, l2 = n->ai[0] ? 0.0f : (float)wd;
    bool par = numel >= PAR_ELEMS;
#ifdef OPTIM_AVX512
    /* sqrtf may set errno, so GCC keeps the loop below scalar: the same steps, 16 lanes at a time */
    const int64_t blocks = (numel + 15) / 16;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t blk = 0; blk < blocks; blk++) {
        int64_t i = blk * 16, left = numel - i;
        __mmask16 k = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
        __m512 pi = _mm512_maskz_loadu_ps(k, p + i), gi = _mm512_maskz_loadu_ps(k, grad + i);
        __m512 g = _mm512_fmadd_ps(_mm512_set1_ps(l2), pi, gi);
        pi = _mm512_mul_ps(pi, _mm512_set1_ps(decay));
        __m512 mi = _mm512_fmadd_ps(_mm512_set1_ps(fb1), _mm512_maskz_loadu_ps(k, m + i),
                                    _mm512_mul_ps(_mm512_set1_ps(c1), g));
        __m512 vi = _mm512_fmadd_ps(_mm512_set1_ps(fb2), _mm512_maskz_loadu_ps(k, v + i),
                                    _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(c2), g), g));
        _mm512_mask_storeu_ps(m + i, k, mi);
        _mm512_mask_storeu_ps(v + i, k, vi);
        __m512 den = _mm512_fmadd_ps(_mm512_sqrt_ps(vi), _mm512_set1_ps(inv_bc2), _mm512_set1_ps(eps));
        pi = _mm512_sub_ps(pi, _mm512_div_ps(_mm512_mul_ps(_mm512_set1_ps(step), mi), den));
        _mm512_mask_storeu_ps(p + i, k, pi);
    }
#else
#pragma omp parallel for simd schedule(static) if(par)
    for (int64_t i = 0; i < numel; i++) {
        float pi = p[i];
        float g = grad[i] + l2 * pi;
        pi *= decay;
        float mi = fb1 * m[i] + c1 * g;
        float vi = fb2 * v[i] + c2 * g * g;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step * mi / (sqrtf(vi) * inv_bc2 + eps);
    }
#endif
    store_out(a, p, numel);
    return KN_OK;
}

/* The param, grad and state must be f32; lr and t may be any float type. */
static bool optim_supports(const kn_node *n)
{
    for (int i = 0; i < n->nsrc; i++)
        if (i != 2 && !(n->op == KN_OP_ADAM_UPDATE && i == 3) && n->src[i]->dtype != KN_F32)
            return false;
    return n->dtype == KN_F32;
}

void kn__cpu_register_optim(kn__backend_kernel *t)
{
    t[KN_OP_SGD_UPDATE] = (kn__backend_kernel){.fn = sgd_cpu, .supports = optim_supports};
    t[KN_OP_ADAM_UPDATE] = (kn__backend_kernel){.fn = adam_cpu, .supports = optim_supports};
}
