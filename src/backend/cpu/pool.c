/* pool.c — float32 CPU kernels for max/avg pooling (forward and backward) and global average
 * pooling. Work is split over the N·C image planes (each thread owns whole planes, so the
 * backward scatters never race); inside a plane the forward loops run over output columns
 * for one kernel tap at a time, which is contiguous for stride 1 and vectorises.
 * Not here: im2col or blocked layouts (NCHWc), ceil_mode, dilation. */
#include <math.h>
#include <string.h>

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

static kn_status max_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    geom q = geom_of(n, n->src[0]->shape, n->shape);
    const float *x = a->src[0];
    float *y = a->dst;
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
