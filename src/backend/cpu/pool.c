/* pool.c — float32 CPU kernels for max/avg pooling (forward and backward) and global average
 * pooling. Work is split over the N·C image planes (each thread owns whole planes, so the
 * backward scatters never race); inside a plane the forward loops run over output columns
 * for one kernel tap at a time, which is contiguous for stride 1 and vectorises.
 * Max pooling with a 2×2 window, stride 2 and no padding (every CNN's pooling) has an
 * AVX-512 fast path: 16 outputs at a time from two input rows, even/odd columns split with
 * one permute; the backward recomputes each window's argmax with the same rule as the
 * reference (first maximum in row-major order, a NaN replaces the running maximum) and
 * writes every dx element exactly once (no memset, no scatter).
 * Not here: im2col or blocked layouts (NCHWc), ceil_mode, dilation. */
#include <math.h>
#include <string.h>
#if defined(__AVX512F__) && !defined(KN_CPU_NO_AVX512)
#include <immintrin.h>
#define POOL_AVX512 1
#endif

#include "../backend.h"

typedef struct geom {
    int64_t planes, H, W, OH, OW, k, s, p;
} geom;

static geom geom_of(const kn_node *n, const int64_t *xshape, const int64_t *yshape)
{
    return (geom){xshape[0] * xshape[1], xshape[2], xshape[3], yshape[2], yshape[3], n->ai[0], n->ai[1], n->ai[2]};
}

/* Output columns [*lo, *hi) whose tap kw lands inside the input row. */
static void tap_range(const geom *q, int64_t kw, int64_t *lo, int64_t *hi)
{
    int64_t off = kw - q->p; /* iw = ow·s + off */
    *lo = off < 0 ? (-off + q->s - 1) / q->s : 0;
    int64_t last = q->W - 1 - off; /* ow·s ≤ last */
    *hi = last < 0 ? 0 : last / q->s + 1;
    if (*hi > q->OW)
        *hi = q->OW;
    if (*lo > *hi)
        *lo = *hi;
}

#define PAR_MIN 32768 /* window-element work below which threads cost more than they save */

#ifdef POOL_AVX512
/* True for the 2×2, stride 2, unpadded max pooling the fast paths handle. */
static bool is_2x2(const geom *q) { return q->k == 2 && q->s == 2 && q->p == 0 && q->OW > 0; }

static const int EVEN[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
static const int ODD[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};

/* m replaced by v where v > m or v is NaN (the reference's running-maximum rule). */
static inline __mmask16 takes(__m512 v, __m512 m)
{
    return _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
}

/* Input lanes [0, 32) of a row starting at column 2·ow0, of which `valid` exist. */
static inline __mmask16 lo_mask(int64_t valid) { return valid >= 16 ? 0xFFFF : (__mmask16)((1u << valid) - 1); }
static inline __mmask16 hi_mask(int64_t valid)
{
    return valid >= 32 ? 0xFFFF : valid <= 16 ? 0 : (__mmask16)((1u << (valid - 16)) - 1);
}

static void max_2x2_plane(const float *xp, float *yp, const geom *q)
{
    const __m512i ev = _mm512_loadu_si512(EVEN), od = _mm512_loadu_si512(ODD);
    for (int64_t oh = 0; oh < q->OH; oh++) {
        const float *r0 = xp + 2 * oh * q->W, *r1 = r0 + q->W;
        float *yr = yp + oh * q->OW;
        for (int64_t ow = 0; ow < q->OW; ow += 16) {
            int64_t nout = q->OW - ow < 16 ? q->OW - ow : 16, valid = 2 * nout;
            __mmask16 ml = lo_mask(valid), mh = hi_mask(valid), mo = lo_mask(nout);
            __m512 a0 = _mm512_maskz_loadu_ps(ml, r0 + 2 * ow), a1 = _mm512_maskz_loadu_ps(mh, r0 + 2 * ow + 16);
            __m512 b0 = _mm512_maskz_loadu_ps(ml, r1 + 2 * ow), b1 = _mm512_maskz_loadu_ps(mh, r1 + 2 * ow + 16);
            __m512 e0 = _mm512_permutex2var_ps(a0, ev, a1), o0 = _mm512_permutex2var_ps(a0, od, a1);
            __m512 e1 = _mm512_permutex2var_ps(b0, ev, b1), o1 = _mm512_permutex2var_ps(b0, od, b1);
            __m512 m = e0;
            m = _mm512_mask_mov_ps(m, takes(o0, m), o0);
            m = _mm512_mask_mov_ps(m, takes(e1, m), e1);
            m = _mm512_mask_mov_ps(m, takes(o1, m), o1);
            _mm512_mask_storeu_ps(yr + ow, mo, m);
        }
    }
}

/* dx of one plane: each window's dy goes to its argmax; rows/columns no window covers get 0. */
static void max_bwd_2x2_plane(const float *xp, const float *dyp, float *dxp, const geom *q)
{
    const __m512i ev = _mm512_loadu_si512(EVEN), od = _mm512_loadu_si512(ODD);
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (int64_t oh = 0; oh < q->OH; oh++) {
        const float *r0 = xp + 2 * oh * q->W, *r1 = r0 + q->W;
        float *d0 = dxp + 2 * oh * q->W, *d1 = d0 + q->W;
        const float *dyr = dyp + oh * q->OW;
        for (int64_t ow = 0; ow < q->OW; ow += 16) {
            int64_t nout = q->OW - ow < 16 ? q->OW - ow : 16, valid = 2 * nout;
            __mmask16 ml = lo_mask(valid), mh = hi_mask(valid), mo = lo_mask(nout);
            __m512 a0 = _mm512_maskz_loadu_ps(ml, r0 + 2 * ow), a1 = _mm512_maskz_loadu_ps(mh, r0 + 2 * ow + 16);
            __m512 b0 = _mm512_maskz_loadu_ps(ml, r1 + 2 * ow), b1 = _mm512_maskz_loadu_ps(mh, r1 + 2 * ow + 16);
            __m512 e0 = _mm512_permutex2var_ps(a0, ev, a1), o0 = _mm512_permutex2var_ps(a0, od, a1);
            __m512 e1 = _mm512_permutex2var_ps(b0, ev, b1), o1 = _mm512_permutex2var_ps(b0, od, b1);
            /* window order: e0 (top left), o0 (top right), e1, o1; mask t_i = "tap i is the argmax so far" */
            __m512 m = e0;
            __mmask16 k1 = takes(o0, m);
            m = _mm512_mask_mov_ps(m, k1, o0);
            __mmask16 k2 = takes(e1, m);
            m = _mm512_mask_mov_ps(m, k2, e1);
            __mmask16 k3 = takes(o1, m);
            __mmask16 t3 = k3, t2 = k2 & ~k3, t1 = k1 & ~k2 & ~k3, t0 = ~(k1 | k2 | k3);
            __m512 g = _mm512_maskz_loadu_ps(mo, dyr + ow);
            __m512 g0 = _mm512_maskz_mov_ps(t0, g), g1 = _mm512_maskz_mov_ps(t1, g);
            __m512 g2 = _mm512_maskz_mov_ps(t2, g), g3 = _mm512_maskz_mov_ps(t3, g);
            _mm512_mask_storeu_ps(d0 + 2 * ow, ml, _mm512_permutex2var_ps(g0, lo, g1));
            _mm512_mask_storeu_ps(d0 + 2 * ow + 16, mh, _mm512_permutex2var_ps(g0, hi, g1));
            _mm512_mask_storeu_ps(d1 + 2 * ow, ml, _mm512_permutex2var_ps(g2, lo, g3));
            _mm512_mask_storeu_ps(d1 + 2 * ow + 16, mh, _mm512_permutex2var_ps(g2, hi, g3));
        }
        if (q->W > 2 * q->OW) { /* odd width: the last column is in no window */
            d0[q->W - 1] = 0.0f;
            d1[q->W - 1] = 0.0f;
        }
    }
    for (int64_t ih = 2 * q->OH; ih < q->H; ih++) /* odd height: the last row is in no window */
        memset(dxp + ih * q->W, 0, sizeof(float) * (size_t)q->W);
}
#endif

static kn_status max_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    geom q = geom_of(n, n->src[0]->shape, n->shape);
    const float *x = a->src[0];
    float *y = a->dst;
#ifdef POOL_AVX512
    if (is_2x2(&q)) {
#pragma omp parallel for schedule(static) if (q.planes * q.OH * q.OW * 4 > PAR_MIN)
        for (int64_t pl = 0; pl < q.planes; pl++)
            max_2x2_plane(x + pl * q.H * q.W, y + pl * q.OH * q.OW, &q);
        return KN_OK;
    }
#endif
#pragma omp parallel for schedule(static) if (q.planes * q.OH * q.OW * q.k * q.k > PAR_MIN)
    for (int64_t pl = 0; pl < q.planes; pl++) {
        const float *xp = x + pl * q.H * q.W;
        for (int64_t oh = 0; oh < q.OH; oh++) {
            float *restrict yr = y + (pl * q.OH + oh) * q.OW;
#pragma omp simd
            for (int64_t ow = 0; ow < q.OW; ow++)
                yr[ow] = -INFINITY;
            for (int64_t kh = 0; kh < q.k; kh++) {
                int64_t ih = oh * q.s - q.p + kh;
                if (ih < 0 || ih >= q.H)
                    continue;
                const float *restrict xr = xp + ih * q.W;
                for (int64_t kw = 0; kw < q.k; kw++) {
                    int64_t lo, hi, off = kw - q.p, s = q.s;
                    tap_range(&q, kw, &lo, &hi);
                    /* NaN-propagating max, independent of the order taps are visited */
#pragma omp simd
                    for (int64_t ow = lo; ow < hi; ow++) {
                        float v = xr[ow * s + off], m = yr[ow];
                        yr[ow] = (v > m || v != v) ? v : m;
                    }
                }
            }
        }
    }
    return KN_OK;
}

/* Plane index of window (oh, ow)'s maximum: first in row-major window order; NaN wins. */
static int64_t window_argmax(const float *plane, const geom *q, int64_t oh, int64_t ow)
{
    int64_t h0 = oh * q->s - q->p, w0 = ow * q->s - q->p;
    int64_t h1 = h0 + q->k < q->H ? h0 + q->k : q->H, w1 = w0 + q->k < q->W ? w0 + q->k : q->W;
    h0 = h0 < 0 ? 0 : h0;
    w0 = w0 < 0 ? 0 : w0;
    int64_t best = h0 * q->W + w0;
    float m = plane[best];
    for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t iw = w0; iw < w1; iw++) {
            float v = plane[ih * q->W + iw];
            if (v > m || v != v) {
                best = ih * q->W + iw;
                m = v;
            }
        }
    return best;
}

static kn_status max_bwd_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    geom q = geom_of(n, n->src[0]->shape, n->src[1]->shape);
    const float *x = a->src[0], *dy = a->src[1];
    float *dx = a->dst;
#ifdef POOL_AVX512
    if (is_2x2(&q)) {
#pragma omp parallel for schedule(static) if (q.planes * q.OH * q.OW * 4 > PAR_MIN)
        for (int64_t pl = 0; pl < q.planes; pl++)
            max_bwd_2x2_plane(x + pl * q.H * q.W, dy + pl * q.OH * q.OW, dx + pl * q.H * q.W, &q);
        return KN_OK;
    }
#endif
#pragma omp parallel for schedule(static) if (q.planes * q.OH * q.OW * q.k * q.k > PAR_MIN)
    for (int64_t pl = 0; pl < q.planes; pl++) {
        const float *xp = x + pl * q.H * q.W, *dyp = dy + pl * q.OH * q.OW;
        float *dxp = dx + pl * q.H * q.W;
        memset(dxp, 0, sizeof(float) * (size_t)(q.H * q.W));
        for (int64_t oh = 0; oh < q.OH; oh++)
            for (int64_t ow = 0; ow < q.OW; ow++)
                dxp[window_argmax(xp, &q, oh, ow)] += dyp[oh * q.OW + ow];
    }
    return KN_OK;
}

static kn_status avg_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    geom q = geom_of(n, n->src[0]->shape, n->shape);
    const float *x = a->src[0];
    float *y = a->dst;
    const float inv = 1.0f / (float)(q.k * q.k);
#pragma omp parallel for schedule(static) if (q.planes * q.OH * q.OW * q.k * q.k > PAR_MIN)
    for (int64_t pl = 0; pl < q.planes; pl++) {
        const float *xp = x + pl * q.H * q.W;
        for (int64_t oh = 0; oh < q.OH; oh++) {
            float *restrict yr = y + (pl * q.OH + oh) * q.OW;
            memset(yr, 0, sizeof(float) * (size_t)q.OW);
            for (int64_t kh = 0; kh < q.k; kh++) {
                int64_t ih = oh * q.s - q.p + kh;
                if (ih < 0 || ih >= q.H)
                    continue;
                const float *restrict xr = xp + ih * q.W;
                for (int64_t kw = 0; kw < q.k; kw++) {
                    int64_t lo, hi, off = kw - q.p, s = q.s;
                    tap_range(&q, kw, &lo, &hi);
#pragma omp simd
                    for (int64_t ow = lo; ow < hi; ow++)
                        yr[ow] += xr[ow * s + off];
                }
            }
#pragma omp simd
            for (int64_t ow = 0; ow < q.OW; ow++)
                yr[ow] *= inv;
        }
    }
    return KN_OK;
}

static kn_status avg_bwd_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    geom q = geom_of(n, n->shape, n->src[0]->shape);
    const float *dy = a->src[0];
    float *dx = a->dst;
    const float inv = 1.0f / (float)(q.k * q.k);
#pragma omp parallel for schedule(static) if (q.planes * q.OH * q.OW * q.k * q.k > PAR_MIN)
    for (int64_t pl = 0; pl < q.planes; pl++) {
        float *dxp = dx + pl * q.H * q.W;
        memset(dxp, 0, sizeof(float) * (size_t)(q.H * q.W));
        for (int64_t oh = 0; oh < q.OH; oh++) {
            const float *restrict dyr = dy + (pl * q.OH + oh) * q.OW;
            for (int64_t kh = 0; kh < q.k; kh++) {
                int64_t ih = oh * q.s - q.p + kh;
                if (ih < 0 || ih >= q.H)
                    continue;
                float *restrict dxr = dxp + ih * q.W;
                for (int64_t kw = 0; kw < q.k; kw++) {
                    int64_t lo, hi, off = kw - q.p, s = q.s;
                    tap_range(&q, kw, &lo, &hi);
#pragma omp simd /* distinct columns per ow: no overlap */
                    for (int64_t ow = lo; ow < hi; ow++)
                        dxr[ow * s + off] += dyr[ow] * inv;
                }
            }
        }
    }
    return KN_OK;
}

static kn_status global_f32(const kn__kargs *a)
{
    const kn_node *x = a->node->src[0];
    int64_t planes = x->shape[0] * x->shape[1], hw = x->shape[2] * x->shape[3];
    const float *in = a->src[0];
    float *y = a->dst;
#pragma omp parallel for schedule(static) if (planes * hw > PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *p = in + pl * hw;
        float lanes[16] = {0}; /* independent partial sums: vectorises without -ffast-math */
        int64_t i = 0;
        for (; i + 16 <= hw; i += 16)
#pragma omp simd
            for (int j = 0; j < 16; j++)
                lanes[j] += p[i + j];
        double s = 0;
        for (; i < hw; i++)
            s += p[i];
        for (int j = 0; j < 16; j++)
            s += lanes[j];
        y[pl] = hw ? (float)(s / (double)hw) : 0.0f;
    }
    return KN_OK;
}

void kn__cpu_register_pool(kn__backend_kernel *t)
{
    t[KN_OP_MAX_POOL2D] = (kn__backend_kernel){.fn = max_f32};
    t[KN_OP_MAX_POOL2D_BWD] = (kn__backend_kernel){.fn = max_bwd_f32};
    t[KN_OP_AVG_POOL2D] = (kn__backend_kernel){.fn = avg_f32};
    t[KN_OP_AVG_POOL2D_BWD] = (kn__backend_kernel){.fn = avg_bwd_f32};
    t[KN_OP_GLOBAL_AVG_POOL] = (kn__backend_kernel){.fn = global_f32};
}
