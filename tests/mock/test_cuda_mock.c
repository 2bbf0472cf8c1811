/* test_cuda_mock.c — the CUDA plan machinery without a GPU, on the mock device of
 * cuda_mock.c (CUDA runtime functions on host memory, checked copies, recorded and replayed
 * graphs, the CPU kernels as "CUDA kernels" that insist on device pointers). So plan_cuda.c (addresses,
 * parameter mirror and holder protocol, constants, staging, fallback copies, graph capture
 * and replay, data errors) and the caching allocator run here exactly as on a GPU, and their
 * results must equal the CPU plan's bit for bit (same kernels, same order): plans, the
 * trainer (with its last-partial-batch and evaluation plans and checkpoints), the benchmark
 * and inference. Built only with CUDA (it needs the CUDA headers); runs in CI. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "cuda_mock.h"
#include "kiln/bench.h"
#include "kiln/cuda.h"
#include "kiln/io.h"
#include "kiln/train.h"
#include "mlp_step.h"
#include "util.h"

/* ---- a small MLP training step --------------------------------------------------------------- */

enum { B = 16, D = 12, H = 20, C = 10 };

typedef kt_mlp mlp;

static void mlp_build(mlp *m, double dropout) { kt_mlp_build(m, B, D, H, C, 0.4, dropout, 1.5); }

static kn_plan *compile(mlp *m, kn_backend_kind backend, bool training)
{
    kn_plan *p = NULL;
    kn_plan_opts o = {.backend = backend, .training = training, .threads = 1};
    kn_status st = training ? kn_plan_compile(&p, m->g, m->outs, m->n_outs, &o)
                            : kn_plan_compile(&p, m->g, &m->logits, 1, &o);
    CHECK(st == KN_OK && p, "compiling on backend %d: %s: %s", (int)backend, kn_status_name(st), kn_plan_last_error());
    return p;
}

static void feed(kn_plan *p, const mlp *m, int step, bool labels)
{
    float *x = kn_plan_input_data(p, m->x);
    CHECK(x != NULL, "no x buffer");
    for (int i = 0; x && i < B * D; i++)
        x[i] = (float)kn_rng_uniform(11, (uint64_t)step, (uint64_t)i) * 2 - 1;
    if (!labels)
        return;
    int32_t *y = kn_plan_input_data(p, m->y);
    float *lr = kn_plan_input_data(p, m->lr);
    for (int i = 0; y && i < B; i++)
        y[i] = (int32_t)((i * 7 + step) % C);
    if (lr)
        *lr = 0.2f;
}

static bool same(const void *a, const void *b, size_t n) { return a && b && !memcmp(a, b, n); }

/* The device plan and the CPU plan, step by step: bit-identical losses, logits, parameters. */
static void lockstep(const char *what, mlp *dm, kn_plan *dp, mlp *cm, kn_plan *cp, int steps)
{
    for (int s = 0; s < steps; s++) {
        feed(dp, dm, s, true);
        feed(cp, cm, s, true);
        kn_status st = kn_plan_run(dp);
        CHECK(st == KN_OK, "%s step %d: %s: %s", what, s, kn_status_name(st), kn_plan_error(dp));
        CHECK_OK(kn_plan_run(cp));
        long d2h = n_d2h;
        CHECK(same(kn_plan_data(dp, dm->loss), kn_plan_data(cp, cm->loss), sizeof(float)),
              "%s step %d: loss %.9g on the mock GPU, %.9g on the CPU", what, s, kn_plan_scalar(dp, dm->loss),
              kn_plan_scalar(cp, cm->loss));
        CHECK(same(kn_plan_data(dp, dm->logits), kn_plan_data(cp, cm->logits), sizeof(float) * B * C),
              "%s step %d: logits differ", what, s);
        CHECK(n_d2h == d2h, "%s step %d: reading the loss and logits copied %ld times (they come with the run)", what,
              s, n_d2h - d2h);
    }
    for (int i = 0; i < 4; i++)
        CHECK(same(kn_graph_param_data(dm->g, dm->params[i]), kn_graph_param_data(cm->g, cm->params[i]),
                   kn__nbytes(dm->params[i])),
              "%s: parameter %d differs after %d steps", what, i, steps);
}

/* graphs: NULL = the default (on), "0" = off; dropout is captured too (the kernels read the step
 * on the device, as kernels must for graphs) */
static void test_plan(const char *what, double dropout, const char *fallback_ops, const char *graphs)
{
    if (fallback_ops)
        setenv("KILN_CUDA_FALLBACK_OPS", fallback_ops, 1);
    if (graphs)
        setenv("KILN_CUDA_GRAPHS", graphs, 1);
    mlp dm, cm;
    mlp_build(&dm, dropout);
    mlp_build(&cm, dropout);
    kn_plan *dp = compile(&dm, KN_BACKEND_CUDA, true), *cp = compile(&cm, KN_BACKEND_CPU, true);
    unsetenv("KILN_CUDA_FALLBACK_OPS");
    unsetenv("KILN_CUDA_GRAPHS");
    long launches = n_launches;
    if (dp && cp) {
        CHECK(kn_plan_backend(dp) == KN_BACKEND_CUDA && kn_plan_device(dp) == 0, "backend/device");
        CHECK((kn_plan_num_fallbacks(dp) > 0) == (fallback_ops != NULL), "%s: %d fallback steps", what,
              kn_plan_num_fallbacks(dp));
        lockstep(what, &dm, dp, &cm, cp, 6);
        bool graph = !fallback_ops && !(graphs && !strcmp(graphs, "0"));
        CHECK(kn_plan_uses_cuda_graph(dp) == graph, "%s: uses a CUDA graph: %d", what, kn_plan_uses_cuda_graph(dp));
        CHECK((n_launches - launches == 5) == graph, "%s: %ld graph launches in 6 runs", what, n_launches - launches);
    }
    kn_plan_free(dp);
    kn_plan_free(cp);
    kn_graph_free(dm.g);
    kn_graph_free(cm.g);
}

/* A training plan and an inference plan on one graph (the trainer's pattern) alternate, on
 * the mock GPU and on the CPU; host writes in between. */
static void test_holders(void)
{
    mlp dm, cm;
    mlp_build(&dm, 0.1);
    mlp_build(&cm, 0.1);
    kn_plan *dt = compile(&dm, KN_BACKEND_CUDA, true), *ct = compile(&cm, KN_BACKEND_CPU, true);
    kn_plan *de = compile(&dm, KN_BACKEND_CUDA, false), *ce = compile(&cm, KN_BACKEND_CPU, false);
    kn_plan *dc = compile(&dm, KN_BACKEND_CPU, false); /* a CPU plan on the device graph */
    if (dt && ct && de && ce && dc) {
        for (int r = 0; r < 4; r++) {
            lockstep("holders", &dm, dt, &cm, ct, 2);
            feed(de, &dm, 100 + r, false);
            feed(ce, &cm, 100 + r, false);
            feed(dc, &dm, 100 + r, false);
            CHECK_OK(kn_plan_run(de));
            CHECK_OK(kn_plan_run(ce));
            CHECK_OK(kn_plan_run(dc));
            CHECK(same(kn_plan_data(de, dm.logits), kn_plan_data(ce, cm.logits), sizeof(float) * B * C),
                  "round %d: the evaluation plan on the mock GPU differs", r);
            CHECK(same(kn_plan_data(dc, dm.logits), kn_plan_data(ce, cm.logits), sizeof(float) * B * C),
                  "round %d: a CPU plan on the graph a GPU plan trained differs", r);
            if (r == 2) { /* host writes reach the device */
                float *b2 = kn_graph_param_data(dm.g, dm.params[3]), *c2 = kn_graph_param_data(cm.g, cm.params[3]);
                for (int k = 0; b2 && c2 && k < C; k++)
                    b2[k] = c2[k] = (float)k;
            }
        }
    }
    kn_plan_free(dt);
    /* freeing the plan that held the newest values hands them back */
    for (int i = 0; i < 4; i++)
        CHECK(same(kn_graph_param_data(dm.g, dm.params[i]), kn_graph_param_data(cm.g, cm.params[i]),
                   kn__nbytes(dm.params[i])),
              "parameter %d differs after freeing the plans", i);
    kn_plan_free(ct);
    kn_plan_free(de);
    kn_plan_free(ce);
    kn_plan_free(dc);
    kn_graph_free(dm.g);
    kn_graph_free(cm.g);
}

/* kn_plan_run_async: the next batch is written while a run is in flight; reading an output
 * waits for the run. Same results as the CPU, dropout included (the step counter). */
static void test_async(void)
{
    mlp dm, cm;
    mlp_build(&dm, 0.3);
    mlp_build(&cm, 0.3);
    kn_plan *dp = compile(&dm, KN_BACKEND_CUDA, true), *cp = compile(&cm, KN_BACKEND_CPU, true);
    if (dp && cp) {
        feed(dp, &dm, 0, true);
        CHECK_OK(kn_plan_run_async(dp));
        for (int s = 0; s < 6; s++) {
            feed(cp, &cm, s, true);
            CHECK_OK(kn_plan_run(cp));
            feed(dp, &dm, s + 1, true); /* the next batch, while run s is in flight */
            CHECK(same(kn_plan_data(dp, dm.loss), kn_plan_data(cp, cm.loss), sizeof(float)) &&
                      same(kn_plan_data(dp, dm.logits), kn_plan_data(cp, cm.logits), sizeof(float) * B * C),
                  "async run %d differs from the CPU", s);
            CHECK(kn_plan_step_count(dp) == (uint64_t)s + 1, "step count %llu after run %d",
                  (unsigned long long)kn_plan_step_count(dp), s);
            CHECK_OK(kn_plan_run_async(dp));
        }
        CHECK_OK(kn_plan_wait(dp));
        CHECK_OK(kn_plan_wait(dp)); /* nothing in flight */
    }
    kn_plan_free(dp);
    kn_plan_free(cp);
    kn_graph_free(dm.g);
    kn_graph_free(cm.g);
}

/* The per-kernel profile on CUDA: events around every kernel, no graph. */
static void test_profile(void)
{
    mlp m;
    mlp_build(&m, 0);
    kn_plan *p = NULL;
    kn_plan_opts o = {.backend = KN_BACKEND_CUDA, .training = true, .threads = 1, .profile = true};
    CHECK_OK(kn_plan_compile(&p, m.g, m.outs, m.n_outs, &o));
    for (int r = 0; p && r < 3; r++) {
        feed(p, &m, r, true);
        CHECK_OK(kn_plan_run(p));
    }
    if (p) {
        CHECK(!kn_plan_uses_cuda_graph(p), "a profiled plan replays a CUDA graph");
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        CHECK_OK(kn_plan_write_profile(p, f, 5));
        fclose(f);
        char want[64]; /* 0.25 ms per kernel (the mock's events); the four SGD updates are one grouped launch */
        snprintf(want, sizeof want, "%.3f ms per run", 0.25 * (kn_plan_num_steps(p) - 3));
        CHECK(buf && strstr(buf, "profile over 3 runs") && strstr(buf, want), "profile (want '%s'):\n%s", want,
              buf ? buf : "");
        free(buf);
    }
    kn_plan_free(p);
    kn_graph_free(m.g);
}

static void test_bad_label(void)
{
    mlp m;
    mlp_build(&m, 0);
    kn_plan *p = compile(&m, KN_BACKEND_CUDA, true);
    for (int r = 0; p && r < 4; r++) { /* eager, captured, replayed */
        feed(p, &m, r, true);
        int32_t *y = kn_plan_input_data(p, m.y);
        if (r % 2)
            y[3] = C;
        kn_status st = kn_plan_run(p);
        if (r % 2) {
            CHECK(st == KN_ERR_RANGE, "run %d: a label of %d with %d classes gave %s", r, C, C, kn_status_name(st));
            CHECK(strstr(kn_plan_error(p), "softmax_cross_entropy (node"), "message: %s", kn_plan_error(p));
        } else {
            CHECK(st == KN_OK, "run %d after bad data: %s: %s", r, kn_status_name(st), kn_plan_error(p));
        }
    }
    kn_plan_free(p);
    kn_graph_free(m.g);
}

static void test_allocator(void)
{
    mlp m;
    mlp_build(&m, 0);
    kn_cuda_cache_stats a, b, c;
    kn_plan *p = compile(&m, KN_BACKEND_CUDA, true);
    long mallocs = n_mallocs;
    for (int r = 0; p && r < 5; r++) {
        feed(p, &m, r, true);
        CHECK_OK(kn_plan_run(p));
    }
    CHECK(n_mallocs == mallocs, "%ld cudaMalloc calls while running", n_mallocs - mallocs);
    CHECK_OK(kn_cuda_cache_get_stats(0, &a));
    kn_plan_free(p);
    CHECK_OK(kn_cuda_cache_get_stats(0, &b));
    CHECK(b.in_use < a.in_use && b.held == a.held, "freeing: in use %zu → %zu, held %zu → %zu", a.in_use, b.in_use,
          a.held, b.held);
    p = compile(&m, KN_BACKEND_CUDA, true);
    CHECK_OK(kn_cuda_cache_get_stats(0, &c));
    CHECK(c.mallocs == b.mallocs && c.hits > b.hits && n_mallocs == mallocs,
          "recompiling: %llu cudaMalloc calls, %llu hits", (unsigned long long)(c.mallocs - b.mallocs),
          (unsigned long long)(c.hits - b.hits));
    kn_plan_free(p);

    /* out of memory: a plan bigger than what is free plus what the cache holds idle; the idle
     * blocks are released before the request fails */
    size_t old = capacity, idle = c.held - c.in_use;
    capacity = used + ((size_t)4 << 20);
    int64_t rows = (int64_t)((idle + ((size_t)40 << 20)) / (4 * 4096));
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){rows, 4096});
    kn_node *y = kn_graph_relu(g, x);
    kn_plan_opts o = {.backend = KN_BACKEND_CUDA};
    kn_status st = kn_plan_compile(&p, g, &y, 1, &o);
    const char *msg = kn_plan_last_error();
    CHECK(st == KN_ERR_OOM && !p, "%lld MiB with %zu MiB idle on a device with 4 MiB free: %s", (long long)rows / 64,
          idle >> 20, kn_status_name(st));
    CHECK(strstr(msg, "plan: out of memory on cuda:0: requested ") && strstr(msg, "kiln's cache holds"),
          "message: %s", msg);
    kn_cuda_cache_stats d;
    CHECK_OK(kn_cuda_cache_get_stats(0, &d));
    CHECK(d.frees > c.frees && d.held < c.held, "after OOM: %llu blocks released, held %zu (was %zu)",
          (unsigned long long)(d.frees - c.frees), d.held, c.held);
    printf("OOM message: %s\n", msg);
    capacity = old;
    st = kn_plan_compile(&p, g, &y, 1, &o);
    CHECK(st == KN_OK, "after memory came back: %s: %s", kn_status_name(st), kn_plan_last_error());
    kn_plan_free(p);
    kn_graph_free(g);
    kn_graph_free(m.g);
}

/* ---- the trainer, the benchmark and inference ------------------------------------------------ */

static const char model_text[] = "train optimizer=adam lr=0.01 batch=32 epochs=2 schedule=cosine\n"
                                 "input 1 6 6\nflatten\ndense 24\nrelu\ndropout 0.2\ndense 10\n";

static void make_data(kn_dataset *ds, uint8_t *x, int32_t *y, int64_t n, uint64_t seed, const char *name)
{
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->ndim = 3;
    ds->shape[0] = 1, ds->shape[1] = 6, ds->shape[2] = 6;
    ds->dtype = KN_U8;
    ds->classes = 10;
    ds->x = x;
    ds->y = y;
    snprintf(ds->name, sizeof ds->name, "%s", name);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % 10);
        for (int k = 0; k < 36; k++) /* learnable: the label brightens one pixel row */
            x[i * 36 + k] = (uint8_t)(kn_rng_uniform(seed, (uint64_t)i, (uint64_t)k) * 128 + (k / 6 == y[i] % 6) * 100);
    }
}

static bool read_file(const char *path, char **data, long *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc((size_t)*len + 1);
    bool ok = *data && fread(*data, 1, (size_t)*len, f) == (size_t)*len;
    fclose(f);
    return ok;
}

static void test_trainer(void)
{
    static uint8_t xtr[300 * 36], xte[100 * 36];
    static int32_t ytr[300], yte[100];
    kn_dataset train, test;
    make_data(&train, xtr, ytr, 300, 1, "mock/train");
    make_data(&test, xte, yte, 100, 2, "mock/test");
    kn_model *m = NULL;
    kn_error err = {0};
    CHECK_OK(kn_model_parse(&m, model_text, "mock", &err));
    if (!m)
        return;
    char dirs[3][64];
    kn_train_result res[3];
    long n0 = n_launches;
    setenv("KILN_CUDA_GRAPHS", "1", 1); /* graphs on: the model has dropout */
    for (int k = 0; k < 3; k++) { /* CPU, mock GPU, mock GPU with the training set resident */
        snprintf(dirs[k], sizeof dirs[k], "/tmp/kiln-mock-XXXXXX");
        CHECK(mkdtemp(dirs[k]) != NULL, "mkdtemp");
        kn_train_opts o;
        kn_train_opts_defaults(&o);
        o.recipe = *kn_model_recipe(m);
        o.recipe.val_split = 0.1; /* 270 training examples: a last partial batch of 14 */
        o.threads = 1;
        o.out_dir = dirs[k];
        o.backend = k ? KN_BACKEND_CUDA : KN_BACKEND_CPU;
        o.resident_data = k == 2;
        kn_status st = kn_train(m, &train, &test, &o, &res[k], &err);
        CHECK(st == KN_OK, "training on %s: %s", k ? "the mock GPU" : "the CPU", err.msg);
        if (st)
            return;
    }
    CHECK(n_launches > n0 + 10, "the trainer's plans replayed CUDA graphs %ld times", n_launches - n0);
    CHECK(res[0].n_logs == 2 && res[1].n_logs == 2 && res[2].n_logs == 2, "epochs logged: %d, %d, %d", res[0].n_logs,
          res[1].n_logs, res[2].n_logs);
    for (int k = 1; k < 3; k++)
        for (int e = 0; e < res[0].n_logs && e < res[k].n_logs; e++) {
            const kn_epoch_log *a = &res[0].logs[e], *b = &res[k].logs[e];
            CHECK(a->train_loss == b->train_loss && a->val_loss == b->val_loss && a->test_acc == b->test_acc,
                  "%s, epoch %d: train loss %.9g / %.9g, val loss %.9g / %.9g, test accuracy %.4f / %.4f",
                  k == 2 ? "resident data" : "staged data", e + 1, a->train_loss, b->train_loss, a->val_loss,
                  b->val_loss, a->test_acc, b->test_acc);
        }
    printf("trainer on the mock GPU: test accuracy %.4f (CPU %.4f)\n", res[1].test.accuracy, res[0].test.accuracy);
    char path[3][128], *data[3] = {NULL, NULL, NULL};
    long len[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        snprintf(path[k], sizeof path[k], "%s/model.safetensors", dirs[k]);
        CHECK(read_file(path[k], &data[k], &len[k]), "reading %s", path[k]);
    }
    /* the tensors must be identical; the metadata holds timings (kiln.history) */
    uint64_t h[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++)
        for (int i = 0; data[k] && len[k] >= 8 && i < 8; i++)
            h[k] |= (uint64_t)(unsigned char)data[k][i] << (8 * i);
    for (int k = 1; k < 3; k++) {
        bool ok = data[0] && data[k] && h[0] + 8 <= (uint64_t)len[0] && h[k] + 8 <= (uint64_t)len[k] &&
                  len[0] - (long)h[0] == len[k] - (long)h[k] &&
                  !memcmp(data[0] + 8 + h[0], data[k] + 8 + h[k], (size_t)(len[0] - 8 - (long)h[0]));
        CHECK(ok, "%s: the checkpoints' tensors differ (%ld and %ld bytes, headers %llu and %llu)",
              k == 2 ? "resident data" : "staged data", len[0], len[k], (unsigned long long)h[0],
              (unsigned long long)h[k]);
    }
    for (int k = 0; k < 3; k++)
        free(data[k]);

    /* inference from the checkpoint on the mock GPU equals the CPU's */
    kn_infer *ic = NULL, *ig = NULL;
    kn_eval_result ec = {0}, eg = {0};
    CHECK_OK(kn_infer_load(&ic, path[0], 32, 1, &err));
    CHECK_OK(kn_infer_load_on(&ig, path[0], 32, 1, KN_BACKEND_CUDA, 0, &err));
    if (ic && ig) {
        CHECK_OK(kn_infer_evaluate(ic, &test, &ec, &err));
        CHECK_OK(kn_infer_evaluate(ig, &test, &eg, &err));
        CHECK(ec.loss == eg.loss && ec.accuracy == eg.accuracy, "inference: loss %.9g / %.9g", ec.loss, eg.loss);
    }
    kn_eval_result_free(&ec);
    kn_eval_result_free(&eg);
    kn_infer_free(ic);
    kn_infer_free(ig);

    /* the benchmark on the mock GPU */
    kn_bench_opts bo;
    kn_bench_opts_defaults(&bo);
    bo.backend = KN_BACKEND_CUDA;
    bo.steps = 4;
    bo.threads = 1;
    kn_bench_result br;
    kn_status st = kn_bench(m, &bo, &br, &err);
    CHECK(st == KN_OK, "bench: %s", err.msg);
    CHECK(st || (br.backend == KN_BACKEND_CUDA && br.device == 0 && br.cuda_graph &&
                 !strcmp(br.device_name, "kiln mock GPU") && br.fallbacks == 0),
          "bench: backend %d device %d graph %d name '%s' fallbacks %d", (int)br.backend, br.device, br.cuda_graph,
          br.device_name, br.fallbacks);
    unsetenv("KILN_CUDA_GRAPHS");
    for (int k = 0; k < 3; k++) {
        kn_train_result_free(&res[k]);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dirs[k]);
        CHECK(system(cmd) == 0, "%s", cmd);
    }
    kn_model_free(m);
}

int main(void)
{
    CHECK(kn_cuda_built(), "this test needs a CUDA build");
    test_plan("plain", 0, NULL, NULL);
    test_plan("dropout in a graph", 0.3, NULL, NULL);
    test_plan("eager", 0.3, NULL, "0");
    test_plan("fallback", 0.3, "relu,softmax_cross_entropy,sgd_update", NULL);
    test_holders();
    test_bad_label();
    test_async();
    test_profile();
    test_allocator();
    test_trainer();
    CHECK(violations == 0, "%ld violations of the device model, the first: %s", violations, first_violation);
    printf("mock GPU: %ld cudaMalloc calls, %ld captures, %ld graph launches, %ld device kernel calls\n", n_mallocs,
           n_captures, n_launches, n_device_steps);
    return kt_finish("test_cuda_mock");
}
