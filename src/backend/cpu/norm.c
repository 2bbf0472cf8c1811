/* norm.c — float32 CPU kernels for batch norm and layer norm, forward and backward.
 * Statistics are accumulated in double over 8 independent lanes (vectorises without
 * -ffast-math, and stays accurate over large batches); the elementwise passes are written as
 * y = a·x + b per channel/row so they vectorise. Batch norm splits work over channels, layer
 * norm over rows; layer norm's dgamma/dbeta reduce over rows in a fixed number of row chunks
 * (workspace) summed in a fixed order, so results do not depend on the thread count.
 * Not here: fused norm + activation, Welford single-pass statistics, channels-last layouts. */
#include <math.h>
#include <string.h>

#include "../backend.h"

#define PAR_MIN 32768 /* elements below which threads cost more than they save */
#define LANES 8

/* ---- lane reductions over one contiguous chunk, added into acc[LANES] ---- */
static void acc_sum(double *restrict acc, const float *restrict x, int64_t n)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
#pragma omp simd
        for (int j = 0; j < LANES; j++)
            acc[j] += (double)x[i + j];
    for (; i < n; i++)
        acc[0] += (double)x[i];
}

static void acc_sqdev(double *restrict acc, const float *restrict x, int64_t n, double mean)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
#pragma omp simd
        for (int j = 0; j < LANES; j++) {
            double d = (double)x[i + j] - mean;
            acc[j] += d * d;
        }
    for (; i < n; i++)
        acc[0] += ((double)x[i] - mean) * ((double)x[i] - mean);
}

/* acc1 += Σ dy, acc2 += Σ dy·(x − mean) */
static void acc_dy(double *restrict acc1, double *restrict acc2, const float *restrict x, const float *restrict dy,
                   int64_t n, double mean)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
#pragma omp simd
        for (int j = 0; j < LANES; j++) {
            acc1[j] += (double)dy[i + j];
            acc2[j] += (double)dy[i + j] * ((double)x[i + j] - mean);
        }
    for (; i < n; i++) {
        acc1[0] += (double)dy[i];
        acc2[0] += (double)dy[i] * ((double)x[i] - mean);
    }
}

static double lanes(const double *acc)
{
    double s = 0;
    for (int j = 0; j < LANES; j++)
        s += acc[j];
    return s;
}

/* y = (x − m)·a + b over a contiguous chunk (centring first keeps precision when |m| ≫ σ) */
static void affine(float *restrict y, const float *restrict x, int64_t n, float m, float a, float b)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++)
        y[i] = (x[i] - m) * a + b;
}

/* ---- batch norm: x [N, C, S] ---- */
static void bn_dims(const kn_node *x, int64_t *N, int64_t *C, int64_t *S)
{
    *N = x->shape[0];
    *C = x->shape[1];
    int64_t nc = *N * *C;
    *S = nc > 0 ? kn__numel(x) / nc : 0;
}

static void bn_stats(const float *x, int64_t N, int64_t C, int64_t S, int64_t c, double *mean, double *var)
{
    double acc[LANES] = {0}, M = (double)(N * S);
    for (int64_t i = 0; i < N; i++)
        acc_sum(acc, x + (i * C + c) * S, S);
    *mean = M > 0 ? lanes(acc) / M : 0;
    memset(acc, 0, sizeof acc);
    for (int64_t i = 0; i < N; i++)
        acc_sqdev(acc, x + (i * C + c) * S, S, *mean);
    *var = M > 0 ? lanes(acc) / M : 0;
}

static kn_status bn_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    int64_t N, C, S;
    bn_dims(n->src[0], &N, &C, &S);
    const float *x = a->src[0], *gamma = a->src[1], *beta = a->src[2];
    float *rmean = a->src[3], *rvar = a->src[4], *y = a->dst;
    double m = n->af[0], eps = n->af[1];
    bool training = a->training;
    if (training && N * S < 2)
        return kn__kerr(a, "batch_norm: a training plan needs more than 1 value per channel, input %s has %lld",
                        kn__shp(n->src[0]), (long long)(N * S));
#pragma omp parallel for schedule(static) if (N * C * S > PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        double mean, var;
        if (training) {
            bn_stats(x, N, C, S, c, &mean, &var);
            rmean[c] = (float)((1 - m) * rmean[c] + m * mean);
            rvar[c] = (float)((1 - m) * rvar[c] + m * var * (double)(N * S) / (double)(N * S - 1));
        } else {
            mean = rmean[c];
            var = rvar[c];
        }
        float fm = (float)mean, fa = (float)(gamma[c] / sqrt(var + eps)), fb = beta[c];
        for (int64_t i = 0; i < N; i++)
            affine(y + (i * C + c) * S, x + (i * C + c) * S, S, fm, fa, fb);
    }
    return KN_OK;
}

/* dx = γσ⁻¹·(dy − Σdy/M) − γσ⁻³·(x − μ)·Σdy(x − μ)/M, i.e. a·(dy − m) + b·(x − μ):
 * centring both terms avoids the cancellation of a·dy + b·x + c. */
static kn_status bn_bwd_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    int64_t N, C, S;
    bn_dims(n->src[0], &N, &C, &S);
    const float *x = a->src[0], *gamma = a->src[1], *dy = a->src[2];
    float *out = a->dst;
    double M = (double)(N * S), eps = n->af[1];
    int which = (int)n->ai[0];
#pragma omp parallel for schedule(static) if (N * C * S > PAR_MIN)
    for (int64_t c = 0; c < C; c++) {
        double mean, var, acc1[LANES] = {0}, acc2[LANES] = {0};
        bn_stats(x, N, C, S, c, &mean, &var);
        double istd = 1.0 / sqrt(var + eps);
        for (int64_t i = 0; i < N; i++)
            acc_dy(acc1, acc2, x + (i * C + c) * S, dy + (i * C + c) * S, S, mean);
        double sdy = lanes(acc1), sdxm = lanes(acc2); /* Σdy, Σdy·(x − μ) */
        if (which == 1) {
            out[c] = (float)(sdxm * istd);
            continue;
        }
        if (which == 2) {
            out[c] = (float)sdy;
            continue;
        }
        double ka = gamma[c] * istd, kb = M > 0 ? -gamma[c] * istd * istd * istd * sdxm / M : 0;
        float fa = (float)ka, fb = (float)kb, fdm = (float)(M > 0 ? sdy / M : 0), fm = (float)mean;
        for (int64_t i = 0; i < N; i++) {
            const float *restrict xr = x + (i * C + c) * S, *restrict dyr = dy + (i * C + c) * S;
            float *restrict o = out + (i * C + c) * S;
#pragma omp simd
            for (int64_t j = 0; j < S; j++)
                o[j] = fa * (dyr[j] - fdm) + fb * (xr[j] - fm);
        }
    }
    return KN_OK;
}

/* ---- layer norm: x as R rows of D ---- */
static void ln_dims(const kn_node *n, int64_t *R, int64_t *D)
{
    const kn_node *x = n->src[0];
    *D = 1;
    for (int i = x->ndim - (int)n->ai[0]; i < x->ndim; i++)
        *D *= x->shape[i];
    *R = *D ? kn__numel(x) / *D : 0;
}

static void ln_stats(const float *row, int64_t D, double eps, double *mean, double *istd)
{
    double acc[LANES] = {0};
    acc_sum(acc, row, D);
    *mean = lanes(acc) / (double)D;
    memset(acc, 0, sizeof acc);
    acc_sqdev(acc, row, D, *mean);
    *istd = 1.0 / sqrt(lanes(acc) / (double)D + eps);
}

static kn_status ln_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    int64_t R, D;
    ln_dims(n, &R, &D);
    const float *x = a->src[0];
    const float *gamma = n->ai[1] ? a->src[1] : NULL, *beta = n->ai[2] ? a->src[n->ai[1] ? 2 : 1] : NULL;
    float *y = a->dst;
    double eps = n->af[0];
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *restrict xr = x + r * D;
        float *restrict yr = y + r * D;
        double mean, istd;
        ln_stats(xr, D, eps, &mean, &istd);
        affine(yr, xr, D, (float)mean, (float)istd, 0.0f);
        if (gamma) {
#pragma omp simd
            for (int64_t j = 0; j < D; j++)
                yr[j] *= gamma[j];
        }
        if (beta) {
#pragma omp simd
            for (int64_t j = 0; j < D; j++)
                yr[j] += beta[j];
        }
    }
    return KN_OK;
}

/* dgamma/dbeta: ROW_CHUNKS partial sums (double, in the workspace) reduced in chunk order. */
#define ROW_CHUNKS 32

static int64_t ln_chunks(int64_t R) { return R < ROW_CHUNKS ? (R ? R : 1) : ROW_CHUNKS; }

static size_t ln_bwd_workspace(const kn_node *n)
{
    int64_t R, D;
    ln_dims(n, &R, &D);
    if (n->ai[1] == 0)
        return 0;
    return (size_t)(ln_chunks(R) * D) * sizeof(double) + (size_t)(2 * R) * sizeof(double);
}

static kn_status ln_bwd_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    int64_t R, D;
    ln_dims(n, &R, &D);
    const float *x = a->src[0], *dy = a->src[1], *gamma = n->nsrc == 3 ? a->src[2] : NULL;
    float *out = a->dst;
    double eps = n->af[0];
    int which = (int)n->ai[1];
    if (which == 0) {
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
        for (int64_t r = 0; r < R; r++) {
            const float *xr = x + r * D, *gr = dy + r * D;
            float *o = out + r * D;
            double mean, istd, acc1[LANES] = {0}, acc2[LANES] = {0};
            ln_stats(xr, D, eps, &mean, &istd);
            if (gamma) { /* g = dy·γ, staged in the output row */
#pragma omp simd
                for (int64_t j = 0; j < D; j++)
                    o[j] = gr[j] * gamma[j];
                gr = o;
            }
            acc_dy(acc1, acc2, xr, gr, D, mean);
            double mg = lanes(acc1) / (double)D, mgx = lanes(acc2) * istd / (double)D; /* mean(g), mean(g·x̂) */
            /* dx = σ⁻¹·(g − mg) − σ⁻²·mgx·(x − μ) */
            float fa = (float)istd, fb = (float)(-istd * istd * mgx), fmg = (float)mg, fm = (float)mean;
#pragma omp simd
            for (int64_t j = 0; j < D; j++)
                o[j] = fa * (gr[j] - fmg) + fb * (xr[j] - fm);
        }
        return KN_OK;
    }
    int64_t P = ln_chunks(R);
    double *part = a->work, *stats = part + P * D; /* stats: mean, istd per row */
    if (which == 1) {
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
        for (int64_t r = 0; r < R; r++)
            ln_stats(x + r * D, D, eps, &stats[2 * r], &stats[2 * r + 1]);
    }
#pragma omp parallel for schedule(static) if (R * D > PAR_MIN)
    for (int64_t p = 0; p < P; p++) {
        double *restrict acc = part + p * D;
        for (int64_t j = 0; j < D; j++)
            acc[j] = 0;
        for (int64_t r = R * p / P; r < R * (p + 1) / P; r++) {
            const float *restrict xr = x + r * D, *restrict dyr = dy + r * D;
            if (which == 2) {
#pragma omp simd
                for (int64_t j = 0; j < D; j++)
                    acc[j] += (double)dyr[j];
            } else {
                double mean = stats[2 * r], istd = stats[2 * r + 1];
#pragma omp simd
                for (int64_t j = 0; j < D; j++)
                    acc[j] += (double)dyr[j] * (((double)xr[j] - mean) * istd);
            }
        }
    }
#pragma omp parallel for schedule(static) if (P * D > PAR_MIN)
    for (int64_t j = 0; j < D; j++) {
        double s = 0;
        for (int64_t p = 0; p < P; p++)
            s += part[p * D + j];
        out[j] = (float)s;
    }
    return KN_OK;
}

void kn__cpu_register_norm(kn__backend_kernel *t)
{
    t[KN_OP_BATCH_NORM] = (kn__backend_kernel){.fn = bn_f32};
    t[KN_OP_BATCH_NORM_BWD] = (kn__backend_kernel){.fn = bn_bwd_f32};
    t[KN_OP_LAYER_NORM] = (kn__backend_kernel){.fn = ln_f32};
    t[KN_OP_LAYER_NORM_BWD] = (kn__backend_kernel){.fn = ln_bwd_f32, .workspace = ln_bwd_workspace};
}
