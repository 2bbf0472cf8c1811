/* random.c — op test rows for dropout: training plans (the f32 CPU mask must equal the
 * float64 reference mask element for element; the gradient check proves the backward redraws
 * the forward's mask), an inference row (identity), and once a statistical check that the
 * drop rate is p, kept values are scaled by 1/(1-p), and the mask changes with the step.
 * Not here: statistical tests of Philox itself. */
#include <math.h>
#include <stdlib.h>

#include "op_rows.h"
#include "util.h"

/* Runs dropout(p) on n ones with the given backend/dtype at plan step `step`; fills out[n]
 * with the result. Builds its inputs without the kt_* helpers (which would shift the values
 * the harness gives the row's own build). */
static bool run_dropout(kn_dtype dt, kn_backend_kind be, bool training, uint64_t step, double p, int64_t n,
                        double *out)
{
    kn_graph *g = kn_graph_new();
    double *ones = malloc((size_t)n * sizeof(double));
    float *ones32 = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        ones[i] = ones32[i] = 1;
    kn_node *x = kn_graph_const(g, dt, 1, &n, dt == KN_F32 ? (void *)ones32 : (void *)ones);
    kn_graph_dropout(g, kn_graph_scalar(g, dt, 0), 0.5); /* takes key 0: the node below has key 1 */
    kn_node *y = kn_graph_dropout(g, x, p);
    kn_plan *plan = NULL;
    kn_plan_opts o = {.backend = be, .training = training};
    bool ok = y && kn_plan_compile(&plan, g, &y, 1, &o) == KN_OK;
    if (ok) {
        kn_plan_set_step_count(plan, step);
        ok = kn_plan_run(plan) == KN_OK;
    }
    for (int64_t i = 0; ok && i < n; i++)
        out[i] = dt == KN_F32 ? ((const float *)kn_plan_data(plan, y))[i] : ((const double *)kn_plan_data(plan, y))[i];
    kn_plan_free(plan);
    kn_graph_free(g);
    free(ones);
    free(ones32);
    return ok;
}

static void dropout_statistics(void)
{
    enum { N = 20011 };
    const double p = 0.3;
    double *cpu = malloc(N * sizeof(double)), *ref = malloc(N * sizeof(double));
    double *next = malloc(N * sizeof(double)), *eval = malloc(N * sizeof(double));
    bool ok = run_dropout(KN_F32, KN_BACKEND_CPU, true, 5, p, N, cpu) &&
              run_dropout(KN_F64, KN_BACKEND_REF, true, 5, p, N, ref) &&
              run_dropout(KN_F32, KN_BACKEND_CPU, true, 6, p, N, next) &&
              run_dropout(KN_F32, KN_BACKEND_CPU, false, 5, p, N, eval);
    CHECK(ok, "dropout statistics: a plan failed to compile or run");
    int64_t dropped = 0, bad_scale = 0, differ_ref = 0, differ_step = 0, not_identity = 0;
    for (int64_t i = 0; ok && i < N; i++) {
        dropped += cpu[i] == 0;
        bad_scale += cpu[i] != 0 && fabs(cpu[i] - 1 / (1 - p)) > 1e-6;
        differ_ref += (cpu[i] == 0) != (ref[i] == 0);
        differ_step += (cpu[i] == 0) != (next[i] == 0);
        not_identity += eval[i] != 1;
    }
    double rate = (double)dropped / N; /* σ ≈ 0.0032 */
    CHECK(!ok || fabs(rate - p) < 0.02, "dropout: drop rate %.4f, expected %.2f", rate, p);
    CHECK(bad_scale == 0, "dropout: %lld kept values are not scaled by 1/(1-p)", (long long)bad_scale);
    CHECK(differ_ref == 0, "dropout: f32 CPU and f64 reference masks differ at %lld elements", (long long)differ_ref);
    CHECK(!ok || differ_step > N / 4, "dropout: masks of steps 5 and 6 differ at only %lld elements",
          (long long)differ_step);
    CHECK(not_identity == 0, "dropout: %lld elements changed in an inference plan", (long long)not_identity);
    free(cpu);
    free(ref);
    free(next);
    free(eval);
}

static kn_node *dropout_b(kn_graph *g, kn_dtype dt, int v)
{
    static bool stats_done;
    if (!stats_done) {
        stats_done = true;
        dropout_statistics();
    }
    switch (v) {
    case 0: return kn_graph_dropout(g, kt_p(g, dt, -2, 2, 7, 13), 0.3);
    case 1: return kn_graph_dropout(g, kt_p(g, dt, -2, 2, 1, 65), 0.5);
    case 2: return kn_graph_dropout(g, kt_p(g, dt, -2, 2, 13, 1, 7), 0.9);
    case 3: return kn_graph_dropout(g, kt_param(g, dt, 0, NULL, -2, 2), 0.25);
    default: { /* two dropouts in one graph draw different masks (keys 0 and 1) */
        kn_node *x = kt_p(g, dt, -2, 2, 5, 13);
        return kn_graph_dropout(g, kn_graph_dropout(g, x, 0.2), 0.4);
    }
    }
}

static kn_node *bad_p(kn_graph *g) { return kn_graph_dropout(g, kt_p(g, KN_F32, 0, 1, 4, 5), 1.0); }
static kn_node *bad_int(kn_graph *g)
{
    return kn_graph_dropout(g, kt_labels(g, KN_I32, 1, (const int64_t[]){3}, 4), 0.5);
}

const op_row kt_rows_random[] = {
    {.op = KN_OP_DROPOUT, .label = "dropout", .build = dropout_b, .n_variants = 5,
     .bad = bad_p, .bad_code = KN_ERR_ARG, .bad_msg = "dropout: p = 1 on input [4,5], p must be in [0, 1)",
     .training = true},
    {.op = KN_OP_DROPOUT, .label = "dropout_eval", .build = dropout_b, .n_variants = 4,
     .bad = bad_int, .bad_code = KN_ERR_DTYPE, .bad_msg = "dropout: input 0 has dtype i32"},
};
const int kt_n_rows_random = sizeof kt_rows_random / sizeof kt_rows_random[0];
