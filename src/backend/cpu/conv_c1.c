/* conv_c1.c — direct AVX-512 kernel for the forward pass of a 3×3, stride-1 convolution with
 * one input channel (conv_c1.h says why). Each thread copies one image at a time into a
 * zero-padded plane in its workspace slice, then for each output row and each block of 16
 * output pixels loads the nine shifted input vectors once and, for every output channel,
 * accumulates the nine taps in tap order (row-major over the 3×3 window, the order of the
 * im2col GEMM it replaces) and adds the bias last. Without AVX-512 nothing runs here. */
#include "conv_c1.h"

#include <omp.h>
#include <string.h>

#include "epilogue.h"
#include "gemm.h"

#if defined(__AVX512F__) && !defined(KN_CPU_NO_AVX512)
#include <immintrin.h>

/* padded plane: rows H + 2·ph, row stride a multiple of 16 with room for the last block's
 * loads (up to 16 + 2 floats past the last output column) */
static int64_t row_stride(const kn__conv_geom *q) { return (q->OW + 15) / 16 * 16 + 16; }
static int64_t plane_floats(const kn__conv_geom *q) { return (q->H + 2 * q->ph + 1) * row_stride(q); }

bool kn__conv_c1_ok(const kn__conv_geom *q)
{
    return q->C == 1 && q->G == 1 && q->KH == 3 && q->KW == 3 && q->sh == 1 && q->sw == 1 && q->dh == 1 &&
           q->dw == 1 && q->ph <= 2 && q->pw <= 2 && q->OH > 0 && q->OW > 0 && q->O > 0;
}

size_t kn__conv_c1_workspace(const kn__conv_geom *q)
{
    return (size_t)kn__cpu_slices(q->N) * (size_t)plane_floats(q) * sizeof(float);
}

void kn__conv_c1_run(const kn__conv_geom *q, const float *x, const float *w, const float *bias,
                     const kn__epilogue *epi, float *y, float *work)
{
    const int64_t RS = row_stride(q), plane = plane_floats(q), P = q->OH * q->OW;
    int nt = omp_get_max_threads(), slices = kn__cpu_slices(q->N);
    nt = nt < slices ? nt : slices;
#pragma omp parallel num_threads(nt)
    {
        float *pad = work + omp_get_thread_num() * plane;
#pragma omp for schedule(dynamic, 1)
        for (int64_t n = 0; n < q->N; n++) {
            memset(pad, 0, (size_t)plane * sizeof(float));
            const float *img = x + n * q->H * q->W;
            for (int64_t h = 0; h < q->H; h++)
                memcpy(pad + (h + q->ph) * RS + q->pw, img + h * q->W, (size_t)q->W * sizeof(float));
            float *out = y + n * q->O * P;
            for (int64_t oh = 0; oh < q->OH; oh++)
                for (int64_t ow = 0; ow < q->OW; ow += 16) {
                    const float *r0 = pad + oh * RS + ow, *r1 = r0 + RS, *r2 = r1 + RS;
                    const __m512 t0 = _mm512_loadu_ps(r0), t1 = _mm512_loadu_ps(r0 + 1), t2 = _mm512_loadu_ps(r0 + 2);
                    const __m512 t3 = _mm512_loadu_ps(r1), t4 = _mm512_loadu_ps(r1 + 1), t5 = _mm512_loadu_ps(r1 + 2);
                    const __m512 t6 = _mm512_loadu_ps(r2), t7 = _mm512_loadu_ps(r2 + 1), t8 = _mm512_loadu_ps(r2 + 2);
                    const int64_t left = q->OW - ow;
                    const __mmask16 keep = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
                    float *dst = out + oh * q->OW + ow;
                    for (int64_t o = 0; o < q->O; o++) {
                        const float *k = w + o * 9;
                        __m512 acc = _mm512_mul_ps(_mm512_set1_ps(k[0]), t0);
                        acc = _mm512_fmadd_ps(_mm512_set1_ps(k[1]), t1, acc);
                        acc = _mm512_fmadd_ps(_mm512_set1_ps(k[2]), t2, acc);
                        acc = _mm512_fmadd_ps(_mm512_set1_ps(k[3]), t3, acc);
                        acc = _mm512_fmadd_ps(_mm512_set1_ps(k[4]), t4, acc);
                        acc = _mm512_fmadd_ps(_mm512_set1_ps(k[5]), t5, acc);
                        acc = _mm512_fmadd_ps(_mm512_set1_ps(k[6]), t6, acc);
                        acc = _mm512_fmadd_ps(_mm512_set1_ps(k[7]), t7, acc);
                        acc = _mm512_fmadd_ps(_mm512_set1_ps(k[8]), t8, acc);
                        if (bias)
                            acc = _mm512_add_ps(acc, _mm512_set1_ps(bias[o]));
                        _mm512_mask_storeu_ps(dst + o * P, keep, acc);
                    }
                }
            for (int64_t o = 0; epi && o < q->O; o++)
                kn__epi_apply(epi, out + o * P, o, P);
        }
    }
}

#else
bool kn__conv_c1_ok(const kn__conv_geom *q)
{
    (void)q;
    return false;
}
size_t kn__conv_c1_workspace(const kn__conv_geom *q)
{
    (void)q;
    return 0;
}
void kn__conv_c1_run(const kn__conv_geom *q, const float *x, const float *w, const float *bias,
                     const kn__epilogue *epi, float *y, float *work)
{
    (void)q, (void)x, (void)w, (void)bias, (void)epi, (void)y, (void)work;
}
#endif
