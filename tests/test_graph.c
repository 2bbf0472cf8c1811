/* test_graph.c — graph builder and plan behaviour: first-error recording and NULL
 * pass-through, foreign nodes, gradient accumulation over several consumers, parameters in
 * one buffer, inputs and plan errors, no allocation while running, reference fallback for
 * f16, and out-of-memory injection through build, backward, compile and run. */
#include <math.h>
#include <stdlib.h>

#include "util.h"

static kn_node *vec_param(kn_graph *g, const char *name, int64_t n, double v0, double step)
{
    kn_node *p = kn_graph_param(g, name, KN_F64, 1, (int64_t[]){n}, true);
    double *d = kn_graph_param_data(g, p);
    for (int64_t i = 0; p && i < n; i++)
        d[i] = v0 + step * (double)i;
    return p;
}

static void test_first_error(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *a = kn_graph_input(g, "a", KN_F32, 2, (int64_t[]){2, 3});
    kn_node *b = kn_graph_input(g, "b", KN_F32, 2, (int64_t[]){4, 3});
    int before = kn_graph_params(g, false, NULL, 0);
    kn_node *bad = kn_graph_add(g, a, b);
    CHECK(!bad && kn_graph_status(g) == KN_ERR_SHAPE, "add of non-broadcastable shapes fails");
    CHECK(strstr(kn_graph_error(g), "[2,3]") && strstr(kn_graph_error(g), "[4,3]"), "message names shapes: %s",
          kn_graph_error(g));
    /* NULL passes through silently and keeps the first error */
    kn_node *c = kn_graph_relu(g, kn_graph_mul(g, bad, a));
    CHECK(!c, "NULL input gives NULL");
    kn_graph_sum(g, a, 1u << 7, false); /* a second, different error */
    CHECK(strstr(kn_graph_error(g), "add:") == kn_graph_error(g), "first error kept: %s", kn_graph_error(g));
    CHECK(kn_graph_params(g, false, NULL, 0) == before, "failed nodes are not left in the graph");
    kn_plan *p = (kn_plan *)1;
    CHECK(kn_plan_compile(&p, g, &a, 1, NULL) == KN_ERR_SHAPE && p == NULL, "compile refuses a graph with an error");
    CHECK(strstr(kn_plan_last_error(), "build error"), "compile says why: %s", kn_plan_last_error());
    kn_graph_clear_error(g);
    CHECK(kn_graph_status(g) == KN_OK, "clear_error");
    kn_graph *h = kn_graph_new();
    kn_node *x = kn_graph_input(h, "x", KN_F32, 1, (int64_t[]){3});
    CHECK(!kn_graph_add(g, a, x) && kn_graph_status(g) == KN_ERR_ARG, "node of another graph is refused");
    CHECK(strstr(kn_graph_error(g), "another graph"), "message: %s", kn_graph_error(g));
    CHECK(!kn_graph_input(h, "y", (kn_dtype)77, 1, (int64_t[]){3}) && kn_graph_status(h) == KN_ERR_DTYPE, "bad dtype");
    CHECK(kn_graph_backward(NULL, NULL, NULL, 0, NULL) == KN_ERR_ARG, "backward(NULL)");
    kn_graph_free(h);
    kn_graph_free(g);
    kn_graph_free(NULL);
}

/* y = Σ (x·x + x·w) — x feeds three consumers; dy/dx = 2x + w, dy/dw = x. */
static void test_accumulation(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = vec_param(g, "x", 5, -1.0, 0.5);
    kn_node *w = vec_param(g, "w", 5, 2.0, -0.25);
    kn_node *y = kn_graph_sum(g, kn_graph_add(g, kn_graph_mul(g, x, x), kn_graph_mul(g, x, w)), 0, false);
    kn_node *grads[2];
    CHECK_OK(kn_graph_backward(g, y, (kn_node *[]){x, w}, 2, grads));
    CHECK(kn_graph_grad(g, x) == grads[0], "kn_graph_grad returns the recorded gradient");
    kn_plan *p = NULL;
    CHECK_OK(kn_plan_compile(&p, g, (kn_node *[]){y, grads[0], grads[1]}, 3, NULL));
    CHECK_OK(kn_plan_run(p));
    const double *gx = kn_plan_data(p, grads[0]), *gw = kn_plan_data(p, grads[1]);
    for (int i = 0; i < 5; i++) {
        double xv = -1.0 + 0.5 * i, wv = 2.0 - 0.25 * i;
        CHECK(fabs(gx[i] - (2 * xv + wv)) < 1e-12, "dx[%d] = %g, expected %g", i, gx[i], 2 * xv + wv);
        CHECK(fabs(gw[i] - xv) < 1e-12, "dw[%d]", i);
    }
    /* backward errors */
    CHECK(kn_graph_backward(g, kn_graph_mul(g, x, w), NULL, 0, grads) == KN_ERR_SHAPE, "non-scalar loss");
    CHECK(strstr(kn_graph_error(g), "single element"), "message: %s", kn_graph_error(g));
    kn_plan_free(p);
    kn_graph_free(g);
}

static void test_params_and_inputs(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *w = kn_graph_param(g, "w", KN_F32, 2, (int64_t[]){3, 7}, true);
    kn_node *b = kn_graph_param(g, "b", KN_F32, 1, (int64_t[]){7}, true);
    kn_node *rm = kn_graph_param(g, "running", KN_F32, 1, (int64_t[]){7}, false);
    (void)rm;
    CHECK(kn_graph_params(g, true, NULL, 0) == 2 && kn_graph_params(g, false, NULL, 0) == 3, "param counts");
    CHECK((char *)kn_graph_param_data(g, b) - (char *)kn_graph_param_data(g, w) == 128, "one contiguous buffer, 64-byte aligned slots");
    CHECK_OK(kn_graph_param_init(g, w, KN_INIT_KAIMING_UNIFORM, 0, 0));
    float *wd = kn_graph_param_data(g, w);
    double bound = 1 / sqrt(7.0);
    int inside = 1;
    for (int i = 0; i < 21; i++)
        inside &= fabsf(wd[i]) <= bound && wd[i] != 0;
    CHECK(inside, "kaiming uniform within ±1/sqrt(fan_in)");
    float first = wd[0];
    CHECK_OK(kn_graph_param_init(g, w, KN_INIT_KAIMING_UNIFORM, 0, 0));
    CHECK(wd[0] == first, "init is deterministic for a seed");
    kn_graph_set_seed(g, 99);
    CHECK_OK(kn_graph_param_init(g, w, KN_INIT_KAIMING_UNIFORM, 0, 0));
    CHECK(wd[0] != first, "another seed, other values");
    CHECK(kn_graph_find(g, "running") == rm && !kn_graph_find(g, "nope"), "find by name");

    kn_node *x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){2, 3});
    kn_node *y = kn_graph_add(g, kn_graph_sum(g, x, 2u, false), kn_graph_scalar(g, KN_F32, 1.0));
    kn_plan *p = NULL;
    CHECK_OK(kn_plan_compile(&p, g, &y, 1, NULL));
    float xs[6] = {1, 2, 3, 4, 5, 6};
    CHECK(kn_plan_set_input(p, x, xs, 5) == KN_ERR_SHAPE, "wrong byte count");
    CHECK(strstr(kn_plan_error(p), "needs 24 bytes"), "message: %s", kn_plan_error(p));
    CHECK(kn_plan_set_input(p, y, xs, 24) == KN_ERR_ARG, "not an input");
    CHECK_OK(kn_plan_set_input(p, x, xs, sizeof xs));
    /* no allocation while running */
    kt_oom_install(0);
    for (int i = 0; i < 3; i++)
        CHECK_OK(kn_plan_run(p));
    long allocs = kt_oom_count();
    kt_oom_remove();
    CHECK(allocs == 0, "run allocated %ld times", allocs);
    const float *out = kn_plan_data(p, y);
    CHECK(out[0] == 7 && out[1] == 16, "values %g %g", out[0], out[1]);
    CHECK(kn_plan_step_count(p) == 3, "step count");
    kn_plan_free(p);
    kn_graph_free(g);
}

/* An f16 graph has no CPU kernels yet: it runs on the float64 reference through copies. */
static void test_fallback(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F16, 1, (int64_t[]){4});
    kn_node *y = kn_graph_mul(g, x, x);
    kn_plan *p = NULL;
    CHECK_OK(kn_plan_compile(&p, g, &y, 1, NULL));
    CHECK(kn_plan_num_fallbacks(p) == 1, "one fallback step, got %d", kn_plan_num_fallbacks(p));
    uint16_t in[4], out[4];
    for (int i = 0; i < 4; i++)
        in[i] = kn_f32_to_f16(0.5f * (float)(i + 1));
    CHECK_OK(kn_plan_set_input(p, x, in, sizeof in));
    CHECK_OK(kn_plan_run(p));
    memcpy(out, kn_plan_data(p, y), sizeof out);
    CHECK(kn_f16_to_f32(out[3]) == 4.0f, "f16 result %g", kn_f16_to_f32(out[3]));
    kn_plan_free(p);
    kn_graph_free(g);
}

/* Build + backward + compile + run with the n-th allocation failing, n = 1, 2, ...:
 * every failure is a clean status and nothing leaks. */
static kn_status build_and_run(void *unused)
{
    (void)unused;
    kn_graph *g = kn_graph_new();
    if (!g)
        return KN_ERR_OOM;
    kn_node *x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){4, 8});
    kn_node *w = kn_graph_param(g, "w", KN_F32, 1, (int64_t[]){8}, true);
    kn_node *h = kn_graph_mul(g, kn_graph_sum(g, kn_graph_mul(g, x, w), 0, false), kn_graph_scalar(g, KN_F32, 2));
    kn_status st = kn_graph_status(g);
    kn_node *grad = NULL;
    if (!st)
        st = kn_graph_backward(g, h, &w, 1, &grad);
    kn_plan *p = NULL;
    if (!st)
        st = kn_plan_compile(&p, g, (kn_node *[]){h, grad}, 2, NULL);
    if (!st)
        st = kn_plan_run(p);
    kn_plan_free(p);
    kn_graph_free(g);
    return st;
}

static void test_oom(void)
{
    long n = kt_oom_loop("build, backward, compile, run", build_and_run, NULL, 1000);
    CHECK(n > 5, "the loop reached success after %ld failures", n);
}

/* Dropout masks and parameter init come from Philox: the same numbers for any thread count
 * and on the reference backend. */
static void test_rng_determinism(void)
{
    float *outs[3] = {0};
    kn_backend_kind be[3] = {KN_BACKEND_CPU, KN_BACKEND_CPU, KN_BACKEND_REF};
    int threads[3] = {1, 2, 2};
    for (int k = 0; k < 3; k++) {
        kn_graph *g = kn_graph_new();
        kn_graph_set_seed(g, 1234);
        kn_node *w = kn_graph_param(g, "w", KN_F32, 2, (int64_t[]){300, 301}, true);
        kn_graph_param_init(g, w, KN_INIT_NORMAL, 0, 1);
        kn_node *y = kn_graph_dropout(g, w, 0.3);
        kn_plan *p = NULL;
        kn_plan_opts o = {.backend = be[k], .training = true, .threads = threads[k]};
        CHECK_OK(kn_plan_compile(&p, g, &y, 1, &o));
        kn_plan_set_step_count(p, 5);
        CHECK_OK(kn_plan_run(p));
        outs[k] = malloc(sizeof(float) * 300 * 301);
        memcpy(outs[k], kn_plan_data(p, y), sizeof(float) * 300 * 301);
        kn_plan_free(p);
        kn_graph_free(g);
    }
    CHECK(memcmp(outs[0], outs[1], sizeof(float) * 300 * 301) == 0, "1 vs 2 threads: bit-identical");
    int diff = 0;
    for (int i = 0; i < 300 * 301; i++)
        diff += (outs[0][i] == 0) != (outs[2][i] == 0);
    CHECK(diff == 0, "CPU and reference backends drop the same %d elements differently", diff);
    for (int k = 0; k < 3; k++)
        free(outs[k]);
}

int main(void)
{
    test_rng_determinism();
    test_first_error();
    test_accumulation();
    test_params_and_inputs();
    test_fallback();
    test_oom();
    return kt_finish("test_graph");
}
