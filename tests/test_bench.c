/* test_bench.c — kn_bench and the FMA peak: a tiny model's training step and inference give
 * sane numbers (positive times, min ≤ median ≤ max, images/s = batch / median, FLOPs > 0, a
 * training step ≈ 3× the forward pass, inference FLOPs = kn_model_stats × batch), every
 * optimizer runs, weights load from a checkpoint, auto step count, bad arguments fail with
 * a status and a message, out-of-memory at every allocation fails cleanly without leaks;
 * the peak is positive; `kiln bench` answers text and JSON and rejects bad options. */
#include <stdlib.h>
#include <unistd.h>

#include "kiln/bench.h"
#include "kiln/io.h"
#include "util.h"

#ifndef KILN_BIN
#error "KILN_BIN must name the kiln executable"
#endif

static const char *TINY = "input 1 8 8\n"
                          "conv2d 4 3 pad=1\n"
                          "relu\n"
                          "maxpool 2\n"
                          "flatten\n"
                          "dense 16\n"
                          "relu\n"
                          "dense 3\n"
                          "train optimizer=adam lr=0.001 batch=8\n";


static void check_sane(const kn_bench_result *r, const kn_bench_opts *o, const char *what)
{
    CHECK(r->steps == (o->steps ? o->steps : r->steps) && r->steps >= 1, "%s: %d steps", what, r->steps);
    CHECK(r->median_ms > 0 && r->min_ms > 0, "%s: times %g %g", what, r->median_ms, r->min_ms);
    CHECK(r->min_ms <= r->median_ms && r->median_ms <= r->max_ms, "%s: min %g median %g max %g", what, r->min_ms,
          r->median_ms, r->max_ms);
    CHECK(r->min_ms <= r->mean_ms && r->mean_ms <= r->max_ms, "%s: mean %g", what, r->mean_ms);
    CHECK(kt_close(r->images_per_s, (double)o->batch / (r->median_ms * 1e-3), 1e-9, 0),
          "%s: images/s %g vs batch/median %g", what, r->images_per_s, (double)o->batch / (r->median_ms * 1e-3));
    CHECK(r->flops_per_step > 0, "%s: flops %g", what, r->flops_per_step);
    CHECK(kt_close(r->gflops, r->flops_per_step / (r->median_ms * 1e-3) * 1e-9, 1e-9, 0), "%s: gflops %g", what,
          r->gflops);
    CHECK(r->params > 0 && r->model_flops > 0, "%s: params %lld, model flops %g", what, (long long)r->params,
          r->model_flops);
    CHECK(r->plan_steps > 0 && r->fallbacks == 0 && r->arena_bytes > 0, "%s: plan %d steps, %d fallbacks", what,
          r->plan_steps, r->fallbacks);
}

int main(void)
{
    kn_error err = {0};
    kn_model *m = NULL;
    CHECK_OK(kn_model_parse(&m, TINY, "tiny", &err));
    if (!m)
        return kt_finish("test_bench");

    /* training step and inference on the tiny model */
    kn_bench_opts o;
    kn_bench_opts_defaults(&o);
    o.batch = 8, o.threads = 2, o.steps = 5, o.warmup = 1;
    kn_bench_result tr, inf;
    CHECK_OK(kn_bench(m, &o, &tr, &err));
    check_sane(&tr, &o, "train");
    o.mode = KN_BENCH_INFER;
    CHECK_OK(kn_bench(m, &o, &inf, &err));
    check_sane(&inf, &o, "infer");
    CHECK(kt_close(inf.flops_per_step, inf.model_flops * (double)o.batch, 1e-9, 0),
          "inference FLOPs %g = forward FLOPs per example × batch %g", inf.flops_per_step, inf.model_flops * o.batch);
    double ratio = tr.flops_per_step / inf.flops_per_step;
    CHECK(ratio > 2.0 && ratio < 4.0, "a training step costs ~3x the forward pass, got %.3f", ratio);

    /* every optimizer, and clipping */
    const char *opts[] = {"sgd", "adamw"};
    for (int i = 0; i < 2; i++) {
        kn_recipe rc = *kn_model_recipe(m);
        CHECK_OK(kn_recipe_set(&rc, "optimizer", opts[i], &err));
        CHECK_OK(kn_recipe_set(&rc, "clip", "1.0", &err));
        kn_bench_opts_defaults(&o);
        o.batch = 4, o.threads = 1, o.steps = 3, o.warmup = 0, o.recipe = &rc;
        kn_bench_result r;
        CHECK_OK(kn_bench(m, &o, &r, &err));
        check_sane(&r, &o, opts[i]);
    }

    /* auto step count: at least 10 runs */
    kn_bench_opts_defaults(&o);
    o.batch = 2, o.threads = 1, o.mode = KN_BENCH_INFER, o.min_seconds = 0.01;
    kn_bench_result ra;
    CHECK_OK(kn_bench(m, &o, &ra, &err));
    CHECK(ra.steps >= 10, "auto steps ran %d", ra.steps);

    /* weights from a checkpoint holding the model (and extra optimizer state) */
    char dir[] = "/tmp/kiln_bench_XXXXXX", path[256];
    if (mkdtemp(dir)) {
        snprintf(path, sizeof path, "%s/tiny.safetensors", dir);
        kn_graph *g = kn_graph_new();
        kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (int64_t[]){1, 1, 8, 8});
        CHECK(kn_model_build(m, g, x, &err) != NULL, "build: %s", err.msg);
        kn_graph_param(g, "dense2.weight.exp_avg", KN_F32, 2, (int64_t[]){3, 16}, false);
        kn_meta meta = {0};
        CHECK_OK(kn_meta_set(&meta, "kiln.model", TINY));
        CHECK_OK(kn_checkpoint_save(g, path, &meta, &err));
        kn_meta_clear(&meta);
        kn_graph_free(g);
        kn_bench_opts_defaults(&o);
        o.batch = 4, o.threads = 1, o.steps = 2, o.warmup = 0, o.checkpoint = path;
        kn_bench_result rk;
        CHECK_OK(kn_bench(m, &o, &rk, &err));
        check_sane(&rk, &o, "checkpoint");

        /* the CLI: a checkpoint, a built-in name, JSON */
        int rc = kt_run("%s bench --model %s --infer --batch 2 --threads 1 --steps 3 --peak 0", KILN_BIN, path);
        CHECK(rc == 0 && strstr(kt_out, "images/s") && strstr(kt_out, "ms median"), "bench a checkpoint: %d %s", rc, kt_out);
        rc = kt_run("%s bench --model mlp --train --batch 4 --threads 2 --steps 2 --warmup 1 --json", KILN_BIN);
        CHECK(rc == 0 && strstr(kt_out, "\"images_per_s\":") && strstr(kt_out, "\"step_ms\":") && strstr(kt_out, "\"gflops\":") &&
                  strstr(kt_out, "\"peak_fraction\":") && strstr(kt_out, "\"mode\":\"train\"") &&
                  strstr(kt_out, "\"peak_rss_kb\":"),
              "bench --json: %d %s", rc, kt_out);
        CHECK(!strstr(kt_out, "\"peak_gflops\":0,"), "the peak was measured: %s", kt_out);
        rc = kt_run("%s bench --model %s/nowhere.kiln --steps 1", KILN_BIN, dir);
        CHECK(rc == 1 && strstr(kt_out, "nowhere.kiln"), "unknown model: %d %s", rc, kt_out);
        rc = kt_run("%s bench --model mlp --batch 0", KILN_BIN);
        CHECK(rc == 2 && strstr(kt_out, "--batch"), "batch 0: %d %s", rc, kt_out);
        rc = kt_run("%s bench --model mlp --steps", KILN_BIN);
        CHECK(rc == 2 && strstr(kt_out, "needs a value"), "missing value: %d %s", rc, kt_out);
        rc = kt_run("%s bench --model mlp --frobnicate", KILN_BIN);
        CHECK(rc == 2 && strstr(kt_out, "unknown option"), "unknown option: %d %s", rc, kt_out);
        rc = kt_run("%s bench --model mlp --optimizer lbfgs", KILN_BIN);
        CHECK(rc == 1 && strstr(kt_out, "optimizer"), "unknown optimizer: %d %s", rc, kt_out);
        rc = kt_run("%s bench --batch 4", KILN_BIN);
        CHECK(rc == 2 && strstr(kt_out, "--model"), "no model: %d %s", rc, kt_out);
        rc = kt_run("printf 'not a checkpoint' > %s/bad.safetensors && %s bench --model %s/bad.safetensors", dir, KILN_BIN,
                 dir);
        CHECK(rc == 1 && strstr(kt_out, "kiln bench:"), "corrupt checkpoint: %d %s", rc, kt_out);
        unlink(path);
        snprintf(path, sizeof path, "%s/bad.safetensors", dir);
        unlink(path);
        rmdir(dir);
    }

    /* bad arguments */
    kn_bench_result rb;
    kn_bench_opts_defaults(&o);
    o.batch = 0;
    kn_error e = {0};
    CHECK(kn_bench(m, &o, &rb, &e) == KN_ERR_ARG && strstr(e.msg, "batch"), "batch 0: %s", e.msg);
    CHECK(rb.steps == 0 && rb.median_ms == 0, "result zeroed on error");
    kn_bench_opts_defaults(&o);
    o.steps = -1;
    CHECK(kn_bench(m, &o, &rb, &e) == KN_ERR_ARG && strstr(e.msg, "steps"), "steps -1: %s", e.msg);
    kn_bench_opts_defaults(&o);
    o.warmup = -2;
    CHECK(kn_bench(m, &o, &rb, &e) == KN_ERR_ARG, "warmup -2: %s", e.msg);
    kn_bench_opts_defaults(&o);
    CHECK(kn_bench(NULL, &o, &rb, &e) == KN_ERR_ARG && e.msg[0], "NULL model: %s", e.msg);
    CHECK(kn_bench(m, NULL, &rb, &e) == KN_ERR_ARG, "NULL options");
    kn_recipe bad = *kn_model_recipe(m);
    snprintf(bad.optimizer, sizeof bad.optimizer, "lbfgs");
    o.recipe = &bad;
    CHECK(kn_bench(m, &o, &rb, &e) == KN_ERR_ARG && strstr(e.msg, "lbfgs"), "unknown optimizer: %s", e.msg);
    kn_bench_opts_defaults(&o);
    o.checkpoint = "/nonexistent/kiln_bench.safetensors";
    o.steps = 1;
    e = (kn_error){0};
    CHECK(kn_bench(m, &o, &rb, &e) != KN_OK && e.msg[0], "missing checkpoint: %s", e.msg);

    /* out of memory at every allocation: a clean status, nothing leaked */
    kn_bench_opts_defaults(&o);
    o.batch = 2, o.threads = 1, o.steps = 1, o.warmup = 0;
    long n;
    for (n = 1; n < 20000; n++) {
        kt_oom_install(n);
        kn_error eo = {0};
        kn_bench_result r;
        kn_status st = kn_bench(m, &o, &r, &eo);
        long live = kt_oom_live();
        kt_oom_remove();
        CHECK(st == KN_OK || (st == KN_ERR_OOM && eo.msg[0]), "n=%ld: %s: %s", n, kn_status_name(st), eo.msg);
        CHECK(live == 0, "n=%ld: %ld allocations leaked", n, live);
        if (live || st == KN_OK || kt_failures)
            break;
    }
    CHECK(n > 5 && n < 20000, "kn_bench succeeded after %ld injected failures", n - 1);
    printf("out-of-memory loop over kn_bench: %ld allocation sites, each failing cleanly\n", n - 1);

    /* the FMA peak */
    double peak = kn_peak_fma_gflops(1, 0.05);
    CHECK(peak > 0.1, "peak %g GFLOP/s", peak);
    printf("FMA peak, 1 thread: %.1f GFLOP/s (%s)\n", peak, kn_peak_isa());
    CHECK(kn_peak_fma_gflops(2, 0.05) > 0, "peak with 2 threads");
    CHECK(kn_peak_fma_gflops(-1, 0.05) == 0, "negative threads give 0");
    CHECK(strlen(kn_peak_isa()) > 0, "isa named");
    printf("tiny model: train %.3f ms (%.0f images/s, %.2f GFLOP/s), infer %.3f ms\n", tr.median_ms, tr.images_per_s,
           tr.gflops, inf.median_ms);

    kn_model_free(m);
    return kt_finish("test_bench");
}
