/* view.c — op test rows for reshape (including -1) and expand (broadcast to a larger shape). */
#include "op_rows.h"

static kn_node *reshape_b(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_reshape(g, kt_p(g, dt, -1, 1, 7, 13), 2, (const int64_t[]){13, 7});
    case 1: return kn_graph_reshape(g, kt_p(g, dt, -1, 1, 2, 3, 5), 2, (const int64_t[]){-1, 5});
    default: return kn_graph_reshape(g, kt_p(g, dt, -1, 1, 65), 3, (const int64_t[]){1, 65, 1});
    }
}

static kn_node *expand_b(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_expand(g, kt_p(g, dt, -1, 1, 7, 1), 2, (const int64_t[]){7, 13});
    case 1: return kn_graph_expand(g, kt_p(g, dt, -1, 1, 13), 3, (const int64_t[]){2, 3, 13});
    case 2: return kn_graph_expand(g, kt_param(g, dt, 0, NULL, -1, 1), 2, (const int64_t[]){5, 65});
    default: return kn_graph_expand(g, kt_p(g, dt, -1, 1, 1, 5, 1), 3, (const int64_t[]){3, 5, 7});
    }
}

static kn_node *bad_reshape(kn_graph *g) { return kn_graph_reshape(g, kt_p(g, KN_F32, 0, 1, 2, 3), 1, (const int64_t[]){7}); }
static kn_node *bad_expand(kn_graph *g) { return kn_graph_expand(g, kt_p(g, KN_F32, 0, 1, 3, 2), 2, (const int64_t[]){3, 4}); }

const op_row kt_rows_view[] = {
    {KN_OP_RESHAPE, "reshape", reshape_b, 3, bad_reshape, KN_ERR_SHAPE, "reshape: input [2,3] has 6 elements, new shape [7] has 7"},
    {KN_OP_EXPAND, "expand", expand_b, 4, bad_expand, KN_ERR_SHAPE, "expand: input [3,2] cannot broadcast to [3,4]"},
};
const int kt_n_rows_view = sizeof kt_rows_view / sizeof kt_rows_view[0];
