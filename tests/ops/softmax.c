/* softmax.c — op test rows of the softmax family: SOFTMAX and LOG_SOFTMAX over first, middle
 * and last axes (inner sizes 1, 3, 65 and 130 to cross the CPU kernel's 64-column chunks), a
 * size-1 axis, odd sizes 7/13/65 and two shapes large enough for the parallel paths; rows for
 * the backward ops compare their f32 kernels with the f64 reference.
 * Not here: the gradient of the backward ops (they are NONDIFF). */
#include "op_rows.h"

typedef struct sm_case {
    int ndim;
    int64_t shape[3];
    int axis;
} sm_case;

static const sm_case cases[] = {
    {2, {7, 13}, -1},  /* last axis, odd sizes */
    {3, {2, 1, 7}, 1}, /* a size-1 softmax axis: constant output, zero gradient */
    {3, {3, 5, 3}, 1}, /* middle axis, inner 3 */
    {2, {5, 65}, 0},   /* first axis, inner 65 = one chunk of 64 + 1 */
    {1, {65}, 0},      /* 1-d */
    /* large enough (≥ 32768 elements) for the CPU kernels' OpenMP paths */
    {2, {300, 130}, -1},   /* parallel rows */
    {3, {4, 70, 130}, 1},  /* parallel column chunks 64 + 64 + 2 */
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])
#define N_SMALL (N_CASES - 2)

static kn_node *build_softmax(kn_graph *g, kn_dtype dt, int v)
{
    const sm_case *c = &cases[v];
    return kn_graph_softmax(g, kt_param(g, dt, c->ndim, c->shape, -3, 3), c->axis);
}

/* In the large variants the input is frozen, so only f32 vs f64 is compared: the harness's
 * loss Σ out·R would add ~36k outputs of size ~5, and its float64 rounding (~1e-11) over the
 * central-difference step 2h = 2e-6 exceeds the 1e-6 gradient tolerance. The backward
 * kernel's parallel path is covered by the log_softmax_bwd row. */
static kn_node *build_log_softmax(kn_graph *g, kn_dtype dt, int v)
{
    const sm_case *c = &cases[v];
    kn_node *x = v >= N_SMALL ? kt_frozen(g, dt, c->ndim, c->shape, -3, 3) : kt_param(g, dt, c->ndim, c->shape, -3, 3);
    return kn_graph_log_softmax(g, x, c->axis);
}

/* (y, dy) through the internal node API: the backward ops have no public builder. */
static kn_node *bwd_node(kn_graph *g, int op, kn_node *y, kn_node *dy, int axis)
{
    kn_node *src[2] = {y, dy};
    kn_node *n = kn__node_new(g, op, 2, src);
    if (!n)
        return NULL;
    n->ai[0] = axis;
    return kn__node_finish(g, n);
}

static kn_node *build_softmax_bwd(kn_graph *g, kn_dtype dt, int v)
{
    const sm_case *c = &cases[v];
    kn_node *y = kn_graph_softmax(g, kt_const(g, dt, c->ndim, c->shape, -3, 3), c->axis);
    kn_node *dy = kt_const(g, dt, c->ndim, c->shape, -1, 1);
    return bwd_node(g, KN_OP_SOFTMAX_BWD, y, dy, c->axis);
}

static kn_node *build_log_softmax_bwd(kn_graph *g, kn_dtype dt, int v)
{
    const sm_case *c = &cases[v];
    kn_node *y = kn_graph_log_softmax(g, kt_const(g, dt, c->ndim, c->shape, -3, 3), c->axis);
    kn_node *dy = kt_const(g, dt, c->ndim, c->shape, -1, 1);
    return bwd_node(g, KN_OP_LOG_SOFTMAX_BWD, y, dy, c->axis);
}

static kn_node *bad_softmax(kn_graph *g)
{
    return kn_graph_softmax(g, kt_p(g, KN_F32, -1, 1, 3, 4), 2);
}

static kn_node *bad_log_softmax(kn_graph *g)
{
    return kn_graph_log_softmax(g, kt_labels(g, KN_I32, 2, (const int64_t[]){3, 4}, 5), -1);
}

static kn_node *bad_softmax_bwd(kn_graph *g)
{
    return bwd_node(g, KN_OP_SOFTMAX_BWD, kt_p(g, KN_F32, 0, 1, 3, 4), kt_p(g, KN_F32, 0, 1, 3, 5), 1);
}

static kn_node *bad_log_softmax_bwd(kn_graph *g)
{
    return bwd_node(g, KN_OP_LOG_SOFTMAX_BWD, kt_p(g, KN_F32, 0, 1, 3, 4), kt_p(g, KN_F64, 0, 1, 3, 4), 1);
}

const op_row kt_rows_softmax[] = {
    {.op = KN_OP_SOFTMAX, .label = "softmax", .build = build_softmax, .n_variants = N_CASES,
     .bad = bad_softmax, .bad_code = KN_ERR_ARG, .bad_msg = "softmax: axis 2 is out of range for input [3,4]"},
    {.op = KN_OP_LOG_SOFTMAX, .label = "log_softmax", .build = build_log_softmax, .n_variants = N_CASES,
     .bad = bad_log_softmax, .bad_code = KN_ERR_DTYPE,
     .bad_msg = "log_softmax: input [3,4] has dtype i32, expected a floating type"},
    {.op = KN_OP_SOFTMAX_BWD, .label = "softmax_bwd", .build = build_softmax_bwd, .n_variants = N_CASES,
     .bad = bad_softmax_bwd, .bad_code = KN_ERR_SHAPE, .bad_msg = "softmax_bwd: y [3,4] and dy [3,5] differ in shape"},
    {.op = KN_OP_LOG_SOFTMAX_BWD, .label = "log_softmax_bwd", .build = build_log_softmax_bwd, .n_variants = N_CASES,
     .bad = bad_log_softmax_bwd, .bad_code = KN_ERR_DTYPE,
     .bad_msg = "log_softmax_bwd: y and dy have dtypes f32 and f64, they must match"},
};
const int kt_n_rows_softmax = sizeof kt_rows_softmax / sizeof kt_rows_softmax[0];
