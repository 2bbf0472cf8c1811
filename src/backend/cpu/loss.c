/* loss.c — float32 CPU kernels of the loss family: fused softmax cross-entropy and its
 * one-pass backward, NLL and its backward, MSE, BCE with logits, KL divergence.
 * Sums are deterministic whatever the thread count: each row (class losses) or each fixed
 * block of BLOCK elements (MSE/BCE/KL) writes a float64 partial into the workspace, and the
 * partials are added in order by one thread. Labels are validated before any work.
 * Not here: other dtypes (they fall back to the reference kernels), reductions other than
 * the mean. */
#include <math.h>
#include <string.h>

#include "../backend.h"

#define BLOCK 8192    /* elements per partial sum of the elementwise losses */
#define PAR_MIN 32768 /* elements below which one thread is faster */

static int64_t n_blocks(int64_t m) { return (m + BLOCK - 1) / BLOCK; }

static size_t ws_blocks(const kn_node *n) { return (size_t)n_blocks(kn__numel(n->src[0])) * sizeof(double); }
static size_t ws_rows(const kn_node *n) { return (size_t)n->src[0]->shape[0] * sizeof(double); }

static double sum_parts(const double *p, int64_t k)
{
    double s = 0;
    for (int64_t i = 0; i < k; i++)
        s += p[i];
    return s;
}

static kn_status labels_ok(const kn__kargs *a, const void *labels, kn_dtype dt, int64_t rows, int64_t classes)
{
    for (int64_t i = 0; i < rows; i++) {
        int64_t l = kn__index_at(labels, dt, i);
        if (l < 0 || l >= classes)
            return kn__kerr(a, "%s: label %lld at row %lld is outside [0, %lld)", kn__op_names[a->node->op],
                            (long long)l, (long long)i, (long long)classes);
    }
    return KN_OK;
}

/* ---- class losses ---------------------------------------------------------------------- */
static float row_max(const float *x, int64_t c)
{
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < c; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

/* logits [N, C], labels [N] → mean over rows of logsumexp(row) − row[label]. */
static kn_status ce_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    kn_dtype ldt = n->src[1]->dtype;
    const float *x = a->src[0];
    const void *lab = a->src[1];
    int64_t rows = n->src[0]->shape[0], c = n->src[0]->shape[1];
    kn_status st = labels_ok(a, lab, ldt, rows, c);
    if (st)
        return st;
    double *part = a->work;
#pragma omp parallel for schedule(static) if (rows * c >= PAR_MIN && rows > 1)
    for (int64_t i = 0; i < rows; i++) {
        const float *xi = x + i * c;
        float m = row_max(xi, c), s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < c; j++)
            s += expf(xi[j] - m);
        part[i] = (double)(m - xi[kn__index_at(lab, ldt, i)]) + log((double)s);
    }
    *(float *)a->dst = (float)(sum_parts(part, rows) / (double)rows);
    return KN_OK;
}

/* dx = (softmax(logits) − onehot(label)) · dy / N, one pass per row. */
static kn_status ce_bwd_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    kn_dtype ldt = n->src[1]->dtype;
    const float *x = a->src[0];
    const void *lab = a->src[1];
    float *dx = a->dst;
    int64_t rows = n->shape[0], c = n->shape[1];
    kn_status st = labels_ok(a, lab, ldt, rows, c);
    if (st)
        return st;
    float gs = ((const float *)a->src[2])[0] / (float)rows;
#pragma omp parallel for schedule(static) if (rows * c >= PAR_MIN && rows > 1)
    for (int64_t i = 0; i < rows; i++) {
        const float *xi = x + i * c;
        float *di = dx + i * c;
        float m = row_max(xi, c), s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t j = 0; j < c; j++) {
            float e = expf(xi[j] - m);
            di[j] = e;
            s += e;
        }
        float scale = gs / s;
#pragma omp simd
        for (int64_t j = 0; j < c; j++)
            di[j] *= scale;
        di[kn__index_at(lab, ldt, i)] -= gs;
    }
    return KN_OK;
}

/* log_probs [N, C], labels [N] → −mean log_probs[n, label]. O(N): one thread. */
static kn_status nll_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    kn_dtype ldt = n->src[1]->dtype;
    const float *x = a->src[0];
    int64_t rows = n->src[0]->shape[0], c = n->src[0]->shape[1];
    kn_status st = labels_ok(a, a->src[1], ldt, rows, c);
    if (st)
        return st;
    double s = 0;
    for (int64_t i = 0; i < rows; i++)
        s -= x[i * c + kn__index_at(a->src[1], ldt, i)];
    *(float *)a->dst = (float)(s / (double)rows);
    return KN_OK;
}

/* (labels [N], dy) → [N, C]: −dy/N at each row's label, 0 elsewhere. */
static kn_status nll_bwd_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    kn_dtype ldt = n->src[0]->dtype;
    float *dx = a->dst;
    int64_t rows = n->shape[0], c = n->shape[1];
    kn_status st = labels_ok(a, a->src[0], ldt, rows, c);
    if (st)
        return st;
    float gs = ((const float *)a->src[1])[0] / (float)rows;
    memset(dx, 0, (size_t)(rows * c) * sizeof(float));
    for (int64_t i = 0; i < rows; i++)
        dx[i * c + kn__index_at(a->src[0], ldt, i)] = -gs;
    return KN_OK;
}

/* ---- elementwise losses (mean over all elements; KL: sum / dim 0) ---------------------- */
static kn_status mse_f32(const kn__kargs *a)
{
    const float *p = a->src[0], *t = a->src[1];
    int64_t m = kn__numel(a->node->src[0]), nb = n_blocks(m);
    double *part = a->work;
#pragma omp parallel for schedule(static) if (m >= PAR_MIN)
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = b * BLOCK, hi = lo + BLOCK < m ? lo + BLOCK : m;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = lo; i < hi; i++) {
            double d = (double)p[i] - (double)t[i];
            s += d * d;
        }
        part[b] = s;
    }
    *(float *)a->dst = (float)(sum_parts(part, nb) / (double)m);
    return KN_OK;
}

/* max(x,0) − x·t + log1p(exp(−|x|)): never overflows, exact for large |x|. */
static kn_status bce_f32(const kn__kargs *a)
{
    const float *x = a->src[0], *t = a->src[1];
    int64_t m = kn__numel(a->node->src[0]), nb = n_blocks(m);
    double *part = a->work;
#pragma omp parallel for schedule(static) if (m >= PAR_MIN)
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = b * BLOCK, hi = lo + BLOCK < m ? lo + BLOCK : m;
        double s = 0;
        for (int64_t i = lo; i < hi; i++) {
            float v = x[i];
            s += (double)((v > 0 ? v : 0) - v * t[i] + log1pf(expf(-fabsf(v))));
        }
        part[b] = s;
    }
    *(float *)a->dst = (float)(sum_parts(part, nb) / (double)m);
    return KN_OK;
}

/* Σ t·(log t − log_q) / dim 0, with 0 for t = 0 terms. */
static kn_status kl_f32(const kn__kargs *a)
{
    const kn_node *x = a->node->src[0];
    const float *lq = a->src[0], *t = a->src[1];
    int64_t m = kn__numel(x), nb = n_blocks(m);
    double *part = a->work;
#pragma omp parallel for schedule(static) if (m >= PAR_MIN)
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = b * BLOCK, hi = lo + BLOCK < m ? lo + BLOCK : m;
        double s = 0;
        for (int64_t i = lo; i < hi; i++) {
            float ti = t[i];
            s += ti == 0 ? 0.0 : (double)(ti * (logf(ti) - lq[i]));
        }
        part[b] = s;
    }
    double rows = x->ndim ? (double)x->shape[0] : 1.0;
    *(float *)a->dst = (float)(sum_parts(part, nb) / rows);
    return KN_OK;
}

void kn__cpu_register_loss(kn__backend_kernel *t)
{
    t[KN_OP_SOFTMAX_CE] = (kn__backend_kernel){.fn = ce_f32, .workspace = ws_rows};
    t[KN_OP_SOFTMAX_CE_BWD] = (kn__backend_kernel){.fn = ce_bwd_f32};
    t[KN_OP_NLL] = (kn__backend_kernel){.fn = nll_f32};
    t[KN_OP_NLL_BWD] = (kn__backend_kernel){.fn = nll_bwd_f32};
    t[KN_OP_MSE] = (kn__backend_kernel){.fn = mse_f32, .workspace = ws_blocks};
    t[KN_OP_BCE_LOGITS] = (kn__backend_kernel){.fn = bce_f32, .workspace = ws_blocks};
    t[KN_OP_KL_DIV] = (kn__backend_kernel){.fn = kl_f32, .workspace = ws_blocks};
}
