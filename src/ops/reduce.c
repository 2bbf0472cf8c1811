/* reduce.c — reductions over a set of axes: sum, mean, max, min (differentiable), argmax
 * (one axis, i64 result, no gradient) and maxmin_bwd (routes the gradient of max/min to the
 * elements equal to the result, split evenly between ties, as torch.amax does).
 * Attributes: ai[0] = axes bitmask (bit d reduces dim d; the builder turns 0 into "all"),
 * ai[1] = keepdims. argmax: ai[0] = the axis. maxmin_bwd: ai[0] = the axes bitmask. */
#include <math.h>
#include <string.h>

#include "broadcast.h"
#include "op_table.h"

/* x's shape with reduced dims set to 1. */
static void keep_shape(const kn_node *x, uint32_t mask, int64_t *shape)
{
    for (int d = 0; d < x->ndim; d++)
        shape[d] = (mask >> d) & 1u ? 1 : x->shape[d];
}

static kn_status reduce_check(kn_graph *g, kn_node *n)
{
    kn_node *x = n->src[0];
    kn_status st = kn__check_float(g, n, 0);
    if (st)
        return st;
    uint32_t mask = (uint32_t)n->ai[0];
    if (x->ndim < 32 && (mask >> x->ndim))
        return kn__fail(g, KN_ERR_ARG, "%s: axes mask 0x%x names a dimension beyond input %s (%d dims)",
                        kn__op_names[n->op], mask, kn__shp(x), x->ndim);
    for (int d = 0; d < x->ndim; d++)
        if (((mask >> d) & 1u) && x->shape[d] == 0 && (n->op == KN_OP_MAX || n->op == KN_OP_MIN))
            return kn__fail(g, KN_ERR_SHAPE, "%s: cannot reduce the empty dimension %d of %s",
                            kn__op_names[n->op], d, kn__shp(x));
    n->dtype = x->dtype;
    n->ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (!((mask >> d) & 1u))
            n->shape[n->ndim++] = x->shape[d];
        else if (n->ai[1])
            n->shape[n->ndim++] = 1;
    }
    return KN_OK;
}

static kn_node *reduce(kn_graph *g, int op, kn_node *x, uint32_t axes, bool keepdims)
{
    kn_node *n = kn__node_new(g, op, 1, &x);
    if (!n)
        return NULL;
    n->ai[0] = axes ? axes : (x->ndim ? (uint32_t)((1ull << x->ndim) - 1) : 0);
    n->ai[1] = keepdims;
    return kn__node_finish(g, n);
}

kn_node *kn_graph_sum(kn_graph *g, kn_node *x, uint32_t axes, bool keepdims) { return reduce(g, KN_OP_SUM, x, axes, keepdims); }
kn_node *kn_graph_mean(kn_graph *g, kn_node *x, uint32_t axes, bool keepdims) { return reduce(g, KN_OP_MEAN, x, axes, keepdims); }
kn_node *kn_graph_max(kn_graph *g, kn_node *x, uint32_t axes, bool keepdims) { return reduce(g, KN_OP_MAX, x, axes, keepdims); }
kn_node *kn_graph_min(kn_graph *g, kn_node *x, uint32_t axes, bool keepdims) { return reduce(g, KN_OP_MIN, x, axes, keepdims); }

static int64_t reduced_count(const kn_node *x, uint32_t mask)
{
    int64_t c = 1;
    for (int d = 0; d < x->ndim; d++)
        if ((mask >> d) & 1u)
            c *= x->shape[d];
    return c;
}

static kn_status reduce_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    kn_node *x = n->src[0];
    uint32_t mask = (uint32_t)n->ai[0];
    if (!need[0])
        return KN_OK;
    int64_t ks[KN_MAX_DIMS];
    keep_shape(x, mask, ks);
    kn_node *dyk = kn_graph_reshape(g, dy, x->ndim, ks);
    if (n->op == KN_OP_SUM || n->op == KN_OP_MEAN) {
        kn_node *e = kn_graph_expand(g, dyk, x->ndim, x->shape);
        if (n->op == KN_OP_MEAN) {
            int64_t c = reduced_count(x, mask);
            e = kn_graph_mul(g, e, kn__scalar_like(g, x, c ? 1.0 / (double)c : 0.0));
        }
        dx[0] = e;
    } else {
        kn_node *s[3] = {x, kn_graph_reshape(g, n, x->ndim, ks), dyk};
        kn_node *b = kn__node_new(g, KN_OP_MAXMIN_BWD, 3, s);
        if (b)
            b->ai[0] = mask;
        dx[0] = kn__node_finish(g, b);
    }
    return kn_graph_status(g);
}

static double reduce_flops(const kn_node *n) { return (double)kn__numel(n->src[0]); }

/* ---- reference kernels ---- */
static kn_status reduce_ref(const kn__kargs *k)
{
    const kn_node *n = k->node, *x = n->src[0];
    uint32_t mask = (uint32_t)n->ai[0];
    int64_t ks[KN_MAX_DIMS], os[KN_MAX_DIMS];
    keep_shape(x, mask, ks);
    kn__broadcast_strides(x->ndim, x->shape, x->ndim, ks, os);
    const double *in = k->src[0];
    double *out = k->dst;
    int64_t m = kn__numel(n), total = kn__numel(x);
    double init = n->op == KN_OP_MAX ? -INFINITY : n->op == KN_OP_MIN ? INFINITY : 0.0;
    for (int64_t o = 0; o < m; o++)
        out[o] = init;
    for (int64_t i = 0; i < total; i++) {
        int64_t o = kn__offset_of(x->ndim, x->shape, os, i);
        double v = in[i];
        if (n->op == KN_OP_MAX)
            out[o] = v > out[o] ? v : out[o];
        else if (n->op == KN_OP_MIN)
            out[o] = v < out[o] ? v : out[o];
        else
            out[o] += v;
    }
    if (n->op == KN_OP_MEAN) {
        int64_t c = reduced_count(x, mask);
        for (int64_t o = 0; o < m; o++)
            out[o] = c ? out[o] / (double)c : NAN;
    }
    return KN_OK;
}

#define REDUCE_OP(E) \
    const kn__op_info kn__opdef_##E = {.check = reduce_check, .grad = reduce_grad, .flops = reduce_flops, .ref = reduce_ref};
REDUCE_OP(SUM)
REDUCE_OP(MEAN)
REDUCE_OP(MAX)
REDUCE_OP(MIN)

/* ---- argmax ---- */
static kn_status argmax_check(kn_graph *g, kn_node *n)
{
    kn_node *x = n->src[0];
    kn_status st = kn__check_float(g, n, 0);
    if (st)
        return st;
    int axis = kn__axis((int)n->ai[0], x->ndim);
    if (axis < 0)
        return kn__fail(g, KN_ERR_ARG, "argmax: axis %d is out of range for input %s", (int)n->ai[0], kn__shp(x));
    if (x->shape[axis] == 0)
        return kn__fail(g, KN_ERR_SHAPE, "argmax: axis %d of %s is empty", axis, kn__shp(x));
    n->ai[0] = axis;
    n->dtype = KN_I64;
    n->ndim = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != axis || n->ai[1])
            n->shape[n->ndim++] = d == axis ? 1 : x->shape[d];
    return KN_OK;
}

kn_node *kn_graph_argmax(kn_graph *g, kn_node *x, int axis, bool keepdims)
{
    kn_node *n = kn__node_new(g, KN_OP_ARGMAX, 1, &x);
    if (!n)
        return NULL;
    n->ai[0] = axis;
    n->ai[1] = keepdims;
    return kn__node_finish(g, n);
}

/* outer × len × inner view of x around the axis */
static void axis_split(const kn_node *x, int axis, int64_t *outer, int64_t *len, int64_t *inner)
{
    *outer = *inner = 1;
    for (int d = 0; d < axis; d++)
        *outer *= x->shape[d];
    for (int d = axis + 1; d < x->ndim; d++)
        *inner *= x->shape[d];
    *len = x->shape[axis];
}

static kn_status argmax_ref(const kn__kargs *k)
{
    const kn_node *x = k->node->src[0];
    int64_t outer, len, inner;
    axis_split(x, (int)k->node->ai[0], &outer, &len, &inner);
    const double *in = k->src[0];
    int64_t *out = k->dst;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t best = 0;
            for (int64_t j = 1; j < len; j++)
                if (in[(o * len + j) * inner + i] > in[(o * len + best) * inner + i])
                    best = j;
            out[o * inner + i] = best;
        }
    return KN_OK;
}

static double argmax_flops(const kn_node *n) { return (double)kn__numel(n->src[0]); }

const kn__op_info kn__opdef_ARGMAX = {.check = argmax_check, .flops = argmax_flops, .ref = argmax_ref};

/* ---- maxmin_bwd(x, y_keepdims, dy_keepdims) ---- */
static kn_status maxmin_bwd_check(kn_graph *g, kn_node *n)
{
    kn_node *x = n->src[0];
    kn_status st = kn__check_same_dtype(g, n);
    if (st)
        return st;
    int64_t ks[KN_MAX_DIMS];
    keep_shape(x, (uint32_t)n->ai[0], ks);
    for (int i = 1; i < 3; i++) {
        kn_node *s = n->src[i];
        bool ok = s->ndim == x->ndim;
        for (int d = 0; ok && d < x->ndim; d++)
            ok = s->shape[d] == ks[d];
        if (!ok) {
            char b[128];
            return kn__fail(g, KN_ERR_SHAPE, "maxmin_bwd: input %d has shape %s, expected %s (x %s reduced with keepdims)",
                            i, kn__shp(s), kn__shape_str(x->ndim, ks, b, sizeof b), kn__shp(x));
        }
    }
    n->dtype = x->dtype;
    kn__set_shape(n, x->ndim, x->shape);
    return KN_OK;
}

static size_t maxmin_bwd_ws(const kn_node *n) { return (size_t)kn__numel(n->src[1]) * sizeof(double); }

static kn_status maxmin_bwd_ref(const kn__kargs *k)
{
    const kn_node *n = k->node, *x = n->src[0];
    int64_t ks[KN_MAX_DIMS], os[KN_MAX_DIMS];
    keep_shape(x, (uint32_t)n->ai[0], ks);
    kn__broadcast_strides(x->ndim, x->shape, x->ndim, ks, os);
    const double *in = k->src[0], *y = k->src[1], *dy = k->src[2];
    double *dx = k->dst, *count = k->work;
    int64_t m = kn__numel(n->src[1]), total = kn__numel(x);
    memset(count, 0, (size_t)m * sizeof(double));
    for (int64_t i = 0; i < total; i++) {
        int64_t o = kn__offset_of(x->ndim, x->shape, os, i);
        count[o] += in[i] == y[o];
    }
    for (int64_t i = 0; i < total; i++) {
        int64_t o = kn__offset_of(x->ndim, x->shape, os, i);
        dx[i] = in[i] == y[o] ? dy[o] / count[o] : 0.0;
    }
    return KN_OK;
}

static double maxmin_bwd_flops(const kn_node *n) { return (double)kn__numel(n); }

const kn__op_info kn__opdef_MAXMIN_BWD = {.check = maxmin_bwd_check, .flops = maxmin_bwd_flops,
                                          .ref = maxmin_bwd_ref, .ref_workspace = maxmin_bwd_ws};
