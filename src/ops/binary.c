/* binary.c — elementwise binary ops with NumPy broadcasting: add, sub, mul, div, pow.
 * Both inputs must be floats of the same dtype; the output has the broadcast shape.
 * Attributes: none. Gradients reduce back over broadcast dimensions with kn__sum_to.
 * This is the model family for the others: builder, check, grad, flops, reference kernel. */
#include <math.h>

#include "broadcast.h"
#include "op_table.h"

static kn_status binary_check(kn_graph *g, kn_node *n)
{
    kn_node *a = n->src[0], *b = n->src[1];
    kn_status st = kn__check_float(g, n, 0);
    if (!st)
        st = kn__check_float(g, n, 1);
    if (!st)
        st = kn__check_same_dtype(g, n);
    if (st)
        return st;
    if (!kn__broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &n->ndim, n->shape))
        return kn__fail(g, KN_ERR_SHAPE,
                        "%s: shapes %s and %s do not broadcast (each dimension, aligned from the last, "
                        "must be equal or 1)",
                        kn__op_names[n->op], kn__shp(a), kn__shp(b));
    n->dtype = a->dtype;
    return KN_OK;
}

static kn_node *binary(kn_graph *g, int op, kn_node *a, kn_node *b)
{
    kn_node *s[2] = {a, b};
    return kn__node_finish(g, kn__node_new(g, op, 2, s));
}

kn_node *kn_graph_add(kn_graph *g, kn_node *a, kn_node *b) { return binary(g, KN_OP_ADD, a, b); }
kn_node *kn_graph_sub(kn_graph *g, kn_node *a, kn_node *b) { return binary(g, KN_OP_SUB, a, b); }
kn_node *kn_graph_mul(kn_graph *g, kn_node *a, kn_node *b) { return binary(g, KN_OP_MUL, a, b); }
kn_node *kn_graph_div(kn_graph *g, kn_node *a, kn_node *b) { return binary(g, KN_OP_DIV, a, b); }
kn_node *kn_graph_pow(kn_graph *g, kn_node *a, kn_node *b) { return binary(g, KN_OP_POW, a, b); }

/* ---- gradients ---- */
static kn_status add_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0])
        dx[0] = kn__sum_to(g, dy, n->src[0]);
    if (need[1])
        dx[1] = kn__sum_to(g, dy, n->src[1]);
    return kn_graph_status(g);
}

static kn_status sub_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0])
        dx[0] = kn__sum_to(g, dy, n->src[0]);
    if (need[1])
        dx[1] = kn__sum_to(g, kn_graph_neg(g, dy), n->src[1]);
    return kn_graph_status(g);
}

static kn_status mul_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    kn_node *a = n->src[0], *b = n->src[1];
    if (need[0])
        dx[0] = kn__sum_to(g, kn_graph_mul(g, dy, b), a);
    if (need[1])
        dx[1] = kn__sum_to(g, kn_graph_mul(g, dy, a), b);
    return kn_graph_status(g);
}

static kn_status div_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    kn_node *a = n->src[0], *b = n->src[1];
    if (need[0])
        dx[0] = kn__sum_to(g, kn_graph_div(g, dy, b), a);
    if (need[1]) /* d(a/b)/db = −(a/b)/b */
        dx[1] = kn__sum_to(g, kn_graph_neg(g, kn_graph_div(g, kn_graph_mul(g, dy, n), b)), b);
    return kn_graph_status(g);
}

static kn_status pow_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    kn_node *a = n->src[0], *b = n->src[1];
    if (need[0]) { /* b · a^(b−1) */
        kn_node *bm1 = kn_graph_sub(g, b, kn__scalar_like(g, b, 1.0));
        kn_node *d = kn_graph_mul(g, b, kn_graph_pow(g, a, bm1));
        dx[0] = kn__sum_to(g, kn_graph_mul(g, dy, d), a);
    }
    if (need[1]) /* a^b · ln a */
        dx[1] = kn__sum_to(g, kn_graph_mul(g, dy, kn_graph_mul(g, n, kn_graph_log(g, a))), b);
    return kn_graph_status(g);
}

static double binary_flops(const kn_node *n) { return kn__flops_per_elem(n, n->op == KN_OP_POW ? 10 : 1); }

/* ---- reference kernel ---- */
static kn_status binary_ref(const kn__kargs *k)
{
    const kn_node *n = k->node, *a = n->src[0], *b = n->src[1];
    int64_t sa[KN_MAX_DIMS], sb[KN_MAX_DIMS];
    kn__broadcast_strides(n->ndim, n->shape, a->ndim, a->shape, sa);
    kn__broadcast_strides(n->ndim, n->shape, b->ndim, b->shape, sb);
    const double *x = k->src[0], *y = k->src[1];
    double *out = k->dst;
    int64_t total = kn__numel(n);
    for (int64_t i = 0; i < total; i++) {
        double u = x[kn__offset_of(n->ndim, n->shape, sa, i)];
        double v = y[kn__offset_of(n->ndim, n->shape, sb, i)];
        switch (n->op) {
        case KN_OP_ADD: out[i] = u + v; break;
        case KN_OP_SUB: out[i] = u - v; break;
        case KN_OP_MUL: out[i] = u * v; break;
        case KN_OP_DIV: out[i] = u / v; break;
        default: out[i] = pow(u, v); break;
        }
    }
    return KN_OK;
}

#define BINARY_OP(E, G) \
    const kn__op_info kn__opdef_##E = {.check = binary_check, .grad = G, .flops = binary_flops, .ref = binary_ref};
BINARY_OP(ADD, add_grad)
BINARY_OP(SUB, sub_grad)
BINARY_OP(MUL, mul_grad)
BINARY_OP(DIV, div_grad)
BINARY_OP(POW, pow_grad)
