/* binary.c — op test rows for add, sub, mul, div, pow: same shapes, NumPy broadcasting
 * (row, column, scalar, rank-extending), size-1 dimensions and odd sizes. */
#include "op_rows.h"

typedef kn_node *(*binary_fn)(kn_graph *, kn_node *, kn_node *);

/* Variant shapes: a op b. */
static kn_node *pair(kn_graph *g, kn_dtype dt, int v, binary_fn f, double lo, double hi, double blo, double bhi)
{
    switch (v) {
    case 0: return f(g, kt_p(g, dt, lo, hi, 7, 13), kt_p(g, dt, blo, bhi, 7, 13));
    case 1: return f(g, kt_p(g, dt, lo, hi, 7, 1), kt_p(g, dt, blo, bhi, 1, 13));      /* outer */
    case 2: return f(g, kt_p(g, dt, lo, hi, 2, 3, 65), kt_p(g, dt, blo, bhi, 65));     /* row bias */
    case 3: return f(g, kt_p(g, dt, lo, hi, 13, 1, 5), kt_p(g, dt, blo, bhi, 1));      /* scalar-like */
    case 4: return f(g, kt_param(g, dt, 0, NULL, lo, hi), kt_p(g, dt, blo, bhi, 3, 7)); /* 0-d */
    default: return f(g, kt_p(g, dt, lo, hi, 1, 1, 1), kt_p(g, dt, blo, bhi, 1, 1, 1));
    }
}

static kn_node *add_b(kn_graph *g, kn_dtype dt, int v) { return pair(g, dt, v, kn_graph_add, -2, 2, -2, 2); }
static kn_node *sub_b(kn_graph *g, kn_dtype dt, int v) { return pair(g, dt, v, kn_graph_sub, -2, 2, -2, 2); }
static kn_node *mul_b(kn_graph *g, kn_dtype dt, int v) { return pair(g, dt, v, kn_graph_mul, -2, 2, -2, 2); }
static kn_node *div_b(kn_graph *g, kn_dtype dt, int v) { return pair(g, dt, v, kn_graph_div, -2, 2, 0.5, 2); }
static kn_node *pow_b(kn_graph *g, kn_dtype dt, int v) { return pair(g, dt, v, kn_graph_pow, 0.5, 2, -1.5, 1.5); }

static kn_node *bad_shapes(kn_graph *g)
{
    return kn_graph_add(g, kt_p(g, KN_F32, 0, 1, 2, 3), kt_p(g, KN_F32, 0, 1, 4, 3));
}

static kn_node *bad_dtypes(kn_graph *g)
{
    return kn_graph_mul(g, kt_p(g, KN_F32, 0, 1, 3), kt_p(g, KN_F64, 0, 1, 3));
}

static kn_node *bad_int(kn_graph *g)
{
    return kn_graph_div(g, kt_p(g, KN_F32, 0, 1, 3), kt_labels(g, KN_I32, 1, (const int64_t[]){3}, 4));
}

static kn_node *bad_pow(kn_graph *g)
{
    return kn_graph_pow(g, kt_p(g, KN_F32, 0, 1, 5, 2), kt_p(g, KN_F32, 0, 1, 5, 3));
}

static kn_node *bad_sub(kn_graph *g)
{
    return kn_graph_sub(g, kt_p(g, KN_F32, 0, 1, 7), kt_p(g, KN_F32, 0, 1, 6));
}

const op_row kt_rows_binary[] = {
    {KN_OP_ADD, "add", add_b, 6, bad_shapes, KN_ERR_SHAPE, "add: shapes [2,3] and [4,3] do not broadcast"},
    {KN_OP_SUB, "sub", sub_b, 6, bad_sub, KN_ERR_SHAPE, "sub: shapes [7] and [6]"},
    {KN_OP_MUL, "mul", mul_b, 6, bad_dtypes, KN_ERR_DTYPE, "mul: inputs have dtypes f32 and f64"},
    {KN_OP_DIV, "div", div_b, 6, bad_int, KN_ERR_DTYPE, "div: input 1 has dtype i32"},
    {KN_OP_POW, "pow", pow_b, 6, bad_pow, KN_ERR_SHAPE, "pow: shapes [5,2] and [5,3]"},
};
const int kt_n_rows_binary = sizeof kt_rows_binary / sizeof kt_rows_binary[0];
