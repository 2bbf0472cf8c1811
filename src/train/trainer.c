/* trainer.c — kn_train: builds the whole training step as one graph (model, softmax
 * cross-entropy, backward, optional clipping and accumulation, optimizer updates as nodes),
 * compiles it once per batch size, and runs the epochs: loader → plan → metrics, evaluation
 * on the validation split, checkpoint, metrics.csv, curves.png and summary.json per epoch.
 * Not here: the data readers (src/data), the checkpoint format (src/io), plotting (plot.c),
 * progress text and reports (report.c). */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../compress/prune_internal.h"
#include "../core/alloc.h"
#include "finetune.h"
#include "kiln/io.h"
#include "loss_scale.h"
#include "distill.h"
#include "report.h"
#include "resident.h"
#include "session.h"

#define MAX_PARAMS 512

typedef struct branch {
    int64_t batch;
    kn_node *x, *y, *logits, *loss, *lr, *t;
    kn_node *examples;    /* resident data: the batch's (row, epoch, position) triples; x is gathered */
    kn_node *scale;       /* FP16: the loss scale S (the backward starts from loss·S); NULL otherwise */
    kn_node *gnorm2;      /* Σ g² over all gradients: non-finite means the update was skipped */
    kn_node *lr_guarded;  /* lr + 0·gnorm2: NaN (so the update kernels skip) when gnorm2 is not finite */
    kn_plan *plan;        /* forward + backward + (accumulate) + update */
    kn_plan *micro;       /* accumulation only (accum > 1) */
} branch;

typedef struct trainer {
    const kn_model *m;
    kn_recipe r;
    kn_train_opts o;
    kn_graph *g;
    kn_node *params[MAX_PARAMS];
    int n_params;
    branch full, rem;
    kn__eval_branch eval;
    kn__norm norm;
    kn__resident resident; /* opts.resident_data: the training set inside the plans */
    kn__distill distill;   /* the teacher, with o.teacher */
    int64_t step;          /* optimizer steps done */
    int64_t micro_count;   /* micro-batches since the last update (accum > 1) */
    int64_t skipped;       /* steps skipped by the numerical guard */
    kn__loss_scaler ls;    /* FP16 dynamic loss scaling (off otherwise) */
    int epoch;             /* epochs finished */
    int64_t batch_in_epoch;/* batches done in the current epoch (resume point) */
    kn_epoch_log *logs;
    int n_logs, cap_logs;
    kn__pruner *pr;        /* unstructured pruning masks (opts.prune), NULL without */
    char pruning[512];     /* kiln.pruning of the checkpoint the run started from ("" if none) */
} trainer;

void kn_train_opts_defaults(kn_train_opts *o)
{
    memset(o, 0, sizeof *o);
    kn_recipe_defaults(&o->recipe);
    o->seed = 42;
    o->temperature = 4;
    o->alpha = 0.9;
}

void kn_train_result_free(kn_train_result *r)
{
    if (!r)
        return;
    kn_eval_result_free(&r->test);
    kn__free(r->logs);
    r->logs = NULL;
}

static kn_status graph_err(trainer *t, kn_error *err, const char *what)
{
    if (err && err->status)
        return err->status;
    return kn_error_set(err, kn_graph_status(t->g) ? kn_graph_status(t->g) : KN_ERR_OOM, "%s: %s", what,
                        kn_graph_error(t->g));
}

/* A frozen state buffer named "<param>.<suffix>", created once and found by later branches. */
static kn_node *state_of(trainer *t, kn_node *p, const char *suffix)
{
    char name[256];
    snprintf(name, sizeof name, "%s.%s", kn_node_name(p), suffix);
    kn_node *s = kn_graph_find(t->g, name);
    if (s)
        return s;
    int64_t shape[KN_MAX_DIMS];
    for (int i = 0; i < kn_node_ndim(p); i++)
        shape[i] = kn_node_dim(p, i);
    return kn_graph_param(t->g, name, kn_node_dtype(p), kn_node_ndim(p), shape, false);
}

/* Micro-batches per optimizer step (1 without gradient accumulation). */
static int micro_batches(const trainer *t) { return t->r.accum > 1 ? t->r.accum : 1; }

/* The optimizer update of one parameter from gradient gr. */
static kn_node *update(trainer *t, branch *b, kn_node *p, kn_node *gr)
{
    const kn_recipe *r = &t->r;
    if (!strcmp(r->optimizer, "sgd")) {
        kn_node *buf = r->momentum > 0 ? state_of(t, p, "momentum_buffer") : NULL;
        return kn_graph_sgd_update(t->g, p, gr, b->lr_guarded, buf, r->momentum, r->weight_decay, r->nesterov);
    }
    return kn_graph_adam_update(t->g, p, gr, b->lr_guarded, b->t, state_of(t, p, "exp_avg"),
                                state_of(t, p, "exp_avg_sq"), r->beta1, r->beta2, r->eps, r->weight_decay,
                                !strcmp(r->optimizer, "adamw"));
}

/* The numerical guard and clipping: gnorm2 = Σ g² over every gradient; the updates get
 * lr + 0·gnorm2, which is NaN exactly when some gradient is NaN or infinite, and the update
 * kernels skip on a non-finite lr (src/ops/optim.c). With clip > 0 the gradients are scaled
 * so that their global L2 norm is at most clip. */
static void guard_and_clip(trainer *t, branch *b, kn_node **grads)
{
    kn_graph *g = t->g;
    kn_node *sq = NULL;
    for (int i = 0; i < t->n_params; i++) {
        kn_node *s = kn_graph_sum(g, kn_graph_mul(g, grads[i], grads[i]), 0, false);
        sq = sq ? kn_graph_add(g, sq, s) : s;
    }
    b->gnorm2 = sq;
    b->lr_guarded = kn_graph_add(g, b->lr, kn_graph_mul(g, kn_graph_scalar(g, KN_F32, 0.0), sq));
    if (t->r.clip_norm <= 0)
        return;
    kn_node *norm = kn_graph_sqrt(g, sq);
    kn_node *factor = kn_graph_div(g, kn_graph_scalar(g, KN_F32, t->r.clip_norm),
                                   kn_graph_clamp(g, norm, t->r.clip_norm, INFINITY));
    for (int i = 0; i < t->n_params; i++)
        grads[i] = kn_graph_mul(g, grads[i], factor);
}

static kn_status build_branch(trainer *t, branch *b, int64_t batch, const char *tag, kn_error *err)
{
    kn_graph *g = t->g;
    b->batch = batch;
    int64_t shape[4] = {batch};
    int nd = kn_model_input_shape(t->m, shape + 1);
    char name[64];
    snprintf(name, sizeof name, "%s.x", tag);
    b->x = t->resident.table ? kn__resident_batch(&t->resident, g, t->m, tag, batch, &b->examples)
                             : kn_graph_input(g, name, KN_F32, nd + 1, shape);
    snprintf(name, sizeof name, "%s.y", tag);
    b->y = kn_graph_input(g, name, KN_I32, 1, shape);
    snprintf(name, sizeof name, "%s.lr", tag);
    b->lr = kn_graph_input(g, name, KN_F32, 0, NULL);
    snprintf(name, sizeof name, "%s.t", tag);
    b->t = kn_graph_input(g, name, KN_F32, 0, NULL);
    if (kn_graph_status(g))
        return graph_err(t, err, "creating the inputs");
    kn_build_opts bo = {.precision = t->o.precision, .fake_quant = t->o.qat};
    b->logits = kn_model_build_ex(t->m, g, b->x, &bo, err);
    if (!b->logits)
        return graph_err(t, err, "building the model");
    b->loss = t->o.teacher ? kn__distill_loss(&t->distill, g, b->x, b->logits, b->y, &t->norm, err)
                           : kn_graph_softmax_cross_entropy(g, b->logits, b->y);
    if (!b->loss)
        return graph_err(t, err, "building the loss");
    if (!t->n_params)
        t->n_params = kn_graph_params(g, true, t->params, MAX_PARAMS);
    if (t->n_params > MAX_PARAMS)
        return kn_error_set(err, KN_ERR_UNSUPPORTED, "the model has %d parameter tensors; at most %d are supported",
                            t->n_params, MAX_PARAMS);
    if (t->o.prune && !t->pr) { /* masks are parameters: created before any plan is compiled */
        kn_status pst = kn__pruner_new(&t->pr, g, t->params, t->n_params, t->o.prune, err);
        if (pst)
            return pst;
    }
    kn_node *grads[MAX_PARAMS], *from = b->loss;
    if (t->ls.on) { /* FP16: backward from loss·S, gradients·(1/S) before accumulation and the guard */
        snprintf(name, sizeof name, "%s.loss_scale", tag);
        b->scale = kn_graph_input(g, name, KN_F32, 0, NULL);
        from = kn_graph_mul(g, b->loss, b->scale);
        if (kn_graph_status(g))
            return graph_err(t, err, "building the loss scaling");
    }
    kn_status st = kn_graph_backward(g, from, t->params, t->n_params, grads);
    if (st)
        return graph_err(t, err, "building the backward pass");
    for (int i = 0; i < t->n_params; i++)
        if (!grads[i])
            return kn_error_set(err, KN_ERR_ARG, "parameter %s does not affect the loss", kn_node_name(t->params[i]));
    if (t->ls.on) {
        kn_node *inv = kn_graph_div(g, kn_graph_scalar(g, KN_F32, 1.0), b->scale);
        for (int i = 0; i < t->n_params; i++)
            grads[i] = kn_graph_mul(g, grads[i], inv);
    }

    kn_node *outs[MAX_PARAMS + 3];
    int n_outs = 0;
    outs[n_outs++] = b->loss;
    outs[n_outs++] = b->logits;
    int accum = micro_batches(t);
    kn_plan_opts po = {.backend = t->o.backend, .device = t->o.device, .deterministic = t->o.deterministic,
                       .training = true, .threads = t->o.threads, .debug_numerics = t->o.debug_numerics};
    if (t->o.debug_numerics)
        po.passes = KN_PASS_ALL; /* explicit bits: ignore KILN_PASSES (the in-place pass is off anyway) */
    if (accum > 1) {
        /* acc += g/accum on every micro-batch (the micro plan); the last micro-batch's plan
         * also updates from acc; the trainer zeroes acc after that (zero_accumulators) */
        kn_node *inv = kn_graph_scalar(g, KN_F32, -1.0 / accum);
        kn_node *micro_outs[MAX_PARAMS + 2] = {b->loss, b->logits};
        for (int i = 0; i < t->n_params; i++) {
            kn_node *acc = state_of(t, t->params[i], "grad_accum");
            grads[i] = kn_graph_sgd_update(g, acc, grads[i], inv, NULL, 0, 0, false);
            micro_outs[i + 2] = grads[i];
        }
        if (kn_graph_status(g))
            return graph_err(t, err, "building gradient accumulation");
        st = kn_plan_compile(&b->micro, g, micro_outs, t->n_params + 2, &po);
        if (st)
            return kn_error_set(err, st, "compiling the accumulation step: %s", kn_plan_last_error());
    }
    guard_and_clip(t, b, grads);
    outs[n_outs++] = b->gnorm2;
    for (int i = 0; i < t->n_params; i++)
        outs[n_outs++] = update(t, b, t->params[i], grads[i]);
    if (kn_graph_status(g))
        return graph_err(t, err, "building the optimizer");
    st = kn_plan_compile(&b->plan, g, outs, n_outs, &po);
    if (st)
        return kn_error_set(err, st, "compiling the training step: %s", kn_plan_last_error());
    return KN_OK;
}

/* Learning rate at optimizer step `step` of a run with `steps_per_epoch`. */
static double schedule_lr(const kn_recipe *r, int64_t step, int64_t steps_per_epoch)
{
    double base = r->lr, epoch = (double)step / (double)(steps_per_epoch ? steps_per_epoch : 1);
    double warm = r->warmup_epochs * (double)steps_per_epoch;
    if (warm > 0 && (double)step < warm)
        return base * (double)(step + 1) / warm;
    if (!strcmp(r->schedule, "step"))
        return base * pow(r->gamma, floor(epoch / (r->step_size > 0 ? r->step_size : 1)));
    if (!strcmp(r->schedule, "cosine")) {
        double total = (double)r->epochs * (double)steps_per_epoch - warm;
        double prog = total > 0 ? ((double)step - warm) / total : 1;
        return base * 0.5 * (1 + cos(M_PI * (prog < 1 ? prog : 1)));
    }
    return base;
}

static void set_scalar(kn_plan *p, kn_node *n, float v)
{
    float *d = kn_plan_input_data(p, n);
    if (d)
        *d = v;
}

static int64_t steps_per_epoch(const trainer *t, int64_t n_train)
{
    int64_t batches = t->r.accum > 1 ? n_train / t->r.batch : (n_train + t->r.batch - 1) / t->r.batch;
    return t->r.accum > 1 ? batches / t->r.accum : batches;
}

/* Zeroes the gradient accumulators after an optimizer step (accum > 1). */
static void zero_accumulators(trainer *t)
{
    for (int i = 0; i < t->n_params; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.grad_accum", kn_node_name(t->params[i]));
        kn_node *acc = kn_graph_find(t->g, name);
        void *d = kn_graph_param_data(t->g, acc);
        if (d)
            memset(d, 0, (size_t)kn_node_numel(acc) * kn_dtype_size(kn_node_dtype(acc)));
    }
}

/* The branch compiled for a batch of n examples: the full batch or the last, shorter one. */
static branch *branch_of(trainer *t, int64_t n) { return n == t->full.batch ? &t->full : &t->rem; }

/* The plan the next batch of branch b runs: the update step, or a micro-batch (accum > 1). */
static kn_plan *batch_plan(const trainer *t, branch *b)
{
    return t->micro_count + 1 == micro_batches(t) ? b->plan : b->micro;
}

/* A batch's examples (or, resident, their rows and positions) and labels into the plan's
 * input buffers, and on their way to the device (kn_plan_prefetch_input: on a GPU the copy
 * overlaps the step that is running). */
static kn_status stage_batch(kn_plan *p, const branch *b, const kn_batch *bt, kn_error *err)
{
    kn_node *in = b->examples ? b->examples : b->x;
    if (b->examples) {
        kn__resident_stage(kn_plan_input_data(p, b->examples), bt);
    } else {
        int64_t size = kn_node_numel(b->x) / b->batch;
        memcpy(kn_plan_input_data(p, b->x), bt->x, (size_t)(bt->n * size) * sizeof(float));
    }
    memcpy(kn_plan_input_data(p, b->y), bt->y, (size_t)bt->n * sizeof(int32_t));
    kn_status st = kn_plan_prefetch_input(p, in);
    if (!st)
        st = kn_plan_prefetch_input(p, b->y);
    return st ? kn_error_set(err, st, "uploading batch %lld: %s", (long long)bt->index, kn_plan_error(p)) : KN_OK;
}

/* Starts the step of a staged batch: pruning masks, learning rate, step and loss scale, then
 * kn_plan_run_async (on a GPU it returns once the inputs are on the device, so the next batch
 * can be staged while this one computes; elsewhere it runs the step). */
static kn_status start_batch(trainer *t, branch *b, kn_plan *p, int64_t spe, kn_error *err)
{
    int accum = micro_batches(t);
    if (t->micro_count == 0) {
        kn_status pst = kn__pruner_before_step(t->pr, t->g, t->step, spe * t->r.epochs, err);
        if (pst)
            return pst;
    }
    set_scalar(p, b->lr, (float)schedule_lr(&t->r, t->step, spe));
    set_scalar(p, b->t, (float)(t->step + 1));
    if (b->scale)
        set_scalar(p, b->scale, (float)t->ls.scale);
    /* dropout masks follow the global micro-step, so resuming reproduces them */
    kn_plan_set_step_count(p, (uint64_t)(t->step * accum + t->micro_count));
    kn_status st = kn_plan_run_async(p);
    if (st)
        return kn_error_set(err, st, "training step %lld: %s", (long long)t->step, kn_plan_error(p));
    return KN_OK;
}

/* Ends the step started by start_batch; returns the loss and adds correct predictions (labels:
 * the batch's n labels). A step whose loss or gradients are not finite changes no weights
 * (the guard in the graph); it is counted in t->skipped and reported, and *loss is NaN. */
static kn_status finish_batch(trainer *t, branch *b, kn_plan *p, int64_t n, const int32_t *labels, double *loss,
                              int64_t *correct, kn_error *err)
{
    int accum = micro_batches(t);
    bool last_micro = p == b->plan;
    kn_status st = kn_plan_wait(p);
    if (st)
        return kn_error_set(err, st, "training step %lld: %s", (long long)t->step, kn_plan_error(p));
    *loss = kn_plan_scalar(p, b->loss);
    const float *z = kn_plan_data(p, b->logits);
    int c = (int)kn_node_dim(b->logits, 1);
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int j = 1; j < c; j++)
            best = z[i * c + j] > z[i * c + best] ? j : best;
        *correct += best == labels[i];
    }
    if (!last_micro) {
        t->micro_count++;
        return KN_OK;
    }
    t->micro_count = 0;
    if (accum > 1)
        zero_accumulators(t);
    double g2 = kn_plan_scalar(p, b->gnorm2), scale = t->ls.scale;
    bool finite = isfinite(*loss) && isfinite(g2);
    int change = kn__loss_scaler_update(&t->ls, finite);
    if (!finite) {
        t->skipped++;
        if (t->o.progress && t->skipped <= 10) {
            char ls[96] = "";
            if (t->ls.on)
                snprintf(ls, sizeof ls, " at loss scale %g; scale %s %g", scale, change ? "halved to" : "stays",
                         t->ls.scale);
            fprintf(stderr, "%skiln: step %lld: loss %g, squared gradient norm %g: not finite, update skipped%s%s\n",
                    isatty(2) ? "\r\033[K" : "", (long long)t->step, *loss, g2, ls,
                    t->skipped == 10 ? " (further skips are only counted)" : "");
        }
        return KN_OK;
    }
    if (change > 0 && t->o.progress && t->ls.doublings <= 10)
        fprintf(stderr, "%skiln: step %lld: %d clean steps, loss scale doubled to %g%s\n", isatty(2) ? "\r\033[K" : "",
                (long long)t->step, t->ls.window, t->ls.scale,
                t->ls.doublings == 10 ? " (further changes are only counted)" : "");
    t->step++;
    kn__pruner_apply(t->pr, t->g);
    return KN_OK;
}

/* The loader's next batch at or after index `skip` (resuming inside an epoch: the loader
 * reproduces the order, and the batches before are passed over). */
static bool next_batch(kn_loader *ld, int64_t skip, kn_batch *bt)
{
    while (kn_loader_next(ld, bt))
        if (bt->index >= skip)
            return true;
    return false;
}

static kn_status save_checkpoint(trainer *t, const char *path, kn_error *err)
{
    kn_meta meta = {0};
    char v[64];
    kn_status st = kn_meta_set(&meta, "kiln.model", kn_model_text(t->m));
#define META(key, fmt, val)                        \
    if (!st) {                                     \
        snprintf(v, sizeof v, fmt, val);           \
        st = kn_meta_set(&meta, key, v);           \
    }
    META("kiln.format", "%s", "kiln-checkpoint-1")
    META("kiln.epoch", "%d", t->epoch)
    META("kiln.step", "%lld", (long long)t->step)
    META("kiln.micro", "%lld", (long long)t->micro_count)
    META("kiln.skipped", "%lld", (long long)t->skipped)
    META("kiln.batch_in_epoch", "%lld", (long long)t->batch_in_epoch)
    META("kiln.seed", "%llu", (unsigned long long)t->o.seed)
    META("kiln.norm_scale", "%.9g", t->norm.scale)
    META("kiln.norm_mean", "%.9g", t->norm.mean)
    META("kiln.norm_std", "%.9g", t->norm.std)
    META("kiln.precision", "%s", kn_precision_name(t->o.precision))
#undef META
    if (!st)
        st = kn__loss_scaler_save(&t->ls, &meta);
    char distill[4200];
    snprintf(distill, sizeof distill, "teacher=%s temperature=%g alpha=%g", t->distill.path, t->o.temperature,
             t->o.alpha);
    if (!st && t->o.teacher)
        st = kn_meta_set(&meta, "kiln.distill", distill);
    char *recipe = NULL, *history = NULL;
    if (!st && kn__recipe_string(&t->r, &recipe) == KN_OK)
        st = kn_meta_set(&meta, "kiln.recipe", recipe);
    if (!st && kn__history_string(t->logs, t->n_logs, &history) == KN_OK)
        st = kn_meta_set(&meta, "kiln.history", history);
    kn__free(recipe);
    kn__free(history);
    if (!st && (t->pr || t->pruning[0])) { /* what pruning made this model: kept through fine-tuning */
        char note[sizeof t->pruning + 200];
        const char *mine = t->pr && !strstr(t->pruning, kn__pruner_describe(t->pr)) ? kn__pruner_describe(t->pr) : "";
        snprintf(note, sizeof note, "%s%s%s", t->pruning, t->pruning[0] && mine[0] ? "; " : "", mine);
        st = kn_meta_set(&meta, "kiln.pruning", note);
    }
    if (!st)
        st = kn_checkpoint_save_ex(t->g, path, &meta, t->o.teacher ? KN__TEACHER_PREFIX : NULL, err);
    else
        kn_error_set(err, st, "preparing checkpoint metadata");
    kn_meta_clear(&meta);
    return st;
}

static int64_t meta_int(const kn_meta *m, const char *key)
{
    const char *v = kn_meta_get(m, key);
    return v ? strtoll(v, NULL, 10) : 0;
}

static kn_status resume(trainer *t, kn_error *err)
{
    char path[4096];
    struct stat sb;
    if (stat(t->o.resume, &sb) == 0 && S_ISDIR(sb.st_mode))
        snprintf(path, sizeof path, "%s/model.safetensors", t->o.resume);
    else
        snprintf(path, sizeof path, "%s", t->o.resume);
    kn_meta meta = {0};
    kn_status st = kn_checkpoint_load_ex(t->g, path, false, t->o.teacher ? KN__TEACHER_PREFIX : NULL, &meta, err);
    if (st) {
        kn_meta_clear(&meta);
        return st;
    }
    const char *text = kn_meta_get(&meta, "kiln.model");
    if (!text || strcmp(text, kn_model_text(t->m)) != 0)
        st = kn_error_set(err, KN_ERR_ARG, "%s was trained with a different model description; resume with the same --model",
                          path);
    t->epoch = (int)meta_int(&meta, "kiln.epoch");
    t->step = meta_int(&meta, "kiln.step");
    t->micro_count = meta_int(&meta, "kiln.micro");
    t->skipped = meta_int(&meta, "kiln.skipped");
    t->batch_in_epoch = meta_int(&meta, "kiln.batch_in_epoch");
    if (!st && (uint64_t)meta_int(&meta, "kiln.seed") != t->o.seed)
        st = kn_error_set(err, KN_ERR_ARG, "%s was trained with seed %lld; resume with --seed %lld", path,
                          (long long)meta_int(&meta, "kiln.seed"), (long long)meta_int(&meta, "kiln.seed"));
    const char *prec = kn_meta_get(&meta, "kiln.precision");
    const char *want = kn_precision_name(t->o.precision);
    if (!st && strcmp(prec ? prec : "fp32", want) != 0)
        st = kn_error_set(err, KN_ERR_ARG, "%s was trained with --precision %s; resume with the same precision (not %s)",
                          path, prec ? prec : "fp32", want);
    if (!st)
        st = kn__loss_scaler_load(&t->ls, &meta, path, err);
    if (kn_meta_get(&meta, "kiln.pruning"))
        snprintf(t->pruning, sizeof t->pruning, "%s", kn_meta_get(&meta, "kiln.pruning"));
    if (!st && kn_meta_get(&meta, "kiln.history"))
        st = kn__history_parse(kn_meta_get(&meta, "kiln.history"), &t->logs, &t->n_logs, &t->cap_logs);
    kn_meta_clear(&meta);
    return st;
}

static kn_status push_log(trainer *t, const kn_epoch_log *l)
{
    if (t->n_logs == t->cap_logs) {
        int cap = t->cap_logs ? 2 * t->cap_logs : 16;
        kn_epoch_log *n = kn__realloc(t->logs, (size_t)t->cap_logs * sizeof *n, (size_t)cap * sizeof *n);
        if (!n)
            return KN_ERR_OOM;
        t->logs = n;
        t->cap_logs = cap;
    }
    t->logs[t->n_logs++] = *l;
    return KN_OK;
}

static void trainer_free(trainer *t)
{
    kn_plan_free(t->full.plan);
    kn_plan_free(t->full.micro);
    kn_plan_free(t->rem.plan);
    kn_plan_free(t->rem.micro);
    kn__eval_free(&t->eval);
    kn__distill_close(&t->distill);
    kn__pruner_free(t->pr);
    kn_graph_free(t->g);
    kn__free(t->logs);
}

static kn_status run_epochs(trainer *t, const kn_dataset *train, const kn_dataset *test, kn_train_result *res,
                            kn_error *err)
{
    const kn_recipe *r = &t->r;
    int64_t n_val = (int64_t)(r->val_split * (double)train->n);
    int64_t *tr_idx = NULL, *va_idx = NULL;
    kn_status st = kn_split_indices(train->n, n_val, t->o.seed, &tr_idx, &va_idx);
    if (st)
        return kn_error_set(err, st, "splitting off the validation set");
    int64_t n_train = train->n - n_val;
    kn_loader_opts lo = {.batch = r->batch, .shuffle = true, .drop_last = r->accum > 1, .seed = t->o.seed,
                         .scale = t->norm.scale, .mean = t->norm.mean, .std = t->norm.std, .crop_pad = r->crop_pad,
                         .hflip = r->hflip, .background = true, .rows_only = t->resident.table != NULL};
    kn_loader *ld = NULL;
    st = kn_loader_new(&ld, train, tr_idx, n_train, &lo, err);
    int32_t *labels = st ? NULL : kn__alloc((size_t)r->batch * sizeof(int32_t)); /* the running batch's */
    if (!st && !labels)
        st = kn_error_set(err, KN_ERR_OOM, "out of memory for %d labels", r->batch);
    int64_t spe = steps_per_epoch(t, n_train);
    kn__progress pg;
    kn__progress_init(&pg, t->o.progress);
    double train_seconds = 0, epoch_seconds = 0; /* epoch_seconds includes evaluation, for the ETA */
    int64_t train_images = 0;
    int epochs_run = 0;
    while (!st && t->epoch < r->epochs) {
        st = kn_loader_start_epoch(ld, t->epoch);
        double t0 = kn__now(), loss_sum = 0;
        int64_t correct = 0, seen = 0, counted = 0, nb = kn_loader_num_batches(ld), skipped0 = t->skipped;
        int64_t halved0 = t->ls.halvings, doubled0 = t->ls.doublings;
        kn_batch bt, next = {0};
        int64_t skip = t->batch_in_epoch;
        bool have = next_batch(ld, skip, &bt), staged = false;
        while (!st && have) {
            branch *b = branch_of(t, bt.n);
            kn_plan *p = batch_plan(t, b);
            if (!staged && (st = stage_batch(p, b, &bt, err)) != KN_OK)
                break;
            int64_t n = bt.n, index = bt.index;
            memcpy(labels, bt.y, (size_t)n * sizeof(int32_t)); /* bt is the loader's until its next batch */
            double loss = 0;
            st = start_batch(t, b, p, spe, err);
            if (st)
                break;
            /* while the step runs (on a GPU): the next batch into its plan's input buffers; with
             * accumulation the next plan depends on this step's end, so it waits */
            have = next_batch(ld, skip, &next);
            staged = have && micro_batches(t) == 1;
            if (staged)
                st = stage_batch(branch_of(t, next.n)->plan, branch_of(t, next.n), &next, err);
            kn_status fst = finish_batch(t, b, p, n, labels, &loss, &correct, err);
            st = st ? st : fst;
            bt = next;
            if (st)
                break;
            if (isfinite(loss)) { /* skipped steps do not enter the averages */
                loss_sum += loss * (double)n;
                counted += n;
            }
            seen += n;
            t->batch_in_epoch = index + 1;
            double el = kn__now() - t0;
            kn__progress_step(&pg, t->epoch + 1, r->epochs, t->batch_in_epoch, nb,
                              counted ? loss_sum / (double)counted : NAN, (double)correct / (double)seen,
                              (double)seen / el, el);
            if (t->o.stop_after_steps > 0 && t->step >= t->o.stop_after_steps && t->micro_count == 0) {
                train_seconds += kn__now() - t0;
                res->stopped = true;
                break;
            }
        }
        if (st || res->stopped)
            break;
        double secs = kn__now() - t0;
        train_seconds += secs;
        train_images += seen;
        kn_epoch_log l = {.epoch = t->epoch + 1,
                          .train_loss = counted ? loss_sum / (double)counted : NAN,
                          .train_acc = seen ? (double)correct / (double)seen : NAN,
                          .val_loss = NAN, .val_acc = NAN, .test_loss = NAN, .test_acc = NAN,
                          .images_per_s = secs > 0 ? (double)seen / secs : 0, .seconds = secs,
                          .lr = schedule_lr(r, t->step ? t->step - 1 : 0, spe),
                          .skipped_steps = t->skipped - skipped0,
                          .loss_scale = t->ls.on ? t->ls.scale : 0,
                          .scale_halvings = t->ls.halvings - halved0,
                          .scale_doublings = t->ls.doublings - doubled0};
        if (n_val > 0) {
            kn_eval_result ev;
            st = kn__evaluate(&t->eval, train, va_idx, n_val, &t->norm, &ev, err);
            l.val_loss = ev.loss;
            l.val_acc = ev.accuracy;
            kn_eval_result_free(&ev);
            if (st)
                break;
        }
        if (test && !t->o.skip_epoch_test) {
            kn_eval_result_free(&res->test);
            st = kn__evaluate(&t->eval, test, NULL, test->n, &t->norm, &res->test, err);
            l.test_loss = res->test.loss;
            l.test_acc = res->test.accuracy;
            if (st)
                break;
        }
        t->epoch++;
        t->batch_in_epoch = 0;
        if (push_log(t, &l)) {
            st = kn_error_set(err, KN_ERR_OOM, "out of memory for the epoch log");
            break;
        }
        epoch_seconds += kn__now() - t0;
        epochs_run++;
        kn__progress_epoch(&pg, &l, r->epochs, nb, epoch_seconds / epochs_run * (r->epochs - t->epoch));
        if (t->o.out_dir) {
            st = kn__write_epoch_outputs(t->o.out_dir, t->logs, t->n_logs, err);
            if (!st) {
                char path[4096];
                snprintf(path, sizeof path, "%s/model.safetensors", t->o.out_dir);
                st = save_checkpoint(t, path, err);
            }
        }
    }
    if (!st && res->stopped && t->o.out_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors", t->o.out_dir);
        st = save_checkpoint(t, path, err);
    }
    res->seconds = train_seconds;
    res->train_images_per_s = train_seconds > 0 ? (double)train_images / train_seconds : 0;
    kn_loader_free(ld);
    kn__free(labels);
    kn_free(tr_idx);
    kn_free(va_idx);
    return st;
}

kn_status kn_train(const kn_model *m, const kn_dataset *train, const kn_dataset *test, const kn_train_opts *opts,
                   kn_train_result *res_out, kn_error *err)
{
    kn_train_result local, *res = res_out ? res_out : &local;
    memset(res, 0, sizeof *res);
    if (!m || !train || !opts)
        return kn_error_set(err, KN_ERR_ARG, "kn_train: NULL model, data or options");
    kn_status st = kn__check_data(m, train, err);
    if (!st && test)
        st = kn__check_data(m, test, err);
    if (st)
        return st;
    trainer t = {.m = m, .r = opts->recipe, .o = *opts};
    if (t.r.batch < 1 || t.r.epochs < 0 || t.r.lr <= 0)
        return kn_error_set(err, KN_ERR_ARG, "bad recipe: batch %d, epochs %d, lr %g", t.r.batch, t.r.epochs, t.r.lr);
    st = kn__loss_scaler_init(&t.ls, opts, err);
    if (st)
        return st;
    if (opts->threads > 0)
        omp_set_num_threads(opts->threads);
    if (opts->out_dir && kn_make_dirs(opts->out_dir) != 0)
        return kn_error_set(err, KN_ERR_IO, "cannot create the output directory %s: %s", opts->out_dir, strerror(errno));
    char why[512];
    if ((st = kn_device_resolve(&t.o.backend, &t.o.device, why, sizeof why)) != KN_OK) /* once, before any work */
        return kn_error_set(err, st, "%s", why);
    t.g = kn_graph_new();
    if (!t.g)
        return kn_error_set(err, KN_ERR_OOM, "out of memory");
    kn_graph_set_seed(t.g, opts->seed);
    kn__norm_fit(train, &t.norm);
    int64_t n_val = (int64_t)(t.r.val_split * (double)train->n), n_train = train->n - n_val;
    if (n_train < 1)
        st = kn_error_set(err, KN_ERR_ARG, "no training examples left after the validation split");
    if (!st && opts->teacher)
        st = kn__distill_open(&t.distill, m, opts, err);
    int64_t full = n_train < t.r.batch ? n_train : t.r.batch;
    int64_t rem = t.r.accum > 1 || full < 1 ? 0 : n_train % full;
    if (!st)
        st = kn__resident_init(&t.resident, t.g, train, &t.norm, &t.o, rem ? 2 : 1, err);
    if (!st)
        st = build_branch(&t, &t.full, full, "train", err);
    if (!st && rem)
        st = build_branch(&t, &t.rem, rem, "train_last", err);
    if (!st)
        st = kn__eval_build_on(t.g, m, opts->eval_batch > 0 ? opts->eval_batch : 1000,
                               &(kn_plan_opts){.backend = t.o.backend, .device = t.o.device,
                                               .deterministic = t.o.deterministic, .threads = opts->threads},
                               NULL, &t.eval, err);
    if (!st && opts->init_from && !opts->resume) /* resuming restores everything anyway */
        st = kn__init_from(t.g, m, opts->init_from, &t.norm, t.pruning, sizeof t.pruning, err);
    if (!st && opts->resume)
        st = resume(&t, err);
    if (!st && t.pr) /* masks due now (the first ones; a run without steps gets the target) */
        st = kn__pruner_before_step(t.pr, t.g, t.step, steps_per_epoch(&t, n_train) * t.r.epochs, err);
    if (!st)
        st = run_epochs(&t, train, test, res, err);
    if (!st && opts->out_dir && t.r.epochs == 0 && (opts->init_from || opts->prune)) {
        char path[4096]; /* nothing to train: the initialised (pruned) model is the result */
        snprintf(path, sizeof path, "%s/model.safetensors", opts->out_dir);
        st = save_checkpoint(&t, path, err);
    }
    /* the test set was evaluated after the last epoch unless per-epoch tests are off (or the
     * run had nothing left to train) */
    if (!st && !res->stopped && test && (opts->skip_epoch_test || !res->test.confusion)) {
        kn_eval_result_free(&res->test);
        st = kn__evaluate(&t.eval, test, NULL, test->n, &t.norm, &res->test, err);
    }
    res->epochs_done = t.epoch;
    res->steps = t.step;
    res->skipped_steps = t.skipped;
    res->loss_scale = t.ls.on ? t.ls.scale : 0;
    res->scale_halvings = t.ls.halvings;
    res->scale_doublings = t.ls.doublings;
    if (!st && opts->out_dir && !res->stopped)
        st = kn__write_summary(opts->out_dir, res, t.logs, t.n_logs, test ? &res->test : NULL, err);
    if (!st) {
        res->n_logs = t.n_logs;
        res->logs = t.logs;
        t.logs = NULL;
    }
    trainer_free(&t);
    if (st)
        kn_eval_result_free(&res->test);
    if (res == &local)
        kn_train_result_free(&local);
    return st;
}
