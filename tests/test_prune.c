/* test_prune.c — pruning: fine-tuning from a checkpoint (init_from) starts from its weights and
 * refuses another model; unstructured masks per layer and global prune exactly the smallest
 * magnitudes; masks and zeroed optimizer state survive fine-tuning steps and a stop/resume
 * (bit-identical to an uninterrupted run, gradual schedule); the cubic schedule; structured
 * pruning removes the filters that are zero without changing the logits (conv → batchnorm →
 * conv → flatten → dense, and dense units), keeps layers feeding a residual add whole; bad
 * input errors; out-of-memory loops; the CLI. */
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/io.h"
#include "kiln/prune.h"
#include "kiln/train.h"
#include "util.h"

static const char *MODEL =
    "input 1 8 8\n"
    "conv2d 6 3 pad=1\n"
    "batchnorm\n"
    "relu\n"
    "conv2d 8 3 pad=1\n"
    "relu\n"
    "maxpool 2\n"
    "flatten\n"
    "dense 12\n"
    "relu\n"
    "dense 3\n"
    "train optimizer=adam lr=0.01 batch=16 epochs=2 schedule=cosine\n";

static const char *WEIGHTS[] = {"conv1.weight", "conv2.weight", "dense1.weight", "dense2.weight"};
#define NW 4

/* A checkpoint's tensors: the model's parameters, plus "<w>.mask" (u8) and "<w>.exp_avg" of
 * the weights when with_state (missing ones are an error of the load). */
typedef struct ckpt {
    kn_graph *g;
    kn_node *w[NW], *mask[NW], *exp_avg[NW];
} ckpt;

static bool ckpt_load(ckpt *c, const kn_model *m, const char *path, bool with_state)
{
    memset(c, 0, sizeof *c);
    c->g = kn_graph_new();
    kn_node *x = kn_graph_input(c->g, "x", KN_F32, 4, (int64_t[]){1, 1, 8, 8});
    kn_error err = {0};
    if (!kn_model_build(m, c->g, x, &err))
        return false;
    for (int i = 0; i < NW; i++) {
        c->w[i] = kn_graph_find(c->g, WEIGHTS[i]);
        int64_t shape[KN_MAX_DIMS];
        for (int d = 0; d < kn_node_ndim(c->w[i]); d++)
            shape[d] = kn_node_dim(c->w[i], d);
        if (with_state) {
            char name[64];
            snprintf(name, sizeof name, "%s.mask", WEIGHTS[i]);
            c->mask[i] = kn_graph_param(c->g, name, KN_U8, kn_node_ndim(c->w[i]), shape, false);
            snprintf(name, sizeof name, "%s.exp_avg", WEIGHTS[i]);
            c->exp_avg[i] = kn_graph_param(c->g, name, KN_F32, kn_node_ndim(c->w[i]), shape, false);
        }
    }
    kn_status st = kn_checkpoint_load(c->g, path, true, NULL, &err);
    CHECK(st == KN_OK, "loading %s: %s", path, err.msg);
    return st == KN_OK;
}

static const float *W(ckpt *c, int i) { return kn_graph_param_data(c->g, c->w[i]); }

static kn_status train(const kn_model *m, const kn_dataset *tr, const kn_dataset *te, const char *out, int epochs,
                       const char *init, const kn_prune_opts *po, int64_t stop, const char *resume, kn_error *err)
{
    kn_train_opts o;
    kn_train_opts_defaults(&o);
    o.recipe = *kn_model_recipe(m);
    o.recipe.epochs = epochs;
    o.threads = 2;
    o.seed = 5;
    o.out_dir = out;
    o.init_from = init;
    o.prune = po;
    o.stop_after_steps = stop;
    o.resume = resume;
    return kn_train(m, tr, te, &o, NULL, err);
}

/* |w| of the pruned entries never exceeds |w| of kept ones (within the ranked group). */
static void check_magnitudes(ckpt *base, ckpt *p, int first, int last, double sparsity, const char *what)
{
    int64_t total = 0, zeros = 0, same = 0;
    float max_pruned = 0, min_kept = INFINITY;
    for (int i = first; i < last; i++) {
        const float *b = W(base, i), *w = W(p, i);
        for (int64_t k = 0; k < kn_node_numel(base->w[i]); k++) {
            total++;
            if (w[k] == 0.0f) {
                zeros++;
                max_pruned = fabsf(b[k]) > max_pruned ? fabsf(b[k]) : max_pruned;
            } else {
                min_kept = fabsf(b[k]) < min_kept ? fabsf(b[k]) : min_kept;
                same += w[k] == b[k];
            }
        }
    }
    CHECK(zeros == (int64_t)llround(sparsity * (double)total), "%s: %lld of %lld zero, want %.0f", what,
          (long long)zeros, (long long)total, sparsity * (double)total);
    CHECK(max_pruned <= min_kept, "%s: largest pruned |w| %g > smallest kept %g", what, max_pruned, min_kept);
    CHECK(same == total - zeros, "%s: kept weights unchanged (%lld of %lld)", what, (long long)same,
          (long long)(total - zeros));
}

static void test_schedule(void)
{
    kn_prune_opts o;
    kn_prune_opts_defaults(&o);
    o.sparsity = 0.8;
    o.schedule = KN_PRUNE_GRADUAL;
    o.ramp = 0.5;
    CHECK(kn_prune_sparsity_at(&o, 0, 100) == 0, "gradual starts at 0");
    CHECK(kt_close(kn_prune_sparsity_at(&o, 25, 100), 0.8 * (1 - 0.125), 1e-12, 0), "cubic at mid-ramp: %g",
          kn_prune_sparsity_at(&o, 25, 100));
    CHECK(kn_prune_sparsity_at(&o, 50, 100) == 0.8 && kn_prune_sparsity_at(&o, 99, 100) == 0.8, "target after ramp");
    double prev = -1;
    bool mono = true;
    for (int t = 0; t <= 100; t++) {
        mono = mono && kn_prune_sparsity_at(&o, t, 100) >= prev;
        prev = kn_prune_sparsity_at(&o, t, 100);
    }
    CHECK(mono, "the sparsity never decreases");
    o.schedule = KN_PRUNE_ONESHOT;
    CHECK(kn_prune_sparsity_at(&o, 0, 100) == 0.8, "oneshot: target at once");
    kn_error err = {0};
    o.sparsity = 1.0;
    CHECK(kn_prune_opts_check(&o, &err) == KN_ERR_ARG && strstr(err.msg, "sparsity"), "sparsity 1: %s", err.msg);
    o.sparsity = -0.1;
    CHECK(kn_prune_opts_check(&o, &err) == KN_ERR_ARG, "negative sparsity");
    o.sparsity = 0.5;
    o.ramp = 1.5;
    CHECK(kn_prune_opts_check(&o, &err) == KN_ERR_ARG && strstr(err.msg, "ramp"), "ramp 1.5: %s", err.msg);
}

/* Logits (as probabilities) of a checkpoint on the first n test examples. */
static bool probs_of(const char *path, const kn_dataset *ds, int64_t n, float *p)
{
    kn_infer *inf = NULL;
    kn_error err = {0};
    kn_status st = kn_infer_load(&inf, path, 16, 2, &err);
    CHECK(st == KN_OK, "loading %s: %s", path, err.msg);
    if (st)
        return false;
    st = kn_infer_probs(inf, ds->x, ds->dtype, n, p, &err);
    CHECK(st == KN_OK, "probs: %s", err.msg);
    kn_infer_free(inf);
    return st == KN_OK;
}

/* Zeroes filters [0, k) of conv/dense layer `layer` (weights and bias) and, when bn is given,
 * that batch norm's gamma and beta for them; saves the result as out (same metadata). */
static void zero_units(const char *in, const char *out, const kn_model *m, const char *const *layers, int nl,
                       const int *k, const char *bn)
{
    kn_graph *g = kn_graph_new();
    int64_t shape[4] = {1};
    int nd = kn_model_input_shape(m, shape + 1);
    kn_node *x = kn_graph_input(g, "x", KN_F32, nd + 1, shape);
    kn_error err = {0};
    kn_meta meta = {0};
    CHECK(kn_model_build(m, g, x, &err) != NULL, "build: %s", err.msg);
    CHECK_OK(kn_checkpoint_load(g, in, true, &meta, &err));
    for (int l = 0; l < nl; l++) {
        char name[64];
        snprintf(name, sizeof name, "%s.weight", layers[l]);
        kn_node *w = kn_graph_find(g, name);
        snprintf(name, sizeof name, "%s.bias", layers[l]);
        kn_node *b = kn_graph_find(g, name);
        int64_t row = kn_node_numel(w) / kn_node_dim(w, 0);
        /* zero the even units among the first 2k: the removed ones are not simply a prefix */
        for (int u = 0; u < k[l]; u++) {
            memset((float *)kn_graph_param_data(g, w) + 2 * u * row, 0, (size_t)row * sizeof(float));
            ((float *)kn_graph_param_data(g, b))[2 * u] = 0;
            if (bn && l == 0) {
                snprintf(name, sizeof name, "%s.gamma", bn);
                ((float *)kn_graph_param_data(g, kn_graph_find(g, name)))[2 * u] = 0;
                snprintf(name, sizeof name, "%s.beta", bn);
                ((float *)kn_graph_param_data(g, kn_graph_find(g, name)))[2 * u] = 0;
            }
        }
    }
    CHECK_OK(kn_checkpoint_save(g, out, &meta, &err));
    kn_meta_clear(&meta);
    kn_graph_free(g);
}

typedef struct oom_arg {
    const char *in, *out;
    const kn_model *m;
    const kn_dataset *tr;
    const kn_prune_opts *po;
} oom_arg;

static kn_status oom_structured(void *p)
{
    oom_arg *a = p;
    kn_struct_prune_opts o;
    kn_struct_prune_opts_defaults(&o);
    o.dense = true;
    kn_model *pm = NULL;
    kn_status st = kn_prune_structured(a->in, a->out, &o, &pm, NULL, NULL);
    kn_model_free(pm);
    return st;
}

static kn_status oom_stats(void *p)
{
    oom_arg *a = p;
    kn_prune_layer_stat *s = NULL;
    int n = 0;
    kn_status st = kn_prune_stats(a->in, &s, &n, NULL, NULL);
    kn_free(s);
    return st;
}

static kn_status oom_prune_train(void *p)
{
    oom_arg *a = p;
    return train(a->m, a->tr, NULL, a->out, 0, a->in, a->po, 0, NULL, NULL);
}

int main(void)
{
    char dir[] = "/tmp/kiln_prune_XXXXXX";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    char p[16][600];
    const char *names[16] = {"base", "layer", "global", "ft", "full", "part", "zeroed", "s.safetensors",
                             "other", "res", "dz", "ds.safetensors", "oom", "oom.safetensors", "cli", "cli_s"};
    for (int i = 0; i < 16; i++)
        snprintf(p[i], sizeof p[i], "%s/%s", dir, names[i]);
    char ck[16][640];
    for (int i = 0; i < 16; i++)
        snprintf(ck[i], sizeof ck[i], "%s/model.safetensors", p[i]);

    test_schedule();
    kn_dataset *tr = kt_lines_dataset(200, 1, 8), *te = kt_lines_dataset(60, 2, 8);
    kn_error err = {0};
    kn_model *m = NULL;
    CHECK_OK(kn_model_parse(&m, MODEL, "test model", &err));
    if (!m)
        return kt_finish("test_prune");

    /* a trained base model */
    CHECK_OK(train(m, tr, te, p[0], 2, NULL, NULL, 0, NULL, &err));
    ckpt base;
    bool have_base = ckpt_load(&base, m, ck[0], false);

    /* init_from with 0 epochs: the weights come back unchanged */
    CHECK_OK(train(m, tr, te, p[3], 0, p[0], NULL, 0, NULL, &err));
    ckpt same;
    if (have_base && ckpt_load(&same, m, ck[3], false)) {
        for (int i = 0; i < NW; i++)
            CHECK(!memcmp(W(&base, i), W(&same, i), (size_t)kn_node_numel(base.w[i]) * sizeof(float)),
                  "init_from copies %s", WEIGHTS[i]);
        kn_graph_free(same.g);
    }

    /* per-layer and global magnitude masks (oneshot, no fine-tuning) */
    kn_prune_opts po;
    kn_prune_opts_defaults(&po);
    po.sparsity = 0.6;
    CHECK_OK(train(m, tr, te, p[1], 0, ck[0], &po, 0, NULL, &err));
    ckpt pl;
    if (have_base && ckpt_load(&pl, m, ck[1], true)) {
        for (int i = 0; i < NW; i++) {
            check_magnitudes(&base, &pl, i, i + 1, 0.6, WEIGHTS[i]);
            const uint8_t *mk = kn_graph_param_data(pl.g, pl.mask[i]);
            int64_t bad = 0;
            for (int64_t k = 0; k < kn_node_numel(pl.w[i]); k++)
                bad += (mk[k] == 0) != (W(&pl, i)[k] == 0.0f);
            CHECK(bad == 0, "%s: the saved mask marks exactly the zeros (%lld differ)", WEIGHTS[i], (long long)bad);
        }
        kn_graph_free(pl.g);
    }
    po.global = true;
    CHECK_OK(train(m, tr, te, p[2], 0, ck[0], &po, 0, NULL, &err));
    ckpt pg;
    if (have_base && ckpt_load(&pg, m, ck[2], true)) {
        check_magnitudes(&base, &pg, 0, NW, 0.6, "global");
        kn_prune_layer_stat *s = NULL;
        int n = 0;
        int64_t params = 0;
        CHECK_OK(kn_prune_stats(p[2], &s, &n, &params, &err));
        bool differ = false;
        for (int i = 0; s && i < n; i++)
            differ = differ || fabs((double)s[i].zeros / (double)s[i].numel - (double)s[0].zeros / (double)s[0].numel) > 0.05;
        CHECK(n == NW && params > 0 && differ, "global: stats for %d weights, layers get different sparsities", n);
        kn_free(s);
        kn_graph_free(pg.g);
    }

    /* masks survive fine-tuning: the same zeros after 2 epochs, their Adam moments zero */
    po.global = false;
    CHECK_OK(train(m, tr, te, p[3], 2, ck[0], &po, 0, NULL, &err));
    ckpt ft, pl2;
    if (ckpt_load(&ft, m, ck[3], true) && ckpt_load(&pl2, m, ck[1], true)) {
        for (int i = 0; i < NW; i++) {
            int64_t moved = 0, zero_pruned = 0, state = 0, pruned = 0;
            for (int64_t k = 0; k < kn_node_numel(ft.w[i]); k++) {
                bool was = W(&pl2, i)[k] == 0.0f;
                pruned += was;
                zero_pruned += was && W(&ft, i)[k] == 0.0f;
                moved += !was && W(&ft, i)[k] != W(&pl2, i)[k];
                state += was && ((const float *)kn_graph_param_data(ft.g, ft.exp_avg[i]))[k] != 0.0f;
            }
            CHECK(zero_pruned == pruned && pruned > 0, "%s: %lld of %lld pruned weights still zero", WEIGHTS[i],
                  (long long)zero_pruned, (long long)pruned);
            CHECK(moved > 0, "%s: the kept weights were fine-tuned", WEIGHTS[i]);
            CHECK(state == 0, "%s: %lld pruned weights have a non-zero Adam moment", WEIGHTS[i], (long long)state);
        }
        kn_graph_free(ft.g);
        kn_graph_free(pl2.g);
    }
    kn_meta meta = {0};
    CHECK_OK(kn_checkpoint_read_meta(ck[3], &meta, &err));
    CHECK(kn_meta_get(&meta, "kiln.pruning") && strstr(kn_meta_get(&meta, "kiln.pruning"), "sparsity=0.6"),
          "kiln.pruning recorded: %s", kn_meta_get(&meta, "kiln.pruning") ? kn_meta_get(&meta, "kiln.pruning") : "-");
    kn_meta_clear(&meta);

    /* gradual schedule: stop inside the ramp, resume: bit-identical weights, masks and state */
    kn_prune_opts pg2 = po;
    pg2.schedule = KN_PRUNE_GRADUAL;
    pg2.sparsity = 0.7;
    pg2.updates = 4;
    CHECK_OK(train(m, tr, te, p[4], 2, ck[0], &pg2, 0, NULL, &err));
    CHECK_OK(train(m, tr, te, p[5], 2, ck[0], &pg2, 5, NULL, &err));
    CHECK_OK(train(m, tr, te, p[5], 2, ck[0], &pg2, 0, p[5], &err));
    ckpt a, b;
    if (ckpt_load(&a, m, ck[4], true) && ckpt_load(&b, m, ck[5], true)) {
        for (int i = 0; i < NW; i++) {
            size_t bytes = (size_t)kn_node_numel(a.w[i]);
            CHECK(!memcmp(W(&a, i), W(&b, i), bytes * sizeof(float)) &&
                      !memcmp(kn_graph_param_data(a.g, a.mask[i]), kn_graph_param_data(b.g, b.mask[i]), bytes) &&
                      !memcmp(kn_graph_param_data(a.g, a.exp_avg[i]), kn_graph_param_data(b.g, b.exp_avg[i]),
                              bytes * sizeof(float)),
                  "%s: resumed gradual run is bit-identical", WEIGHTS[i]);
        }
        kn_graph_free(a.g);
        kn_graph_free(b.g);
    }
    kn_prune_layer_stat *gs = NULL;
    int gn = 0;
    CHECK_OK(kn_prune_stats(ck[4], &gs, &gn, NULL, &err));
    for (int i = 0; gs && i < gn; i++)
        CHECK(gs[i].zeros == (int64_t)llround(0.7 * (double)gs[i].numel), "gradual reaches the target: %s %lld/%lld",
              gs[i].name, (long long)gs[i].zeros, (long long)gs[i].numel);
    kn_free(gs);

    /* init_from another model is refused, naming the tensor */
    kn_model *m2 = NULL;
    CHECK_OK(kn_model_parse(&m2, "input 1 8 8\nconv2d 5 3 pad=1\nrelu\nflatten\ndense 3\n", "other", &err));
    kn_status st = train(m2, tr, te, p[8], 1, ck[0], NULL, 0, NULL, &err);
    CHECK(st == KN_ERR_SHAPE && strstr(err.msg, "conv1.weight"), "other model: %s %s", kn_status_name(st), err.msg);
    kn_model_free(m2);
    CHECK_OK(kn_model_parse(&m2, "input 1 8 8\nconv2d 6 3 pad=1\nbatchnorm\nrelu\nconv2d 8 3 pad=1\nrelu\nmaxpool 2\n"
                                 "flatten\ndense 3 name=dense2\n", "fewer layers", &err));
    st = train(m2, tr, te, p[8], 1, ck[0], NULL, 0, NULL, &err);
    CHECK(st != KN_OK && strstr(err.msg, "dense"), "a file with parameters the model lacks: %s", err.msg);
    kn_model_free(m2);
    st = train(m, tr, te, p[8], 1, "/nonexistent/ckpt.safetensors", NULL, 0, NULL, &err);
    CHECK(st == KN_ERR_IO, "missing init_from file: %s", kn_status_name(st));
    po.sparsity = 1.5;
    st = train(m, tr, te, p[8], 1, ck[0], &po, 0, NULL, &err);
    CHECK(st == KN_ERR_ARG && strstr(err.msg, "sparsity"), "bad sparsity: %s", err.msg);
    po.sparsity = 0.6;
    CHECK_OK(kn_model_parse(&m2, "input 4\nlayernorm\n", "no weights", &err));
    if (m2) {
        kn_dataset feat = {.n = 8, .ndim = 1, .shape = {4}, .dtype = KN_F32, .classes = 2, .name = "feat"};
        float fx[32] = {0};
        int32_t fy[8] = {0, 1, 0, 1, 0, 1, 0, 1};
        feat.x = fx, feat.y = fy;
        st = train(m2, &feat, NULL, NULL, 1, NULL, &po, 0, NULL, &err);
        CHECK(st == KN_ERR_ARG && strstr(err.msg, "no conv2d or dense"), "nothing to prune: %s", err.msg);
        kn_model_free(m2);
    }

    /* structured: zero filters 0,2,4 of conv1 (and their batch-norm gamma/beta), 0,2,4,6 of
     * conv2: removing 50% removes exactly those, and the logits do not change */
    const char *layers[2] = {"conv1", "conv2"};
    int k[2] = {3, 4};
    zero_units(ck[0], p[6], m, layers, 2, k, "bn1");
    kn_struct_prune_opts so;
    kn_struct_prune_opts_defaults(&so);
    kn_struct_prune_report rep;
    kn_model *pm = NULL;
    st = kn_prune_structured(p[6], p[7], &so, &pm, &rep, &err);
    CHECK(st == KN_OK, "structured: %s", err.msg);
    if (st == KN_OK) {
        CHECK(rep.n == 2 && rep.layers[0].after == 3 && rep.layers[1].after == 4 && !rep.layers[0].skipped,
              "report: %d layers, conv1 %lld, conv2 %lld", rep.n, (long long)rep.layers[0].after,
              (long long)rep.layers[1].after);
        CHECK(rep.params_after < rep.params_before && rep.flops_after < rep.flops_before, "smaller model");
        kn_model_layer li;
        CHECK_OK(kn_model_layer_info(pm, 4, &li));
        CHECK(li.shape[0] == 4 && strstr(kn_model_text(pm), "conv2d 4 3 pad=1"), "conv2 has 4 filters: %s",
              kn_model_text(pm));
        float pa[60 * 3], pb[60 * 3];
        if (probs_of(p[6], te, 60, pa) && probs_of(p[7], te, 60, pb)) {
            double worst = 0;
            for (int i = 0; i < 60 * 3; i++)
                worst = fmax(worst, fabs((double)pa[i] - (double)pb[i]));
            CHECK(worst < 1e-5, "identical outputs after removing zero filters: max difference %g", worst);
        }
        /* the pruned checkpoint fine-tunes (init_from) */
        CHECK_OK(train(pm, tr, te, p[9], 1, p[7], NULL, 0, NULL, &err));
        CHECK_OK(kn_checkpoint_read_meta(ck[9], &meta, &err));
        CHECK(kn_meta_get(&meta, "kiln.pruning") && strstr(kn_meta_get(&meta, "kiln.pruning"), "conv2 8->4"),
              "the structured note survives fine-tuning");
        kn_meta_clear(&meta);
    }
    kn_model_free(pm);
    pm = NULL;

    /* dense units too: zero units 0,2,..,10 of dense1 */
    const char *dl[1] = {"dense1"};
    int dk[1] = {6};
    zero_units(ck[0], p[10], m, dl, 1, dk, NULL);
    so.conv = false;
    so.dense = true;
    st = kn_prune_structured(p[10], p[11], &so, &pm, &rep, &err);
    CHECK(st == KN_OK && rep.n == 2 && rep.layers[0].after == 6 && rep.layers[1].skipped,
          "dense units: %s (last layer kept: %s)", err.msg, rep.n > 1 && rep.layers[1].skipped ? rep.layers[1].skipped : "-");
    if (st == KN_OK) {
        float pa[60 * 3], pb[60 * 3];
        if (probs_of(p[10], te, 60, pa) && probs_of(p[11], te, 60, pb)) {
            double worst = 0;
            for (int i = 0; i < 60 * 3; i++)
                worst = fmax(worst, fabs((double)pa[i] - (double)pb[i]));
            CHECK(worst < 1e-5, "dense: identical outputs: max difference %g", worst);
        }
    }
    kn_model_free(pm);
    pm = NULL;

    /* residual add: both sides stay whole, the rest is pruned */
    CHECK_OK(kn_model_parse(&m2, "input 1 8 8\nconv2d 4 3 pad=1 name=a\nrelu name=r\nconv2d 4 3 pad=1\nadd r\n"
                                 "conv2d 6 3 pad=1\nrelu\nglobalavgpool\ndense 3\n"
                                 "train optimizer=adam lr=0.01 batch=16 epochs=1\n", "residual", &err));
    if (m2) {
        CHECK_OK(train(m2, tr, te, p[8], 1, NULL, NULL, 0, NULL, &err));
        kn_struct_prune_opts_defaults(&so);
        char out[700];
        snprintf(out, sizeof out, "%s/r.safetensors", dir);
        st = kn_prune_structured(ck[8], out, &so, &pm, &rep, &err);
        CHECK(st == KN_OK && rep.n == 3 && rep.layers[0].skipped && strstr(rep.layers[0].skipped, "residual") &&
                  rep.layers[1].skipped && !rep.layers[2].skipped && rep.layers[2].after == 3,
              "residual: %s", err.msg);
        kn_model_free(pm);
        pm = NULL;
        kn_model_free(m2);
    }

    /* bad input */
    kn_struct_prune_opts_defaults(&so);
    so.fraction = 1.0;
    CHECK(kn_prune_structured(ck[0], p[11], &so, NULL, NULL, &err) == KN_ERR_ARG && strstr(err.msg, "fraction"),
          "fraction 1: %s", err.msg);
    so.fraction = 0.5;
    CHECK(kn_prune_structured("/nonexistent.safetensors", p[11], &so, NULL, NULL, &err) == KN_ERR_IO, "no file");
    char junk[700];
    snprintf(junk, sizeof junk, "%s/junk.safetensors", dir);
    FILE *f = fopen(junk, "wb");
    fputs("not a checkpoint", f);
    fclose(f);
    st = kn_prune_structured(junk, p[11], &so, NULL, NULL, &err);
    CHECK(st == KN_ERR_FORMAT, "junk file: %s", kn_status_name(st));
    CHECK(kn_prune_stats(junk, &gs, &gn, NULL, &err) == KN_ERR_FORMAT, "stats of a junk file");

    /* out of memory: every failure is clean */
    oom_arg oa = {.in = ck[0], .out = p[13], .m = m, .tr = tr, .po = &po};
    kt_oom_loop("kn_prune_structured", oom_structured, &oa, 5000);
    kt_oom_loop("kn_prune_stats", oom_stats, &oa, 5000);
    oa.out = p[12];
    kt_oom_loop("kn_train with pruning and init_from", oom_prune_train, &oa, 20000);

    /* the CLI */
    int rc = kt_run("%s prune --model %s --sparsity 1.5", KILN_BIN, ck[0]);
    CHECK(rc == 2 && strstr(kt_out, "--sparsity"), "bad sparsity: rc %d: %s", rc, kt_out);
    rc = kt_run("%s prune --sparsity 0.5", KILN_BIN);
    CHECK(rc == 2 && strstr(kt_out, "--model"), "no model: rc %d: %s", rc, kt_out);
    rc = kt_run("%s prune --model %s --sparsity 0.5 --structured --global", KILN_BIN, ck[0]);
    CHECK(rc == 2 && strstr(kt_out, "unstructured"), "--global with --structured: rc %d: %s", rc, kt_out);
    rc = kt_run("%s prune --help", KILN_BIN);
    CHECK(rc == 0 && strstr(kt_out, "--finetune-epochs"), "help: %s", kt_out);
    rc = kt_run("%s info %s", KILN_BIN, ck[3]);
    CHECK(rc == 0 && strstr(kt_out, "pruning") && strstr(kt_out, "sparsity=0.6"), "info shows pruning: %s", kt_out);
    rc = kt_run("%s train --help", KILN_BIN);
    CHECK(rc == 0 && strstr(kt_out, "--init-from"), "train --help lists --init-from");

    if (have_base)
        kn_graph_free(base.g);
    kn_model_free(m);
    kt_free_dataset(tr);
    kt_free_dataset(te);
    kt_run("rm -rf %s", dir);
    return kt_finish("test_prune");
}
