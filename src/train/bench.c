/* bench.c — kn_bench: times one compiled training step (or one inference) of a model on
 * synthetic data. The training graph is the one kn_train builds for a full batch (see
 * build_branch in trainer.c): model → softmax cross-entropy → backward → optional global-norm
 * clipping → one optimizer update node per parameter (SGD with momentum, Adam or AdamW, as
 * the recipe says), all compiled into ONE plan with training = true. Gradient accumulation
 * is not modelled: every timed run is a full optimizer step. Inference is the model alone
 * in an inference plan. Warm-up runs first, then each run is timed on its own with the
 * monotonic clock; the median is the headline number.
 * Not here: the FMA peak (src/core/peak.c), the CLI (tools/kiln/cmd_bench.c). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../core/alloc.h"
#include "kiln/bench.h"
#include "kiln/cuda.h"
#include "kiln/io.h"
#include "kiln/quant.h"
#include "session.h"

#define MAX_PARAMS 512
#define MAX_BATCH ((int64_t)1 << 24)

void kn_bench_opts_defaults(kn_bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mode = KN_BENCH_TRAIN;
    o->batch = 64;
    o->warmup = 3;
    o->min_seconds = 1.0;
    o->seed = 42;
}

typedef struct bench_step {
    kn_graph *g;
    const kn_recipe *r;
    kn_node *x, *y, *lr, *t, *logits, *loss;
    kn_node *params[MAX_PARAMS];
    int n_params;
    kn_plan *plan;
} bench_step;

static kn_status graph_err(kn_graph *g, kn_error *err, const char *what)
{
    if (err && err->status)
        return err->status;
    return kn_error_set(err, kn_graph_status(g) ? kn_graph_status(g) : KN_ERR_OOM, "%s: %s", what, kn_graph_error(g));
}

/* Optimizer state "<param>.<suffix>" (a frozen parameter, zero-initialised), named like the trainer's. */
static kn_node *state_of(kn_graph *g, kn_node *p, const char *suffix)
{
    char name[256];
    snprintf(name, sizeof name, "%s.%s", kn_node_name(p), suffix);
    kn_node *s = kn_graph_find(g, name);
    if (s)
        return s;
    int64_t shape[KN_MAX_DIMS];
    for (int i = 0; i < kn_node_ndim(p); i++)
        shape[i] = kn_node_dim(p, i);
    return kn_graph_param(g, name, kn_node_dtype(p), kn_node_ndim(p), shape, false);
}

static kn_node *update(bench_step *b, kn_node *p, kn_node *gr)
{
    const kn_recipe *r = b->r;
    if (!strcmp(r->optimizer, "sgd")) {
        kn_node *buf = r->momentum > 0 ? state_of(b->g, p, "momentum_buffer") : NULL;
        return kn_graph_sgd_update(b->g, p, gr, b->lr, buf, r->momentum, r->weight_decay, r->nesterov);
    }
    return kn_graph_adam_update(b->g, p, gr, b->lr, b->t, state_of(b->g, p, "exp_avg"), state_of(b->g, p, "exp_avg_sq"),
                                r->beta1, r->beta2, r->eps, r->weight_decay, !strcmp(r->optimizer, "adamw"));
}

static void clip_grads(bench_step *b, kn_node **grads)
{
    kn_graph *g = b->g;
    kn_node *sq = NULL;
    for (int i = 0; i < b->n_params; i++) {
        kn_node *s = kn_graph_sum(g, kn_graph_mul(g, grads[i], grads[i]), 0, false);
        sq = sq ? kn_graph_add(g, sq, s) : s;
    }
    kn_node *norm = kn_graph_sqrt(g, sq);
    kn_node *factor = kn_graph_div(g, kn_graph_scalar(g, KN_F32, b->r->clip_norm),
                                   kn_graph_clamp(g, norm, b->r->clip_norm, INFINITY));
    for (int i = 0; i < b->n_params; i++)
        grads[i] = kn_graph_mul(g, grads[i], factor);
}

/* Builds the step in b->g and compiles b->plan: the training step of kn_train for a full
 * batch, or the forward pass for inference. */
static kn_status build_step(bench_step *b, const kn_model *m, const kn_bench_opts *o, kn_error *err)
{
    kn_graph *g = b->g;
    int64_t shape[4] = {o->batch};
    int nd = kn_model_input_shape(m, shape + 1);
    b->x = kn_graph_input(g, "bench.x", KN_F32, nd + 1, shape);
    if (!b->x)
        return graph_err(g, err, "creating the input");
    /* a quantised checkpoint (kiln/quant.h) runs its int8 graph; inference only */
    kn_build_opts bo = {.precision = o->precision};
    if (o->checkpoint) {
        kn_status st = kn_checkpoint_is_quantized(o->checkpoint, &bo.int8, err);
        if (st)
            return st;
        if (bo.int8 && o->mode != KN_BENCH_INFER)
            return kn_error_set(err, KN_ERR_ARG, "%s is an int8 quantised checkpoint: it can only be benchmarked with --infer",
                                o->checkpoint);
    }
    b->logits = kn_model_build_ex(m, g, b->x, &bo, err);
    if (!b->logits)
        return graph_err(g, err, "building the model");
    /* weights before anything else creates parameters: the file must hold exactly the
     * model's (optimizer state in it is ignored; the benchmark's starts at zero) */
    if (o->checkpoint) {
        kn_status st = kn_checkpoint_load(g, o->checkpoint, true, NULL, err);
        if (!st && bo.int8)
            st = kn__quant_validate(g, o->checkpoint, err);
        if (st)
            return st;
    }
    kn_plan_opts po = {.backend = o->backend, .device = o->device, .deterministic = o->deterministic,
                       .training = o->mode == KN_BENCH_TRAIN, .threads = o->threads, .profile = o->profile != NULL};
    if (o->mode == KN_BENCH_INFER) {
        kn_status st = kn_plan_compile(&b->plan, g, &b->logits, 1, &po);
        return st ? kn_error_set(err, st, "compiling the inference plan: %s", kn_plan_last_error()) : KN_OK;
    }
    b->y = kn_graph_input(g, "bench.y", KN_I32, 1, shape);
    b->lr = kn_graph_input(g, "bench.lr", KN_F32, 0, NULL);
    b->t = kn_graph_input(g, "bench.t", KN_F32, 0, NULL);
    b->loss = kn_graph_softmax_cross_entropy(g, b->logits, b->y);
    if (!b->loss)
        return graph_err(g, err, "building the loss");
    b->n_params = kn_graph_params(g, true, b->params, MAX_PARAMS);
    if (b->n_params > MAX_PARAMS)
        return kn_error_set(err, KN_ERR_UNSUPPORTED, "the model has %d parameter tensors; at most %d are supported",
                            b->n_params, MAX_PARAMS);
    kn_node *grads[MAX_PARAMS];
    /* fp16: loss·S and gradients·(1/S) as in kn_train (a fixed S here) */
    kn_node *scale = o->precision == KN_PRECISION_FP16 ? kn_graph_scalar(g, KN_F32, 1024.0) : NULL;
    if (kn_graph_backward(g, scale ? kn_graph_mul(g, b->loss, scale) : b->loss, b->params, b->n_params, grads))
        return graph_err(g, err, "building the backward pass");
    for (int i = 0; scale && i < b->n_params; i++)
        grads[i] = kn_graph_mul(g, grads[i], kn_graph_scalar(g, KN_F32, 1.0 / 1024.0));
    for (int i = 0; i < b->n_params; i++)
        if (!grads[i])
            return kn_error_set(err, KN_ERR_ARG, "parameter %s does not affect the loss", kn_node_name(b->params[i]));
    if (b->r->clip_norm > 0)
        clip_grads(b, grads);
    kn_node *outs[MAX_PARAMS + 2];
    int n_outs = 0;
    outs[n_outs++] = b->loss;
    outs[n_outs++] = b->logits;
    for (int i = 0; i < b->n_params; i++)
        outs[n_outs++] = update(b, b->params[i], grads[i]);
    if (kn_graph_status(g))
        return graph_err(g, err, "building the optimizer");
    kn_status st = kn_plan_compile(&b->plan, g, outs, n_outs, &po);
    return st ? kn_error_set(err, st, "compiling the training step: %s", kn_plan_last_error()) : KN_OK;
}

/* Synthetic inputs N(0,1) and labels uniform over the classes, from the seed. */
static void fill_inputs(bench_step *b, const kn_model *m, const kn_bench_opts *o)
{
    float *x = kn_plan_input_data(b->plan, b->x);
    int64_t n = kn_node_numel(b->x);
    for (int64_t i = 0; x && i < n; i++)
        x[i] = (float)kn_rng_normal(o->seed, 0xbe4c, (uint64_t)i);
    if (o->mode != KN_BENCH_TRAIN)
        return;
    int32_t *y = kn_plan_input_data(b->plan, b->y);
    int classes = kn_model_num_classes(m);
    for (int64_t i = 0; y && i < o->batch; i++) {
        int c = (int)(kn_rng_uniform(o->seed, 0xbe4d, (uint64_t)i) * classes);
        y[i] = c < classes ? c : classes - 1;
    }
    float *lr = kn_plan_input_data(b->plan, b->lr);
    if (lr)
        *lr = (float)b->r->lr;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One run; the Adam step counter advances like in training. */
static kn_status run_once(bench_step *b, const kn_bench_opts *o, int64_t k, kn_error *err)
{
    if (o->mode == KN_BENCH_TRAIN) {
        float *t = kn_plan_input_data(b->plan, b->t);
        if (t)
            *t = (float)(k + 1);
    }
    kn_status st = kn_plan_run(b->plan);
    return st ? kn_error_set(err, st, "run %lld: %s", (long long)k, kn_plan_error(b->plan)) : KN_OK;
}

kn_status kn_bench(const kn_model *m, const kn_bench_opts *o, kn_bench_result *res, kn_error *err)
{
    if (res)
        memset(res, 0, sizeof *res);
    if (!m || !o || !res)
        return kn_error_set(err, KN_ERR_ARG, "kn_bench: NULL model, options or result");
    if (o->mode != KN_BENCH_TRAIN && o->mode != KN_BENCH_INFER)
        return kn_error_set(err, KN_ERR_ARG, "bench: unknown mode %d", (int)o->mode);
    if (o->batch < 1 || o->batch > MAX_BATCH)
        return kn_error_set(err, KN_ERR_ARG, "bench: batch %lld is outside [1, %lld]", (long long)o->batch,
                            (long long)MAX_BATCH);
    if (o->steps < 0 || o->steps > KN_BENCH_MAX_STEPS)
        return kn_error_set(err, KN_ERR_ARG, "bench: steps %d is outside [0, %d] (0 = auto)", o->steps,
                            KN_BENCH_MAX_STEPS);
    if (o->warmup < 0 || o->threads < 0)
        return kn_error_set(err, KN_ERR_ARG, "bench: warmup %d and threads %d must be ≥ 0", o->warmup, o->threads);
    if (o->steps == 0 && !(o->min_seconds >= 0 && o->min_seconds <= 3600))
        return kn_error_set(err, KN_ERR_ARG, "bench: min_seconds %g is outside [0, 3600]", o->min_seconds);
    const kn_recipe *r = o->recipe ? o->recipe : kn_model_recipe(m);
    if (o->mode == KN_BENCH_TRAIN && strcmp(r->optimizer, "sgd") && strcmp(r->optimizer, "adam") &&
        strcmp(r->optimizer, "adamw"))
        return kn_error_set(err, KN_ERR_ARG, "bench: unknown optimizer '%s' (sgd, adam, adamw)", r->optimizer);
    if (o->threads > 0)
        omp_set_num_threads(o->threads);

    int cap = o->steps ? o->steps : KN_BENCH_MAX_STEPS;
    double *times = kn__alloc((size_t)cap * sizeof *times);
    bench_step b = {.g = kn_graph_new(), .r = r};
    kn_status st = KN_OK;
    if (!times || !b.g) {
        st = kn_error_set(err, KN_ERR_OOM, "bench: out of memory");
        goto done;
    }
    double t0 = kn__now();
    kn_graph_set_seed(b.g, o->seed);
    st = build_step(&b, m, o, err);
    if (st)
        goto done;
    res->compile_ms = 1e3 * (kn__now() - t0);
    fill_inputs(&b, m, o);
    for (int k = 0; !st && k < o->warmup; k++)
        st = run_once(&b, o, k, err);
    int n = 0;
    kn_plan_reset_profile(b.plan);
    double start = kn__now();
    while (!st && n < cap && (o->steps ? n < o->steps : (n < 10 || kn__now() - start < o->min_seconds))) {
        double a = kn__now();
        st = run_once(&b, o, o->warmup + n, err);
        times[n++] = kn__now() - a;
    }
    if (st)
        goto done;
    qsort(times, (size_t)n, sizeof *times, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += times[i];
    double median = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
    res->steps = n;
    res->median_ms = 1e3 * median;
    res->min_ms = 1e3 * times[0];
    res->max_ms = 1e3 * times[n - 1];
    res->mean_ms = 1e3 * sum / n;
    res->flops_per_step = kn_plan_flops(b.plan);
    res->images_per_s = median > 0 ? (double)o->batch / median : 0;
    res->gflops = median > 0 ? res->flops_per_step / median * 1e-9 : 0;
    res->arena_bytes = kn_plan_arena_bytes(b.plan);
    res->plan_steps = kn_plan_num_steps(b.plan);
    res->fallbacks = kn_plan_num_fallbacks(b.plan);
    res->backend = kn_plan_backend(b.plan);
    res->device = kn_plan_device(b.plan);
    res->cuda_graph = kn_plan_uses_cuda_graph(b.plan);
    if (res->device < 0 || kn_cuda_device_name(res->device, res->device_name, sizeof res->device_name))
        snprintf(res->device_name, sizeof res->device_name, "%s", res->device < 0 ? "cpu" : "unknown GPU");
    st = kn_model_stats(m, &res->params, &res->model_flops, err);
    if (!st && o->profile && kn_plan_write_profile(b.plan, o->profile, 15))
        st = kn_error_set(err, KN_ERR_IO, "bench: writing the profile failed");
done:
    kn_plan_free(b.plan);
    kn_graph_free(b.g);
    kn__free(times);
    if (st) {
        memset(res, 0, sizeof *res);
        if (err && !err->status)
            kn_error_set(err, st, "bench: %s", kn_status_name(st));
    }
    return st;
}
