/* test_norm_running.c — batch norm's run-time behaviour that the op table rows cannot see:
 * the running-statistics update of a training plan (PyTorch's formula, with its unbiased
 * variance, on hand-computed values and on random data over two runs), the inference path
 * leaving them untouched, and the error for a single value per channel in training. Runs on
 * the CPU backend (f32 kernels) and the reference backend (f64), in f32 and f64 graphs.
 * Not here: gradients (tests/ops/norm.c checks them against finite differences). */
#include <math.h>

#include "kiln/kiln.h"
#include "util.h"

static void fill(kn_graph *g, kn_node *p, const double *v)
{
    void *d = kn_graph_param_data(g, p);
    for (int64_t i = 0; i < kn_node_numel(p); i++) {
        if (kn_node_dtype(p) == KN_F32)
            ((float *)d)[i] = (float)v[i];
        else
            ((double *)d)[i] = v[i];
    }
}

static double get(kn_graph *g, kn_node *p, int64_t i)
{
    const void *d = kn_graph_param_data(g, p);
    return kn_node_dtype(p) == KN_F32 ? ((const float *)d)[i] : ((const double *)d)[i];
}

typedef struct bn {
    kn_graph *g;
    kn_node *x, *gamma, *beta, *rm, *rv, *y;
    kn_plan *plan;
} bn;

/* x [N, C, S] (S = 0: x is [N, C]) with the given values, gamma = 1, beta = 0. */
static bool bn_make(bn *b, kn_dtype dt, int64_t N, int64_t C, int64_t S, const double *x, const double *rm,
                    const double *rv, double momentum, bool training, kn_backend_kind be)
{
    memset(b, 0, sizeof *b);
    b->g = kn_graph_new();
    int64_t xs[3] = {N, C, S}, cs[1] = {C};
    b->x = kn_graph_param(b->g, "x", dt, S ? 3 : 2, xs, true);
    b->gamma = kn_graph_param(b->g, "gamma", dt, 1, cs, true);
    b->beta = kn_graph_param(b->g, "beta", dt, 1, cs, true);
    b->rm = kn_graph_param(b->g, "running_mean", dt, 1, cs, false);
    b->rv = kn_graph_param(b->g, "running_var", dt, 1, cs, false);
    b->y = kn_graph_batch_norm(b->g, b->x, b->gamma, b->beta, b->rm, b->rv, momentum, 1e-5);
    CHECK(b->y, "batch_norm build failed: %s", kn_graph_error(b->g));
    if (!b->y)
        return false;
    fill(b->g, b->x, x);
    fill(b->g, b->rm, rm);
    fill(b->g, b->rv, rv);
    kn_graph_param_init(b->g, b->gamma, KN_INIT_ONES, 0, 0);
    kn_plan_opts o = {.backend = be, .training = training};
    kn_status st = kn_plan_compile(&b->plan, b->g, &b->y, 1, &o);
    CHECK(st == KN_OK, "compile failed: %s", kn_plan_last_error());
    return st == KN_OK;
}

static void bn_free(bn *b)
{
    kn_plan_free(b->plan);
    kn_graph_free(b->g);
}

static const char *be_name(kn_backend_kind be) { return be == KN_BACKEND_CPU ? "cpu" : "ref"; }

/* x [3, 2] = [[1,2],[3,4],[5,7]], running (0, 1), momentum 0.1. By hand, as PyTorch's
 * BatchNorm1d(2, momentum=0.1) in train mode: batch means (3, 13/3), biased variances
 * (8/3, 38/9), unbiased (4, 57/9) → running_mean (0.3, 0.43333), running_var (1.3, 1.53333). */
static void known_values(kn_dtype dt, kn_backend_kind be)
{
    const double x[6] = {1, 2, 3, 4, 5, 7}, rm[2] = {0, 0}, rv[2] = {1, 1};
    bn b;
    if (bn_make(&b, dt, 3, 2, 0, x, rm, rv, 0.1, true, be)) {
        CHECK_OK(kn_plan_run(b.plan));
        double tol = dt == KN_F32 ? 1e-6 : 1e-12;
        const double want_rm[2] = {0.3, 0.1 * 13.0 / 3.0}, want_rv[2] = {1.3, 0.9 + 0.1 * 57.0 / 9.0};
        for (int c = 0; c < 2; c++) {
            CHECK(kt_close(get(b.g, b.rm, c), want_rm[c], tol, tol),
                  "%s %s: running_mean[%d] = %.9g, PyTorch gives %.9g", be_name(be), kn_dtype_name(dt), c,
                  get(b.g, b.rm, c), want_rm[c]);
            CHECK(kt_close(get(b.g, b.rv, c), want_rv[c], tol, tol),
                  "%s %s: running_var[%d] = %.9g, PyTorch gives %.9g", be_name(be), kn_dtype_name(dt), c,
                  get(b.g, b.rv, c), want_rv[c]);
        }
        /* y[0][0] = (1 − 3)/sqrt(8/3 + 1e-5) */
        double y00 = kn_plan_scalar(b.plan, b.y), want = -2.0 / sqrt(8.0 / 3.0 + 1e-5);
        CHECK(kt_close(y00, want, tol, tol), "%s %s: y[0][0] = %.9g, expected %.9g", be_name(be), kn_dtype_name(dt),
              y00, want);
    }
    bn_free(&b);
}

/* Random x [5, 3, 7]: two training runs compound the update r ← (1 − m)·r + m·stat. */
static void two_runs(kn_dtype dt, kn_backend_kind be)
{
    enum { N = 5, C = 3, S = 7 };
    double x[N * C * S], rm[C] = {0.5, -0.25, 0}, rv[C] = {2, 0.5, 1}, m = 0.3;
    for (int i = 0; i < N * C * S; i++)
        x[i] = (double)(float)(kn_rng_uniform(7, 1, (uint64_t)i) * 4 - 1);
    bn b;
    if (!bn_make(&b, dt, N, C, S, x, rm, rv, m, true, be)) {
        bn_free(&b);
        return;
    }
    CHECK_OK(kn_plan_run(b.plan));
    CHECK_OK(kn_plan_run(b.plan));
    double tol = dt == KN_F32 ? 1e-5 : 1e-12;
    for (int c = 0; c < C; c++) {
        double s = 0, q = 0;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < S; j++)
                s += x[(i * C + c) * S + j];
        double mean = s / (N * S);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < S; j++)
                q += (x[(i * C + c) * S + j] - mean) * (x[(i * C + c) * S + j] - mean);
        double unbiased = q / (N * S - 1), em = rm[c], ev = rv[c];
        for (int run = 0; run < 2; run++) {
            em = (1 - m) * em + m * mean;
            ev = (1 - m) * ev + m * unbiased;
        }
        CHECK(kt_close(get(b.g, b.rm, c), em, tol, tol), "%s %s: running_mean[%d] after 2 runs = %.9g, expected %.9g",
              be_name(be), kn_dtype_name(dt), c, get(b.g, b.rm, c), em);
        CHECK(kt_close(get(b.g, b.rv, c), ev, tol, tol), "%s %s: running_var[%d] after 2 runs = %.9g, expected %.9g",
              be_name(be), kn_dtype_name(dt), c, get(b.g, b.rv, c), ev);
    }
    bn_free(&b);
}

/* Inference uses and keeps the running statistics: y = (x − rm)/sqrt(rv + eps). */
static void inference(kn_dtype dt, kn_backend_kind be)
{
    const double x[6] = {1, 2, 3, 4, 5, 7}, rm[2] = {0.5, -1}, rv[2] = {4, 0.25};
    bn b;
    if (bn_make(&b, dt, 3, 2, 0, x, rm, rv, 0.1, false, be)) {
        CHECK_OK(kn_plan_run(b.plan));
        kn_tensor *t = NULL;
        CHECK_OK(kn_plan_tensor(b.plan, b.y, &t));
        double tol = dt == KN_F32 ? 1e-6 : 1e-12;
        for (int i = 0; t && i < 6; i++) {
            int c = i % 2;
            double want = (x[i] - rm[c]) / sqrt(rv[c] + 1e-5);
            double got = kn_tensor_get(t, (const int64_t[]){i / 2, c});
            CHECK(kt_close(got, want, tol, tol), "%s %s inference: y[%d] = %.9g, expected %.9g", be_name(be),
                  kn_dtype_name(dt), i, got, want);
        }
        kn_tensor_free(t);
        for (int c = 0; c < 2; c++)
            CHECK(get(b.g, b.rm, c) == rm[c] && get(b.g, b.rv, c) == rv[c],
                  "%s %s inference changed the running statistics of channel %d", be_name(be), kn_dtype_name(dt), c);
    }
    bn_free(&b);
}

/* One value per channel: no batch variance to speak of, as PyTorch refuses in training. */
static void single_value(kn_backend_kind be)
{
    const double x[2] = {1, 2}, rm[2] = {0, 0}, rv[2] = {1, 1};
    bn b;
    if (bn_make(&b, KN_F32, 1, 2, 0, x, rm, rv, 0.1, true, be)) {
        kn_status st = kn_plan_run(b.plan);
        CHECK(st == KN_ERR_RANGE, "%s: training with one value per channel returned %s", be_name(be),
              kn_status_name(st));
        CHECK(strstr(kn_plan_error(b.plan), "more than 1 value per channel") != NULL, "%s: message \"%s\"",
              be_name(be), kn_plan_error(b.plan));
    }
    bn_free(&b);
}

int main(void)
{
    const kn_backend_kind bes[2] = {KN_BACKEND_CPU, KN_BACKEND_REF};
    const kn_dtype dts[2] = {KN_F32, KN_F64};
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            known_values(dts[j], bes[i]);
            two_runs(dts[j], bes[i]);
            inference(dts[j], bes[i]);
        }
        single_value(bes[i]);
    }
    return kt_finish("test_norm_running");
}
