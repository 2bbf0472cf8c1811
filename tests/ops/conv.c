/* conv.c (op rows) — test rows for CONV2D and its backward ops: stride, padding, dilation,
 * groups, depthwise, 1×1 (the direct-GEMM path and a strided one), asymmetric kernels, odd
 * sizes, N = 1, the model-B layer Conv2d(1→32, 3×3, pad 1), a batch big enough that the
 * CPU kernels work in several im2col chunks with a remainder, 3×3 stride-1 convolutions
 * with ≥ 16 channels per group (the CPU's Winograd path from batch 3) and a batch-1 layer big
 * enough for the CPU's banded im2col + GEMM. Not here: performance. */
#include <string.h>

#include "op_rows.h"
#include "ops/conv_internal.h"

typedef struct conv_case {
    int64_t x[4], w[4];
    kn_conv2d_opts o;
    bool bias;
} conv_case;

static const conv_case cases[] = {
    {{2, 1, 28, 28}, {32, 1, 3, 3}, {.pad_h = 1, .pad_w = 1}, true},                 /* model B */
    {{2, 3, 13, 13}, {4, 3, 3, 3}, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}, true},
    {{1, 2, 7, 13}, {3, 2, 3, 3}, {.dilation_h = 2, .dilation_w = 2, .pad_h = 1, .pad_w = 2}, false},
    {{2, 4, 7, 7}, {6, 2, 3, 3}, {.groups = 2}, true},                                   /* groups 2 */
    {{2, 3, 7, 7}, {3, 1, 3, 3}, {.groups = 3, .stride_h = 2, .pad_h = 1, .pad_w = 1}, true}, /* depthwise */
    {{2, 5, 7, 7}, {3, 5, 1, 1}, {0}, true},                                             /* 1×1 */
    {{1, 4, 7, 7}, {2, 4, 1, 1}, {.stride_h = 2, .stride_w = 2}, false},                 /* strided 1×1 */
    {{1, 2, 13, 7}, {2, 2, 5, 3}, {.stride_h = 3, .stride_w = 2, .pad_h = 2, .dilation_w = 2}, true},
    {{2, 4, 5, 5}, {6, 2, 1, 1}, {.groups = 2}, false},                                  /* grouped 1×1 */
    {{3, 64, 20, 20}, {1, 64, 5, 5}, {0}, true}, /* 1.6 MB of im2col per image: chunks of 2 + 1 */
    {{3, 16, 9, 9}, {16, 16, 3, 3}, {.pad_h = 1, .pad_w = 1}, true},   /* Winograd F(2x2,3x3), odd size */
    {{3, 32, 8, 7}, {34, 16, 3, 3}, {.pad_h = 1, .groups = 2}, false}, /* Winograd, groups, no pad_w */
    {{1, 16, 15, 14}, {32, 16, 3, 3}, {.pad_h = 1, .pad_w = 1}, true}, /* batch 1: im2col + GEMM in row bands */
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

static int64_t out_dim(int64_t in, int64_t k, int s, int p, int d)
{
    return kn__conv_out(in, k, s ? s : 1, p, d ? d : 1);
}

static kn_node *build_conv2d(kn_graph *g, kn_dtype dt, int v)
{
    const conv_case *c = &cases[v];
    kn_node *x = kt_param(g, dt, 4, c->x, -1, 1), *w = kt_param(g, dt, 4, c->w, -1, 1);
    kn_node *b = c->bias ? kt_param(g, dt, 1, c->w, -1, 1) : NULL;
    return kn_graph_conv2d(g, x, w, b, v == 5 ? NULL : &c->o);
}

/* The resolved attribute slots ai[0..6] of a case. */
static void attrs_of(const conv_case *c, int64_t *a)
{
    const kn_conv2d_opts *o = &c->o;
    int64_t r[7] = {o->stride_h ? o->stride_h : 1, o->stride_w ? o->stride_w : 1, o->pad_h, o->pad_w,
                    o->dilation_h ? o->dilation_h : 1, o->dilation_w ? o->dilation_w : 1, o->groups ? o->groups : 1};
    memcpy(a, r, sizeof r);
}

static void dy_shape(const conv_case *c, int64_t *dy)
{
    dy[0] = c->x[0];
    dy[1] = c->w[0];
    dy[2] = out_dim(c->x[2], c->w[2], c->o.stride_h, c->o.pad_h, c->o.dilation_h);
    dy[3] = out_dim(c->x[3], c->w[3], c->o.stride_w, c->o.pad_w, c->o.dilation_w);
}

static kn_node *build_bwd_data(kn_graph *g, kn_dtype dt, int v)
{
    const conv_case *c = &cases[v];
    int64_t a[7], dys[4];
    attrs_of(c, a);
    dy_shape(c, dys);
    kn_node *dy = kt_const(g, dt, 4, dys, -1, 1), *w = kt_const(g, dt, 4, c->w, -1, 1);
    return kn__conv2d_bwd_data(g, dy, w, a, c->x);
}

static kn_node *build_bwd_weight(kn_graph *g, kn_dtype dt, int v)
{
    const conv_case *c = &cases[v];
    int64_t a[7], dys[4];
    attrs_of(c, a);
    dy_shape(c, dys);
    kn_node *x = kt_const(g, dt, 4, c->x, -1, 1), *dy = kt_const(g, dt, 4, dys, -1, 1);
    return kn__conv2d_bwd_weight(g, x, dy, a, c->w);
}

static kn_node *bad_conv2d(kn_graph *g)
{
    kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (const int64_t[]){64, 3, 32, 32});
    kn_node *w = kn_graph_input(g, "w", KN_F32, 4, (const int64_t[]){32, 1, 3, 3});
    return kn_graph_conv2d(g, x, w, NULL, NULL);
}

static kn_node *bad_bwd_data(kn_graph *g)
{
    kn_node *dy = kn_graph_input(g, "dy", KN_F32, 4, (const int64_t[]){2, 4, 5, 5});
    kn_node *w = kn_graph_input(g, "w", KN_F32, 4, (const int64_t[]){4, 3, 3, 3});
    return kn__conv2d_bwd_data(g, dy, w, (const int64_t[]){1, 1, 0, 0, 1, 1, 1}, (const int64_t[]){2, 3, 8, 8});
}

static kn_node *bad_bwd_weight(kn_graph *g)
{
    kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (const int64_t[]){2, 3, 8, 8});
    kn_node *dy = kn_graph_input(g, "dy", KN_F32, 4, (const int64_t[]){2, 4, 6, 6});
    return kn__conv2d_bwd_weight(g, x, dy, (const int64_t[]){1, 1, 0, 0, 1, 1, 1}, (const int64_t[]){4, 2, 3, 3});
}

const op_row kt_rows_conv[] = {
    {.op = KN_OP_CONV2D, .label = "conv2d", .build = build_conv2d, .n_variants = N_CASES, .bad = bad_conv2d,
     .bad_code = KN_ERR_SHAPE, .bad_msg = "conv2d: input [64,3,32,32] has 3 channels, weight [32,1,3,3] expects 1 (groups 1)"},
    {.op = KN_OP_CONV2D_BWD_DATA, .label = "conv2d_bwd_data", .build = build_bwd_data, .n_variants = N_CASES,
     .bad = bad_bwd_data, .bad_code = KN_ERR_SHAPE, .bad_msg = "dy [2,4,5,5] does not match the convolution's output [2,4,6,6]"},
    {.op = KN_OP_CONV2D_BWD_WEIGHT, .label = "conv2d_bwd_weight", .build = build_bwd_weight, .n_variants = N_CASES,
     .bad = bad_bwd_weight, .bad_code = KN_ERR_SHAPE, .bad_msg = "has 3 channels, weight [4,2,3,3] expects 2 (groups 1)"},
};
const int kt_n_rows_conv = sizeof kt_rows_conv / sizeof kt_rows_conv[0];
