/* activation.c — op test rows for relu, leaky_relu, sigmoid, tanh, gelu, silu, and unary_bwd
 * (one variant per forward op it serves, including abs, clamp, sqrt and log from unary.c).
 * Odd sizes (7, 13, 65), size-1 dimensions and a 0-d input; inputs reach the saturated tails
 * of sigmoid/tanh. Activations do not broadcast.
 * Not here: the gradient of unary_bwd itself (NONDIFF: its kernels are compared f32 vs f64,
 * and its values are checked by every forward op's gradient check). */
#include <math.h>

#include "op_rows.h"

static kn_node *input(kn_graph *g, kn_dtype dt, int v, double lo, double hi)
{
    switch (v) {
    case 0: return kt_p(g, dt, lo, hi, 7, 13);
    case 1: return kt_p(g, dt, lo, hi, 1, 65);
    case 2: return kt_p(g, dt, lo, hi, 13, 1, 7);
    default: return kt_param(g, dt, 0, NULL, lo, hi);
    }
}

static kn_node *relu_b(kn_graph *g, kn_dtype dt, int v) { return kn_graph_relu(g, input(g, dt, v, -2, 2)); }
static kn_node *sigmoid_b(kn_graph *g, kn_dtype dt, int v) { return kn_graph_sigmoid(g, input(g, dt, v, -12, 12)); }
static kn_node *tanh_b(kn_graph *g, kn_dtype dt, int v) { return kn_graph_tanh(g, input(g, dt, v, -5, 5)); }
static kn_node *gelu_b(kn_graph *g, kn_dtype dt, int v) { return kn_graph_gelu(g, input(g, dt, v, -5, 5)); }
static kn_node *silu_b(kn_graph *g, kn_dtype dt, int v) { return kn_graph_silu(g, input(g, dt, v, -8, 8)); }

static kn_node *leaky_b(kn_graph *g, kn_dtype dt, int v)
{
    static const double slope[] = {0.01, 0.2, -0.5, 1.5};
    return kn_graph_leaky_relu(g, input(g, dt, v, -2, 2), slope[v]);
}

/* unary_bwd(x, dy) for each forward op it serves; attributes as the forward op sets them. */
static const struct {
    int op;
    double a, b, lo, hi; /* attributes; range of x */
} bwd_cases[] = {
    {KN_OP_RELU, 0, 0, -2, 2},        {KN_OP_LEAKY_RELU, 0.1, 0, -2, 2}, {KN_OP_SIGMOID, 0, 0, -12, 12},
    {KN_OP_TANH, 0, 0, -5, 5},        {KN_OP_GELU, 0, 0, -5, 5},         {KN_OP_SILU, 0, 0, -8, 8},
    {KN_OP_ABS, 0, 0, -2, 2},         {KN_OP_CLAMP, -1, 0.5, -2, 2},     {KN_OP_SQRT, 0, 0, 0.5, 2},
    {KN_OP_LOG, 0, 0, 0.5, 2},
};
#define N_BWD (int)(sizeof bwd_cases / sizeof bwd_cases[0])

static kn_node *unary_bwd_node(kn_graph *g, kn_node *x, kn_node *dy, int op, double a, double b)
{
    kn_node *s[2] = {x, dy};
    kn_node *n = kn__node_new(g, KN_OP_UNARY_BWD, 2, s);
    if (!n)
        return NULL;
    n->ai[0] = op;
    n->af[0] = a;
    n->af[1] = b;
    return kn__node_finish(g, n);
}

static kn_node *unary_bwd_b(kn_graph *g, kn_dtype dt, int v)
{
    const int64_t shape[][2] = {{7, 13}, {1, 65}, {13, 1}};
    const int64_t *s = shape[v % 3];
    kn_node *x = kt_const(g, dt, 2, s, bwd_cases[v].lo, bwd_cases[v].hi);
    kn_node *dy = kt_const(g, dt, 2, s, -1, 1);
    return unary_bwd_node(g, x, dy, bwd_cases[v].op, bwd_cases[v].a, bwd_cases[v].b);
}

static kn_node *bad_relu(kn_graph *g) { return kn_graph_relu(g, kt_labels(g, KN_I32, 1, (const int64_t[]){3}, 4)); }
static kn_node *bad_leaky(kn_graph *g) { return kn_graph_leaky_relu(g, kt_p(g, KN_F32, 0, 1, 2, 7), INFINITY); }
static kn_node *bad_sigmoid(kn_graph *g)
{
    return kn_graph_sigmoid(g, kt_labels(g, KN_I64, 1, (const int64_t[]){3}, 4));
}
static kn_node *bad_tanh(kn_graph *g) { return kn_graph_tanh(g, kt_labels(g, KN_U8, 1, (const int64_t[]){3}, 4)); }
static kn_node *bad_gelu(kn_graph *g) { return kn_graph_gelu(g, kt_labels(g, KN_I8, 1, (const int64_t[]){3}, 4)); }

static kn_node *bad_silu(kn_graph *g) { return kn_graph_silu(g, kt_labels(g, KN_I32, 2, (const int64_t[]){2, 2}, 4)); }

static kn_node *bad_unary_bwd_shape(kn_graph *g)
{
    return unary_bwd_node(g, kt_p(g, KN_F32, 0, 1, 3, 4), kt_p(g, KN_F32, 0, 1, 4, 3), KN_OP_RELU, 0, 0);
}

static kn_node *bad_unary_bwd_op(kn_graph *g)
{
    return unary_bwd_node(g, kt_p(g, KN_F32, 0, 1, 3), kt_p(g, KN_F32, 0, 1, 3), KN_OP_ADD, 0, 0);
}

const op_row kt_rows_activation[] = {
    {.op = KN_OP_RELU, .label = "relu", .build = relu_b, .n_variants = 4,
     .bad = bad_relu, .bad_code = KN_ERR_DTYPE, .bad_msg = "relu: input 0 has dtype i32"},
    {.op = KN_OP_LEAKY_RELU, .label = "leaky_relu", .build = leaky_b, .n_variants = 4,
     .bad = bad_leaky, .bad_code = KN_ERR_ARG, .bad_msg = "leaky_relu: slope inf on input [2,7]"},
    {.op = KN_OP_SIGMOID, .label = "sigmoid", .build = sigmoid_b, .n_variants = 4,
     .bad = bad_sigmoid, .bad_code = KN_ERR_DTYPE, .bad_msg = "sigmoid: input 0 has dtype i64"},
    {.op = KN_OP_TANH, .label = "tanh", .build = tanh_b, .n_variants = 4,
     .bad = bad_tanh, .bad_code = KN_ERR_DTYPE, .bad_msg = "tanh: input 0 has dtype u8"},
    {.op = KN_OP_GELU, .label = "gelu", .build = gelu_b, .n_variants = 4,
     .bad = bad_gelu, .bad_code = KN_ERR_DTYPE, .bad_msg = "gelu: input 0 has dtype i8"},
    {.op = KN_OP_SILU, .label = "silu", .build = silu_b, .n_variants = 4,
     .bad = bad_silu, .bad_code = KN_ERR_DTYPE, .bad_msg = "silu: input 0 has dtype i32"},
    {.op = KN_OP_UNARY_BWD, .label = "unary_bwd", .build = unary_bwd_b, .n_variants = N_BWD,
     .bad = bad_unary_bwd_shape, .bad_code = KN_ERR_SHAPE, .bad_msg = "unary_bwd (relu): x [3,4] and dy [4,3] differ"},
    {.op = KN_OP_UNARY_BWD, .label = "unary_bwd_op", .build = unary_bwd_b, .n_variants = 0,
     .bad = bad_unary_bwd_op, .bad_code = KN_ERR_ARG, .bad_msg = "unary_bwd: forward op add is not one of"},
};
const int kt_n_rows_activation = sizeof kt_rows_activation / sizeof kt_rows_activation[0];
