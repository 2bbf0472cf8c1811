/* quant.c (op rows) — test rows for QLINEAR, QCONV2D and FAKE_QUANT: the CPU int8 kernels
 * (VNNI or portable) against the float64 reference doing the same integer math. Shapes cross
 * the kernels' tile edges (8 rows, 32 columns, K not a multiple of 4), inputs beyond the
 * calibrated range (clipping), fused ReLU, groups, strides, dilation, 1×1, the model-B
 * layers; FAKE_QUANT per tensor (asymmetric) and per channel (symmetric). Not here: whole
 * quantised models (tests/test_quant.c). */
#include <stdlib.h>

#include "kiln/quant.h"
#include "op_rows.h"
#include "ops/quant_internal.h"

/* A constant of dtype dt from doubles. */
static kn_node *consts(kn_graph *g, kn_dtype dt, int ndim, const int64_t *shape, const double *v)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float f[64];
    if (dt == KN_F32) {
        for (int64_t i = 0; i < n && i < 64; i++)
            f[i] = (float)v[i];
        return kn_graph_const(g, dt, ndim, shape, f);
    }
    return kn_graph_const(g, dt, ndim, shape, v);
}

/* Random s8 weights in [-127, 127] (a fixed stream, the same for the f32 and f64 builds). */
static kn_node *qweight(kn_graph *g, int ndim, const int64_t *shape, int salt)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    int8_t *w = malloc((size_t)(n ? n : 1));
    if (!w)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        w[i] = (int8_t)((int)(kn_rng_uniform(77, (uint64_t)salt, (uint64_t)i) * 255.0) - 127);
    kn_node *node = kn_graph_const(g, KN_I8, ndim, shape, w);
    free(w);
    return node;
}

/* Input scale and zero point: [-0.72, 0.81] of inputs drawn from [-1, 1], so some clip. */
static kn_node *xqparams(kn_graph *g, kn_dtype dt, double scale, double zp)
{
    return consts(g, dt, 1, (const int64_t[]){2}, (const double[]){scale, zp});
}

typedef struct qlin_case {
    int ndim;
    int64_t x[3];
    int64_t out;
    bool bias, relu;
    double scale, zp;
} qlin_case;

static const qlin_case lin_cases[] = {
    {2, {2, 7}, 3, true, false, 0.006, 120},
    {2, {13, 65}, 40, true, true, 0.006, 120},   /* 2 row tiles, 2 column panels, K % 4 = 1 */
    {2, {9, 1}, 1, false, false, 0.01, 0},       /* zero point 0: negatives clip to 0 */
    {3, {2, 3, 13}, 33, true, false, 0.008, 255}, /* 3-D x, zero point 255 */
    {2, {64, 288}, 64, true, true, 0.004, 130},  /* full tiles */
};

static kn_node *build_qlinear(kn_graph *g, kn_dtype dt, int v)
{
    const qlin_case *c = &lin_cases[v];
    int64_t in = c->x[c->ndim - 1];
    kn_node *x = kt_const(g, dt, c->ndim, c->x, -1, 1);
    kn_node *w = qweight(g, 2, (const int64_t[]){c->out, in}, v);
    kn_node *ws = kt_const(g, dt, 1, &c->out, 0.001, 0.02);
    kn_node *b = c->bias ? kt_const(g, dt, 1, &c->out, -1, 1) : NULL;
    return kn_graph_qlinear(g, x, w, ws, xqparams(g, dt, c->scale, c->zp), b, c->relu);
}

typedef struct qconv_case {
    int64_t x[4], w[4];
    kn_conv2d_opts o;
    bool bias, relu, pool; /* pool: a fused 2×2 stride-2 max pool (kn__qconv2d_fuse_pool) */
} qconv_case;

static const qconv_case conv_cases[] = {
    {{2, 1, 28, 28}, {32, 1, 3, 3}, {.pad_h = 1, .pad_w = 1}, true, true},   /* model B conv1 */
    {{2, 32, 7, 7}, {64, 32, 3, 3}, {.pad_h = 1, .pad_w = 1}, true, false},  /* 4-byte im2col path */
    {{1, 3, 9, 7}, {5, 3, 3, 3}, {.stride_h = 2, .stride_w = 2, .pad_h = 1, .dilation_w = 2}, false, false},
    {{2, 8, 6, 6}, {6, 4, 3, 3}, {.groups = 2, .pad_w = 1}, true, true},      /* groups, Cg % 4 = 0 */
    {{1, 2, 5, 5}, {3, 2, 1, 1}, {0}, true, false},                           /* 1×1 */
    {{1, 6, 13, 13}, {9, 2, 5, 3}, {.groups = 3, .stride_h = 3, .pad_h = 2}, false, true},
    {{2, 8, 9, 9}, {11, 8, 3, 3}, {.dilation_h = 2, .dilation_w = 2, .pad_h = 2, .pad_w = 1}, true, false}, /* direct, dilated */
    {{1, 4, 5, 37}, {3, 4, 3, 2}, {.pad_h = 1, .pad_w = 1}, true, true},       /* direct, 3 vectors per row */
    {{2, 1, 11, 23}, {5, 1, 2, 4}, {.dilation_w = 2, .pad_w = 3}, true, false}, /* C = 1 shifted, kw = 4, dilated */
    {{1, 1, 8, 9}, {3, 1, 3, 5}, {.pad_h = 1}, false, false},                 /* C = 1, kw = 5: im2col */
    {{2, 1, 28, 28}, {32, 1, 3, 3}, {.pad_h = 1, .pad_w = 1}, true, true, true}, /* model B conv1 + pool */
    {{2, 8, 9, 9}, {16, 8, 3, 3}, {.pad_h = 1, .pad_w = 1}, true, false, true},  /* direct + pool, odd 9x9 */
    {{1, 36, 21, 40}, {9, 36, 3, 3}, {0}, false, true, true},                    /* direct + pool, 3 column blocks */
    {{1, 3, 11, 11}, {4, 3, 3, 3}, {.stride_h = 2, .stride_w = 2}, true, true, true}, /* im2col + pool */
};

static kn_node *build_qconv2d(kn_graph *g, kn_dtype dt, int v)
{
    const qconv_case *c = &conv_cases[v];
    kn_node *x = kt_const(g, dt, 4, c->x, -1, 1);
    kn_node *w = qweight(g, 4, c->w, v);
    kn_node *ws = kt_const(g, dt, 1, c->w, 0.001, 0.02);
    kn_node *b = c->bias ? kt_const(g, dt, 1, c->w, -1, 1) : NULL;
    kn_node *y = kn_graph_qconv2d(g, x, w, ws, xqparams(g, dt, 0.006, 120), b, &c->o, c->relu);
    if (y && c->pool && kn__qconv2d_fuse_pool(g, y))
        return NULL;
    return y;
}

static kn_node *build_fake_quant(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_fake_quant(g, kt_p(g, dt, -1, 2, 2, 3, 5), -1, true);  /* activations */
    case 1: return kn_graph_fake_quant(g, kt_p(g, dt, -1, 1, 7, 13), 0, false);    /* dense weight */
    case 2: return kn_graph_fake_quant(g, kt_p(g, dt, -1, 1, 3, 4, 5), 1, false);  /* middle axis */
    case 3: return kn_graph_fake_quant(g, kt_p(g, dt, -1, 3, 3, 4, 100), 1, true); /* 300 per channel */
    case 4: return kn_graph_fake_quant(g, kt_p(g, dt, -2, 3, 2, 9, 70), -1, false); /* 1,260 per tensor */
    default: return kn_graph_fake_quant(g, kt_p(g, dt, 0.5, 3, 65), -1, true);     /* all > 0 */
    }
}

static kn_node *bad_qlinear(kn_graph *g)
{
    kn_node *x = kt_p(g, KN_F32, -1, 1, 2, 4);
    kn_node *w = kt_p(g, KN_F32, -1, 1, 3, 4); /* not quantised */
    kn_node *ws = kt_p(g, KN_F32, 0.1, 1, 3);
    return kn_graph_qlinear(g, x, w, ws, xqparams(g, KN_F32, 0.01, 0), NULL, false);
}

static kn_node *bad_qconv2d(kn_graph *g)
{
    kn_node *x = kt_p(g, KN_F32, -1, 1, 1, 2, 5, 5);
    kn_node *w = qweight(g, 4, (const int64_t[]){3, 2, 3, 3}, 0);
    kn_node *ws = kt_p(g, KN_F32, 0.1, 1, 4); /* 4 scales for 3 filters */
    return kn_graph_qconv2d(g, x, w, ws, xqparams(g, KN_F32, 0.01, 0), NULL, NULL, false);
}

static kn_node *bad_fake_quant(kn_graph *g)
{
    return kn_graph_fake_quant(g, kt_p(g, KN_F32, -1, 1, 2, 3), 2, false);
}

const op_row kt_rows_quant[] = {
    {.op = KN_OP_QLINEAR, .label = "qlinear", .build = build_qlinear,
     .n_variants = (int)(sizeof lin_cases / sizeof lin_cases[0]), .bad = bad_qlinear, .bad_code = KN_ERR_DTYPE,
     .bad_msg = "qlinear: weight [3,4] is f32, expected i8"},
    {.op = KN_OP_QCONV2D, .label = "qconv2d", .build = build_qconv2d,
     .n_variants = (int)(sizeof conv_cases / sizeof conv_cases[0]), .bad = bad_qconv2d, .bad_code = KN_ERR_SHAPE,
     .bad_msg = "qconv2d: weight scales [4] do not fit weight [3,2,3,3], expected [3]"},
    {.op = KN_OP_FAKE_QUANT, .label = "fake_quant", .build = build_fake_quant, .n_variants = 6,
     .bad = bad_fake_quant, .bad_code = KN_ERR_ARG, .bad_msg = "fake_quant: axis 2 for input [2,3]",
     .straight_through = true},
};
const int kt_n_rows_quant = sizeof kt_rows_quant / sizeof kt_rows_quant[0];
