/* conv.c (CPU) — float32 CONV2D, CONV2D_BWD_DATA and CONV2D_BWD_WEIGHT as im2col/col2im +
 * OpenBLAS sgemm, per group. Images are processed in chunks: im2col of a chunk of nb images
 * fills col [C·KH·KW, nb·OH·OW] (columns image-major) in one OpenMP loop, then one sgemm per
 * (image, group) reads its block of col through the leading dimension. The col buffer is the
 * plan's workspace (capped, so nb shrinks for big images); a 1×1, stride-1, unpadded conv
 * skips it and multiplies the input directly. sgemm is only called from serial code (OpenBLAS
 * threads itself). Deliberately not here: Winograd/FFT, direct depthwise kernels, NHWC. */
#include <cblas.h>
#include <limits.h>
#include <string.h>

#include "../../ops/conv_internal.h"
#include "../backend.h"

#define COL_CAP_BYTES ((int64_t)4 << 20) /* col chunk target (cache-sized); one image may exceed it */

static bool is_pointwise(const kn__conv_geom *q)
{
    return q->KH == 1 && q->KW == 1 && q->sh == 1 && q->sw == 1 && q->ph == 0 && q->pw == 0;
}

static int64_t col_rows(const kn__conv_geom *q) { return q->C * q->KH * q->KW; }

/* Images per im2col chunk. */
static int64_t chunk_images(const kn__conv_geom *q)
{
    int64_t per = col_rows(q) * q->OH * q->OW * (int64_t)sizeof(float);
    int64_t nb = per > 0 ? COL_CAP_BYTES / per : q->N;
    return nb < 1 ? 1 : nb > q->N ? q->N : nb;
}

static size_t conv_workspace(const kn_node *n)
{
    kn__conv_geom q = kn__conv_geom_of(n);
    if (is_pointwise(&q) || q.N == 0)
        return 0;
    return (size_t)(col_rows(&q) * chunk_images(&q) * q.OH * q.OW) * sizeof(float);
}

static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

/* Output columns [*lo, *hi) whose input column ow·sw + off lies inside [0, W). */
static void valid_range(int64_t off, int64_t s, int64_t W, int64_t OW, int64_t *lo, int64_t *hi)
{
    int64_t a = ceil_div(-off, s), b = ceil_div(W - off, s);
    a = a < 0 ? 0 : a > OW ? OW : a;
    b = b < a ? a : b > OW ? OW : b;
    *lo = a;
    *hi = b;
}

/* col rows r = (c·KH + kh)·KW + kw, columns i·P + p for image n0 + i of the chunk. */
static void im2col(const kn__conv_geom *q, const float *x, int64_t n0, int64_t nb, float *col)
{
    const int64_t R = col_rows(q), P = q->OH * q->OW, ld = nb * P, KHW = q->KH * q->KW;
#pragma omp parallel for collapse(2) schedule(static) if (nb * R * P > 32768)
    for (int64_t i = 0; i < nb; i++)
        for (int64_t r = 0; r < R; r++) {
            int64_t c = r / KHW, kh = (r / q->KW) % q->KH, kw = r % q->KW;
            const float *src = x + ((n0 + i) * q->C + c) * q->H * q->W;
            float *dst = col + r * ld + i * P;
            int64_t off = kw * q->dw - q->pw, lo, hi;
            valid_range(off, q->sw, q->W, q->OW, &lo, &hi);
            for (int64_t oh = 0; oh < q->OH; oh++) {
                int64_t ih = oh * q->sh - q->ph + kh * q->dh;
                float *d = dst + oh * q->OW;
                if (ih < 0 || ih >= q->H) {
                    memset(d, 0, (size_t)q->OW * sizeof(float));
                    continue;
                }
                const float *s = src + ih * q->W; /* input column ow·sw + off, in range for lo ≤ ow < hi */
                for (int64_t ow = 0; ow < lo; ow++)
                    d[ow] = 0.0f;
                if (q->sw == 1 && hi > lo)
                    memcpy(d + lo, s + lo + off, (size_t)(hi - lo) * sizeof(float));
                else
                    for (int64_t ow = lo; ow < hi; ow++)
                        d[ow] = s[ow * q->sw + off];
                for (int64_t ow = hi; ow < q->OW; ow++)
                    d[ow] = 0.0f;
            }
        }
}

/* dx planes of the chunk = Σ over kernel taps of col rows scattered back (one thread per
 * (image, channel) plane, so no two threads add into the same element). */
static void col2im(const kn__conv_geom *q, const float *col, int64_t n0, int64_t nb, float *dx)
{
    const int64_t P = q->OH * q->OW, ld = nb * P, HW = q->H * q->W;
#pragma omp parallel for collapse(2) schedule(static) if (nb * col_rows(q) * P > 32768)
    for (int64_t i = 0; i < nb; i++)
        for (int64_t c = 0; c < q->C; c++) {
            float *plane = dx + ((n0 + i) * q->C + c) * HW;
            memset(plane, 0, (size_t)HW * sizeof(float));
            for (int64_t kh = 0; kh < q->KH; kh++)
                for (int64_t kw = 0; kw < q->KW; kw++) {
                    const float *src = col + ((c * q->KH + kh) * q->KW + kw) * ld + i * P;
                    int64_t off = kw * q->dw - q->pw, lo, hi;
                    valid_range(off, q->sw, q->W, q->OW, &lo, &hi);
                    for (int64_t oh = 0; oh < q->OH; oh++) {
                        int64_t ih = oh * q->sh - q->ph + kh * q->dh;
                        if (ih < 0 || ih >= q->H)
                            continue;
                        float *d = plane + ih * q->W;
                        const float *s = src + oh * q->OW;
                        if (q->sw == 1) {
                            if (hi > lo) {
                                float *dd = d + lo + off;
                                const float *ss = s + lo;
                                for (int64_t j = 0; j < hi - lo; j++)
                                    dd[j] += ss[j];
                            }
                        } else {
                            for (int64_t ow = lo; ow < hi; ow++)
                                d[ow * q->sw + off] += s[ow];
                        }
                    }
                }
        }
}

/* y [N, O, P] = W_g [Og, K] · col_g [K, P] (+ b), per image and group. */
static kn_status conv2d_f32(const kn__kargs *a)
{
    const kn_node *node = a->node;
    kn__conv_geom q = kn__conv_geom_of(node);
    const float *x = a->src[0], *w = a->src[1], *b = node->nsrc == 3 ? a->src[2] : NULL;
    float *y = a->dst, *col = a->work;
    const int64_t P = q.OH * q.OW, K = q.Cg * q.KH * q.KW;
    if (kn__numel(node) == 0)
        return KN_OK;
#pragma omp parallel for collapse(2) schedule(static) if (q.N * q.O * P > 65536)
    for (int64_t n = 0; n < q.N; n++)
        for (int64_t o = 0; o < q.O; o++) {
            float *d = y + (n * q.O + o) * P, v = b ? b[o] : 0.0f;
            for (int64_t p = 0; p < P; p++)
                d[p] = v;
        }
    if (K == 0)
        return KN_OK;
    bool pw = is_pointwise(&q);
    int64_t nb = pw ? 1 : chunk_images(&q);
    for (int64_t n0 = 0; n0 < q.N; n0 += nb) {
        int64_t m = q.N - n0 < nb ? q.N - n0 : nb;
        if (!pw)
            im2col(&q, x, n0, m, col);
        for (int64_t i = 0; i < m; i++)
            for (int64_t g = 0; g < q.G; g++) {
                const float *B = pw ? x + ((n0 + i) * q.C + g * q.Cg) * P : col + g * K * m * P + i * P;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)q.Og, (int)P, (int)K, 1.0f,
                            w + g * q.Og * K, (int)K, B, (int)(pw ? P : m * P), 1.0f,
                            y + ((n0 + i) * q.O + g * q.Og) * P, (int)P);
            }
    }
    return KN_OK;
}

/* col_g [K, P] = W_gᵀ [K, Og] · dy_g [Og, P], then col2im into dx. */
static kn_status bwd_data_f32(const kn__kargs *a)
{
    const kn_node *node = a->node;
    kn__conv_geom q = kn__conv_geom_of(node);
    const float *dy = a->src[0], *w = a->src[1];
    float *dx = a->dst, *col = a->work;
    const int64_t P = q.OH * q.OW, K = q.Cg * q.KH * q.KW;
    if (kn__numel(node) == 0)
        return KN_OK;
    if (q.Og == 0) {
        memset(dx, 0, (size_t)kn__numel(node) * sizeof(float));
        return KN_OK;
    }
    bool pw = is_pointwise(&q);
    int64_t nb = pw ? 1 : chunk_images(&q);
    for (int64_t n0 = 0; n0 < q.N; n0 += nb) {
        int64_t m = q.N - n0 < nb ? q.N - n0 : nb;
        for (int64_t i = 0; i < m; i++)
            for (int64_t g = 0; g < q.G; g++) {
                float *C = pw ? dx + ((n0 + i) * q.C + g * q.Cg) * P : col + g * K * m * P + i * P;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)P, (int)q.Og, 1.0f,
                            w + g * q.Og * K, (int)K, dy + ((n0 + i) * q.O + g * q.Og) * P, (int)P, 0.0f, C,
                            (int)(pw ? P : m * P));
            }
        if (!pw)
            col2im(&q, col, n0, m, dx);
    }
    return KN_OK;
}

/* dw_g [Og, K] = Σ_n dy_g [Og, P] · col_gᵀ [P, K]. */
static kn_status bwd_weight_f32(const kn__kargs *a)
{
    const kn_node *node = a->node;
    kn__conv_geom q = kn__conv_geom_of(node);
    const float *x = a->src[0], *dy = a->src[1];
    float *dw = a->dst, *col = a->work;
    const int64_t P = q.OH * q.OW, K = q.Cg * q.KH * q.KW;
    memset(dw, 0, (size_t)kn__numel(node) * sizeof(float));
    if (kn__numel(node) == 0)
        return KN_OK;
    bool pw = is_pointwise(&q);
    int64_t nb = pw ? 1 : chunk_images(&q);
    for (int64_t n0 = 0; n0 < q.N; n0 += nb) {
        int64_t m = q.N - n0 < nb ? q.N - n0 : nb;
        if (!pw)
            im2col(&q, x, n0, m, col);
        for (int64_t i = 0; i < m; i++)
            for (int64_t g = 0; g < q.G; g++) {
                const float *B = pw ? x + ((n0 + i) * q.C + g * q.Cg) * P : col + g * K * m * P + i * P;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)q.Og, (int)K, (int)P, 1.0f,
                            dy + ((n0 + i) * q.O + g * q.Og) * P, (int)P, B, (int)(pw ? P : m * P), 1.0f,
                            dw + g * q.Og * K, (int)K);
            }
    }
    return KN_OK;
}

/* f32 everywhere, and every GEMM dimension and leading dimension fits BLAS's int. */
static bool conv_supports(const kn_node *n)
{
    if (n->dtype != KN_F32)
        return false;
    for (int i = 0; i < n->nsrc; i++)
        if (n->src[i]->dtype != KN_F32)
            return false;
    kn__conv_geom q = kn__conv_geom_of(n);
    int64_t P = q.OH * q.OW;
    int64_t ld = is_pointwise(&q) ? P : chunk_images(&q) * P;
    return P <= INT_MAX && ld <= INT_MAX && q.Cg * q.KH * q.KW <= INT_MAX && q.Og <= INT_MAX;
}

void kn__cpu_register_conv(kn__backend_kernel *t)
{
    t[KN_OP_CONV2D] = (kn__backend_kernel){.fn = conv2d_f32, .workspace = conv_workspace, .supports = conv_supports};
    t[KN_OP_CONV2D_BWD_DATA] =
        (kn__backend_kernel){.fn = bwd_data_f32, .workspace = conv_workspace, .supports = conv_supports};
    t[KN_OP_CONV2D_BWD_WEIGHT] =
        (kn__backend_kernel){.fn = bwd_weight_f32, .workspace = conv_workspace, .supports = conv_supports};
}
