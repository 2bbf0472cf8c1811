/* prune.c — unstructured magnitude pruning: the pruner kn_train holds (masks as frozen u8
 * parameters "<weight>.mask", the oneshot and gradual schedules, per-layer and global
 * magnitude ranking, re-applying masks to weights and optimizer state after each step) and
 * kn_prune_stats (zeros per prunable tensor of a checkpoint). Not here: the training loop
 * (src/train/trainer.c calls the hooks), structured pruning (prune_struct.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/alloc.h"
#include "kiln/io.h"
#include "prune_internal.h"

#define MAX_PRUNED 512
#define STATE_SUFFIXES 3
static const char *const state_suffix[STATE_SUFFIXES] = {"exp_avg", "exp_avg_sq", "momentum_buffer"};

struct kn__pruner {
    kn_prune_opts o;
    int n;
    kn_node *w[MAX_PRUNED];                       /* the pruned weights */
    kn_node *mask[MAX_PRUNED];                    /* u8 [same shape] */
    kn_node *state[MAX_PRUNED][STATE_SUFFIXES];   /* optimizer state found at the first apply */
    bool states_found;
    int64_t last_update;                          /* step of the last mask update (-1: none) */
    char desc[160];
};

void kn_prune_opts_defaults(kn_prune_opts *o)
{
    memset(o, 0, sizeof *o);
    o->sparsity = 0.5;
    o->schedule = KN_PRUNE_ONESHOT;
}

kn_status kn_prune_opts_check(const kn_prune_opts *o, kn_error *err)
{
    if (!o)
        return kn_error_set(err, KN_ERR_ARG, "pruning: NULL options");
    if (!(o->sparsity >= 0 && o->sparsity < 1))
        return kn_error_set(err, KN_ERR_ARG, "pruning: sparsity %g must be in [0, 1)", o->sparsity);
    if (o->schedule != KN_PRUNE_ONESHOT && o->schedule != KN_PRUNE_GRADUAL)
        return kn_error_set(err, KN_ERR_ARG, "pruning: unknown schedule %d (oneshot or gradual)", (int)o->schedule);
    if (!(o->ramp >= 0 && o->ramp <= 1))
        return kn_error_set(err, KN_ERR_ARG, "pruning: ramp %g must be in (0, 1] (0 = default 0.5)", o->ramp);
    if (o->updates < 0 || o->updates > 100000)
        return kn_error_set(err, KN_ERR_ARG, "pruning: updates %d must be in [0, 100000] (0 = default 16)",
                            o->updates);
    return KN_OK;
}

static double ramp_of(const kn_prune_opts *o) { return o->ramp > 0 ? o->ramp : 0.5; }
static int updates_of(const kn_prune_opts *o) { return o->updates > 0 ? o->updates : 16; }

/* Last step of the ramp: the target sparsity holds from here on. */
static int64_t ramp_end(const kn_prune_opts *o, int64_t total)
{
    return (int64_t)llround(ramp_of(o) * (double)(total > 0 ? total : 0));
}

double kn_prune_sparsity_at(const kn_prune_opts *o, int64_t step, int64_t total)
{
    if (o->schedule != KN_PRUNE_GRADUAL)
        return o->sparsity;
    int64_t r = ramp_end(o, total);
    if (r <= 0 || step >= r)
        return o->sparsity;
    double f = 1.0 - (double)(step > 0 ? step : 0) / (double)r;
    return o->sparsity * (1.0 - f * f * f);
}

/* Whether the schedule recomputes the masks before optimizer step `step`. */
static bool update_due(const kn_prune_opts *o, int64_t step, int64_t total)
{
    if (o->schedule != KN_PRUNE_GRADUAL)
        return step == 0;
    int64_t r = ramp_end(o, total);
    if (step > r)
        return false;
    int64_t every = r / updates_of(o);
    return step == r || step % (every > 0 ? every : 1) == 0;
}

bool kn__prunable(const kn_node *p)
{
    const char *name = kn_node_name(p);
    size_t n = strlen(name);
    return kn_node_ndim(p) >= 2 && kn_node_dtype(p) == KN_F32 && n > 7 && !strcmp(name + n - 7, ".weight");
}

kn_status kn__pruner_new(kn__pruner **out, kn_graph *g, kn_node *const *params, int n, const kn_prune_opts *o,
                         kn_error *err)
{
    *out = NULL;
    kn_status st = kn_prune_opts_check(o, err);
    if (st)
        return st;
    kn__pruner *p = kn__calloc(1, sizeof *p);
    if (!p)
        return kn_error_set(err, KN_ERR_OOM, "pruning: out of memory");
    p->o = *o;
    p->last_update = -1;
    for (int i = 0; i < n && p->n < MAX_PRUNED; i++) {
        if (!kn__prunable(params[i]))
            continue;
        char name[256];
        int64_t shape[KN_MAX_DIMS];
        snprintf(name, sizeof name, "%s.mask", kn_node_name(params[i]));
        for (int d = 0; d < kn_node_ndim(params[i]); d++)
            shape[d] = kn_node_dim(params[i], d);
        kn_node *m = kn_graph_param(g, name, KN_U8, kn_node_ndim(params[i]), shape, false);
        if (!m) {
            kn__pruner_free(p);
            return kn_error_set(err, kn_graph_status(g) ? kn_graph_status(g) : KN_ERR_OOM, "pruning: %s",
                                kn_graph_error(g));
        }
        memset(kn_graph_param_data(g, m), 1, (size_t)kn_node_numel(m));
        p->w[p->n] = params[i];
        p->mask[p->n++] = m;
    }
    if (!p->n) {
        kn__pruner_free(p);
        return kn_error_set(err, KN_ERR_ARG, "pruning: the model has no conv2d or dense weights to prune");
    }
    snprintf(p->desc, sizeof p->desc, "unstructured sparsity=%g scope=%s schedule=%s", o->sparsity,
             o->global ? "global" : "layer", o->schedule == KN_PRUNE_GRADUAL ? "gradual" : "oneshot");
    if (o->schedule == KN_PRUNE_GRADUAL)
        snprintf(p->desc + strlen(p->desc), sizeof p->desc - strlen(p->desc), " ramp=%g updates=%d", ramp_of(o),
                 updates_of(o));
    *out = p;
    return KN_OK;
}

void kn__pruner_free(kn__pruner *p) { kn__free(p); }

const char *kn__pruner_describe(const kn__pruner *p) { return p ? p->desc : ""; }

/* Ranking key of one weight: previously pruned ones come first (-1), then by magnitude; ties
 * by position, so a ranking is reproducible. */
typedef struct rank_item {
    float key;
    int32_t tensor;
    int64_t index;
} rank_item;

static int cmp_rank(const void *a, const void *b)
{
    const rank_item *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->tensor != y->tensor)
        return x->tensor < y->tensor ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Ranks tensors [first, last) together and prunes the `sparsity` fraction with the smallest keys. */
static kn_status rank_and_mask(kn__pruner *p, kn_graph *g, int first, int last, double sparsity, kn_error *err)
{
    int64_t total = 0;
    for (int j = first; j < last; j++)
        total += kn_node_numel(p->w[j]);
    rank_item *it = kn__alloc(kn__mul_size((size_t)total, sizeof *it));
    if (!it)
        return kn_error_set(err, KN_ERR_OOM, "pruning: out of memory ranking %lld weights", (long long)total);
    int64_t k = 0;
    for (int j = first; j < last; j++) {
        const float *w = kn_graph_param_data(g, p->w[j]);
        const uint8_t *m = kn_graph_param_data(g, p->mask[j]);
        for (int64_t i = 0; i < kn_node_numel(p->w[j]); i++, k++)
            it[k] = (rank_item){.key = m[i] ? fabsf(w[i]) : -1.0f, .tensor = j, .index = i};
    }
    int64_t prune = (int64_t)llround(sparsity * (double)total);
    if (prune > 0)
        qsort(it, (size_t)total, sizeof *it, cmp_rank);
    for (int j = first; j < last; j++)
        memset(kn_graph_param_data(g, p->mask[j]), 1, (size_t)kn_node_numel(p->mask[j]));
    for (int64_t r = 0; r < prune; r++)
        ((uint8_t *)kn_graph_param_data(g, p->mask[it[r].tensor]))[it[r].index] = 0;
    kn__free(it);
    return KN_OK;
}

static void find_states(kn__pruner *p, kn_graph *g)
{
    for (int j = 0; j < p->n; j++)
        for (int s = 0; s < STATE_SUFFIXES; s++) {
            char name[256];
            snprintf(name, sizeof name, "%s.%s", kn_node_name(p->w[j]), state_suffix[s]);
            p->state[j][s] = kn_graph_find(g, name);
        }
    p->states_found = true;
}

void kn__pruner_apply(kn__pruner *p, kn_graph *g)
{
    if (!p)
        return;
    if (!p->states_found)
        find_states(p, g);
    for (int j = 0; j < p->n; j++) {
        float *w = kn_graph_param_data(g, p->w[j]);
        const uint8_t *m = kn_graph_param_data(g, p->mask[j]);
        float *s[STATE_SUFFIXES];
        for (int k = 0; k < STATE_SUFFIXES; k++)
            s[k] = p->state[j][k] ? kn_graph_param_data(g, p->state[j][k]) : NULL;
        int64_t n = kn_node_numel(p->w[j]);
        for (int64_t i = 0; i < n; i++) {
            if (m[i])
                continue;
            w[i] = 0.0f;
            for (int k = 0; k < STATE_SUFFIXES; k++)
                if (s[k])
                    s[k][i] = 0.0f;
        }
    }
}

kn_status kn__pruner_before_step(kn__pruner *p, kn_graph *g, int64_t step, int64_t total, kn_error *err)
{
    if (!p || step == p->last_update || !update_due(&p->o, step, total))
        return KN_OK;
    double s = kn_prune_sparsity_at(&p->o, step, total);
    kn_status st = KN_OK;
    if (p->o.global)
        st = rank_and_mask(p, g, 0, p->n, s, err);
    for (int j = 0; !p->o.global && !st && j < p->n; j++)
        st = rank_and_mask(p, g, j, j + 1, s, err);
    if (st)
        return st;
    p->last_update = step;
    kn__pruner_apply(p, g);
    return KN_OK;
}

/* ---- kn_prune_stats ---------------------------------------------------------------------------- */

kn_status kn_prune_stats(const char *checkpoint, kn_prune_layer_stat **stats, int *n, int64_t *params, kn_error *err)
{
    if (!checkpoint || !stats || !n)
        return kn_error_set(err, KN_ERR_ARG, "kn_prune_stats: NULL argument");
    *stats = NULL;
    *n = 0;
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, stat(checkpoint, &sb) == 0 && S_ISDIR(sb.st_mode) ? "%s/model.safetensors" : "%s",
             checkpoint);
    kn_meta meta = {0};
    kn_model *m = NULL;
    kn_graph *g = NULL;
    kn_node *ps[MAX_PRUNED];
    kn_status st = kn_checkpoint_read_meta(path, &meta, err);
    if (!st && !kn_meta_get(&meta, "kiln.model"))
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: no kiln.model in the metadata: not a kiln checkpoint", path);
    if (!st)
        st = kn_model_parse(&m, kn_meta_get(&meta, "kiln.model"), path, err);
    if (!st && !(g = kn_graph_new()))
        st = kn_error_set(err, KN_ERR_OOM, "out of memory");
    if (!st) {
        int64_t shape[4] = {1};
        int nd = kn_model_input_shape(m, shape + 1);
        kn_node *x = kn_graph_input(g, "x", KN_F32, nd + 1, shape);
        if (!x || !kn_model_build(m, g, x, err))
            st = err && err->status ? err->status
                                    : kn_error_set(err, kn_graph_status(g), "%s: %s", path, kn_graph_error(g));
    }
    if (!st)
        st = kn_checkpoint_load(g, path, true, NULL, err);
    int np = st ? 0 : kn_graph_params(g, true, ps, MAX_PRUNED);
    if (np > MAX_PRUNED)
        st = kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: more than %d parameter tensors", path, MAX_PRUNED);
    kn_prune_layer_stat *out = NULL;
    if (!st && !(out = kn__calloc((size_t)np + 1, sizeof *out)))
        st = kn_error_set(err, KN_ERR_OOM, "out of memory");
    int64_t total = 0;
    for (int i = 0; !st && i < np; i++) {
        total += kn_node_numel(ps[i]);
        if (!kn__prunable(ps[i]))
            continue;
        kn_prune_layer_stat *s = &out[(*n)++];
        snprintf(s->name, sizeof s->name, "%s", kn_node_name(ps[i]));
        s->numel = kn_node_numel(ps[i]);
        const float *w = kn_graph_param_data(g, ps[i]);
        for (int64_t k = 0; k < s->numel; k++)
            s->zeros += w[k] == 0.0f;
    }
    if (st) {
        kn__free(out);
        *n = 0;
    } else {
        *stats = out;
        if (params)
            *params = total;
    }
    kn_graph_free(g);
    kn_model_free(m);
    kn_meta_clear(&meta);
    return st;
}
