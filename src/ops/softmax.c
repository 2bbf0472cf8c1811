/* softmax.c — the softmax family: SOFTMAX and LOG_SOFTMAX over one axis, and their backward
 * ops SOFTMAX_BWD / LOG_SOFTMAX_BWD (builders, checks, gradient rules, FLOP counts and the
 * float64 reference kernels). Numerically stable: the maximum along the axis is subtracted
 * before exponentiating.
 * Not here: the fused softmax + cross-entropy loss (loss.c), masking or temperature (build
 * those from elementwise ops), second-order gradients (the backward ops are NONDIFF).
 *
 * Attributes (all four ops):
 *   ai[0]  axis; the builder stores it as given, check normalises it into [0, ndim).
 * The backward ops take (y, dy) where y is the forward op's output. */
#include <math.h>

#include "op_table.h"

/* Views x as [outer, len, inner] around axis. */
static void split_axis(const kn_node *x, int axis, int64_t *outer, int64_t *len, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < axis; i++)
        *outer *= x->shape[i];
    for (int i = axis + 1; i < x->ndim; i++)
        *inner *= x->shape[i];
    *len = x->shape[axis];
}

/* ---- builders -------------------------------------------------------------------------- */
static kn_node *softmax_like(kn_graph *g, int op, kn_node *x, int axis)
{
    kn_node *n = kn__node_new(g, op, 1, &x);
    if (!n)
        return NULL;
    n->ai[0] = axis;
    return kn__node_finish(g, n);
}

kn_node *kn_graph_softmax(kn_graph *g, kn_node *x, int axis)
{
    return softmax_like(g, KN_OP_SOFTMAX, x, axis);
}

kn_node *kn_graph_log_softmax(kn_graph *g, kn_node *x, int axis)
{
    return softmax_like(g, KN_OP_LOG_SOFTMAX, x, axis);
}

/* The backward op (SOFTMAX_BWD or LOG_SOFTMAX_BWD): (y, dy) → dx over the forward op's
 * (already normalised) axis. */
static kn_node *softmax_bwd(kn_graph *g, int op, kn_node *y, kn_node *dy, int64_t axis)
{
    kn_node *src[2] = {y, dy};
    kn_node *n = kn__node_new(g, op, 2, src);
    if (!n)
        return NULL;
    n->ai[0] = axis;
    return kn__node_finish(g, n);
}

/* ---- checks ---------------------------------------------------------------------------- */
static kn_status check_axis(kn_graph *g, kn_node *n, const kn_node *x)
{
    int64_t raw = n->ai[0];
    int axis = (raw < -KN_MAX_DIMS || raw > KN_MAX_DIMS) ? -1 : kn__axis((int)raw, x->ndim);
    if (axis < 0)
        return kn__fail(g, KN_ERR_ARG, "%s: axis %lld is out of range for input %s (%d dimensions)",
                        kn__op_names[n->op], (long long)raw, kn__shp(x), x->ndim);
    n->ai[0] = axis;
    return KN_OK;
}

static kn_status check_softmax(kn_graph *g, kn_node *n)
{
    const kn_node *x = n->src[0];
    if (!kn_dtype_is_float(x->dtype))
        return kn__fail(g, KN_ERR_DTYPE, "%s: input %s has dtype %s, expected a floating type",
                        kn__op_names[n->op], kn__shp(x), kn_dtype_name(x->dtype));
    kn_status st = check_axis(g, n, x);
    if (st)
        return st;
    n->dtype = x->dtype;
    kn__set_shape(n, x->ndim, x->shape);
    return KN_OK;
}

static kn_status check_softmax_bwd(kn_graph *g, kn_node *n)
{
    const kn_node *y = n->src[0], *dy = n->src[1];
    const char *name = kn__op_names[n->op];
    if (!kn_dtype_is_float(y->dtype) || !kn_dtype_is_float(dy->dtype))
        return kn__fail(g, KN_ERR_DTYPE, "%s: y and dy have dtypes %s and %s, expected floating types", name,
                        kn_dtype_name(y->dtype), kn_dtype_name(dy->dtype));
    if (y->dtype != dy->dtype)
        return kn__fail(g, KN_ERR_DTYPE, "%s: y and dy have dtypes %s and %s, they must match", name,
                        kn_dtype_name(y->dtype), kn_dtype_name(dy->dtype));
    if (!kn__same_shape(y, dy))
        return kn__fail(g, KN_ERR_SHAPE, "%s: y %s and dy %s differ in shape, they must be equal", name,
                        kn__shp(y), kn__shp(dy));
    kn_status st = check_axis(g, n, y);
    if (st)
        return st;
    n->dtype = y->dtype;
    kn__set_shape(n, y->ndim, y->shape);
    return KN_OK;
}

/* ---- gradients ------------------------------------------------------------------------- */
static kn_status grad_softmax(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0])
        dx[0] = softmax_bwd(g, KN_OP_SOFTMAX_BWD, n, dy, n->ai[0]);
    return kn_graph_status(g);
}

static kn_status grad_log_softmax(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0])
        dx[0] = softmax_bwd(g, KN_OP_LOG_SOFTMAX_BWD, n, dy, n->ai[0]);
    return kn_graph_status(g);
}

/* ---- FLOPs ----------------------------------------------------------------------------- */
/* Per element: max, subtract, exp, add; then a multiply (softmax) or subtract (log). */
static double flops_softmax(const kn_node *n) { return kn__flops_per_elem(n, 5); }
/* Per element: the product/sum along the axis (2), then a subtract and a multiply (2). */
static double flops_softmax_bwd(const kn_node *n) { return kn__flops_per_elem(n, 4); }

/* ---- reference kernels (float64) ------------------------------------------------------- */
static kn_status ref_softmax(const kn__kargs *a)
{
    const kn_node *n = a->node;
    const double *x = a->src[0];
    double *y = a->dst;
    bool log_out = n->op == KN_OP_LOG_SOFTMAX;
    int64_t outer, len, inner;
    split_axis(n, (int)n->ai[0], &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i;
            double m = -INFINITY, s = 0;
            for (int64_t j = 0; j < len; j++)
                m = fmax(m, x[base + j * inner]);
            for (int64_t j = 0; j < len; j++)
                s += exp(x[base + j * inner] - m);
            for (int64_t j = 0; j < len; j++) {
                double v = x[base + j * inner] - m;
                y[base + j * inner] = log_out ? v - log(s) : exp(v) / s;
            }
        }
    return KN_OK;
}

static kn_status ref_softmax_bwd(const kn__kargs *a)
{
    const kn_node *n = a->node;
    const double *y = a->src[0], *dy = a->src[1];
    double *dx = a->dst;
    bool log_in = n->op == KN_OP_LOG_SOFTMAX_BWD;
    int64_t outer, len, inner;
    split_axis(n, (int)n->ai[0], &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * len * inner + i;
            double s = 0; /* Σ dy·y (softmax) or Σ dy (log-softmax) */
            for (int64_t j = 0; j < len; j++) {
                int64_t k = base + j * inner;
                s += log_in ? dy[k] : dy[k] * y[k];
            }
            for (int64_t j = 0; j < len; j++) {
                int64_t k = base + j * inner;
                dx[k] = log_in ? dy[k] - exp(y[k]) * s : y[k] * (dy[k] - s);
            }
        }
    return KN_OK;
}

const kn__op_info kn__opdef_SOFTMAX = {
    .check = check_softmax, .grad = grad_softmax, .flops = flops_softmax, .ref = ref_softmax};
const kn__op_info kn__opdef_LOG_SOFTMAX = {
    .check = check_softmax, .grad = grad_log_softmax, .flops = flops_softmax, .ref = ref_softmax};
const kn__op_info kn__opdef_SOFTMAX_BWD = {
    .check = check_softmax_bwd, .flops = flops_softmax_bwd, .ref = ref_softmax_bwd};
const kn__op_info kn__opdef_LOG_SOFTMAX_BWD = {
    .check = check_softmax_bwd, .flops = flops_softmax_bwd, .ref = ref_softmax_bwd};
