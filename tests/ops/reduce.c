/* reduce.c — op test rows for sum, mean, max, min, argmax and maxmin_bwd: all axes, single
 * axes, several axes, keepdims, size-1 dimensions and odd sizes. */
#include "op_rows.h"

typedef kn_node *(*reduce_fn)(kn_graph *, kn_node *, uint32_t, bool);

static kn_node *variant(kn_graph *g, kn_dtype dt, int v, reduce_fn f)
{
    switch (v) {
    case 0: return f(g, kt_p(g, dt, -2, 2, 7, 13), 0, false);              /* everything */
    case 1: return f(g, kt_p(g, dt, -2, 2, 7, 13), 1u << 1, false);        /* rows */
    case 2: return f(g, kt_p(g, dt, -2, 2, 13, 7), 1u << 0, true);         /* columns, keepdims */
    case 3: return f(g, kt_p(g, dt, -2, 2, 3, 5, 1, 7), 0xDu, false);      /* {0,2,3}: conv-bias-like */
    case 4: return f(g, kt_p(g, dt, -2, 2, 65), 1u, true);
    default: return f(g, kt_p(g, dt, -2, 2, 2, 3, 4, 5), 0x6u, true);     /* middle dims */
    }
}

static kn_node *sum_b(kn_graph *g, kn_dtype dt, int v) { return variant(g, dt, v, kn_graph_sum); }
static kn_node *mean_b(kn_graph *g, kn_dtype dt, int v) { return variant(g, dt, v, kn_graph_mean); }
static kn_node *max_b(kn_graph *g, kn_dtype dt, int v) { return variant(g, dt, v, kn_graph_max); }
static kn_node *min_b(kn_graph *g, kn_dtype dt, int v) { return variant(g, dt, v, kn_graph_min); }

static kn_node *argmax_b(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_argmax(g, kt_p(g, dt, -2, 2, 7, 13), -1, false);
    case 1: return kn_graph_argmax(g, kt_p(g, dt, -2, 2, 7, 13), 0, true);
    default: return kn_graph_argmax(g, kt_p(g, dt, -2, 2, 3, 65, 2), 1, false);
    }
}

static kn_node *maxmin_bwd_b(kn_graph *g, kn_dtype dt, int v)
{
    kn_node *x = v == 0 ? kt_p(g, dt, -2, 2, 7, 13) : kt_p(g, dt, -2, 2, 3, 5, 4);
    uint32_t mask = v == 0 ? 2u : 5u;
    kn_node *y = kn_graph_max(g, x, mask, true);
    kn_node *dy = v == 0 ? kt_const(g, dt, 2, (const int64_t[]){7, 1}, -1, 1)
                         : kt_const(g, dt, 3, (const int64_t[]){1, 5, 1}, -1, 1);
    kn_node *s[3] = {x, y, dy};
    kn_node *n = kn__node_new(g, KN_OP_MAXMIN_BWD, 3, s);
    if (n)
        n->ai[0] = mask;
    return kn__node_finish(g, n);
}

static kn_node *bad_axes(kn_graph *g) { return kn_graph_sum(g, kt_p(g, KN_F32, 0, 1, 2, 3), 1u << 2, false); }
static kn_node *bad_mean(kn_graph *g) { return kn_graph_mean(g, kt_labels(g, KN_I32, 1, (const int64_t[]){4}, 3), 0, false); }
static kn_node *bad_max(kn_graph *g) { return kn_graph_max(g, kt_p(g, KN_F32, 0, 1, 4), 1u << 5, false); }
static kn_node *bad_min(kn_graph *g) { return kn_graph_min(g, kt_p(g, KN_F32, 0, 1, 4, 0), 2u, false); }
static kn_node *bad_argmax(kn_graph *g) { return kn_graph_argmax(g, kt_p(g, KN_F32, 0, 1, 4, 5), 2, false); }
static kn_node *bad_maxmin_bwd(kn_graph *g)
{
    kn_node *x = kt_p(g, KN_F32, 0, 1, 4, 5);
    kn_node *s[3] = {x, kt_p(g, KN_F32, 0, 1, 4, 2), kt_p(g, KN_F32, 0, 1, 4, 1)};
    kn_node *n = kn__node_new(g, KN_OP_MAXMIN_BWD, 3, s);
    if (n)
        n->ai[0] = 2;
    return kn__node_finish(g, n);
}

const op_row kt_rows_reduce[] = {
    {KN_OP_SUM, "sum", sum_b, 6, bad_axes, KN_ERR_ARG, "sum: axes mask 0x4 names a dimension beyond input [2,3]"},
    {KN_OP_MEAN, "mean", mean_b, 6, bad_mean, KN_ERR_DTYPE, "mean: input 0 has dtype i32"},
    {KN_OP_MAX, "max", max_b, 6, bad_max, KN_ERR_ARG, "max: axes mask 0x20"},
    {KN_OP_MIN, "min", min_b, 6, bad_min, KN_ERR_SHAPE, "min: cannot reduce the empty dimension 1 of [4,0]"},
    {KN_OP_ARGMAX, "argmax", argmax_b, 3, bad_argmax, KN_ERR_ARG, "argmax: axis 2 is out of range for input [4,5]"},
    {KN_OP_MAXMIN_BWD, "maxmin_bwd", maxmin_bwd_b, 2, bad_maxmin_bwd, KN_ERR_SHAPE, "maxmin_bwd: input 1 has shape [4,2], expected [4,1]"},
};
const int kt_n_rows_reduce = sizeof kt_rows_reduce / sizeof kt_rows_reduce[0];
