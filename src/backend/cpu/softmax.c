/* softmax.c — float32 CPU kernels of the softmax family: SOFTMAX, LOG_SOFTMAX and their
 * backward ops, over any axis. The tensor is viewed as [outer, len, inner] around the axis:
 * inner = 1 (the usual last-axis case) works row by row on contiguous memory; inner > 1 works
 * on column chunks of up to CHUNK elements with per-chunk running max/sum on the stack, so
 * every inner loop is contiguous and vectorisable. Parallel over rows/chunks with OpenMP.
 * Not here: other dtypes (they fall back to the reference), fused masking or scaling. */
#include <math.h>

#include "../backend.h"

#define CHUNK 64
#define PAR_MIN 32768 /* elements below which one thread is faster */

static void split_axis(const kn_node *n, int64_t *outer, int64_t *len, int64_t *inner)
{
    int axis = (int)n->ai[0];
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < axis; i++)
        *outer *= n->shape[i];
    for (int i = axis + 1; i < n->ndim; i++)
        *inner *= n->shape[i];
    *len = n->shape[axis];
}

/* ---- forward --------------------------------------------------------------------------- */
static void softmax_row(const float *x, float *y, int64_t len, bool log_out)
{
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < len; j++)
        m = x[j] > m ? x[j] : m;
    float s = 0;
    if (log_out) {
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < len; j++)
            s += expf(x[j] - m);
        float lse = m + logf(s);
#pragma omp simd
        for (int64_t j = 0; j < len; j++)
            y[j] = x[j] - lse;
    } else {
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < len; j++) {
            float e = expf(x[j] - m);
            y[j] = e;
            s += e;
        }
        float inv = 1.0f / s;
#pragma omp simd
        for (int64_t j = 0; j < len; j++)
            y[j] *= inv;
    }
}

/* Columns [0, w) of a [len, inner] block starting at x (stride inner between rows). */
static void softmax_cols(const float *x, float *y, int64_t len, int64_t inner, int w, bool log_out)
{
    float m[CHUNK], s[CHUNK];
    for (int k = 0; k < w; k++) {
        m[k] = -INFINITY;
        s[k] = 0;
    }
    for (int64_t j = 0; j < len; j++) {
        const float *xj = x + j * inner;
#pragma omp simd
        for (int k = 0; k < w; k++)
            m[k] = xj[k] > m[k] ? xj[k] : m[k];
    }
    for (int64_t j = 0; j < len; j++) {
        const float *xj = x + j * inner;
        float *yj = y + j * inner;
#pragma omp simd
        for (int k = 0; k < w; k++) {
            float e = expf(xj[k] - m[k]);
            if (!log_out)
                yj[k] = e;
            s[k] += e;
        }
    }
    if (log_out) {
        for (int k = 0; k < w; k++)
            s[k] = m[k] + logf(s[k]);
        for (int64_t j = 0; j < len; j++) {
            const float *xj = x + j * inner;
            float *yj = y + j * inner;
#pragma omp simd
            for (int k = 0; k < w; k++)
                yj[k] = xj[k] - s[k];
        }
    } else {
        for (int k = 0; k < w; k++)
            s[k] = 1.0f / s[k];
        for (int64_t j = 0; j < len; j++) {
            float *yj = y + j * inner;
#pragma omp simd
            for (int k = 0; k < w; k++)
                yj[k] *= s[k];
        }
    }
}

static kn_status softmax_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    const float *x = a->src[0];
    float *y = a->dst;
    bool log_out = n->op == KN_OP_LOG_SOFTMAX;
    int64_t outer, len, inner;
    split_axis(n, &outer, &len, &inner);
    int64_t total = outer * len * inner;
    if (total == 0)
        return KN_OK;
    if (inner == 1) {
#pragma omp parallel for schedule(static) if (total >= PAR_MIN && outer > 1)
        for (int64_t o = 0; o < outer; o++)
            softmax_row(x + o * len, y + o * len, len, log_out);
    } else {
        int64_t nch = (inner + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (total >= PAR_MIN && outer * nch > 1)
        for (int64_t t = 0; t < outer * nch; t++) {
            int64_t o = t / nch, i0 = (t % nch) * CHUNK;
            int w = (int)(inner - i0 < CHUNK ? inner - i0 : CHUNK);
            int64_t off = o * len * inner + i0;
            softmax_cols(x + off, y + off, len, inner, w, log_out);
        }
    }
    return KN_OK;
}

/* ---- backward -------------------------------------------------------------------------- */
/* softmax: dx = y·(dy − Σ dy·y); log-softmax: dx = dy − exp(y)·Σ dy. */
static void softmax_bwd_row(const float *y, const float *dy, float *dx, int64_t len, bool log_in)
{
    float s = 0;
    if (log_in) {
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < len; j++)
            s += dy[j];
#pragma omp simd
        for (int64_t j = 0; j < len; j++)
            dx[j] = dy[j] - expf(y[j]) * s;
    } else {
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < len; j++)
            s += dy[j] * y[j];
#pragma omp simd
        for (int64_t j = 0; j < len; j++)
            dx[j] = y[j] * (dy[j] - s);
    }
}

static void softmax_bwd_cols(const float *y, const float *dy, float *dx, int64_t len, int64_t inner, int w,
                             bool log_in)
{
    float s[CHUNK];
    for (int k = 0; k < w; k++)
        s[k] = 0;
    for (int64_t j = 0; j < len; j++) {
        const float *yj = y + j * inner, *dyj = dy + j * inner;
        if (log_in) {
#pragma omp simd
            for (int k = 0; k < w; k++)
                s[k] += dyj[k];
        } else {
#pragma omp simd
            for (int k = 0; k < w; k++)
                s[k] += dyj[k] * yj[k];
        }
    }
    for (int64_t j = 0; j < len; j++) {
        const float *yj = y + j * inner, *dyj = dy + j * inner;
        float *dxj = dx + j * inner;
        if (log_in) {
#pragma omp simd
            for (int k = 0; k < w; k++)
                dxj[k] = dyj[k] - expf(yj[k]) * s[k];
        } else {
#pragma omp simd
            for (int k = 0; k < w; k++)
                dxj[k] = yj[k] * (dyj[k] - s[k]);
        }
    }
}

static kn_status softmax_bwd_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    const float *y = a->src[0], *dy = a->src[1];
    float *dx = a->dst;
    bool log_in = n->op == KN_OP_LOG_SOFTMAX_BWD;
    int64_t outer, len, inner;
    split_axis(n, &outer, &len, &inner);
    int64_t total = outer * len * inner;
    if (total == 0)
        return KN_OK;
    if (inner == 1) {
#pragma omp parallel for schedule(static) if (total >= PAR_MIN && outer > 1)
        for (int64_t o = 0; o < outer; o++)
            softmax_bwd_row(y + o * len, dy + o * len, dx + o * len, len, log_in);
    } else {
        int64_t nch = (inner + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (total >= PAR_MIN && outer * nch > 1)
        for (int64_t t = 0; t < outer * nch; t++) {
            int64_t o = t / nch, i0 = (t % nch) * CHUNK;
            int w = (int)(inner - i0 < CHUNK ? inner - i0 : CHUNK);
            int64_t off = o * len * inner + i0;
            softmax_bwd_cols(y + off, dy + off, dx + off, len, inner, w, log_in);
        }
    }
    return KN_OK;
}

void kn__cpu_register_softmax(kn__backend_kernel *t)
{
    t[KN_OP_SOFTMAX] = (kn__backend_kernel){.fn = softmax_f32};
    t[KN_OP_LOG_SOFTMAX] = (kn__backend_kernel){.fn = softmax_f32};
    t[KN_OP_SOFTMAX_BWD] = (kn__backend_kernel){.fn = softmax_bwd_f32};
    t[KN_OP_LOG_SOFTMAX_BWD] = (kn__backend_kernel){.fn = softmax_bwd_f32};
}
