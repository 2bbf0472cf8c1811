/* test_cuda_plan.c — plans on the GPU (docs/cuda.md): a small MLP training step (linear,
 * relu, optional dropout, softmax cross-entropy, backward, SGD updates) compiled for CUDA
 * against the same graph on the CPU, step by step; the caching allocator (no cudaMalloc once
 * a plan runs, none when a plan is compiled again); the CPU fallback (ops forced off the GPU
 * with KILN_CUDA_FALLBACK_OPS give the same results); CUDA-graph replay against eager runs
 * (with dropout, so a frozen step counter would show); parameters written on the host reach
 * the device; inputs prefetched during a run (kn_plan_prefetch_input); fused steps (elementwise
 * chains in one kernel, optimizer updates grouped into one multi-tensor launch) equal to the
 * unfused plan bit for bit; bad labels give KN_ERR_RANGE; out-of-memory and bad-device
 * messages. Without a GPU it exits 77 (skipped), never passes. */
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

/* Ops forced to the CPU path give the same results; such a plan runs eagerly. A relu forced
 * to the CPU is not fused into its linear's cuBLASLt epilogue (the normal plan fuses it). */
static void test_fallback(void)
{
    setenv("KILN_CUDA_FALLBACK_OPS", "relu,softmax_cross_entropy", 1);
    mlp gm, cm, nm;
    mlp_build(&gm, 0);
    mlp_build(&cm, 0);
    mlp_build(&nm, 0);
    kn_plan *gp = compile(&gm, KN_BACKEND_CUDA, false), *cp = compile(&cm, KN_BACKEND_CPU, false);
    unsetenv("KILN_CUDA_FALLBACK_OPS");
    kn_plan *np = compile(&nm, KN_BACKEND_CUDA, false);
    if (gp && cp && np) {
        kn_plan_stats gs, ns;
        kn_plan_get_stats(gp, &gs);
        kn_plan_get_stats(np, &ns);
        CHECK(ns.fused == gs.fused + 1 && ns.steps == gs.steps - 1,
              "linear → relu epilogue: %d fused nodes, %d steps; with relu forced to the CPU %d and %d", ns.fused,
              ns.steps, gs.fused, gs.steps);
        CHECK(kn_plan_num_fallbacks(gp) >= 2, "%d fallback steps with relu and the loss forced off the GPU",
              kn_plan_num_fallbacks(gp));
        compare_runs("fallback", &gm, gp, &cm, cp, 4, 1e-4);
        CHECK(!kn_plan_uses_cuda_graph(gp), "a plan with CPU steps replays a CUDA graph");
    }
    kn_plan_free(gp);
    kn_plan_free(cp);
    kn_plan_free(np);
    kn_graph_free(gm.g);
    kn_graph_free(cm.g);
    kn_graph_free(nm.g);
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

/* ---- fused steps (KN_PASS_FUSE) ---- */

/* Four least-squares losses mean((p_k·x_k − y_k)²), k = 0..3, summed; p_0, p_1 updated by SGD
 * with momentum (Nesterov), p_2, p_3 by AdamW: one group each, over parameters of several
 * chunks (40,000 and 20,000 elements) and of a few; plus two forward-only chains of every
 * elementwise op the chains take, with a one-element input, ending in a sum over 3,000
 * elements and a mean over 50, and a sum of squares over 70,001 (a split reduction tail). */
static const int64_t fused_n[4] = {40000, 100, 20000, 7};
#define FUSED_SPLIT 70001 /* a chain's sum over this many elements is split in two launches */
#define FUSED_OUTS 5      /* outputs before the updates: the loss and four chains */

typedef struct fused_net {
    kn_graph *g;
    kn_node *x[4], *y[4], *u, *z, *v, *lr, *t;
    kn_node *p[4];
    kn_node *outs[12];
    int n_outs;
} fused_net;

/* A long chain over x: every unary op and activation, then a binary op with a one-element
 * input c. */
static kn_node *long_chain(kn_graph *g, kn_node *x, kn_node *c)
{
    kn_node *t = kn_graph_scale(g, x, 0.5, 0.1);
    t = kn_graph_gelu(g, t);
    t = kn_graph_silu(g, t);
    t = kn_graph_leaky_relu(g, t, 0.1);
    t = kn_graph_clamp(g, t, -2, 2);
    t = kn_graph_exp(g, t);
    t = kn_graph_log(g, kn_graph_add(g, t, c));
    t = kn_graph_sqrt(g, kn_graph_abs(g, kn_graph_neg(g, t)));
    t = kn_graph_sigmoid(g, kn_graph_tanh(g, t));
    t = kn_graph_relu(g, kn_graph_sub(g, t, c));
    return kn_graph_div(g, kn_graph_pow(g, kn_graph_add(g, t, c), c), c);
}

static void fused_build(fused_net *m)
{
    memset(m, 0, sizeof *m);
    kn_graph *g = m->g = kn_graph_new();
    kn_graph_set_seed(g, 5);
    char name[32];
    kn_node *loss = NULL;
    for (int k = 0; k < 4; k++) {
        const int64_t n = fused_n[k];
        snprintf(name, sizeof name, "x%d", k);
        m->x[k] = kn_graph_input(g, name, KN_F32, 1, &n);
        snprintf(name, sizeof name, "y%d", k);
        m->y[k] = kn_graph_input(g, name, KN_F32, 1, &n);
        snprintf(name, sizeof name, "p%d", k);
        m->p[k] = kn_graph_param(g, name, KN_F32, 1, &n, true);
        kn_graph_param_init(g, m->p[k], KN_INIT_UNIFORM, -1, 1);
        kn_node *d = kn_graph_sub(g, kn_graph_mul(g, m->p[k], m->x[k]), m->y[k]);
        kn_node *l = kn_graph_mean(g, kn_graph_mul(g, d, d), 0, false);
        loss = loss ? kn_graph_add(g, loss, l) : l;
    }
    m->u = kn_graph_input(g, "u", KN_F32, 1, (int64_t[]){3000});
    m->z = kn_graph_input(g, "z", KN_F32, 1, (int64_t[]){50});
    m->v = kn_graph_input(g, "v", KN_F32, 1, (int64_t[]){FUSED_SPLIT});
    m->lr = kn_graph_input(g, "lr", KN_F32, 0, NULL);
    m->t = kn_graph_input(g, "t", KN_F32, 0, NULL);
    kn_node *c = kn_graph_scalar(g, KN_F32, 1.5);
    kn_node *grads[4] = {0};
    kn_graph_backward(g, loss, m->p, 4, grads);
    m->outs[m->n_outs++] = loss;
    m->outs[m->n_outs++] = long_chain(g, m->u, c);
    m->outs[m->n_outs++] = kn_graph_sum(g, kn_graph_mul(g, long_chain(g, m->u, c), m->u), 0, false);
    m->outs[m->n_outs++] = kn_graph_mean(g, kn_graph_tanh(g, kn_graph_mul(g, m->z, m->z)), 0, false);
    m->outs[m->n_outs++] = kn_graph_sum(g, kn_graph_mul(g, m->v, m->v), 0, false); /* a split sum tail */
    for (int k = 0; k < 4; k++) {
        const int64_t n = fused_n[k];
        kn_node *s[2];
        for (int j = 0; j < 2; j++) {
            snprintf(name, sizeof name, "p%d.state%d", k, j);
            s[j] = kn_graph_param(g, name, KN_F32, 1, &n, false);
        }
        m->outs[m->n_outs++] = k < 2 ? kn_graph_sgd_update(g, m->p[k], grads[k], m->lr, s[0], 0.9, 1e-3, true)
                                     : kn_graph_adam_update(g, m->p[k], grads[k], m->lr, m->t, s[0], s[1], 0.9,
                                                            0.999, 1e-8, 1e-2, true);
    }
    CHECK(kn_graph_status(g) == KN_OK, "building the fused-step net: %s", kn_graph_error(g));
}

static void fused_feed(kn_plan *p, const fused_net *m, int step)
{
    for (int k = 0; k < 4; k++) {
        float *x = kn_plan_input_data(p, m->x[k]), *y = kn_plan_input_data(p, m->y[k]);
        for (int64_t i = 0; x && y && i < fused_n[k]; i++) {
            x[i] = (float)kn_rng_uniform(21 + k, (uint64_t)step, (uint64_t)i) * 2 - 1;
            y[i] = (float)kn_rng_uniform(31 + k, (uint64_t)step, (uint64_t)i) - 0.5f;
        }
    }
    float *u = kn_plan_input_data(p, m->u), *z = kn_plan_input_data(p, m->z), *v = kn_plan_input_data(p, m->v);
    for (int i = 0; v && i < FUSED_SPLIT; i++)
        v[i] = (float)kn_rng_uniform(47, (uint64_t)step, (uint64_t)i) * 2 - 1;
    for (int i = 0; u && i < 3000; i++)
        u[i] = (float)kn_rng_uniform(41, (uint64_t)step, (uint64_t)i) * 8 - 4;
    for (int i = 0; z && i < 50; i++)
        z[i] = (float)kn_rng_uniform(43, (uint64_t)step, (uint64_t)i) * 2 - 1;
    *(float *)kn_plan_input_data(p, m->lr) = 0.05f;
    *(float *)kn_plan_input_data(p, m->t) = (float)(step + 1);
}

static void test_fused_steps(void)
{
    fused_net f, u, c;
    fused_build(&f);
    fused_build(&u);
    fused_build(&c);
    kn_plan *fp = NULL, *up = NULL, *cp = NULL;
    kn_plan_opts o = {.backend = KN_BACKEND_CUDA, .training = true, .threads = 2, .passes = KN_PASS_ALL};
    CHECK_OK(kn_plan_compile(&fp, f.g, f.outs, f.n_outs, &o));
    o.passes = KN_PASS_ALL & ~KN_PASS_FUSE;
    CHECK_OK(kn_plan_compile(&up, u.g, u.outs, u.n_outs, &o));
    o.backend = KN_BACKEND_CPU;
    CHECK_OK(kn_plan_compile(&cp, c.g, c.outs, c.n_outs, &o));
    if (!fp || !up || !cp)
        goto done;
    kn_plan_stats fs, us;
    kn_plan_get_stats(fp, &fs);
    kn_plan_get_stats(up, &us);
    printf("fused steps on CUDA: %d steps (%d fused nodes, %d in grouped updates) against %d unfused\n", fs.steps,
           fs.fused, fs.grouped, us.steps);
    CHECK(fs.fused >= 20 && fs.steps < us.steps, "chains: %d fused nodes, %d steps against %d", fs.fused, fs.steps,
          us.steps);
    CHECK(fs.grouped == 2 && us.grouped == 0, "grouped updates: %d with fuse, %d without (want 2: one per optimizer)",
          fs.grouped, us.grouped);
    CHECK(kn_plan_num_fallbacks(fp) == 0, "%d fallback steps", kn_plan_num_fallbacks(fp));
    for (int step = 0; step < 3; step++) {
        fused_feed(fp, &f, step);
        fused_feed(up, &u, step);
        fused_feed(cp, &c, step);
        CHECK_OK(kn_plan_run(fp));
        CHECK_OK(kn_plan_run(up));
        CHECK_OK(kn_plan_run(cp));
        for (int o2 = 0; o2 < FUSED_OUTS; o2++) {
            int64_t n = kn_node_numel(f.outs[o2]);
            const float *a = kn_plan_data(fp, f.outs[o2]), *b = kn_plan_data(up, u.outs[o2]),
                        *r = kn_plan_data(cp, c.outs[o2]);
            CHECK(a && b && r, "output %d not readable", o2);
            if (!a || !b || !r)
                continue;
            CHECK(!memcmp(a, b, (size_t)n * sizeof(float)), "step %d output %d: the fused plan differs from the unfused",
                  step, o2);
            double e = rel_err(a, r, n);
            CHECK(e <= 1e-5, "step %d output %d: %.3g from the CPU", step, o2, e);
        }
    }
    for (int k = 0; k < 4; k++) { /* the parameters after three grouped updates */
        const float *a = kn_graph_param_data(f.g, f.p[k]), *b = kn_graph_param_data(u.g, u.p[k]),
                    *r = kn_graph_param_data(c.g, c.p[k]);
        CHECK(a && b && r && !memcmp(a, b, (size_t)fused_n[k] * sizeof(float)),
              "parameter p%d: grouped updates differ from one launch per parameter", k);
        double e = a && r ? rel_err(a, r, fused_n[k]) : 1;
        CHECK(e <= 1e-5, "parameter p%d: %.3g from the CPU", k, e);
    }
done:
    kn_plan_free(fp);
    kn_plan_free(up);
    kn_plan_free(cp);
    kn_graph_free(f.g);
    kn_graph_free(u.g);
    kn_graph_free(c.g);
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
    test_fused_steps();
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
