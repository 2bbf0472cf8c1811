/* prune_struct.c — structured pruning (kn_prune_structured): removes whole conv filters (and
 * optionally hidden dense units) with the smallest L1 norms and rewires what consumes them, so
 * the model becomes physically smaller. It follows each candidate layer's output through the
 * parsed model (from=/add links) to the layers that read its channels: batch norms (sliced),
 * element-wise layers and pools (channels pass through), flatten (channels become groups of
 * H·W features), and the next conv/dense (input channels/features sliced). Residual adds,
 * layer norms, grouped convs and the model's output keep a layer whole. The new model text is
 * the old one with new FILTERS/UNITS numbers. It reads the parsed model (src/nn/nn_internal.h):
 * pruning is about the layer structure, which the public API does not expose.
 * Not here: unstructured masks (prune.c), fine-tuning (kn_train with init_from). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/alloc.h"
#include "../nn/nn_internal.h"
#include "kiln/io.h"
#include "kiln/prune.h"

#define MAX_PARAMS 512

void kn_struct_prune_opts_defaults(kn_struct_prune_opts *o)
{
    memset(o, 0, sizeof *o);
    o->fraction = 0.5;
    o->conv = true;
}

/* What reads the channels of a pruned layer. */
typedef struct reader {
    int layer;   /* conv/dense whose input (dim 1) is sliced, or batchnorm whose params are */
    int64_t group; /* features per channel at that point (H·W after a flatten, else 1) */
} reader;

typedef struct plan_ctx {
    const kn_model *m;
    int64_t *keep_n;     /* per layer: units kept (pruned layers), else 0 */
    int64_t **keep;      /* per layer: sorted kept unit indices (pruned layers), else NULL */
    int *in_from;        /* per layer: the pruned layer whose channels it reads (-1: none) */
    int64_t *in_group;   /* per layer: features per channel of that input */
    reader rd[KN_NN_MAX_LAYERS];
    int n_rd;
} plan_ctx;

/* Follows the output of layer s (channels grouped by `group` features) to its readers;
 * returns NULL or why the producing layer must stay whole. */
static const char *walk(plan_ctx *c, int s, int64_t group, int depth)
{
    const kn_model *m = c->m;
    if (s == m->n_layers - 1)
        return "its channels are the model's output";
    if (depth > KN_NN_MAX_LAYERS)
        return "the layer graph is too deep";
    for (int j = s + 1; j < m->n_layers; j++) {
        const kn__layer *L = &m->layers[j];
        if (L->from != s && L->other != s)
            continue;
        if (L->kind == KN_L_ADD)
            return "its output reaches a residual add (both sides must keep equal channels)";
        const char *why = NULL;
        switch (L->kind) {
        case KN_L_CONV2D:
            if (L->groups != 1)
                return "its output feeds a grouped convolution";
            c->rd[c->n_rd++] = (reader){j, group};
            break;
        case KN_L_DENSE:
            c->rd[c->n_rd++] = (reader){j, group};
            break;
        case KN_L_BATCHNORM:
            if (group != 1)
                return "its output feeds a batchnorm over flattened features";
            c->rd[c->n_rd++] = (reader){j, group};
            why = walk(c, j, group, depth + 1);
            break;
        case KN_L_LAYERNORM:
            return "its output feeds a layernorm (normalised over all channels)";
        case KN_L_FLATTEN: {
            const kn__layer *S = &m->layers[s];
            int64_t hw = 1;
            for (int d = 1; d < S->out_ndim; d++)
                hw *= S->out_shape[d];
            why = walk(c, j, group * hw, depth + 1);
            break;
        }
        default: /* element-wise layers, dropout, pools, globalavgpool: channels pass through */
            why = walk(c, j, group, depth + 1);
            break;
        }
        if (why)
            return why;
    }
    return NULL;
}

typedef struct l1_item {
    double l1;
    int64_t unit;
} l1_item;

static int cmp_l1_desc(const void *a, const void *b)
{
    const l1_item *x = a, *y = b;
    if (x->l1 != y->l1)
        return x->l1 > y->l1 ? -1 : 1;
    return (x->unit > y->unit) - (x->unit < y->unit);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The units of weight w [U, ...] with the largest L1 norms, `keep` of them, in index order. */
static kn_status choose(kn_graph *g, kn_node *w, int64_t keep, int64_t **out, kn_error *err)
{
    int64_t units = kn_node_dim(w, 0), row = kn_node_numel(w) / units;
    l1_item *it = kn__alloc(kn__mul_size((size_t)units, sizeof *it));
    int64_t *k = kn__alloc(kn__mul_size((size_t)keep, sizeof *k));
    if (!it || !k) {
        kn__free(it);
        kn__free(k);
        return kn_error_set(err, KN_ERR_OOM, "structured pruning: out of memory");
    }
    const float *d = kn_graph_param_data(g, w);
    for (int64_t u = 0; u < units; u++) {
        double s = 0;
        for (int64_t i = 0; i < row; i++)
            s += fabs((double)d[u * row + i]);
        it[u] = (l1_item){s, u};
    }
    qsort(it, (size_t)units, sizeof *it, cmp_l1_desc);
    for (int64_t i = 0; i < keep; i++)
        k[i] = it[i].unit;
    qsort(k, (size_t)keep, sizeof *k, cmp_i64);
    kn__free(it);
    *out = k;
    return KN_OK;
}

/* Copies src into dst keeping rows k0[0..n0) of dim 0 (k0 NULL: all) and, of dim 1, the
 * features of channels k1[0..n1) in groups of g1 (k1 NULL: all). */
static void slice_copy(const float *src, const kn_node *sn, float *dst, const int64_t *k0, int64_t n0,
                       const int64_t *k1, int64_t n1, int64_t g1)
{
    int64_t d0 = kn_node_dim(sn, 0), row = kn_node_numel(sn) / d0;
    int64_t d1 = kn_node_ndim(sn) > 1 ? kn_node_dim(sn, 1) : 1, inner = kn_node_ndim(sn) > 1 ? row / d1 : 1;
    int64_t rows = k0 ? n0 : d0;
    for (int64_t r = 0; r < rows; r++) {
        const float *s = src + (k0 ? k0[r] : r) * row;
        if (!k1) {
            memcpy(dst, s, (size_t)row * sizeof *dst);
            dst += row;
            continue;
        }
        for (int64_t c = 0; c < n1; c++) { /* channel k1[c] = features [k1[c]·g1, (k1[c]+1)·g1) of dim 1 */
            memcpy(dst, s + k1[c] * g1 * inner, (size_t)(g1 * inner) * sizeof *dst);
            dst += g1 * inner;
        }
    }
}

/* Rewrites the FILTERS/UNITS argument (the word after the keyword) of the pruned lines. */
static kn_status rewrite_text(const kn_model *m, const int64_t *keep_n, char **out, kn_error *err)
{
    size_t len = strlen(m->text), cap = len + 64 * (size_t)m->n_layers + 256;
    char *t = kn__alloc(cap);
    if (!t)
        return kn_error_set(err, KN_ERR_OOM, "structured pruning: out of memory");
    size_t o = 0;
    int line = 1;
    const char *p = m->text;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int li = -1;
        for (int i = 1; i < m->n_layers; i++)
            if (m->layers[i].line == line && keep_n[i])
                li = i;
        if (li < 0) {
            memcpy(t + o, p, n);
            o += n;
        } else {
            size_t a = 0;
            while (a < n && (p[a] == ' ' || p[a] == '\t'))
                a++;
            while (a < n && p[a] != ' ' && p[a] != '\t')
                a++; /* keyword */
            while (a < n && (p[a] == ' ' || p[a] == '\t'))
                a++;
            size_t b = a;
            while (b < n && p[b] != ' ' && p[b] != '\t' && p[b] != '#' && p[b] != '\r')
                b++; /* the number */
            size_t cr = n && p[n - 1] == '\r' ? 1 : 0;
            memcpy(t + o, p, a);
            o += a;
            o += (size_t)snprintf(t + o, cap - o, "%lld", (long long)keep_n[li]);
            memcpy(t + o, p + b, n - cr - b);
            o += n - cr - b;
            bool comment = memchr(p, '#', n) != NULL;
            if (n + 48 < KN_NN_MAX_LINE) /* a note, unless the line would get too long */
                o += (size_t)snprintf(t + o, cap - o, "%s(pruned from %lld)", comment ? " " : "  # ",
                                  (long long)m->layers[li].units);
            if (cr)
                t[o++] = '\r';
        }
        if (e)
            t[o++] = '\n';
        p = e ? e + 1 : p + n;
        line++;
    }
    t[o] = 0;
    *out = t;
    return KN_OK;
}

static int layer_of(const kn_model *m, const char *param)
{
    const char *dot = strrchr(param, '.');
    size_t n = dot ? (size_t)(dot - param) : strlen(param);
    for (int i = 0; i < m->n_layers; i++)
        if (strlen(m->layers[i].name) == n && !strncmp(m->layers[i].name, param, n))
            return i;
    return -1;
}

/* Copies every parameter of g2 (the pruned model) from g (the original), sliced. */
static kn_status transfer(const plan_ctx *c, kn_graph *g, kn_graph *g2, const char *path, kn_error *err)
{
    kn_node *ps[MAX_PARAMS];
    int n = kn_graph_params(g2, false, ps, MAX_PARAMS);
    if (n > MAX_PARAMS)
        return kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: more than %d parameter tensors", path, MAX_PARAMS);
    for (int i = 0; i < n; i++) {
        kn_node *q = ps[i], *s = kn_graph_find(g, kn_node_name(q));
        int li = layer_of(c->m, kn_node_name(q));
        if (!s || li < 0 || kn_node_dtype(s) != KN_F32 || kn_node_dtype(q) != KN_F32)
            return kn_error_set(err, KN_ERR_ARG, "structured pruning: no f32 parameter %s in the original model",
                                kn_node_name(q));
        const kn__layer *L = &c->m->layers[li];
        bool unit_param = L->kind == KN_L_CONV2D || L->kind == KN_L_DENSE;
        const int64_t *k0 = NULL, *k1 = NULL;
        int64_t n0 = 0, n1 = 0, g1 = 1;
        int src = c->in_from[li];
        if (unit_param && c->keep[li]) {
            k0 = c->keep[li];
            n0 = c->keep_n[li];
        }
        if (src >= 0 && L->kind == KN_L_BATCHNORM) { /* its per-channel params follow the producer */
            k0 = c->keep[src];
            n0 = c->keep_n[src];
        } else if (src >= 0 && unit_param && kn_node_ndim(q) >= 2) {
            k1 = c->keep[src];
            n1 = c->keep_n[src];
            g1 = c->in_group[li];
        }
        int64_t want = (k0 ? n0 : kn_node_dim(s, 0)) * (kn_node_numel(s) / kn_node_dim(s, 0));
        if (k1)
            want = want / kn_node_dim(s, 1) * n1 * g1;
        if (want != kn_node_numel(q))
            return kn_error_set(err, KN_ERR_SHAPE, "structured pruning: %s has %lld elements after slicing, the "
                                "pruned model expects %lld", kn_node_name(q), (long long)want,
                                (long long)kn_node_numel(q));
        slice_copy(kn_graph_param_data(g, s), s, kn_graph_param_data(g2, q), k0, n0, k1, n1, g1);
    }
    return KN_OK;
}

static kn_status save(kn_graph *g2, const char *out, const char *text, const kn_meta *src, const char *desc,
                      kn_error *err)
{
    kn_meta meta = {0};
    kn_status st = kn_meta_set(&meta, "kiln.format", "kiln-checkpoint-1");
    if (!st)
        st = kn_meta_set(&meta, "kiln.model", text);
    static const char *const copied[] = {"kiln.seed", "kiln.norm_scale", "kiln.norm_mean", "kiln.norm_std",
                                         "kiln.recipe"};
    for (size_t i = 0; !st && i < sizeof copied / sizeof copied[0]; i++)
        if (kn_meta_get(src, copied[i]))
            st = kn_meta_set(&meta, copied[i], kn_meta_get(src, copied[i]));
    if (!st)
        st = kn_meta_set(&meta, "kiln.epoch", "0");
    if (!st)
        st = kn_meta_set(&meta, "kiln.step", "0");
    if (!st)
        st = kn_meta_set(&meta, "kiln.pruning", desc);
    if (st)
        kn_error_set(err, st, "preparing checkpoint metadata");
    else
        st = kn_checkpoint_save(g2, out, &meta, err);
    kn_meta_clear(&meta);
    return st;
}

kn_status kn_prune_structured(const char *in, const char *out, const kn_struct_prune_opts *o, kn_model **pruned,
                              kn_struct_prune_report *rep, kn_error *err)
{
    if (pruned)
        *pruned = NULL;
    if (rep)
        memset(rep, 0, sizeof *rep);
    if (!in || !out || !o)
        return kn_error_set(err, KN_ERR_ARG, "kn_prune_structured: NULL argument");
    if (!(o->fraction >= 0 && o->fraction < 1))
        return kn_error_set(err, KN_ERR_ARG, "structured pruning: fraction %g must be in [0, 1)", o->fraction);
    if (!o->conv && !o->dense)
        return kn_error_set(err, KN_ERR_ARG, "structured pruning: neither conv filters nor dense units selected");
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, stat(in, &sb) == 0 && S_ISDIR(sb.st_mode) ? "%s/model.safetensors" : "%s", in);
    kn_meta meta = {0};
    kn_model *m = NULL, *m2 = NULL;
    kn_graph *g = NULL, *g2 = NULL;
    char *text = NULL, desc[1024] = "structured";
    plan_ctx c = {0};
    kn_status st = kn_checkpoint_read_meta(path, &meta, err);
    if (!st && !kn_meta_get(&meta, "kiln.model"))
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: no kiln.model in the metadata: not a kiln checkpoint", path);
    if (!st)
        st = kn_model_parse(&m, kn_meta_get(&meta, "kiln.model"), path, err);
    if (!st && !(g = kn_model_new_graph(m, path, err)))
        st = err && err->status ? err->status : KN_ERR_OOM;
    if (!st)
        st = kn_checkpoint_load(g, path, true, NULL, err);
    if (!st) {
        c.m = m;
        c.keep_n = kn__calloc((size_t)m->n_layers, sizeof *c.keep_n);
        c.keep = kn__calloc((size_t)m->n_layers, sizeof *c.keep);
        c.in_from = kn__alloc((size_t)m->n_layers * sizeof *c.in_from);
        c.in_group = kn__calloc((size_t)m->n_layers, sizeof *c.in_group);
        if (!c.keep_n || !c.keep || !c.in_from || !c.in_group)
            st = kn_error_set(err, KN_ERR_OOM, "structured pruning: out of memory");
        for (int i = 0; !st && i < m->n_layers; i++)
            c.in_from[i] = -1;
    }
    int pruned_layers = 0;
    char skipped[600] = "";
    for (int i = 1; !st && i < m->n_layers; i++) {
        const kn__layer *L = &m->layers[i];
        if (!((L->kind == KN_L_CONV2D && o->conv) || (L->kind == KN_L_DENSE && o->dense)))
            continue;
        c.n_rd = 0;
        const char *why = i == m->n_layers - 1 ? "it is the last layer (its units are the classes)"
                          : L->kind == KN_L_CONV2D && L->groups != 1 ? "it is a grouped convolution"
                                                                     : walk(&c, i, 1, 0);
        int64_t keep = L->units - (int64_t)llround(o->fraction * (double)L->units);
        keep = keep < 1 ? 1 : keep;
        if (!why && keep == L->units)
            why = "the fraction removes no unit of it";
        if (rep && rep->n < KN_PRUNE_MAX_REPORT) {
            kn_struct_prune_layer *r = &rep->layers[rep->n++];
            snprintf(r->name, sizeof r->name, "%s", L->name);
            r->before = L->units;
            r->after = why ? L->units : keep;
            r->skipped = why;
        }
        if (why) {
            if (strlen(skipped) < 400)
                snprintf(skipped + strlen(skipped), sizeof skipped - strlen(skipped), "%s%s: %s",
                         skipped[0] ? "; " : "", L->name, why);
            continue;
        }
        char name[KN_NN_MAX_NAME + 16];
        snprintf(name, sizeof name, "%s.weight", L->name);
        st = choose(g, kn_graph_find(g, name), keep, &c.keep[i], err);
        c.keep_n[i] = keep;
        for (int r = 0; !st && r < c.n_rd; r++) {
            c.in_from[c.rd[r].layer] = i;
            c.in_group[c.rd[r].layer] = c.rd[r].group;
        }
        pruned_layers++;
        if (!st && strlen(desc) < sizeof desc - 100)
            snprintf(desc + strlen(desc), sizeof desc - strlen(desc), "%s %s %lld->%lld", pruned_layers == 1 ? "" : ",",
                     L->name, (long long)L->units, (long long)keep);
    }
    if (!st && !pruned_layers)
        st = kn_error_set(err, KN_ERR_ARG, "structured pruning: no layer of %s can be pruned (%s)", path,
                          skipped[0] ? skipped : "it has no conv2d layers; add dense units with the dense option");
    if (!st)
        st = rewrite_text(m, c.keep_n, &text, err);
    if (!st)
        st = kn_model_parse(&m2, text, out, err);
    if (!st && !(g2 = kn_model_new_graph(m2, out, err)))
        st = err && err->status ? err->status : KN_ERR_OOM;
    if (!st)
        st = transfer(&c, g, g2, path, err);
    if (!st)
        st = save(g2, out, text, &meta, desc, err);
    if (!st && rep) {
        kn_model_stats(m, &rep->params_before, &rep->flops_before, NULL);
        kn_model_stats(m2, &rep->params_after, &rep->flops_after, NULL);
    }
    if (!st && pruned) {
        *pruned = m2;
        m2 = NULL;
    }
    for (int i = 0; c.keep && i < m->n_layers; i++)
        kn__free(c.keep[i]);
    kn__free(c.keep);
    kn__free(c.keep_n);
    kn__free(c.in_from);
    kn__free(c.in_group);
    kn__free(text);
    kn_graph_free(g);
    kn_graph_free(g2);
    kn_model_free(m);
    kn_model_free(m2);
    kn_meta_clear(&meta);
    if (st && rep)
        memset(rep, 0, sizeof *rep);
    return st;
}
