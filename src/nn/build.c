/* build.c — turns a parsed model (nn_internal.h) into graph nodes, and reports on it:
 * kn_model_build (parameters created once per graph, found by name by later builds),
 * the parse-time probe build on a batch of 1 that records per-layer shapes, parameter counts
 * and FLOPs (counted from the op table over the nodes each layer created), and the
 * `kiln info` summary. Deliberately not here: parsing (model.c), losses, optimizers and
 * anything about running the graph (plans, training). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "nn_internal.h"
#include "kiln/quant.h"
#include "ops/op_table.h"
#include "ops/quant_internal.h"

/* Largest parameter tensor accepted (elements): a typo such as `dense 1000000` after a big
 * flatten is reported at parse time instead of failing to allocate gigabytes later. */
#define MAX_PARAM_NUMEL ((int64_t)1 << 31)

typedef struct bctx {
    const kn_model *m;
    kn_graph *g;
    kn_error *err;
    bool probe;      /* weights as graph inputs; record stats */
    kn_model *stats; /* where the probe records per-layer numbers (NULL = nowhere) */
    kn_build_opts o; /* prefix, frozen, precision, fake quantisation */
    kn_dtype dt;
    int li;          /* index of the layer being built */
    kn_status st;
} bctx;

static const kn__layer *cur(const bctx *b) { return &b->m->layers[b->li]; }

/* A failure found here (not by a graph builder): "src:line: kw: message" into err, and the
 * same message as the graph's error. Returns NULL. */
__attribute__((format(printf, 3, 4))) static kn_node *bfail(bctx *b, kn_status st, const char *fmt, ...)
{
    char msg[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const kn__layer *L = cur(b);
    kn_error_set(b->err, st, "%s:%d: %s: %s", b->m->source, L->line, kn__layer_keyword(L->kind), msg);
    kn__fail(b->g, st, "%s:%d: %s: %s", b->m->source, L->line, kn__layer_keyword(L->kind), msg);
    b->st = st;
    return NULL;
}

/* A graph builder returned NULL: its message, prefixed with the layer's line. */
static kn_node *gfail(bctx *b)
{
    kn_status st = kn_graph_status(b->g);
    if (st == KN_OK)
        st = KN_ERR_SHAPE; /* cannot happen: a builder that fails records why */
    const kn__layer *L = cur(b);
    kn_error_set(b->err, st, "%s:%d: %s", b->m->source, L->line, kn_graph_error(b->g));
    b->st = st;
    return NULL;
}

static const char *shp(int ndim, const int64_t *shape, char *buf, size_t size)
{
    return kn__shape_str(ndim, shape, buf, size);
}

/* The parameter "<layer>.<suffix>": created and initialised on the first build in g, found
 * (and checked) on later ones; a graph input standing in for it in the probe. */
static kn_node *param_dt(bctx *b, kn_dtype dt, const char *suffix, int ndim, const int64_t *shape, bool trainable,
                         kn_init how, double lo, double hi)
{
    if (b->st)
        return NULL;
    const kn__layer *L = cur(b);
    char name[KN_NN_MAX_NAME + 96], want[160], have[160];
    snprintf(name, sizeof name, "%s%s.%s", b->o.prefix ? b->o.prefix : "", L->name, suffix);
    trainable = trainable && !b->o.frozen;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel = numel > MAX_PARAM_NUMEL ? numel : numel * shape[i];
    shp(ndim, shape, want, sizeof want);
    if (numel > MAX_PARAM_NUMEL)
        return bfail(b, KN_ERR_SHAPE, "parameter %s %s has more than 2^31 elements", name, want);
    if (b->stats) {
        kn__layer *S = &b->stats->layers[b->li];
        if (trainable)
            S->params += numel;
        else
            S->frozen += numel;
    }
    kn_node *p;
    /* the probe allocates no parameter storage: every parameter is a graph input there */
    if (b->probe) {
        p = kn_graph_input(b->g, name, dt, ndim, shape);
        return p ? p : gfail(b);
    }
    p = kn_graph_find(b->g, name);
    if (p) {
        bool same = p->op == KN_OP_PARAM && p->dtype == dt && p->ndim == ndim &&
                    ((p->flags & KN_NODE_TRAINABLE) != 0) == trainable;
        for (int i = 0; same && i < ndim; i++)
            same = p->shape[i] == shape[i];
        if (!same)
            return bfail(b, KN_ERR_SHAPE,
                         "the graph already holds a %s '%s' (%s %s), this build needs a %s parameter %s %s: is another "
                         "model in this graph?",
                         kn_node_op_name(p), name, kn_dtype_name(p->dtype), shp(p->ndim, p->shape, have, sizeof have),
                         trainable ? "trainable" : "frozen", kn_dtype_name(dt), want);
        return p;
    }
    p = kn_graph_param(b->g, name, dt, ndim, shape, trainable);
    if (!p)
        return gfail(b);
    if (!b->probe && kn_dtype_is_float(dt)) { /* integer parameters start zeroed (a checkpoint fills them) */
        kn_status st = kn_graph_param_init(b->g, p, how, lo, hi);
        if (st)
            return bfail(b, st, "initialising %s failed (%s)", name, kn_status_name(st));
    }
    return p;
}

static kn_node *param(bctx *b, const char *suffix, int ndim, const int64_t *shape, bool trainable, kn_init how,
                      double lo, double hi)
{
    return param_dt(b, b->dt, suffix, ndim, shape, trainable, how, lo, hi);
}
static kn_dtype low_dtype(const bctx *b);

/* An operand (input or weight) of a conv or dense layer as the layer computes with it: the
 * hook where mixed precision casts and quantisation-aware training fake-quantises. */
static kn_node *operand(bctx *b, kn_node *v, bool is_weight)
{
    if (b->st || !v)
        return v;
    if (b->o.fake_quant) /* as int8 inference will see them (kiln/quant.h): weights per channel */
        v = is_weight ? kn_graph_fake_quant(b->g, v, 0, false) : kn_graph_fake_quant(b->g, v, -1, true);
    kn_dtype low = low_dtype(b);
    return low != b->dt ? kn_graph_cast(b->g, v, low) : v;
}

/* The dtype conv/dense products compute in: bf16/f16 under mixed precision (on an f32 model),
 * else the model's dtype. */
static kn_dtype low_dtype(const bctx *b)
{
    if (b->dt != KN_F32)
        return b->dt;
    return b->o.precision == KN_PRECISION_BF16 ? KN_BF16 : b->o.precision == KN_PRECISION_FP16 ? KN_F16 : KN_F32;
}

/* The layer's result y back in the model's dtype (mixed precision: cast to f32), with the bias
 * added there in full precision; bias_shape broadcasts it over y ([C,1,1] for images). */
static kn_node *finish(bctx *b, kn_node *y, kn_node *bias, int ndim, const int64_t *bias_shape)
{
    if (!y || y->dtype == b->dt)
        return y;
    y = kn_graph_cast(b->g, y, b->dt);
    if (bias)
        y = kn_graph_add(b->g, y, ndim == 1 ? bias : kn_graph_reshape(b->g, bias, ndim, bias_shape));
    return y;
}

/* The int8 inference form of a conv (o non-NULL) or dense layer (kn_build_opts.int8): weight
 * i8, its per-channel scales and the input's quantisation parameters as frozen parameters
 * that a quantised checkpoint fills (kiln/quant.h). */
static kn_node *build_quantized(bctx *b, const kn__layer *L, kn_node *in, const int64_t *wshape,
                                const kn_conv2d_opts *o)
{
    kn_node *w = param_dt(b, KN_I8, "weight", o ? 4 : 2, wshape, false, KN_INIT_ZEROS, 0, 0);
    kn_node *ws = param(b, "weight_scale", 1, wshape, false, KN_INIT_ONES, 0, 0);
    kn_node *xq = param(b, "input_qparams", 1, (const int64_t[]){2}, false, KN_INIT_ONES, 0, 0);
    kn_node *bias = L->bias ? param(b, "bias", 1, wshape, false, KN_INIT_ZEROS, 0, 0) : NULL;
    if (b->st)
        return NULL;
    return o ? kn_graph_qconv2d(b->g, in, w, ws, xq, bias, o, false) : kn_graph_qlinear(b->g, in, w, ws, xq, bias, false);
}

/* The input of an image layer must be [N, C, H, W]. */
static bool need_image(bctx *b, const kn_node *in)
{
    if (in->ndim == 4)
        return true;
    char s[160];
    bfail(b, KN_ERR_SHAPE, "input %s has %d dims, expected 4 [N,C,H,W]%s", shp(in->ndim, in->shape, s, sizeof s),
          in->ndim,
          in->ndim == 2 ? "; this layer works on images ('input C H W' without a flatten before it)" : "");
    return false;
}

static kn_node *build_conv2d(bctx *b, const kn__layer *L, kn_node *in)
{
    if (!need_image(b, in))
        return NULL;
    int64_t C = in->shape[1];
    if (C % L->groups) {
        char s[160];
        return bfail(b, KN_ERR_SHAPE, "input %s has %lld channels, not divisible by groups %d",
                     shp(in->ndim, in->shape, s, sizeof s), (long long)C, L->groups);
    }
    int64_t cg = C / L->groups, fan_in = cg * L->kh * L->kw;
    double bound = 1.0 / sqrt((double)fan_in);
    kn_conv2d_opts o = {.stride_h = L->stride, .stride_w = L->stride, .dilation_h = L->dilation,
                        .dilation_w = L->dilation, .groups = L->groups};
    o.pad_h = L->pad_same ? L->dilation * (L->kh - 1) / 2 : L->pad;
    o.pad_w = L->pad_same ? L->dilation * (L->kw - 1) / 2 : L->pad;
    if (b->o.int8 && !b->probe)
        return build_quantized(b, L, in, (int64_t[]){L->units, cg, L->kh, L->kw}, &o);
    kn_node *w = param(b, "weight", 4, (int64_t[]){L->units, cg, L->kh, L->kw}, true, KN_INIT_KAIMING_UNIFORM, 0, 0);
    kn_node *bias = L->bias ? param(b, "bias", 1, &L->units, true, KN_INIT_UNIFORM, -bound, bound) : NULL;
    if (b->st)
        return NULL;
    bool mixed = low_dtype(b) != b->dt; /* mixed precision: the bias is added after the cast back */
    kn_node *y = kn_graph_conv2d(b->g, operand(b, in, false), operand(b, w, true), mixed ? NULL : bias, &o);
    return mixed ? finish(b, y, bias, 3, (int64_t[]){L->units, 1, 1}) : y;
}

static kn_node *build_dense(bctx *b, const kn__layer *L, kn_node *in)
{
    char s[160];
    if (in->ndim != 2)
        return bfail(b, KN_ERR_SHAPE, "input %s has %d dims; add 'flatten' before it",
                     shp(in->ndim, in->shape, s, sizeof s), in->ndim);
    int64_t F = in->shape[1];
    double bound = 1.0 / sqrt((double)F);
    if (b->o.int8 && !b->probe)
        return build_quantized(b, L, in, (int64_t[]){L->units, F}, NULL);
    kn_node *w = param(b, "weight", 2, (int64_t[]){L->units, F}, true, KN_INIT_KAIMING_UNIFORM, 0, 0);
    kn_node *bias = L->bias ? param(b, "bias", 1, &L->units, true, KN_INIT_UNIFORM, -bound, bound) : NULL;
    if (b->st)
        return NULL;
    bool mixed = low_dtype(b) != b->dt; /* mixed precision: the bias is added after the cast back */
    kn_node *y = kn_graph_linear(b->g, operand(b, in, false), operand(b, w, true), mixed ? NULL : bias);
    return mixed ? finish(b, y, bias, 1, &L->units) : y;
}

/* Batch norm of a frozen model, in inference form whatever the plan's mode (a distillation
 * teacher inside a training plan): (x − running_mean)·gamma/sqrt(running_var + eps) + beta
 * from elementwise ops, so the running statistics are neither used as batch statistics nor
 * updated. The [C] vectors are reshaped to [C, 1, ...] to broadcast over x [N, C, ...]. */
static kn_node *frozen_batch_norm(bctx *b, const kn__layer *L, kn_node *in, kn_node *gamma, kn_node *beta,
                                  kn_node *rm, kn_node *rv)
{
    kn_graph *g = b->g;
    int64_t shape[KN_MAX_DIMS] = {in->shape[1]};
    for (int i = 1; i < in->ndim - 1; i++)
        shape[i] = 1;
    int nd = in->ndim - 1 > 0 ? in->ndim - 1 : 1;
    kn_node *scale = kn_graph_div(g, gamma, kn_graph_sqrt(g, kn_graph_scale(g, rv, 1.0, L->eps)));
    kn_node *shift = kn_graph_sub(g, beta, kn_graph_mul(g, rm, scale));
    kn_node *y = kn_graph_add(g, kn_graph_mul(g, in, kn_graph_reshape(g, scale, nd, shape)),
                              kn_graph_reshape(g, shift, nd, shape));
    return y ? y : gfail(b);
}

static kn_node *build_norm(bctx *b, const kn__layer *L, kn_node *in)
{
    if (L->kind == KN_L_BATCHNORM) {
        int64_t C = in->shape[1];
        kn_node *gamma = param(b, "gamma", 1, &C, true, KN_INIT_ONES, 0, 0);
        kn_node *beta = param(b, "beta", 1, &C, true, KN_INIT_ZEROS, 0, 0);
        kn_node *rm = param(b, "running_mean", 1, &C, false, KN_INIT_ZEROS, 0, 0);
        kn_node *rv = param(b, "running_var", 1, &C, false, KN_INIT_ONES, 0, 0);
        if (b->st)
            return NULL;
        if (b->o.frozen && !b->probe && in->ndim >= 2)
            return frozen_batch_norm(b, L, in, gamma, beta, rm, rv);
        return kn_graph_batch_norm(b->g, in, gamma, beta, rm, rv, L->f, L->eps);
    }
    int nd = in->ndim - 1;
    kn_node *gamma = param(b, "gamma", nd, in->shape + 1, true, KN_INIT_ONES, 0, 0);
    kn_node *beta = param(b, "beta", nd, in->shape + 1, true, KN_INIT_ZEROS, 0, 0);
    return b->st ? NULL : kn_graph_layer_norm(b->g, in, nd, gamma, beta, L->eps);
}

/* int8 graphs: a ReLU right after a quantised layer whose output nothing else reads is done
 * in that layer's store (the node gets the relu attribute; the ReLU layer returns it). */
/* True when layer L is the only reader of the output it reads. */
static bool sole_reader(const bctx *b, const kn__layer *L)
{
    for (int j = 0; j < b->m->n_layers; j++) {
        const kn__layer *o = &b->m->layers[j];
        if (o != L && j > L->from && (o->from == L->from || (o->kind == KN_L_ADD && o->other == L->from)))
            return false;
    }
    return true;
}

static bool fuse_relu(bctx *b, const kn__layer *L, kn_node *in)
{
    if (!b->o.int8 || !in || (in->op != KN_OP_QCONV2D && in->op != KN_OP_QLINEAR) || in->ai[KN_Q_RELU] ||
        (in->op == KN_OP_QCONV2D && in->ai[KN_Q_POOL]) || !sole_reader(b, L))
        return false;
    in->ai[KN_Q_RELU] = 1;
    return true;
}

/* int8 graphs: a 2×2 stride-2 max pool right after a quantised conv (and its fused ReLU)
 * whose output nothing else reads is done in the conv's store as well. */
static bool fuse_pool(bctx *b, const kn__layer *L, kn_node *in)
{
    if (!b->o.int8 || !in || in->op != KN_OP_QCONV2D || in->ai[KN_Q_POOL] || L->kh != 2 || L->pad != 0 ||
        (L->stride != 0 && L->stride != 2) || in->shape[2] < 2 || in->shape[3] < 2 || !sole_reader(b, L))
        return false;
    return kn__qconv2d_fuse_pool(b->g, in) == KN_OK;
}

static kn_node *build_layer(bctx *b, const kn__layer *L, kn_node *in, kn_node *const *outs)
{
    kn_graph *g = b->g;
    switch (L->kind) {
    case KN_L_INPUT: return in;
    case KN_L_CONV2D: return build_conv2d(b, L, in);
    case KN_L_DENSE: return build_dense(b, L, in);
    case KN_L_RELU: return fuse_relu(b, L, in) ? in : kn_graph_relu(g, in);
    case KN_L_LEAKY_RELU: return kn_graph_leaky_relu(g, in, L->f);
    case KN_L_SIGMOID: return kn_graph_sigmoid(g, in);
    case KN_L_TANH: return kn_graph_tanh(g, in);
    case KN_L_GELU: return kn_graph_gelu(g, in);
    case KN_L_SILU: return kn_graph_silu(g, in);
    case KN_L_MAXPOOL:
        if (fuse_pool(b, L, in))
            return in;
        return need_image(b, in) ? kn_graph_max_pool2d(g, in, L->kh, L->stride, L->pad) : NULL;
    case KN_L_AVGPOOL: return need_image(b, in) ? kn_graph_avg_pool2d(g, in, L->kh, L->stride, L->pad) : NULL;
    case KN_L_GLOBALAVGPOOL:
        return need_image(b, in) ? kn_graph_flatten(g, kn_graph_global_avg_pool(g, in)) : NULL;
    case KN_L_BATCHNORM:
    case KN_L_LAYERNORM: return build_norm(b, L, in);
    case KN_L_DROPOUT: return b->o.frozen && !b->probe ? in : kn_graph_dropout(g, in, L->f); /* frozen: inference form */
    case KN_L_FLATTEN: return kn_graph_flatten(g, in);
    case KN_L_ADD: {
        kn_node *o = outs[L->other];
        if (!kn__same_shape(in, o)) {
            char s1[160], s2[160];
            return bfail(b, KN_ERR_SHAPE, "shapes differ: %s (from '%s') and %s ('%s'); add needs equal shapes",
                         shp(in->ndim, in->shape, s1, sizeof s1), b->m->layers[L->from].name,
                         shp(o->ndim, o->shape, s2, sizeof s2), b->m->layers[L->other].name);
        }
        return kn_graph_add(g, in, o);
    }
    case KN_L_COUNT: break;
    }
    return bfail(b, KN_ERR_ARG, "unknown layer kind %d", (int)L->kind);
}

kn_node *kn__model_build(const kn_model *m, kn_graph *g, kn_node *x, bool probe, kn_model *stats,
                         const kn_build_opts *o, kn_error *err)
{
    if (!m || !g || !x) {
        kn_error_set(err, KN_ERR_ARG, "kn_model_build: NULL %s", !m ? "model" : !g ? "graph" : "x");
        return NULL;
    }
    if (kn_graph_status(g) != KN_OK) {
        kn_error_set(err, kn_graph_status(g), "%s: the graph already has an error: %s", m->source, kn_graph_error(g));
        return NULL;
    }
    if (x->graph != g) {
        kn__fail(g, KN_ERR_ARG, "%s: input x belongs to another graph", m->source);
        kn_error_set(err, KN_ERR_ARG, "%s: input x belongs to another graph", m->source);
        return NULL;
    }
    bool fits = x->ndim == 1 + m->in_ndim && kn_dtype_is_float(x->dtype);
    for (int i = 0; fits && i < m->in_ndim; i++)
        fits = x->shape[1 + i] == m->in_shape[i];
    if (!fits) {
        char s1[160], s2[160];
        int64_t want[4] = {-1, m->in_shape[0], m->in_shape[1], m->in_shape[2]};
        shp(m->in_ndim, want + 1, s2, sizeof s2);
        kn__fail(g, KN_ERR_SHAPE, "%s: input x is %s %s, the model needs a float tensor [N,%s", m->source,
                 kn_dtype_name(x->dtype), shp(x->ndim, x->shape, s1, sizeof s1), s2 + 1);
        kn_error_set(err, KN_ERR_SHAPE, "%s", kn_graph_error(g));
        return NULL;
    }
    kn_node **outs = kn__calloc((size_t)m->n_layers, sizeof *outs);
    if (!outs) {
        kn__fail(g, KN_ERR_OOM, "%s: out of memory building the model", m->source);
        kn_error_set(err, KN_ERR_OOM, "%s: out of memory building the model", m->source);
        return NULL;
    }
    bctx b = {.m = m, .g = g, .err = err, .probe = probe, .stats = stats, .dt = x->dtype};
    if (o)
        b.o = *o;
    kn_node *y = x;
    for (int i = 0; i < m->n_layers && y; i++) {
        const kn__layer *L = &m->layers[i];
        b.li = i;
        int first = g->n_nodes;
        y = build_layer(&b, L, L->kind == KN_L_INPUT ? x : outs[L->from], outs);
        if (!y && !b.st)
            gfail(&b);
        outs[i] = y;
        if (y && stats) {
            kn__layer *S = &stats->layers[i];
            S->out_ndim = y->ndim - 1;
            for (int d = 1; d < y->ndim; d++)
                S->out_shape[d - 1] = y->shape[d];
            S->flops = 0;
            for (int k = first; k < g->n_nodes; k++) {
                const kn_node *n = g->nodes[k];
                const kn__op_info *info = kn__op_table[n->op];
                if (info && info->flops && !(kn__op_flags[n->op] & KN_OPF_LEAF))
                    S->flops += info->flops(n);
            }
        }
    }
    kn__free(outs);
    if (y && y->ndim != 2) {
        b.li = m->n_layers - 1;
        char s[160];
        return bfail(&b, KN_ERR_SHAPE, "the model's output %s must be [N, classes]; end with e.g. flatten and dense",
                     shp(y->ndim, y->shape, s, sizeof s));
    }
    if (y && y->shape[1] > (1 << 24)) {
        b.li = m->n_layers - 1;
        return bfail(&b, KN_ERR_SHAPE, "the model outputs %lld classes; at most 2^24 are supported",
                     (long long)y->shape[1]);
    }
    if (y && stats) {
        stats->classes = (int)y->shape[1];
        stats->params = stats->frozen = 0;
        stats->flops = 0;
        for (int i = 0; i < m->n_layers; i++) {
            stats->params += stats->layers[i].params;
            stats->frozen += stats->layers[i].frozen;
            stats->flops += stats->layers[i].flops;
        }
    }
    return y;
}

kn_node *kn_model_build(const kn_model *m, kn_graph *g, kn_node *x, kn_error *err)
{
    return kn__model_build(m, g, x, false, NULL, NULL, err);
}

kn_graph *kn_model_new_graph(const kn_model *m, const char *what, kn_error *err)
{
    if (!m) {
        kn_error_set(err, KN_ERR_ARG, "kn_model_new_graph: NULL model");
        return NULL;
    }
    what = what ? what : m->source;
    kn_graph *g = kn_graph_new();
    if (!g) {
        kn_error_set(err, KN_ERR_OOM, "%s: out of memory", what);
        return NULL;
    }
    int64_t shape[4] = {1};
    int nd = kn_model_input_shape(m, shape + 1);
    kn_node *x = kn_graph_input(g, "x", KN_F32, nd + 1, shape);
    if (!x || !kn_model_build(m, g, x, err)) {
        if (!err || !err->status)
            kn_error_set(err, kn_graph_status(g) ? kn_graph_status(g) : KN_ERR_OOM, "%s: %s", what, kn_graph_error(g));
        kn_graph_free(g);
        return NULL;
    }
    return g;
}

kn_node *kn_model_build_ex(const kn_model *m, kn_graph *g, kn_node *x, const kn_build_opts *o, kn_error *err)
{
    return kn__model_build(m, g, x, false, NULL, o, err);
}

/* ---- reports ------------------------------------------------------------------------------- */

kn_status kn_model_stats(const kn_model *m, int64_t *params, double *flops, kn_error *err)
{
    if (!m)
        return kn_error_set(err, KN_ERR_ARG, "kn_model_stats: NULL model");
    if (params)
        *params = m->params;
    if (flops)
        *flops = m->flops;
    return KN_OK;
}

kn_status kn_model_layer_info(const kn_model *m, int i, kn_model_layer *out)
{
    if (!m || !out || i < 0 || i >= m->n_layers)
        return KN_ERR_ARG;
    const kn__layer *L = &m->layers[i];
    memset(out, 0, sizeof *out);
    out->name = L->name;
    out->kind = kn__layer_keyword(L->kind);
    out->line = L->line;
    out->ndim = L->out_ndim;
    memcpy(out->shape, L->out_shape, sizeof out->shape);
    out->params = L->params;
    out->frozen = L->frozen;
    out->flops = L->flops;
    return KN_OK;
}

/* "1,234,567" */
static const char *group3(int64_t v, char *buf, size_t size)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
    size_t k = 0;
    if (v < 0 && k + 1 < size)
        buf[k++] = '-';
    for (int i = 0; i < n && k + 1 < size; i++) {
        buf[k++] = digits[i];
        if ((n - 1 - i) % 3 == 0 && i != n - 1 && k + 1 < size)
            buf[k++] = ',';
    }
    buf[k] = 0;
    return buf;
}

/* "0", "850", "12.3K", "4.56M", "1.20G" */
static const char *si(double v, char *buf, size_t size)
{
    static const char *const unit[] = {"", "K", "M", "G", "T", "P"};
    int u = 0;
    while (v >= 1000 && u < 5) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%.0f", v);
    else
        snprintf(buf, size, v < 10 ? "%.2f%s" : v < 100 ? "%.1f%s" : "%.0f%s", v, unit[u]);
    return buf;
}

/* What the layer is, with its arguments and non-default options: "conv2d 32 3x3, pad 1". */
static const char *describe(const kn_model *m, const kn__layer *L, char *buf, size_t size)
{
    size_t k = (size_t)snprintf(buf, size, "%s", kn__layer_keyword(L->kind));
#define ADD(...) (k += (k < size ? (size_t)snprintf(buf + k, size - k, __VA_ARGS__) : 0))
    switch (L->kind) {
    case KN_L_CONV2D:
        ADD(" %lld ", (long long)L->units);
        if (L->kh == L->kw)
            ADD("%dx%d", L->kh, L->kh);
        else
            ADD("%dx%d", L->kh, L->kw);
        if (L->stride != 1)
            ADD(", stride %d", L->stride);
        if (L->pad_same)
            ADD(", pad same");
        else if (L->pad)
            ADD(", pad %d", L->pad);
        if (L->dilation != 1)
            ADD(", dilation %d", L->dilation);
        if (L->groups != 1)
            ADD(", groups %d", L->groups);
        if (!L->bias)
            ADD(", no bias");
        break;
    case KN_L_DENSE:
        ADD(" %lld", (long long)L->units);
        if (!L->bias)
            ADD(", no bias");
        break;
    case KN_L_LEAKY_RELU: ADD(" %g", L->f); break;
    case KN_L_DROPOUT: ADD(" %g", L->f); break;
    case KN_L_MAXPOOL:
    case KN_L_AVGPOOL:
        ADD(" %d", L->kh);
        if (L->stride && L->stride != L->kh)
            ADD(", stride %d", L->stride);
        if (L->pad)
            ADD(", pad %d", L->pad);
        break;
    case KN_L_BATCHNORM:
        if (L->f != 0.1)
            ADD(", momentum %g", L->f);
        if (L->eps != 1e-5)
            ADD(", eps %g", L->eps);
        break;
    case KN_L_LAYERNORM:
        if (L->eps != 1e-5)
            ADD(", eps %g", L->eps);
        break;
    case KN_L_ADD: ADD(" %s", m->layers[L->other].name); break;
    default: break;
    }
    if (L->explicit_from)
        ADD(" (from %s)", m->layers[L->from].name);
#undef ADD
    return buf;
}

kn_status kn_model_summary(const kn_model *m, FILE *out, kn_error *err)
{
    if (!m || !out)
        return kn_error_set(err, KN_ERR_ARG, "kn_model_summary: NULL %s", !m ? "model" : "stream");
    char desc[192], shape[160], num[64], fl[32];
    int wname = 4, wdesc = 5, wshape = 6, wparams = 6, wflops = 9;
    for (int i = 0; i < m->n_layers; i++) {
        const kn__layer *L = &m->layers[i];
        int n;
        if ((n = (int)strlen(L->name)) > wname)
            wname = n;
        if ((n = (int)strlen(describe(m, L, desc, sizeof desc))) > wdesc)
            wdesc = n;
        if ((n = (int)strlen(shp(L->out_ndim, L->out_shape, shape, sizeof shape))) > wshape)
            wshape = n;
        if ((n = (int)strlen(group3(L->params, num, sizeof num))) > wparams)
            wparams = n;
    }
    if ((int)strlen(group3(m->params, num, sizeof num)) > wparams)
        wparams = (int)strlen(num);
    char in[160];
    shp(m->in_ndim, m->in_shape, in, sizeof in);
    int rule = 4 + 2 + wname + 2 + wdesc + 2 + wshape + 2 + wparams + 2 + wflops;
    fprintf(out, "%s: %d layers, input %s, %d classes\n", m->source, m->n_layers, in, m->classes);
    fprintf(out, "%4s  %-*s  %-*s  %-*s  %*s  %*s\n", "line", wname, "name", wdesc, "layer", wshape, "output",
            wparams, "params", wflops, "FLOPs/ex");
    fprintf(out, "%.*s\n", rule,
            "-----------------------------------------------------------------------------------------------------"
            "-----------------------------------------------------------------------------------------------------"
            "-----------------------------------------------------------------------------------------------------");
    for (int i = 0; i < m->n_layers; i++) {
        const kn__layer *L = &m->layers[i];
        fprintf(out, "%4d  %-*s  %-*s  %-*s  %*s  %*s\n", L->line, wname, L->name, wdesc,
                describe(m, L, desc, sizeof desc), wshape, shp(L->out_ndim, L->out_shape, shape, sizeof shape), wparams,
                group3(L->params, num, sizeof num), wflops, si(L->flops, fl, sizeof fl));
    }
    fprintf(out, "%.*s\n", rule,
            "-----------------------------------------------------------------------------------------------------"
            "-----------------------------------------------------------------------------------------------------"
            "-----------------------------------------------------------------------------------------------------");
    fprintf(out, "%4s  %-*s  %*s  %*s\n", "", wname + 2 + wdesc + 2 + wshape, "total", wparams,
            group3(m->params, num, sizeof num), wflops, si(m->flops, fl, sizeof fl));
    fprintf(out, "parameters: %s trainable (%.2f MiB as f32)", group3(m->params, num, sizeof num),
            (double)m->params * 4.0 / (1024.0 * 1024.0));
    if (m->frozen)
        fprintf(out, ", %s frozen (batch-norm running statistics)", group3(m->frozen, num, sizeof num));
    fprintf(out, "\nforward: %s FLOPs per example (a training step costs about 3x that)\n",
            si(m->flops, fl, sizeof fl));
    const kn_recipe *r = &m->recipe;
    fprintf(out, "recipe: %s lr %g", r->optimizer, r->lr);
    if (!strcmp(r->optimizer, "sgd"))
        fprintf(out, " momentum %g%s", r->momentum, r->nesterov ? " nesterov" : "");
    if (r->weight_decay)
        fprintf(out, " wd %g", r->weight_decay);
    fprintf(out, ", batch %d, %d epochs, %s schedule", r->batch, r->epochs, r->schedule);
    if (r->warmup_epochs)
        fprintf(out, ", warmup %g", r->warmup_epochs);
    if (r->crop_pad || r->hflip)
        fprintf(out, ", augment crop %d flip %d", r->crop_pad, r->hflip ? 1 : 0);
    fprintf(out, "\n");
    if (ferror(out))
        return kn_error_set(err, KN_ERR_IO, "kn_model_summary: writing failed");
    return KN_OK;
}
