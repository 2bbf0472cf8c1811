/* eval_table.c — `kiln eval` with several models: one row per checkpoint, side by side, with
 * test accuracy and loss, trainable parameters, checkpoint file size, forward FLOPs per
 * example, latency at batch 1 and throughput at batch 64 (inference plans timed with
 * kn_bench: median of at least 10 runs and of `seconds`), as a table or a JSON array. The
 * file size is the checkpoint as saved (a training checkpoint also holds optimizer state).
 * Not here: the single-model report with the confusion matrix (cmd_eval.c). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "kiln/bench.h"

typedef struct eval_row {
    char path[1024];
    kn_eval_result res;
    int64_t params;
    double flops;     /* forward, per example */
    long long bytes;  /* file size */
    double latency_ms; /* batch 1, median */
    double per_s;     /* batch 64, examples/s */
} eval_row;

/* A checkpoint file, or a run directory holding model.safetensors. */
static void resolve(const char *spec, char *out, size_t size)
{
    struct stat sb;
    if (stat(spec, &sb) == 0 && S_ISDIR(sb.st_mode))
        snprintf(out, size, "%s/model.safetensors", spec);
    else
        snprintf(out, size, "%s", spec);
}

static kn_status time_it(const char *path, const kn_model *m, int64_t batch, int threads, double seconds,
                         kn_bench_result *br, kn_error *err)
{
    kn_bench_opts bo;
    kn_bench_opts_defaults(&bo);
    bo.mode = KN_BENCH_INFER;
    bo.batch = batch;
    bo.threads = threads;
    bo.min_seconds = seconds;
    bo.checkpoint = path;
    return kn_bench(m, &bo, br, err);
}

static kn_status measure(eval_row *r, const kn_dataset *test, int threads, double seconds, kn_error *err)
{
    kn_infer *inf = NULL;
    kn_status st = kn_infer_load(&inf, r->path, 500, threads, err);
    if (!st)
        st = kn_infer_evaluate(inf, test, &r->res, err);
    if (!st)
        st = kn_model_stats(kn_infer_model(inf), &r->params, &r->flops, err);
    struct stat sb;
    if (!st && stat(r->path, &sb) == 0)
        r->bytes = (long long)sb.st_size;
    kn_bench_result br;
    if (!st)
        st = time_it(r->path, kn_infer_model(inf), 1, threads, seconds, &br, err);
    if (!st) {
        r->latency_ms = br.median_ms;
        st = time_it(r->path, kn_infer_model(inf), 64, threads, seconds, &br, err);
        r->per_s = br.images_per_s;
    }
    kn_infer_free(inf);
    return st;
}

/* "1,234,567" */
static const char *grouped(long long v, char *buf, size_t size)
{
    char d[32];
    int n = snprintf(d, sizeof d, "%lld", v), k = 0;
    for (int i = 0; i < n && k + 2 < (int)size; i++) {
        buf[k++] = d[i];
        if ((n - 1 - i) % 3 == 0 && i != n - 1 && d[i] != '-')
            buf[k++] = ',';
    }
    buf[k] = 0;
    return buf;
}

int cli_eval_table(const char *const *models, int n, const kn_dataset *test, int threads, bool json, double seconds)
{
    eval_row *rows = calloc((size_t)n, sizeof *rows);
    if (!rows) {
        fprintf(stderr, "kiln eval: out of memory\n");
        return 1;
    }
    int rc = 0;
    kn_error err = {0};
    for (int k = 0; k < n && !rc; k++) {
        resolve(models[k], rows[k].path, sizeof rows[k].path);
        if (measure(&rows[k], test, threads, seconds, &err))
            rc = cli_fail("eval", &err);
    }
    if (!rc && json) {
        printf("[\n");
        for (int k = 0; k < n; k++) {
            const eval_row *r = &rows[k];
            printf("  {\"model\": \"%s\", \"data\": \"%s\", \"examples\": %lld, \"accuracy\": %.6f, \"loss\": %.6f, "
                   "\"params\": %lld, \"file_bytes\": %lld, \"flops_per_example\": %.0f, \"latency_ms_batch1\": %.4f, "
                   "\"throughput_batch64\": %.1f}%s\n",
                   models[k], test->name, (long long)r->res.n, r->res.accuracy, r->res.loss, (long long)r->params,
                   r->bytes, r->flops, r->latency_ms, r->per_s, k + 1 < n ? "," : "");
        }
        printf("]\n");
    } else if (!rc) {
        int w = 5;
        for (int k = 0; k < n; k++)
            w = (int)strlen(models[k]) > w ? (int)strlen(models[k]) : w;
        printf("%-*s  %8s  %8s  %11s  %9s  %10s  %14s  %16s\n", w, "model", "accuracy", "loss", "parameters",
               "size (MB)", "MFLOPs/ex", "latency b1 ms", "throughput b64/s");
        for (int k = 0; k < n; k++) {
            const eval_row *r = &rows[k];
            char p[32];
            printf("%-*s  %8.4f  %8.4f  %11s  %9.2f  %10.3f  %14.3f  %16.0f\n", w, models[k], r->res.accuracy,
                   r->res.loss, grouped(r->params, p, sizeof p), (double)r->bytes / 1e6, r->flops / 1e6,
                   r->latency_ms, r->per_s);
        }
        char th[32];
        snprintf(th, sizeof th, threads ? "%d thread%s" : "all cores", threads, threads == 1 ? "" : "s");
        printf("(%s, %lld examples; latency and throughput: inference plans, %s, median of >= 10 runs)\n",
               test->name, (long long)rows[0].res.n, th);
    }
    for (int k = 0; k < n; k++)
        kn_eval_result_free(&rows[k].res);
    free(rows);
    return rc;
}
