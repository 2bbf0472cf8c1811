/* activation.c — elementwise activations: relu, leaky_relu, sigmoid, tanh, gelu (exact erf
 * form), silu, and their shared backward op unary_bwd(x, dy) = dy·f'(x).
 *
 * Attributes:
 *   LEAKY_RELU  af[0] = slope (finite)
 *   UNARY_BWD   ai[0] = the forward op (an activation above, or ABS, CLAMP, SQRT, LOG from
 *               unary.c); af[0], af[1] = that op's attributes (slope; lo, hi)
 * Inputs are floats; the output has the input's shape and dtype. unary_bwd recomputes f'
 * from x (not from y), so one op serves every activation and needs no saved output.
 * The scalar math lives in activation_math.h (shared with the CPU and CUDA kernels).
 * Not here: fused bias+activation (a graph pass), second derivatives (unary_bwd is NONDIFF). */
#include <math.h>

#include "activation_math.h"
#include "op_table.h"

typedef double (*act_f64)(double x, double a, double b);

static kn_status act_check(kn_graph *g, kn_node *n)
{
    kn_status st = kn__check_float(g, n, 0);
    if (st)
        return st;
    if (n->op == KN_OP_LEAKY_RELU && !isfinite(n->af[0]))
        return kn__fail(g, KN_ERR_ARG, "leaky_relu: slope %g on input %s, the slope must be finite", n->af[0],
                        kn__shp(n->src[0]));
    n->dtype = n->src[0]->dtype;
    kn__set_shape(n, n->src[0]->ndim, n->src[0]->shape);
    return KN_OK;
}

static kn_node *act(kn_graph *g, int op, kn_node *x, double a)
{
    kn_node *n = kn__node_new(g, op, 1, &x);
    if (!n)
        return NULL;
    n->af[0] = a;
    return kn__node_finish(g, n);
}

kn_node *kn_graph_relu(kn_graph *g, kn_node *x) { return act(g, KN_OP_RELU, x, 0); }
kn_node *kn_graph_leaky_relu(kn_graph *g, kn_node *x, double slope) { return act(g, KN_OP_LEAKY_RELU, x, slope); }
kn_node *kn_graph_sigmoid(kn_graph *g, kn_node *x) { return act(g, KN_OP_SIGMOID, x, 0); }
kn_node *kn_graph_tanh(kn_graph *g, kn_node *x) { return act(g, KN_OP_TANH, x, 0); }
kn_node *kn_graph_gelu(kn_graph *g, kn_node *x) { return act(g, KN_OP_GELU, x, 0); }
kn_node *kn_graph_silu(kn_graph *g, kn_node *x) { return act(g, KN_OP_SILU, x, 0); }

/* ---- gradient: one unary_bwd node carrying the forward op and its attributes ---- */
static kn_status act_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0]) {
        kn_node *s[2] = {n->src[0], dy};
        kn_node *b = kn__node_new(g, KN_OP_UNARY_BWD, 2, s);
        if (b) {
            b->ai[0] = n->op;
            b->af[0] = n->af[0];
            b->af[1] = n->af[1];
        }
        dx[0] = kn__node_finish(g, b);
    }
    return kn_graph_status(g);
}

/* FLOPs per element of f (and of f' for unary_bwd); rough libm costs for exp/tanh/erf. */
static double per_elem(int op)
{
    switch (op) {
    case KN_OP_RELU: case KN_OP_LEAKY_RELU: case KN_OP_ABS: case KN_OP_CLAMP: return 1;
    case KN_OP_SIGMOID: return 4;
    case KN_OP_TANH: return 6;
    case KN_OP_SILU: return 5;
    case KN_OP_GELU: return 10;
    default: return 4; /* sqrt, log */
    }
}

static double act_flops(const kn_node *n) { return kn__flops_per_elem(n, per_elem(n->op)); }

/* ---- reference kernels ---- */
static act_f64 forward_f64(int op)
{
    switch (op) {
    case KN_OP_RELU: return kn__relu_f64;
    case KN_OP_LEAKY_RELU: return kn__leaky_relu_f64;
    case KN_OP_SIGMOID: return kn__sigmoid_f64;
    case KN_OP_TANH: return kn__tanh_f64;
    case KN_OP_GELU: return kn__gelu_f64;
    case KN_OP_SILU: return kn__silu_f64;
    default: return NULL;
    }
}

static act_f64 derivative_f64(int op)
{
    switch (op) {
    case KN_OP_RELU: return kn__relu_d_f64;
    case KN_OP_LEAKY_RELU: return kn__leaky_relu_d_f64;
    case KN_OP_SIGMOID: return kn__sigmoid_d_f64;
    case KN_OP_TANH: return kn__tanh_d_f64;
    case KN_OP_GELU: return kn__gelu_d_f64;
    case KN_OP_SILU: return kn__silu_d_f64;
    case KN_OP_ABS: return kn__abs_d_f64;
    case KN_OP_CLAMP: return kn__clamp_d_f64;
    case KN_OP_SQRT: return kn__sqrt_d_f64;
    case KN_OP_LOG: return kn__log_d_f64;
    default: return NULL;
    }
}

static kn_status act_ref(const kn__kargs *k)
{
    const kn_node *n = k->node;
    act_f64 f = forward_f64(n->op);
    const double *x = k->src[0];
    double *y = k->dst;
    for (int64_t i = 0; i < kn__numel(n); i++)
        y[i] = f(x[i], n->af[0], n->af[1]);
    return KN_OK;
}

/* ---- unary_bwd(x, dy) ---- */
static kn_status unary_bwd_check(kn_graph *g, kn_node *n)
{
    kn_node *x = n->src[0], *dy = n->src[1];
    kn_status st = kn__check_float(g, n, 0);
    if (!st)
        st = kn__check_float(g, n, 1);
    if (!st)
        st = kn__check_same_dtype(g, n);
    if (st)
        return st;
    int fwd = (int)n->ai[0];
    if (n->ai[0] < 0 || n->ai[0] >= KN_OP_COUNT || !derivative_f64(fwd))
        return kn__fail(g, KN_ERR_ARG,
                        "unary_bwd: forward op %s is not one of relu, leaky_relu, sigmoid, tanh, gelu, silu, "
                        "abs, clamp, sqrt, log",
                        n->ai[0] >= 0 && n->ai[0] < KN_OP_COUNT ? kn__op_names[fwd] : "(out of range)");
    if (!kn__same_shape(x, dy))
        return kn__fail(g, KN_ERR_SHAPE, "unary_bwd (%s): x %s and dy %s differ, they must have the same shape",
                        kn__op_names[fwd], kn__shp(x), kn__shp(dy));
    n->dtype = x->dtype;
    kn__set_shape(n, x->ndim, x->shape);
    return KN_OK;
}

static double unary_bwd_flops(const kn_node *n) { return kn__flops_per_elem(n, per_elem((int)n->ai[0]) + 1); }

static kn_status unary_bwd_ref(const kn__kargs *k)
{
    const kn_node *n = k->node;
    act_f64 d = derivative_f64((int)n->ai[0]);
    const double *x = k->src[0], *dy = k->src[1];
    double *dx = k->dst;
    for (int64_t i = 0; i < kn__numel(n); i++)
        dx[i] = dy[i] * d(x[i], n->af[0], n->af[1]);
    return KN_OK;
}

#define ACT_OP(E) \
    const kn__op_info kn__opdef_##E = {.check = act_check, .grad = act_grad, .flops = act_flops, .ref = act_ref};
ACT_OP(RELU)
ACT_OP(LEAKY_RELU)
ACT_OP(SIGMOID)
ACT_OP(TANH)
ACT_OP(GELU)
ACT_OP(SILU)
const kn__op_info kn__opdef_UNARY_BWD = {.check = unary_bwd_check, .flops = unary_bwd_flops, .ref = unary_bwd_ref};
