/* matmul.c (op rows) — test rows for MATMUL and LINEAR: plain, broadcast batch dims, every
 * transpose combination, size-1 and odd (7, 13, 65) dims, the folded-batch GEMM path, 1-D
 * and bias-less linear. Not here: performance (see benchmarks). */
#include "op_rows.h"

static kn_node *build_matmul(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: /* plain 2-D, odd sizes */
        return kn_graph_matmul(g, kt_p(g, dt, -1, 1, 7, 13), kt_p(g, dt, -1, 1, 13, 5), false, false);
    case 1: /* batch broadcast both ways: [2,1,3,4]·[5,4,6] → [2,5,3,6] */
        return kn_graph_matmul(g, kt_p(g, dt, -1, 1, 2, 1, 3, 4), kt_p(g, dt, -1, 1, 5, 4, 6), false, false);
    case 2: /* trans_a, size-1 batch on b: [2,13,7]ᵀ·[1,13,1] → [2,7,1] */
        return kn_graph_matmul(g, kt_p(g, dt, -1, 1, 2, 13, 7), kt_p(g, dt, -1, 1, 1, 13, 1), true, false);
    case 3: /* trans_b, K = 65 */
        return kn_graph_matmul(g, kt_p(g, dt, -1, 1, 4, 65), kt_p(g, dt, -1, 1, 3, 65), false, true);
    case 4: /* both transposed, broadcast batch [2,1] vs [3]: → [2,3,3,4] */
        return kn_graph_matmul(g, kt_p(g, dt, -1, 1, 2, 1, 5, 3), kt_p(g, dt, -1, 1, 3, 4, 5), true, true);
    case 5: /* b without batch: a's batch folds into M (one GEMM) */
        return kn_graph_matmul(g, kt_p(g, dt, -1, 1, 2, 3, 7, 4), kt_p(g, dt, -1, 1, 4, 5), false, false);
    default: /* b with batch, a without: [1,1]·[3,1,7] */
        return kn_graph_matmul(g, kt_p(g, dt, -1, 1, 1, 1), kt_p(g, dt, -1, 1, 3, 1, 7), false, false);
    }
}

static kn_node *bad_matmul(kn_graph *g)
{
    return kn_graph_matmul(g, kt_p(g, KN_F32, -1, 1, 2, 3), kt_p(g, KN_F32, -1, 1, 4, 5), false, false);
}

static kn_node *build_linear(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0:
        return kn_graph_linear(g, kt_p(g, dt, -1, 1, 7, 13), kt_p(g, dt, -1, 1, 5, 13), kt_p(g, dt, -1, 1, 5));
    case 1: /* 3-D input, no bias, 65 outputs */
        return kn_graph_linear(g, kt_p(g, dt, -1, 1, 2, 3, 13), kt_p(g, dt, -1, 1, 65, 13), NULL);
    case 2: /* size-1 everything */
        return kn_graph_linear(g, kt_p(g, dt, -1, 1, 1, 1, 4), kt_p(g, dt, -1, 1, 1, 4), kt_p(g, dt, -1, 1, 1));
    default: /* 1-D input */
        return kn_graph_linear(g, kt_p(g, dt, -1, 1, 7), kt_p(g, dt, -1, 1, 3, 7), kt_p(g, dt, -1, 1, 3));
    }
}

static kn_node *bad_linear(kn_graph *g)
{
    return kn_graph_linear(g, kt_p(g, KN_F32, -1, 1, 2, 3), kt_p(g, KN_F32, -1, 1, 4, 5), NULL);
}

const op_row kt_rows_matmul[] = {
    {.op = KN_OP_MATMUL, .label = "matmul", .build = build_matmul, .n_variants = 7, .bad = bad_matmul,
     .bad_code = KN_ERR_SHAPE, .bad_msg = "inner dimensions 3 and 4 differ"},
    {.op = KN_OP_LINEAR, .label = "linear", .build = build_linear, .n_variants = 4, .bad = bad_linear,
     .bad_code = KN_ERR_SHAPE, .bad_msg = "has 3 features, weight [4,5] expects 5"},
};
const int kt_n_rows_matmul = sizeof kt_rows_matmul / sizeof kt_rows_matmul[0];
