/* optim.c — op test rows of the optimizer updates (NONDIFF: the f32 CPU kernel is compared
 * with the float64 reference after one run; the compared output is the updated parameter).
 * Variants cover plain SGD, momentum, Nesterov, weight decay, Adam and AdamW, odd sizes and
 * size-1 dims. Not here: multi-step checks against hand-computed values (tests/test_optim.c). */
#include "op_rows.h"

static kn_node *scalar(kn_graph *g, kn_dtype dt, double v) { return kt_const(g, dt, 0, NULL, v, v); }

static kn_node *state(kn_graph *g, kn_dtype dt, kn_node *like, double lo, double hi)
{
    return kt_frozen(g, dt, kn_node_ndim(like), (const int64_t[]){kn_node_dim(like, 0), kn_node_dim(like, 1)}, lo,
                     hi);
}

/* ---- sgd -------------------------------------------------------------------------------- */
static kn_node *sgd_build(kn_graph *g, kn_dtype dt, int v)
{
    static const int64_t shapes[4][2] = {{13, 1}, {7, 13}, {65, 1}, {1, 1}};
    static const int ndims[4] = {1, 2, 1, 2};
    kn_node *p = kt_param(g, dt, ndims[v], shapes[v], -1, 1);
    kn_node *grad = kt_const(g, dt, ndims[v], shapes[v], -1, 1);
    kn_node *lr = kt_const(g, dt, 0, NULL, 0.05, 0.2);
    switch (v) {
    case 0: return kn_graph_sgd_update(g, p, grad, lr, NULL, 0, 0, false);
    case 1: return kn_graph_sgd_update(g, p, grad, lr, state(g, dt, p, -0.5, 0.5), 0.9, 0.01, false);
    case 2: return kn_graph_sgd_update(g, p, grad, lr, state(g, dt, p, -0.5, 0.5), 0.9, 0, true);
    default: return kn_graph_sgd_update(g, p, grad, lr, state(g, dt, p, -0.5, 0.5), 0.5, 0.1, true);
    }
}

static kn_node *sgd_bad(kn_graph *g)
{
    /* the "param" is a constant: nothing to update in place */
    kn_node *p = kt_const(g, KN_F32, 1, (const int64_t[]){4}, -1, 1);
    kn_node *grad = kt_const(g, KN_F32, 1, (const int64_t[]){4}, -1, 1);
    return kn_graph_sgd_update(g, p, grad, scalar(g, KN_F32, 0.1), NULL, 0, 0, false);
}

static kn_node *sgd_bad_shape(kn_graph *g)
{
    kn_node *p = kt_p(g, KN_F32, -1, 1, 4, 3);
    kn_node *grad = kt_const(g, KN_F32, 2, (const int64_t[]){3, 4}, -1, 1);
    return kn_graph_sgd_update(g, p, grad, scalar(g, KN_F32, 0.1), NULL, 0, 0, false);
}

/* ---- adam ------------------------------------------------------------------------------- */
static kn_node *adam_build(kn_graph *g, kn_dtype dt, int v)
{
    static const int64_t shapes[4][2] = {{13, 1}, {7, 13}, {65, 1}, {1, 1}};
    static const int ndims[4] = {1, 2, 1, 2};
    kn_node *p = kt_param(g, dt, ndims[v], shapes[v], -1, 1);
    kn_node *grad = kt_const(g, dt, ndims[v], shapes[v], -1, 1);
    kn_node *lr = kt_const(g, dt, 0, NULL, 0.001, 0.01);
    kn_node *m = state(g, dt, p, -0.1, 0.1), *vv = state(g, dt, p, 0.001, 0.1);
    switch (v) {
    case 0: return kn_graph_adam_update(g, p, grad, lr, scalar(g, dt, 1), m, vv, 0.9, 0.999, 1e-8, 0, false);
    case 1: return kn_graph_adam_update(g, p, grad, lr, scalar(g, dt, 3), m, vv, 0.9, 0.999, 1e-8, 0.01, false);
    case 2: return kn_graph_adam_update(g, p, grad, lr, scalar(g, dt, 7), m, vv, 0.9, 0.99, 1e-6, 0.1, true);
    default: return kn_graph_adam_update(g, p, grad, lr, scalar(g, dt, 2), m, vv, 0.5, 0.9, 1e-3, 0.05, true);
    }
}

static kn_node *adam_bad(kn_graph *g)
{
    kn_node *p = kt_p(g, KN_F32, -1, 1, 4, 3);
    kn_node *grad = kt_const(g, KN_F32, 2, (const int64_t[]){4, 3}, -1, 1);
    kn_node *m = kt_frozen(g, KN_F32, 2, (const int64_t[]){4, 3}, 0, 0);
    kn_node *v = kt_frozen(g, KN_F32, 1, (const int64_t[]){12}, 0, 0);
    return kn_graph_adam_update(g, p, grad, scalar(g, KN_F32, 1e-3), scalar(g, KN_F32, 1), m, v, 0.9, 0.999, 1e-8,
                                0, true);
}

static kn_node *adam_bad_beta(kn_graph *g)
{
    kn_node *p = kt_p(g, KN_F32, -1, 1, 4);
    kn_node *grad = kt_const(g, KN_F32, 1, (const int64_t[]){4}, -1, 1);
    kn_node *m = kt_frozen(g, KN_F32, 1, (const int64_t[]){4}, 0, 0);
    kn_node *v = kt_frozen(g, KN_F32, 1, (const int64_t[]){4}, 0, 0);
    return kn_graph_adam_update(g, p, grad, scalar(g, KN_F32, 1e-3), scalar(g, KN_F32, 1), m, v, 1.0, 0.999, 1e-8,
                                0, false);
}

const op_row kt_rows_optim[] = {
    {.op = KN_OP_SGD_UPDATE, .label = "sgd_update", .build = sgd_build, .n_variants = 4, .bad = sgd_bad,
     .bad_code = KN_ERR_ARG, .bad_msg = "expected a parameter", .training = true},
    {.op = KN_OP_SGD_UPDATE, .label = "sgd_update shape", .build = sgd_build, .n_variants = 1, .bad = sgd_bad_shape,
     .bad_code = KN_ERR_SHAPE, .bad_msg = "grad has shape [3,4], param [4,3]", .training = true},
    {.op = KN_OP_ADAM_UPDATE, .label = "adam_update", .build = adam_build, .n_variants = 4, .bad = adam_bad,
     .bad_code = KN_ERR_SHAPE, .bad_msg = "v has shape [12], param [4,3]", .training = true},
    {.op = KN_OP_ADAM_UPDATE, .label = "adam_update betas", .build = adam_build, .n_variants = 1,
     .bad = adam_bad_beta, .bad_code = KN_ERR_ARG, .bad_msg = "must be in [0, 1)", .training = true},
};
const int kt_n_rows_optim = sizeof kt_rows_optim / sizeof kt_rows_optim[0];
