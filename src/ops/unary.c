/* unary.c — elementwise one-input ops: neg, exp, log, sqrt, abs, clamp, scale, cast.
 *
 * Attributes:
 *   CLAMP  af[0] = lo, af[1] = hi (lo ≤ hi; ±inf allowed for a one-sided clamp)
 *   SCALE  af[0] = alpha, af[1] = beta (finite): y = alpha·x + beta
 *   CAST   ai[0] = the target dtype (any dtype to any dtype; float→int truncates toward
 *          zero and saturates, as kn_convert)
 * All but cast take a float input and keep its dtype; every output has the input's shape.
 * Gradients: abs, clamp and sqrt use unary_bwd (activation.c), log is dy/x, exp is dy·y,
 * cast casts dy back to the source dtype (integer sources get no gradient).
 * Not here: log/sqrt of non-positive numbers are not checked (data, not a call error: they
 * give NaN/-inf as in C); integer arithmetic (only cast accepts integer tensors). */
#include <math.h>

#include "op_table.h"

static kn_status unary_check(kn_graph *g, kn_node *n)
{
    kn_node *x = n->src[0];
    if (n->op == KN_OP_CAST) {
        kn_dtype to = (kn_dtype)n->ai[0];
        if (n->ai[0] < 0 || n->ai[0] >= KN_DTYPE_COUNT)
            return kn__fail(g, KN_ERR_DTYPE, "cast: target dtype %lld of input %s (%s) is not a valid kn_dtype",
                            (long long)n->ai[0], kn__shp(x), kn_dtype_name(x->dtype));
        n->dtype = to;
    } else {
        kn_status st = kn__check_float(g, n, 0);
        if (st)
            return st;
        n->dtype = x->dtype;
    }
    if (n->op == KN_OP_CLAMP && !(n->af[0] <= n->af[1]))
        return kn__fail(g, KN_ERR_ARG, "clamp: lo %g and hi %g on input %s, the rule is lo <= hi", n->af[0], n->af[1],
                        kn__shp(x));
    if (n->op == KN_OP_SCALE && !(isfinite(n->af[0]) && isfinite(n->af[1])))
        return kn__fail(g, KN_ERR_ARG, "scale: alpha %g and beta %g on input %s, both must be finite", n->af[0],
                        n->af[1], kn__shp(x));
    kn__set_shape(n, x->ndim, x->shape);
    return KN_OK;
}

static kn_node *unary(kn_graph *g, int op, kn_node *x, double a, double b)
{
    kn_node *n = kn__node_new(g, op, 1, &x);
    if (!n)
        return NULL;
    n->af[0] = a;
    n->af[1] = b;
    return kn__node_finish(g, n);
}

kn_node *kn_graph_neg(kn_graph *g, kn_node *x) { return unary(g, KN_OP_NEG, x, 0, 0); }
kn_node *kn_graph_exp(kn_graph *g, kn_node *x) { return unary(g, KN_OP_EXP, x, 0, 0); }
kn_node *kn_graph_log(kn_graph *g, kn_node *x) { return unary(g, KN_OP_LOG, x, 0, 0); }
kn_node *kn_graph_sqrt(kn_graph *g, kn_node *x) { return unary(g, KN_OP_SQRT, x, 0, 0); }
kn_node *kn_graph_abs(kn_graph *g, kn_node *x) { return unary(g, KN_OP_ABS, x, 0, 0); }
kn_node *kn_graph_clamp(kn_graph *g, kn_node *x, double lo, double hi) { return unary(g, KN_OP_CLAMP, x, lo, hi); }
kn_node *kn_graph_scale(kn_graph *g, kn_node *x, double alpha, double beta)
{
    return unary(g, KN_OP_SCALE, x, alpha, beta);
}

kn_node *kn_graph_cast(kn_graph *g, kn_node *x, kn_dtype dt)
{
    kn_node *n = kn__node_new(g, KN_OP_CAST, 1, &x);
    if (!n)
        return NULL;
    n->ai[0] = (int64_t)dt;
    return kn__node_finish(g, n);
}

/* ---- gradients ---- */
/* dy·f'(x) through activation.c's unary_bwd, carrying n's op and attributes. */
static kn_node *unary_bwd(kn_graph *g, const kn_node *n, kn_node *dy)
{
    kn_node *s[2] = {n->src[0], dy};
    kn_node *b = kn__node_new(g, KN_OP_UNARY_BWD, 2, s);
    if (!b)
        return NULL;
    b->ai[0] = n->op;
    b->af[0] = n->af[0];
    b->af[1] = n->af[1];
    return kn__node_finish(g, b);
}

static kn_status unary_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    kn_node *x = n->src[0];
    if (!need[0])
        return kn_graph_status(g);
    switch (n->op) {
    case KN_OP_NEG: dx[0] = kn_graph_neg(g, dy); break;
    case KN_OP_EXP: dx[0] = kn_graph_mul(g, dy, n); break;
    case KN_OP_LOG: dx[0] = kn_graph_div(g, dy, x); break;
    case KN_OP_SCALE: dx[0] = kn_graph_scale(g, dy, n->af[0], 0.0); break;
    case KN_OP_CAST: dx[0] = kn_dtype_is_float(x->dtype) ? kn_graph_cast(g, dy, x->dtype) : NULL; break;
    default: dx[0] = unary_bwd(g, n, dy); break; /* sqrt, abs, clamp */
    }
    return kn_graph_status(g);
}

static double unary_flops(const kn_node *n)
{
    switch (n->op) {
    case KN_OP_CAST: return 0;
    case KN_OP_EXP: case KN_OP_LOG: return kn__flops_per_elem(n, 4);
    case KN_OP_CLAMP: case KN_OP_SCALE: return kn__flops_per_elem(n, 2);
    default: return kn__flops_per_elem(n, 1);
    }
}

/* ---- reference kernels ---- */
static kn_status unary_ref(const kn__kargs *k)
{
    const kn_node *n = k->node;
    const double *x = k->src[0];
    double *y = k->dst, a = n->af[0], b = n->af[1];
    int64_t m = kn__numel(n);
    switch (n->op) {
    case KN_OP_NEG: for (int64_t i = 0; i < m; i++) y[i] = -x[i]; break;
    case KN_OP_EXP: for (int64_t i = 0; i < m; i++) y[i] = exp(x[i]); break;
    case KN_OP_LOG: for (int64_t i = 0; i < m; i++) y[i] = log(x[i]); break;
    case KN_OP_SQRT: for (int64_t i = 0; i < m; i++) y[i] = sqrt(x[i]); break;
    case KN_OP_ABS: for (int64_t i = 0; i < m; i++) y[i] = fabs(x[i]); break;
    case KN_OP_CLAMP: for (int64_t i = 0; i < m; i++) y[i] = x[i] < a ? a : (x[i] > b ? b : x[i]); break;
    default: for (int64_t i = 0; i < m; i++) y[i] = a * x[i] + b; break; /* scale */
    }
    return KN_OK;
}

/* Floats arrive as float64 whatever their dtype: a float→float cast is a copy here, and the
 * plan rounds the result to the target dtype. Integers keep their own dtype. */
static kn_status cast_ref(const kn__kargs *k)
{
    const kn_node *n = k->node, *x = n->src[0];
    kn_dtype from = kn_dtype_is_float(x->dtype) ? KN_F64 : x->dtype;
    kn_dtype to = kn_dtype_is_float(n->dtype) ? KN_F64 : n->dtype;
    return kn_convert(k->dst, to, k->src[0], from, kn__numel(n));
}

#define UNARY_OP(E, R) \
    const kn__op_info kn__opdef_##E = {.check = unary_check, .grad = unary_grad, .flops = unary_flops, .ref = R};
UNARY_OP(NEG, unary_ref)
UNARY_OP(EXP, unary_ref)
UNARY_OP(LOG, unary_ref)
UNARY_OP(SQRT, unary_ref)
UNARY_OP(ABS, unary_ref)
UNARY_OP(CLAMP, unary_ref)
UNARY_OP(SCALE, unary_ref)
UNARY_OP(CAST, cast_ref)
