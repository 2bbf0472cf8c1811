/* norm.c — op test rows for batch_norm (training plans: batch statistics; inference plans:
 * running statistics), layer_norm (with and without gamma/beta) and their backward ops:
 * 2-D and 4-D inputs, one channel, one sample, odd sizes 7, 13, 65, a normalised size of 1.
 * The running-statistics update after a training run is checked against PyTorch's formula
 * in tests/test_norm_running.c (a row compares only outputs and gradients). */
#include "op_rows.h"

/* x [N, C, ...] with its C channels; gamma/beta around 1 and 0, running variance positive. */
typedef struct bn_case {
    int ndim;
    int64_t shape[4];
} bn_case;

static const bn_case bn_cases[] = {
    {2, {4, 3}},         /* [N, C] as after a linear layer */
    {4, {2, 5, 7, 7}},   /* [N, C, H, W] */
    {3, {13, 1, 3}},     /* one channel */
    {3, {1, 2, 65}},     /* one sample, long spatial extent */
};
#define N_BN (int)(sizeof bn_cases / sizeof bn_cases[0])

static kn_node *bn_build(kn_graph *g, kn_dtype dt, int v, bool frozen)
{
    const bn_case *c = &bn_cases[v];
    const int64_t *C = &c->shape[1];
    kn_node *(*mk)(kn_graph *, kn_dtype, int, const int64_t *, double, double) = frozen ? kt_frozen : kt_param;
    kn_node *x = mk(g, dt, c->ndim, c->shape, -2, 3);
    kn_node *gamma = mk(g, dt, 1, C, 0.5, 1.5), *beta = mk(g, dt, 1, C, -0.5, 0.5);
    kn_node *rm = kt_frozen(g, dt, 1, C, -0.5, 0.5), *rv = kt_frozen(g, dt, 1, C, 0.5, 2);
    return kn_graph_batch_norm(g, x, gamma, beta, rm, rv, 0.1, 1e-5);
}

static kn_node *bn_train_b(kn_graph *g, kn_dtype dt, int v) { return bn_build(g, dt, v, false); }
/* Inference: every input frozen, so there is no gradient to check (the gradient rule is the
 * training-mode one); the row compares the f32 kernel's running-statistics path with f64. */
static kn_node *bn_infer_b(kn_graph *g, kn_dtype dt, int v) { return bn_build(g, dt, v, true); }

static kn_node *bn_bwd_b(kn_graph *g, kn_dtype dt, int v)
{
    const bn_case *c = &bn_cases[v % N_BN];
    kn_node *s[3];
    s[0] = kt_param(g, dt, c->ndim, c->shape, -2, 3);
    s[1] = kt_param(g, dt, 1, &c->shape[1], 0.5, 1.5);
    s[2] = kt_const(g, dt, c->ndim, c->shape, -1, 1);
    kn_node *n = kn__node_new(g, KN_OP_BATCH_NORM_BWD, 3, s);
    if (!n)
        return NULL;
    n->ai[0] = v % 3; /* dx, dgamma, dbeta in turn */
    n->af[1] = 1e-5;
    return kn__node_finish(g, n);
}

/* ---- layer norm ---- */
/* Inputs are made in a fixed order, x first (argument evaluation order is unspecified). */
static kn_node *ln_case(kn_graph *g, kn_dtype dt, int ndim, const int64_t *shape, int nd, bool with_gamma,
                        bool with_beta, double eps)
{
    kn_node *x = kt_param(g, dt, ndim, shape, -2, 2);
    kn_node *gamma = with_gamma ? kt_param(g, dt, nd, shape + ndim - nd, 0.5, 1.5) : NULL;
    kn_node *beta = with_beta ? kt_param(g, dt, nd, shape + ndim - nd, -0.5, 0.5) : NULL;
    /* The harness's loss weights R reuse the random stream of the last param made; were that
     * x, R = a·x + b and dloss/dx = O(eps) — too ill-conditioned to compare f32 with f64. */
    if (!with_gamma && !with_beta)
        kt_const(g, dt, 0, NULL, 0, 1);
    return kn_graph_layer_norm(g, x, nd, gamma, beta, eps);
}

static kn_node *ln_b(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return ln_case(g, dt, 2, (const int64_t[]){4, 7}, 1, true, true, 1e-5);
    case 1: return ln_case(g, dt, 3, (const int64_t[]){2, 3, 13}, 2, true, true, 1e-5);
    case 2: return ln_case(g, dt, 2, (const int64_t[]){5, 65}, 1, false, false, 1e-5);
    case 3: return ln_case(g, dt, 2, (const int64_t[]){3, 1}, 1, true, true, 1e-5); /* D = 1: y = beta */
    case 4: return ln_case(g, dt, 2, (const int64_t[]){2, 7}, 1, true, false, 1e-5);
    case 5: return ln_case(g, dt, 2, (const int64_t[]){3, 7}, 1, false, true, 1e-5);
    default: return ln_case(g, dt, 3, (const int64_t[]){1, 2, 5}, 3, true, true, 1e-3);
    }
}

static kn_node *ln_bwd_b(kn_graph *g, kn_dtype dt, int v)
{
    static const int64_t shapes[][3] = {{4, 7, 0}, {2, 3, 13}, {5, 65, 0}, {3, 1, 0}};
    const int64_t *sh = shapes[v % 4];
    int ndim = sh[2] ? 3 : 2, nd = v % 4 == 1 ? 2 : 1, which = v % 3;
    bool with_gamma = v != 3; /* v3: dx without gamma */
    kn_node *s[3];
    s[0] = kt_param(g, dt, ndim, sh, -2, 2);
    s[1] = kt_const(g, dt, ndim, sh, -1, 1);
    s[2] = with_gamma ? kt_param(g, dt, nd, sh + ndim - nd, 0.5, 1.5) : NULL;
    kn_node *n = kn__node_new(g, KN_OP_LAYER_NORM_BWD, with_gamma ? 3 : 2, s);
    if (!n)
        return NULL;
    n->ai[0] = nd;
    n->ai[1] = which;
    n->af[0] = 1e-5;
    return kn__node_finish(g, n);
}

/* ---- bad calls ---- */
static kn_node *bad_bn(kn_graph *g)
{
    const int64_t c3[] = {3}, c4[] = {4};
    return kn_graph_batch_norm(g, kt_p(g, KN_F32, 0, 1, 8, 3, 5, 5), kt_param(g, KN_F32, 1, c4, 0, 1),
                               kt_param(g, KN_F32, 1, c3, 0, 1), kt_frozen(g, KN_F32, 1, c3, 0, 1),
                               kt_frozen(g, KN_F32, 1, c3, 0, 1), 0.1, 1e-5);
}

static kn_node *bad_bn_bwd(kn_graph *g)
{
    kn_node *s[3] = {kt_p(g, KN_F32, 0, 1, 4, 3), kt_p(g, KN_F32, 0, 1, 3), kt_p(g, KN_F32, 0, 1, 4, 3)};
    kn_node *n = kn__node_new(g, KN_OP_BATCH_NORM_BWD, 3, s);
    if (!n)
        return NULL;
    n->ai[0] = 3;
    n->af[1] = 1e-5;
    return kn__node_finish(g, n);
}

static kn_node *bad_ln(kn_graph *g)
{
    return kn_graph_layer_norm(g, kt_p(g, KN_F32, 0, 1, 2, 3, 4), 2, kt_p(g, KN_F32, 0, 1, 4, 3), NULL, 1e-5);
}

static kn_node *bad_ln_bwd(kn_graph *g)
{
    kn_node *s[2] = {kt_p(g, KN_F32, 0, 1, 4, 7), kt_p(g, KN_F32, 0, 1, 4, 6)};
    kn_node *n = kn__node_new(g, KN_OP_LAYER_NORM_BWD, 2, s);
    if (!n)
        return NULL;
    n->ai[0] = 1;
    n->af[0] = 1e-5;
    return kn__node_finish(g, n);
}

static kn_node *bad_bn_running(kn_graph *g) /* a trainable running mean */
{
    const int64_t c3[] = {3};
    return kn_graph_batch_norm(g, kt_p(g, KN_F32, 0, 1, 8, 3), kt_param(g, KN_F32, 1, c3, 0, 1),
                               kt_param(g, KN_F32, 1, c3, 0, 1), kt_param(g, KN_F32, 1, c3, 0, 1),
                               kt_frozen(g, KN_F32, 1, c3, 0, 1), 0.1, 1e-5);
}

const op_row kt_rows_norm[] = {
    {.op = KN_OP_BATCH_NORM, .label = "batch_norm (training)", .build = bn_train_b, .n_variants = N_BN,
         .bad = bad_bn, .bad_code = KN_ERR_SHAPE,
         .bad_msg = "batch_norm: gamma has shape [4], input [8,3,5,5] has 3 channels, expected [3]",
         .training = true},
    {.op = KN_OP_BATCH_NORM, .label = "batch_norm (inference)", .build = bn_infer_b, .n_variants = N_BN,
         .bad = bad_bn_running, .bad_code = KN_ERR_ARG,
         .bad_msg = "batch_norm: running_mean must be a frozen parameter"},
    {.op = KN_OP_BATCH_NORM_BWD, .label = "batch_norm_bwd", .build = bn_bwd_b, .n_variants = 6,
         .bad = bad_bn_bwd, .bad_code = KN_ERR_ARG,
         .bad_msg = "batch_norm_bwd: output 3 must be 0 (dx), 1 (dgamma) or 2 (dbeta)"},
    {.op = KN_OP_LAYER_NORM, .label = "layer_norm", .build = ln_b, .n_variants = 7, .bad = bad_ln,
         .bad_code = KN_ERR_SHAPE,
         .bad_msg = "layer_norm: gamma has shape [4,3], input [2,3,4] normalises over its last 2 dims [3,4]"},
    {.op = KN_OP_LAYER_NORM_BWD, .label = "layer_norm_bwd", .build = ln_bwd_b, .n_variants = 6,
         .bad = bad_ln_bwd, .bad_code = KN_ERR_SHAPE,
         .bad_msg = "layer_norm_bwd: dy has shape [4,6], expected the input's [4,7]"},
};
const int kt_n_rows_norm = sizeof kt_rows_norm / sizeof kt_rows_norm[0];
