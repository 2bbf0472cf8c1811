/* cmd_bench.c — `kiln bench`: times a model's compiled training step (forward, loss, backward,
 * optimizer update in one plan) or its inference on synthetic data, and prints the median
 * step time, images/s, achieved GFLOP/s and the fraction of the FMA peak kiln measures on
 * this machine (plus peak RSS), as text or one JSON object. The timing itself lives in the
 * library (kn_bench, src/train/bench.c); the PyTorch comparison in bench/run_peers.sh. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"
#include "kiln/bench.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kiln bench --model FILE|NAME|CHECKPOINT [--train|--infer] [options]\n"
            "  --model M        model description file, built-in example (");
    cli_list_builtin(f);
    fprintf(f,
            "),\n"
            "                   or a kiln checkpoint (.safetensors: its model and weights)\n"
            "  --train          time one training step: forward, loss, backward, optimizer update (default)\n"
            "  --infer          time one forward pass in inference mode\n"
            "  --batch N        batch size (default 64)\n"
            "  --threads N      CPU threads (default: all cores)\n"
            "  --device D       cpu (default), cuda, cuda:N, or auto (the GPU when one is present)\n"
            "  --deterministic  on the GPU: fixed algorithms, same results run to run (docs/cuda.md)\n"
            "  --steps N        timed runs (default: auto, at least 10 runs and --min-time seconds)\n"
            "  --min-time S     seconds of timed runs in auto mode (default 1)\n"
            "  --warmup N       untimed runs first (default 3)\n"
            "  --optimizer O    sgd|adam|adamw instead of the model's recipe (--train)\n"
            "  --precision P    fp32 (default), bf16 or fp16: conv/dense precision as in kiln train\n"
            "  --seed N         parameter init and synthetic data (default 42)\n"
            "  --peak GFLOPS    use this FMA peak instead of measuring it (0: do not report a fraction)\n"
            "  --profile        also print where the time goes: per op kind and the slowest steps (stderr)\n"
            "  --json           print one JSON object instead of text\n");
}

/* The JSON string value of s (quotes, backslashes and control characters escaped). */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* A model by file, name or checkpoint (whose kiln.model metadata gives the description). */
static kn_status load_model(const char *spec, kn_model **m, bool *ckpt, kn_error *err)
{
    *ckpt = has_suffix(spec, ".safetensors");
    if (!*ckpt)
        return cli_load_model(spec, m, err);
    kn_meta meta = {0};
    kn_status st = kn_checkpoint_read_meta(spec, &meta, err);
    if (!st) {
        const char *text = kn_meta_get(&meta, "kiln.model");
        st = text ? kn_model_parse(m, text, spec, err)
                  : kn_error_set(err, KN_ERR_FORMAT, "%s has no kiln.model metadata: not a kiln checkpoint", spec);
    }
    kn_meta_clear(&meta);
    return st;
}

int cmd_bench(int argc, char **argv)
{
    const char *model_spec = NULL, *optimizer = NULL;
    kn_bench_opts o;
    kn_bench_opts_defaults(&o);
    bool json = false, peak_given = false;
    double peak = 0;
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        long long n;
        int r = 0;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            usage(stdout);
            return 0;
        } else if (cli_flag(argv, i, "--train")) {
            o.mode = KN_BENCH_TRAIN;
        } else if (cli_flag(argv, i, "--infer")) {
            o.mode = KN_BENCH_INFER;
        } else if (cli_flag(argv, i, "--profile")) {
            o.profile = stderr;
        } else if (cli_flag(argv, i, "--json")) {
            json = true;
        } else if (cli_flag(argv, i, "--deterministic")) {
            o.deterministic = true;
        } else if ((r = cli_opt(argc, argv, &i, "--device", &v)) == 1) {
            if (!cli_device("bench", v, &o.backend, &o.device))
                return 2;
        } else if ((r = cli_opt(argc, argv, &i, "--model", &v)) == 1) {
            model_spec = v;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--optimizer", &v)) == 1) {
            optimizer = v;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--precision", &v)) == 1) {
            kn_error perr = {0};
            if (kn_precision_parse(v, &o.precision, &perr)) {
                cli_fail("bench", &perr);
                return 2;
            }
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--batch", &v)) == 1) {
            if (!cli_int("bench", "--batch", v, 1, (long long)1 << 24, &n))
                return 2;
            o.batch = n;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--threads", &v)) == 1) {
            if (!cli_int("bench", "--threads", v, 0, 1024, &n))
                return 2;
            o.threads = (int)n;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--steps", &v)) == 1) {
            if (!cli_int("bench", "--steps", v, 1, KN_BENCH_MAX_STEPS, &n))
                return 2;
            o.steps = (int)n;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--warmup", &v)) == 1) {
            if (!cli_int("bench", "--warmup", v, 0, 100000, &n))
                return 2;
            o.warmup = (int)n;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--seed", &v)) == 1) {
            if (!cli_int("bench", "--seed", v, 0, (long long)1 << 62, &n))
                return 2;
            o.seed = (uint64_t)n;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--min-time", &v)) == 1) {
            if (!cli_double("bench", "--min-time", v, 0, 3600, &o.min_seconds))
                return 2;
        } else if (r == 0 && (r = cli_opt(argc, argv, &i, "--peak", &v)) == 1) {
            if (!cli_double("bench", "--peak", v, 0, 1e9, &peak))
                return 2;
            peak_given = true;
        } else if (r == 0) {
            fprintf(stderr, "kiln bench: unknown option '%s' (see kiln bench --help)\n", argv[i]);
            return 2;
        }
        if (r < 0) {
            fprintf(stderr, "kiln bench: %s needs a value\n", argv[i]);
            return 2;
        }
    }
    if (!model_spec) {
        fprintf(stderr, "kiln bench: --model is required (a .kiln file, a built-in name or a checkpoint)\n");
        return 2;
    }

    kn_error err = {0};
    kn_model *m = NULL;
    bool ckpt = false;
    if (load_model(model_spec, &m, &ckpt, &err))
        return cli_fail("bench", &err);
    if (ckpt)
        o.checkpoint = model_spec;
    kn_recipe recipe = *kn_model_recipe(m);
    if (optimizer && kn_recipe_set(&recipe, "optimizer", optimizer, &err)) {
        kn_model_free(m);
        return cli_fail("bench", &err);
    }
    o.recipe = &recipe;
    kn_bench_result res;
    kn_status st = kn_bench(m, &o, &res, &err);
    kn_model_free(m);
    if (st)
        return cli_fail("bench", &err);
    int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
    bool gpu = res.backend == KN_BACKEND_CUDA;
    if (!peak_given && !gpu) /* the CPU FMA peak is no yardstick for a GPU run */
        peak = kn_peak_fma_gflops(threads, 0.2);
    double fraction = peak > 0 ? res.gflops / peak : 0;
    struct rusage ru;
    long rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
    const char *mode = o.mode == KN_BENCH_TRAIN ? "train" : "infer";
    char devname[32];

    if (json) {
        printf("{\"model\":");
        json_str(stdout, model_spec);
        printf(",\"mode\":\"%s\",\"batch\":%lld,\"threads\":%d,\"optimizer\":", mode, (long long)o.batch, threads);
        json_str(stdout, o.mode == KN_BENCH_TRAIN ? recipe.optimizer : "");
        printf(",\"precision\":\"%s\"", kn_precision_name(o.precision));
        printf(",\"steps\":%d,\"warmup\":%d,\"step_ms\":%.6g,\"min_ms\":%.6g,\"max_ms\":%.6g,\"mean_ms\":%.6g,"
               "\"images_per_s\":%.6g,\"flops_per_step\":%.6g,\"gflops\":%.6g,\"peak_gflops\":%.6g,"
               "\"peak_isa\":\"%s\",\"peak_fraction\":%.6g,\"forward_flops_per_example\":%.6g,\"params\":%lld,"
               "\"plan_steps\":%d,\"fallbacks\":%d,\"arena_bytes\":%zu,\"compile_ms\":%.6g,\"peak_rss_kb\":%ld,"
               "\"device\":\"%s\",\"cuda_graph\":%s,\"device_name\":",
               res.steps, o.warmup, res.median_ms, res.min_ms, res.max_ms, res.mean_ms, res.images_per_s,
               res.flops_per_step, res.gflops, peak, kn_peak_isa(), fraction, res.model_flops,
               (long long)res.params, res.plan_steps, res.fallbacks, res.arena_bytes, res.compile_ms, rss_kb,
               kn_device_name(res.backend, res.device, devname, sizeof devname), res.cuda_graph ? "true" : "false");
        json_str(stdout, res.device_name);
        printf("}\n");
        return 0;
    }
    printf("kiln bench: %s, %s%s%s, batch %lld, %d threads, precision %s, device %s%s%s%s\n", model_spec, mode,
           o.mode == KN_BENCH_TRAIN ? " with " : "", o.mode == KN_BENCH_TRAIN ? recipe.optimizer : "",
           (long long)o.batch, threads, kn_precision_name(o.precision),
           kn_device_name(res.backend, res.device, devname, sizeof devname), gpu ? " (" : "", gpu ? res.device_name : "",
           gpu ? (res.cuda_graph ? ", one CUDA graph per step)" : ")") : "");
    printf("  step time    %.3f ms median (min %.3f, max %.3f; %d timed runs after %d warm-up)\n", res.median_ms,
           res.min_ms, res.max_ms, res.steps, o.warmup);
    printf("  throughput   %.1f images/s\n", res.images_per_s);
    double fwd = res.model_flops * (double)o.batch;
    printf("  FLOPs/step   %.4g (forward %.4g = %.2f x forward)\n", res.flops_per_step, fwd,
           fwd > 0 ? res.flops_per_step / fwd : 0);
    if (peak > 0)
        printf("  achieved     %.2f GFLOP/s = %.1f%% of the FMA peak %.1f GFLOP/s (%s, %d threads%s)\n", res.gflops,
               100 * fraction, peak, peak_given ? "given" : kn_peak_isa(), threads, peak_given ? "" : ", measured");
    else
        printf("  achieved     %.2f GFLOP/s\n", res.gflops);
    printf("  plan         %d kernels (%d %s), arena %.1f MB, built in %.1f ms\n", res.plan_steps, res.fallbacks,
           gpu ? "on the CPU with copies" : "on reference fallbacks", (double)res.arena_bytes / 1e6, res.compile_ms);
    printf("  peak RSS     %.1f MB\n", (double)rss_kb / 1024.0);
    return 0;
}
