/* shape.c — op test rows of the data-movement family: permute (and transpose), concat,
 * slice (and split), pad, and flatten (a reshape). Shapes cover size-1 dims, odd sizes
 * (7, 13, 65), permutes that keep or move the innermost dim, and tiled-transpose sizes
 * that are not a multiple of the tile. Not here: reshape/expand rows (view family). */
#include "op_rows.h"

/* ---- permute ---------------------------------------------------------------------------- */
static kn_node *permute_build(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_permute(g, kt_p(g, dt, -1, 1, 7, 1, 13), (const int[]){2, 0, 1});
    case 1: return kn_graph_permute(g, kt_p(g, dt, -1, 1, 2, 3, 5, 7), (const int[]){0, 2, 3, 1});
    case 2: return kn_graph_permute(g, kt_p(g, dt, -1, 1, 65, 37), (const int[]){1, 0});
    case 3: return kn_graph_permute(g, kt_p(g, dt, -1, 1, 3, 4, 5), (const int[]){1, 2, 0}); /* mergeable */
    default: return kn_graph_permute(g, kt_p(g, dt, -1, 1, 2, 3, 4), (const int[]){1, 0, 2}); /* rows */
    }
}

static kn_node *permute_bad(kn_graph *g)
{
    return kn_graph_permute(g, kt_p(g, KN_F32, -1, 1, 2, 3), (const int[]){0, 0});
}

/* ---- transpose -------------------------------------------------------------------------- */
static kn_node *transpose_build(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_transpose(g, kt_p(g, dt, -1, 1, 13, 7), 0, 1);
    case 1: return kn_graph_transpose(g, kt_p(g, dt, -1, 1, 2, 1, 65), -1, 0);
    default: return kn_graph_transpose(g, kt_p(g, dt, -1, 1, 3, 5, 7), 1, 1);
    }
}

static kn_node *transpose_bad(kn_graph *g)
{
    return kn_graph_transpose(g, kt_p(g, KN_F32, -1, 1, 2, 3), 0, 2);
}

/* ---- concat ----------------------------------------------------------------------------- */
static kn_node *concat_build(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: {
        kn_node *xs[2] = {kt_p(g, dt, -1, 1, 7, 3), kt_p(g, dt, -1, 1, 13, 3)};
        return kn_graph_concat(g, xs, 2, 0);
    }
    case 1: {
        kn_node *xs[3] = {kt_p(g, dt, -1, 1, 2, 1, 3), kt_p(g, dt, -1, 1, 2, 1, 5), kt_p(g, dt, -1, 1, 2, 1, 1)};
        return kn_graph_concat(g, xs, 3, -1);
    }
    case 2: {
        kn_node *x = kt_p(g, dt, -1, 1, 65);
        return kn_graph_concat(g, &x, 1, 0);
    }
    default: { /* the same input twice (gradients add), a frozen one, middle axis */
        kn_node *a = kt_p(g, dt, -1, 1, 3, 2, 5), *b = kt_frozen(g, dt, 3, (const int64_t[]){3, 7, 5}, -1, 1);
        kn_node *xs[3] = {a, b, a};
        return kn_graph_concat(g, xs, 3, 1);
    }
    }
}

static kn_node *concat_bad(kn_graph *g)
{
    kn_node *xs[2] = {kt_p(g, KN_F32, -1, 1, 2, 3), kt_p(g, KN_F32, -1, 1, 3, 3)};
    return kn_graph_concat(g, xs, 2, 1);
}

/* ---- slice ------------------------------------------------------------------------------ */
static kn_node *slice_build(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_slice(g, kt_p(g, dt, -1, 1, 13, 7), 0, 2, 9);
    case 1: return kn_graph_slice(g, kt_p(g, dt, -1, 1, 3, 13), -1, -5, -1);
    case 2: return kn_graph_slice(g, kt_p(g, dt, -1, 1, 65), 0, 60, 65);
    default: return kn_graph_slice(g, kt_p(g, dt, -1, 1, 3, 1, 5), 1, 0, 1);
    }
}

static kn_node *slice_bad(kn_graph *g)
{
    return kn_graph_slice(g, kt_p(g, KN_F32, -1, 1, 4, 5), 1, 2, 7);
}

/* ---- split (SLICE nodes) ---------------------------------------------------------------- */
static kn_node *split_build(kn_graph *g, kn_dtype dt, int v)
{
    kn_node *out[3] = {0};
    switch (v) {
    case 0:
        kn_graph_split(g, kt_p(g, dt, -1, 1, 13, 3), 0, (const int64_t[]){6, 7}, 2, out);
        return out[1];
    case 1:
        kn_graph_split(g, kt_p(g, dt, -1, 1, 2, 7, 1), 1, (const int64_t[]){1, 5, 1}, 3, out);
        return out[1];
    default:
        kn_graph_split(g, kt_p(g, dt, -1, 1, 5, 13), -1, (const int64_t[]){13}, 1, out);
        return out[0];
    }
}

static kn_node *split_bad(kn_graph *g)
{
    kn_node *out[2] = {0};
    kn_graph_split(g, kt_p(g, KN_F32, -1, 1, 4, 5), 1, (const int64_t[]){2, 2}, 2, out);
    return out[0];
}

/* ---- pad -------------------------------------------------------------------------------- */
static kn_node *pad_build(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_pad(g, kt_p(g, dt, -1, 1, 7, 13), (const int64_t[]){1, 2, 0, 3}, 0.5);
    case 1: return kn_graph_pad(g, kt_p(g, dt, -1, 1, 1, 5, 1), (const int64_t[]){2, 0, 0, 0, 1, 1}, 0);
    case 2: return kn_graph_pad(g, kt_p(g, dt, -1, 1, 65), (const int64_t[]){0, 0}, -1);
    default: return kn_graph_pad(g, kt_p(g, dt, -1, 1, 2, 3, 4, 5), (const int64_t[]){0, 1, 1, 0, 2, 2, 1, 3}, 2);
    }
}

static kn_node *pad_bad(kn_graph *g)
{
    return kn_graph_pad(g, kt_p(g, KN_F32, -1, 1, 4, 5), (const int64_t[]){0, 0, -1, 2}, 0);
}

/* ---- flatten (a RESHAPE) ---------------------------------------------------------------- */
static kn_node *flatten_build(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_flatten(g, kt_p(g, dt, -1, 1, 7, 2, 3));
    case 1: return kn_graph_flatten(g, kt_p(g, dt, -1, 1, 1, 13));
    default: return kn_graph_flatten(g, kt_p(g, dt, -1, 1, 5, 1, 1, 3));
    }
}

static kn_node *flatten_bad(kn_graph *g)
{
    return kn_graph_flatten(g, kn_graph_scalar(g, KN_F32, 1.0));
}

const op_row kt_rows_shape[] = {
    {.op = KN_OP_PERMUTE, .label = "permute", .build = permute_build, .n_variants = 5,
     .bad = permute_bad, .bad_code = KN_ERR_ARG, .bad_msg = "is not a permutation"},
    {.op = KN_OP_PERMUTE, .label = "transpose", .build = transpose_build, .n_variants = 3,
     .bad = transpose_bad, .bad_code = KN_ERR_ARG, .bad_msg = "transpose: dims 0 and 2"},
    {.op = KN_OP_CONCAT, .label = "concat", .build = concat_build, .n_variants = 4,
     .bad = concat_bad, .bad_code = KN_ERR_SHAPE, .bad_msg = "all dims but axis 1 must match"},
    {.op = KN_OP_SLICE, .label = "slice", .build = slice_build, .n_variants = 4,
     .bad = slice_bad, .bad_code = KN_ERR_ARG, .bad_msg = "range 2..7 of axis 1"},
    {.op = KN_OP_SLICE, .label = "split", .build = split_build, .n_variants = 3,
     .bad = split_bad, .bad_code = KN_ERR_ARG, .bad_msg = "sizes sum to 4"},
    {.op = KN_OP_PAD, .label = "pad", .build = pad_build, .n_variants = 4,
     .bad = pad_bad, .bad_code = KN_ERR_ARG, .bad_msg = "pads must be >= 0"},
    {.op = KN_OP_RESHAPE, .label = "flatten", .build = flatten_build, .n_variants = 3,
     .bad = flatten_bad, .bad_code = KN_ERR_SHAPE, .bad_msg = "flatten: input [] is 0-d"},
};
const int kt_n_rows_shape = sizeof kt_rows_shape / sizeof kt_rows_shape[0];
