/* test_cuda_plan.c — plans on the GPU (docs/cuda.md): a small MLP training step (linear,
 * relu, optional dropout, softmax cross-entropy, backward, SGD updates) compiled for CUDA
 * against the same graph on the CPU, step by step; the caching allocator (no cudaMalloc once
 * a plan runs, none when a plan is compiled again); the CPU fallback (ops forced off the GPU
 * with KILN_CUDA_FALLBACK_OPS give the same results); CUDA-graph replay against eager runs
 * (with dropout, so a frozen step counter would show); parameters written on the host reach
 * the device; inputs prefetched during a run (kn_plan_prefetch_input); bad labels give KN_ERR_RANGE; out-of-memory and bad-device messages. Without a
 * GPU it exits 77 (skipped), never passes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/cuda.h"
#include "mlp_step.h"
#include "util.h"

enum { B = 32, D = 40, H = 24, C = 10 };

typedef kt_mlp mlp;

static void mlp_build(mlp *m, double dropout) { kt_mlp_build(m, B, D, H, C, 0.3, dropout, 1); }

static kn_plan *compile(mlp *m, kn_backend_kind backend, bool deterministic)
{
    kn_plan *p = NULL;
    kn_plan_opts o = {.backend = backend, .training = true, .threads = 2, .deterministic = deterministic};
    kn_status st = kn_plan_compile(&p, m->g, m->outs, m->n_outs, &o);
    CHECK(st == KN_OK && p, "compiling on %s: %s: %s", backend == KN_BACKEND_CUDA ? "cuda" : "cpu",
          kn_status_name(st), kn_plan_last_error());
    return p;
}

/* Inputs of step `step`: fresh random features, labels, lr. */
static void feed(kn_plan *p, const mlp *m, int step, int bad_label)
{
    float *x = kn_plan_input_data(p, m->x);
    int32_t *y = kn_plan_input_data(p, m->y);
    float *lr = kn_plan_input_data(p, m->lr);
    CHECK(x && y && lr, "no input buffers");
    if (!x || !y || !lr)
        return;
    for (int i = 0; i < B * D; i++)
        x[i] = (float)kn_rng_uniform(11, (uint64_t)step, (uint64_t)i) * 2 - 1;
    for (int i = 0; i < B; i++)
        y[i] = (int32_t)((i * 7 + step) % C);
    if (bad_label)
        y[B / 2] = C; /* one past the last class */
    *lr = 0.1f;
}

/* max |a-b| / (max |b| + tiny) over n floats */
static double rel_err(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - (double)b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / den;
}

/* Runs the CUDA plan and the CPU plan side by side for `steps` steps. */
static void compare_runs(const char *what, mlp *gm, kn_plan *gp, mlp *cm, kn_plan *cp, int steps, double tol)
{
    for (int s = 0; s < steps; s++) {
        feed(gp, gm, s, 0);
        feed(cp, cm, s, 0);
        kn_status st = kn_plan_run(gp);
        CHECK(st == KN_OK, "%s step %d on CUDA: %s: %s", what, s, kn_status_name(st), kn_plan_error(gp));
        CHECK_OK(kn_plan_run(cp));
        if (st)
            return;
        double lg = kn_plan_scalar(gp, gm->loss), lc = kn_plan_scalar(cp, cm->loss);
        CHECK(isfinite(lg) && kt_close(lg, lc, tol, 1e-6), "%s step %d: loss %.9g on CUDA, %.9g on the CPU", what, s, lg,
              lc);
        const float *zg = kn_plan_data(gp, gm->logits), *zc = kn_plan_data(cp, cm->logits);
        CHECK(zg && zc, "%s: logits not readable: %s", what, kn_plan_error(gp));
        if (zg && zc) {
            double e = rel_err(zg, zc, B * C);
            CHECK(e <= tol, "%s step %d: logits differ by %.3g (relative)", what, s, e);
        }
    }
    for (int i = 0; i < 4; i++) { /* read on the host: the CUDA plan hands the parameters back */
        const float *pg = kn_graph_param_data(gm->g, gm->params[i]), *pc = kn_graph_param_data(cm->g, cm->params[i]);
        CHECK(pg && pc, "%s: parameter %d not readable", what, i);
        if (pg && pc) {
            double e = rel_err(pg, pc, kn_node_numel(gm->params[i]));
            CHECK(e <= tol, "%s: parameter %s differs by %.3g after %d steps", what, kn_node_name(gm->params[i]), e,
                  steps);
        }
    }
}

static void test_matches_cpu(void)
{
    mlp gm, cm;
    mlp_build(&gm, 0);
    mlp_build(&cm, 0);
    kn_plan *gp = compile(&gm, KN_BACKEND_CUDA, false), *cp = compile(&cm, KN_BACKEND_CPU, false);
    if (gp && cp) {
        CHECK(kn_plan_backend(gp) == KN_BACKEND_CUDA && kn_plan_device(gp) == 0, "backend %d device %d",
              (int)kn_plan_backend(gp), kn_plan_device(gp));
        printf("MLP step on CUDA: %d steps, %d on the CPU with copies\n", kn_plan_num_steps(gp),
               kn_plan_num_fallbacks(gp));
        compare_runs("mlp", &gm, gp, &cm, cp, 6, 1e-4);
        CHECK(kn_plan_uses_cuda_graph(gp) == (kn_plan_num_fallbacks(gp) == 0 && !getenv("KILN_CUDA_GRAPHS")),
              "CUDA graph in use: %d with %d fallbacks", kn_plan_uses_cuda_graph(gp), kn_plan_num_fallbacks(gp));
    }
    kn_plan_free(gp);
    kn_plan_free(cp);
    kn_graph_free(gm.g);
    kn_graph_free(cm.g);
}

/* The allocator: no cudaMalloc while running, none when the same plan is compiled again. */
static void test_allocator(void)
{
    mlp m;
    mlp_build(&m, 0);
    kn_plan *p = compile(&m, KN_BACKEND_CUDA, false);
    kn_cuda_cache_stats a, b, c, d;
    if (p) {
        feed(p, &m, 0, 0);
        CHECK_OK(kn_plan_run(p));
        CHECK_OK(kn_cuda_cache_get_stats(0, &a));
        for (int s = 1; s < 12; s++) {
            feed(p, &m, s, 0);
            CHECK_OK(kn_plan_run(p));
        }
        CHECK_OK(kn_cuda_cache_get_stats(0, &b));
        CHECK(b.mallocs == a.mallocs, "%llu cudaMalloc calls during 11 runs",
              (unsigned long long)(b.mallocs - a.mallocs));
        CHECK(b.in_use > 0 && b.held >= b.in_use, "cache: held %zu, in use %zu", b.held, b.in_use);
        kn_plan_free(p);
        CHECK_OK(kn_cuda_cache_get_stats(0, &c));
        CHECK(c.in_use < b.in_use && c.held == b.held, "after free: in use %zu (was %zu), held %zu (was %zu)",
              c.in_use, b.in_use, c.held, b.held);
        p = compile(&m, KN_BACKEND_CUDA, false);
        CHECK_OK(kn_cuda_cache_get_stats(0, &d));
        CHECK(d.mallocs == c.mallocs && d.hits > c.hits, "recompiling: %llu new cudaMalloc calls, %llu hits",
              (unsigned long long)(d.mallocs - c.mallocs), (unsigned long long)(d.hits - c.hits));
        printf("allocator: held %zu bytes, %llu cudaMalloc calls, %llu cache hits\n", d.held,
               (unsigned long long)d.mallocs, (unsigned long long)d.hits);
    }
    kn_plan_free(p);
    kn_graph_free(m.g);
}

/* Ops forced to the CPU path give the same results; such a plan runs eagerly. */
static void test_fallback(void)
{
    setenv("KILN_CUDA_FALLBACK_OPS", "relu,softmax_cross_entropy", 1);
    mlp gm, cm;
    mlp_build(&gm, 0);
    mlp_build(&cm, 0);
    kn_plan *gp = compile(&gm, KN_BACKEND_CUDA, false), *cp = compile(&cm, KN_BACKEND_CPU, false);
    unsetenv("KILN_CUDA_FALLBACK_OPS");
    if (gp && cp) {
        CHECK(kn_plan_num_fallbacks(gp) >= 2, "%d fallback steps with relu and the loss forced off the GPU",
              kn_plan_num_fallbacks(gp));
        compare_runs("fallback", &gm, gp, &cm, cp, 4, 1e-4);
        CHECK(!kn_plan_uses_cuda_graph(gp), "a plan with CPU steps replays a CUDA graph");
    }
    kn_plan_free(gp);
    kn_plan_free(cp);
    kn_graph_free(gm.g);
    kn_graph_free(cm.g);
}

/* Graph replay equals eager runs bit for bit (deterministic mode), and both follow the CPU
 * with dropout: the mask changes every step through the device step counter. */
static void test_graph_replay(void)
{
    mlp em, gm, cm;
    mlp_build(&em, 0.25);
    mlp_build(&gm, 0.25);
    mlp_build(&cm, 0.25);
    setenv("KILN_CUDA_GRAPHS", "0", 1);
    kn_plan *ep = compile(&em, KN_BACKEND_CUDA, true);
    setenv("KILN_CUDA_GRAPHS", "1", 1); /* graphs on (dropout reads its step on the device) */
    kn_plan *gp = compile(&gm, KN_BACKEND_CUDA, true), *cp = compile(&cm, KN_BACKEND_CPU, false);
    unsetenv("KILN_CUDA_GRAPHS");
    if (ep && gp && cp) {
        for (int s = 0; s < 5; s++) {
            feed(ep, &em, s, 0);
            feed(gp, &gm, s, 0);
            feed(cp, &cm, s, 0);
            kn_status a = kn_plan_run(ep), b = kn_plan_run(gp);
            CHECK(a == KN_OK && b == KN_OK, "step %d: eager %s (%s), graph %s (%s)", s, kn_status_name(a),
                  kn_plan_error(ep), kn_status_name(b), kn_plan_error(gp));
            CHECK_OK(kn_plan_run(cp));
            const float *ze = kn_plan_data(ep, em.logits), *zg = kn_plan_data(gp, gm.logits),
                        *zc = kn_plan_data(cp, cm.logits);
            if (!ze || !zg || !zc) {
                CHECK(0, "logits not readable at step %d", s);
                break;
            }
            CHECK(!memcmp(ze, zg, sizeof(float) * B * C), "step %d: graph replay differs from eager runs", s);
            double e = rel_err(zg, zc, B * C);
            CHECK(e <= 1e-4,
                  "step %d: logits with dropout in a CUDA graph differ from the CPU by %.3g (does the dropout kernel "
                  "read the step from kn__cuda_ctx.step? a graph freezes kn__kargs.step)",
                  s, e);
        }
        CHECK(!kn_plan_uses_cuda_graph(ep), "KILN_CUDA_GRAPHS=0 did not turn graphs off");
        printf("graph replay: %s (%d fallback steps)\n", kn_plan_uses_cuda_graph(gp) ? "one CUDA graph per step" : "eager",
               kn_plan_num_fallbacks(gp));
    }
    kn_plan_free(ep);
    kn_plan_free(gp);
    kn_plan_free(cp);
    kn_graph_free(em.g);
    kn_graph_free(gm.g);
    kn_graph_free(cm.g);
}

/* kn_plan_run_async: the next batch is written into the staging buffers while a run is in
 * flight; every run still matches the CPU (the inputs were on the device when it returned).
 * With prefetch, kn_plan_prefetch_input also sends it to the device (the inbox) during the
 * run and the next run takes it from there; kn_plan_set_input after a prefetch wins over it.
 * On a CPU plan a prefetch does nothing; a non-input fails. */
static void test_async(bool prefetch)
{
    const char *what = prefetch ? "prefetch" : "async";
    mlp gm, cm;
    mlp_build(&gm, 0);
    mlp_build(&cm, 0);
    kn_plan *gp = compile(&gm, KN_BACKEND_CUDA, false), *cp = compile(&cm, KN_BACKEND_CPU, false);
    float *good = malloc(sizeof(float) * B * D);
    int32_t good_y[B];
    if (gp && cp && good) {
        feed(gp, &gm, 0, 0);
        CHECK_OK(kn_plan_run_async(gp));
        for (int s = 0; s < 6; s++) {
            feed(cp, &cm, s, 0);
            CHECK_OK(kn_plan_run(cp));
            feed(gp, &gm, s + 1, 0); /* while run s computes */
            if (prefetch && s == 3) { /* a stale prefetch of another batch, then the right one set */
                memcpy(good, kn_plan_input_data(gp, gm.x), sizeof(float) * B * D);
                memcpy(good_y, kn_plan_input_data(gp, gm.y), sizeof good_y);
                feed(gp, &gm, s + 9, 0);
            }
            if (prefetch) {
                CHECK_OK(kn_plan_prefetch_input(gp, gm.x));
                CHECK_OK(kn_plan_prefetch_input(gp, gm.y));
            }
            if (prefetch && s == 3) {
                CHECK_OK(kn_plan_set_input(gp, gm.x, good, sizeof(float) * B * D));
                CHECK_OK(kn_plan_set_input(gp, gm.y, good_y, sizeof good_y));
            }
            const float *zg = kn_plan_data(gp, gm.logits), *zc = kn_plan_data(cp, cm.logits);
            CHECK(zg && zc, "%s: logits not readable: %s", what, kn_plan_error(gp));
            if (zg && zc) {
                double e = rel_err(zg, zc, B * C);
                CHECK(e <= 1e-4, "%s run %d: logits differ from the CPU by %.3g", what, s, e);
            }
            CHECK_OK(kn_plan_run_async(gp));
        }
        CHECK_OK(kn_plan_wait(gp));
        if (prefetch) {
            CHECK_OK(kn_plan_prefetch_input(cp, cm.x));
            CHECK(kn_plan_prefetch_input(gp, gm.logits) == KN_ERR_ARG, "prefetching a non-input did not fail");
        }
    }
    free(good);
    kn_plan_free(gp);
    kn_plan_free(cp);
    kn_graph_free(gm.g);
    kn_graph_free(cm.g);
}

/* Parameters written on the host after a run reach the device before the next one. */
static void test_host_writes(void)
{
    mlp m;
    mlp_build(&m, 0);
    kn_plan *p = compile(&m, KN_BACKEND_CUDA, false);
    if (p) {
        feed(p, &m, 0, 0);
        CHECK_OK(kn_plan_run(p));
        for (int i = 2; i < 4; i++) { /* w2 = 0, b2 = 0.5: every logit is 0.5 */
            float *d = kn_graph_param_data(m.g, m.params[i]);
            CHECK(d != NULL, "param_data");
            for (int64_t k = 0; d && k < kn_node_numel(m.params[i]); k++)
                d[k] = i == 2 ? 0.0f : 0.5f;
        }
        feed(p, &m, 1, 0);
        CHECK_OK(kn_plan_run(p));
        const float *z = kn_plan_data(p, m.logits);
        int bad = 0;
        for (int k = 0; z && k < B * C; k++)
            bad += z[k] != 0.5f;
        CHECK(z && !bad, "%d logits are not 0.5 after w2 = 0, b2 = 0.5 was written on the host", bad);
        double expect = log((double)C), loss = kn_plan_scalar(p, m.loss);
        CHECK(kt_close(loss, expect, 1e-5, 1e-6), "uniform logits: loss %.9g, expected log(10) = %.9g", loss, expect);
    }
    kn_plan_free(p);
    kn_graph_free(m.g);
}

static void test_bad_label(void)
{
    mlp m;
    mlp_build(&m, 0);
    kn_plan *p = compile(&m, KN_BACKEND_CUDA, false);
    if (p) {
        feed(p, &m, 0, 1);
        kn_status st = kn_plan_run(p);
        CHECK(st == KN_ERR_RANGE, "label %d of %d classes gave %s", C, C, kn_status_name(st));
        CHECK(strstr(kn_plan_error(p), "softmax_cross_entropy") != NULL, "message: %s", kn_plan_error(p));
        feed(p, &m, 1, 0);
        st = kn_plan_run(p);
        CHECK(st == KN_OK, "the plan does not recover after bad data: %s: %s", kn_status_name(st), kn_plan_error(p));
    }
    kn_plan_free(p);
    kn_graph_free(m.g);
}

static void test_errors(int count)
{
    void *ptr = NULL;
    kn_status st = kn_cuda_malloc(0, (size_t)1 << 52, &ptr); /* 4 PiB */
    CHECK(st == KN_ERR_OOM && !ptr, "4 PiB: %s", kn_status_name(st));
    const char *msg = kn_cuda_last_error();
    CHECK(strstr(msg, "out of memory on cuda:0: requested") && strstr(msg, "free") && strstr(msg, "kiln's cache holds"),
          "OOM message: %s", msg);
    printf("OOM message: %s\n", msg);
    CHECK_OK(kn_cuda_malloc(0, 1000, &ptr));
    CHECK(ptr != NULL, "1000 bytes");
    kn_cuda_free(0, ptr);

    mlp m;
    mlp_build(&m, 0);
    kn_plan *p = NULL;
    kn_plan_opts o = {.backend = KN_BACKEND_CUDA, .device = count, .training = true};
    st = kn_plan_compile(&p, m.g, m.outs, m.n_outs, &o);
    CHECK(st == KN_ERR_ARG && !p && strstr(kn_plan_last_error(), "does not exist"), "cuda:%d: %s: %s", count,
          kn_status_name(st), kn_plan_last_error());
    o.device = 0;
    o.debug_numerics = true;
    st = kn_plan_compile(&p, m.g, m.outs, m.n_outs, &o);
    CHECK(st == KN_ERR_UNSUPPORTED && !p, "debug_numerics on CUDA: %s", kn_status_name(st));
    kn_plan_opts a = {.backend = KN_BACKEND_AUTO, .training = true};
    st = kn_plan_compile(&p, m.g, m.outs, m.n_outs, &a);
    CHECK(st == KN_OK && kn_plan_backend(p) == KN_BACKEND_CUDA, "auto with a GPU: %s, backend %d", kn_status_name(st),
          (int)kn_plan_backend(p));
    kn_plan_free(p);
    kn_graph_free(m.g);
}

int main(void)
{
    int count = 0;
    kn_status st = kn_cuda_device_count(&count);
    if (st != KN_OK || count == 0) {
        printf("SKIPPED: no CUDA device (%s)\n", st ? kn_cuda_last_error() : "0 devices");
        return 77;
    }
    char name[256];
    CHECK_OK(kn_cuda_device_name(0, name, sizeof name));
    printf("device 0: %s\n", name);
    test_matches_cpu();
    test_allocator();
    test_fallback();
    test_graph_replay();
    test_host_writes();
    test_async(false);
    test_async(true);
    test_bad_label();
    test_errors(count);
    return kt_finish("gpu_test_cuda_plan");
}
