/* pool.c — op test rows for max_pool2d, avg_pool2d, global_avg_pool and the two pooling
 * backward ops: overlapping windows with padding, stride = kernel (default), odd sizes 7,
 * 13, 65, size-1 planes and kernel 1. Not here: tie-breaking with equal values (covered by
 * the kernels' shared first-maximum rule, not by random data). */
#include "op_rows.h"

/* Shapes and (kernel, stride, pad) per variant; x is [N, C, H, W]. */
typedef struct pool_case {
    int64_t n, c, h, w;
    int k, s, p;
} pool_case;

static const pool_case cases[] = {
    {2, 3, 7, 7, 3, 2, 1},   /* overlapping windows, padding on every border */
    {1, 2, 13, 13, 2, 0, 0}, /* default stride = kernel, odd size drops the last row/col */
    {1, 1, 5, 65, 3, 1, 1},  /* stride 1, wide row */
    {3, 1, 1, 1, 1, 1, 0},   /* 1×1 planes, kernel 1 */
    {1, 2, 7, 13, 5, 3, 2},  /* large kernel, non-square input */
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

static kn_node *x_of(kn_graph *g, kn_dtype dt, const pool_case *c)
{
    return kt_p(g, dt, -1, 1, c->n, c->c, c->h, c->w);
}

static kn_node *max_b(kn_graph *g, kn_dtype dt, int v)
{
    const pool_case *c = &cases[v];
    return kn_graph_max_pool2d(g, x_of(g, dt, c), c->k, c->s, c->p);
}

static kn_node *avg_b(kn_graph *g, kn_dtype dt, int v)
{
    const pool_case *c = &cases[v];
    return kn_graph_avg_pool2d(g, x_of(g, dt, c), c->k, c->s, c->p);
}

/* A backward node built directly (they have no public builder): attrs as the forward op's. */
static kn_node *bwd_node(kn_graph *g, int op, int nsrc, kn_node **src, const pool_case *c, const kn_node *x)
{
    kn_node *n = kn__node_new(g, op, nsrc, src);
    if (!n)
        return NULL;
    n->ai[0] = c->k;
    n->ai[1] = c->s ? c->s : c->k;
    n->ai[2] = c->p;
    for (int i = 0; i < 4; i++)
        n->ai[3 + i] = x ? x->shape[i] : 0;
    return kn__node_finish(g, n);
}

static kn_node *max_bwd_b(kn_graph *g, kn_dtype dt, int v)
{
    const pool_case *c = &cases[v];
    kn_node *x = x_of(g, dt, c);
    kn_node *y = kn_graph_max_pool2d(g, x, c->k, c->s, c->p); /* for dy's shape only */
    if (!y)
        return NULL;
    kn_node *src[2] = {x, kt_const(g, dt, 4, y->shape, -1, 1)};
    return bwd_node(g, KN_OP_MAX_POOL2D_BWD, 2, src, c, NULL);
}

static kn_node *avg_bwd_b(kn_graph *g, kn_dtype dt, int v)
{
    const pool_case *c = &cases[v];
    kn_node *x = x_of(g, dt, c);
    kn_node *y = kn_graph_avg_pool2d(g, x, c->k, c->s, c->p);
    if (!y)
        return NULL;
    kn_node *dy = kt_const(g, dt, 4, y->shape, -1, 1);
    return bwd_node(g, KN_OP_AVG_POOL2D_BWD, 1, &dy, c, x);
}

static kn_node *global_b(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_global_avg_pool(g, kt_p(g, dt, -1, 1, 2, 3, 7, 7));
    case 1: return kn_graph_global_avg_pool(g, kt_p(g, dt, -1, 1, 1, 2, 1, 65));
    case 2: return kn_graph_global_avg_pool(g, kt_p(g, dt, -1, 1, 3, 1, 1, 1));
    default: return kn_graph_global_avg_pool(g, kt_p(g, dt, -1, 1, 1, 5, 13, 3));
    }
}

/* ---- bad calls ---- */
static kn_node *bad_max(kn_graph *g) { return kn_graph_max_pool2d(g, kt_p(g, KN_F32, 0, 1, 3, 8, 8), 2, 0, 0); }
static kn_node *bad_avg(kn_graph *g) { return kn_graph_avg_pool2d(g, kt_p(g, KN_F32, 0, 1, 1, 1, 8, 8), 3, 1, 2); }
static kn_node *bad_global(kn_graph *g)
{
    return kn_graph_global_avg_pool(g, kt_labels(g, KN_I32, 4, (const int64_t[]){1, 2, 3, 3}, 5));
}

static kn_node *bad_max_bwd(kn_graph *g) /* dy of the wrong size */
{
    pool_case c = {1, 1, 8, 8, 2, 2, 0};
    kn_node *src[2] = {kt_p(g, KN_F32, 0, 1, 1, 1, 8, 8), kt_p(g, KN_F32, 0, 1, 1, 1, 3, 4)};
    return bwd_node(g, KN_OP_MAX_POOL2D_BWD, 2, src, &c, NULL);
}

static kn_node *bad_avg_bwd(kn_graph *g) /* input smaller than the kernel */
{
    pool_case c = {1, 1, 2, 2, 3, 1, 0};
    kn_node *x = kt_p(g, KN_F32, 0, 1, 1, 1, 2, 2);
    kn_node *dy = kt_p(g, KN_F32, 0, 1, 1, 1, 1, 1);
    return bwd_node(g, KN_OP_AVG_POOL2D_BWD, 1, &dy, &c, x);
}

const op_row kt_rows_pool[] = {
    {.op = KN_OP_MAX_POOL2D, .label = "max_pool2d", .build = max_b, .n_variants = N_CASES, .bad = bad_max,
         .bad_code = KN_ERR_SHAPE,
         .bad_msg = "max_pool2d: input [3,8,8] has 3 dimensions, expected 4 [N,C,H,W]"},
    {.op = KN_OP_MAX_POOL2D_BWD, .label = "max_pool2d_bwd", .build = max_bwd_b, .n_variants = N_CASES,
         .bad = bad_max_bwd, .bad_code = KN_ERR_SHAPE,
         .bad_msg = "max_pool2d_bwd: dy has shape [1,1,3,4], the pooled shape is [1,1,4,4]"},
    {.op = KN_OP_AVG_POOL2D, .label = "avg_pool2d", .build = avg_b, .n_variants = N_CASES, .bad = bad_avg,
         .bad_code = KN_ERR_ARG, .bad_msg = "avg_pool2d: pad 2 with kernel 3, pad must be in [0, kernel/2]"},
    {.op = KN_OP_AVG_POOL2D_BWD, .label = "avg_pool2d_bwd", .build = avg_bwd_b, .n_variants = N_CASES,
         .bad = bad_avg_bwd, .bad_code = KN_ERR_SHAPE,
         .bad_msg = "avg_pool2d_bwd: input [1,1,2,2] is smaller than kernel 3"},
    {.op = KN_OP_GLOBAL_AVG_POOL, .label = "global_avg_pool", .build = global_b, .n_variants = 4,
         .bad = bad_global, .bad_code = KN_ERR_DTYPE, .bad_msg = "global_avg_pool: input 0 has dtype i32"},
};
const int kt_n_rows_pool = sizeof kt_rows_pool / sizeof kt_rows_pool[0];
