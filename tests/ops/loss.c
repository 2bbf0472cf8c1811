/* loss.c — op test rows of the loss family: softmax cross-entropy (and its backward), NLL (and
 * its backward), MSE, BCE with logits and KL divergence, with odd sizes, size-1 batch and
 * class dims and i32/i64 labels. Two bad cases are run-time ones: labels outside [0, C) must
 * make both the f32 CPU kernel and the f64 reference fail with KN_ERR_RANGE and one message
 * (the helper copies that message into the graph, where the harness looks for it).
 * Not here: reductions other than the mean (kiln has none). */
#include <stdio.h>
#include <string.h>

#include "op_rows.h"

typedef struct cls_case {
    int64_t n, c;
    kn_dtype label_dt;
} cls_case;

static const cls_case cls[] = {
    {7, 13, KN_I64},
    {1, 65, KN_I32}, /* one row */
    {13, 1, KN_I64}, /* one class: loss 0, gradient 0 */
    {65, 7, KN_I32},
    {300, 130, KN_I64}, /* large enough for the CPU kernels' OpenMP path */
};
#define N_CLS (int)(sizeof cls / sizeof cls[0])

static kn_node *labels_for(kn_graph *g, const cls_case *c)
{
    return kt_labels(g, c->label_dt, 1, (const int64_t[]){c->n}, c->c);
}

static kn_node *scalar_dy(kn_graph *g, kn_dtype dt) { return kt_const(g, dt, 0, (const int64_t[]){1}, 0.5, 2); }

static kn_node *build_ce(kn_graph *g, kn_dtype dt, int v)
{
    const cls_case *c = &cls[v];
    kn_node *x = kt_p(g, dt, -3, 3, c->n, c->c);
    return kn_graph_softmax_cross_entropy(g, x, labels_for(g, c));
}

static kn_node *ce_bwd_node(kn_graph *g, kn_node *x, kn_node *labels, kn_node *dy)
{
    kn_node *src[3] = {x, labels, dy};
    return kn__node_finish(g, kn__node_new(g, KN_OP_SOFTMAX_CE_BWD, 3, src));
}

static kn_node *build_ce_bwd(kn_graph *g, kn_dtype dt, int v)
{
    const cls_case *c = &cls[v];
    kn_node *x = kt_const(g, dt, 2, (const int64_t[]){c->n, c->c}, -3, 3);
    kn_node *labels = labels_for(g, c);
    return ce_bwd_node(g, x, labels, scalar_dy(g, dt));
}

static kn_node *build_nll(kn_graph *g, kn_dtype dt, int v)
{
    const cls_case *c = &cls[v];
    kn_node *x = kt_p(g, dt, -4, -0.1, c->n, c->c);
    return kn_graph_nll_loss(g, x, labels_for(g, c));
}

static kn_node *nll_bwd_node(kn_graph *g, kn_node *labels, kn_node *dy, int64_t n, int64_t c)
{
    kn_node *src[2] = {labels, dy};
    kn_node *node = kn__node_new(g, KN_OP_NLL_BWD, 2, src);
    if (!node)
        return NULL;
    node->ai[0] = n;
    node->ai[1] = c;
    return kn__node_finish(g, node);
}

static kn_node *build_nll_bwd(kn_graph *g, kn_dtype dt, int v)
{
    const cls_case *c = &cls[v];
    kn_node *labels = labels_for(g, c);
    return nll_bwd_node(g, labels, scalar_dy(g, dt), c->n, c->c);
}

/* Elementwise losses: shapes with odd sizes, size-1 dims and 1-d; in some variants the target
 * is a constant (no gradient), in others a trainable param (its gradient is checked too). */
typedef struct pair_case {
    int ndim;
    int64_t shape[3];
    bool target_trainable;
} pair_case;

static const pair_case pairs[] = {
    {2, {7, 13}, true},
    {1, {65}, false},
    {3, {1, 1, 7}, true},
    {2, {13, 1}, false},
    {0, {0}, true},          /* 0-d */
    {2, {181, 200}, false},  /* 5 partial-sum blocks, parallel */
};
#define N_PAIRS (int)(sizeof pairs / sizeof pairs[0])

static kn_node *target_for(kn_graph *g, kn_dtype dt, const pair_case *c, double lo, double hi)
{
    return c->target_trainable ? kt_param(g, dt, c->ndim, c->shape, lo, hi) : kt_const(g, dt, c->ndim, c->shape, lo, hi);
}

static kn_node *build_mse(kn_graph *g, kn_dtype dt, int v)
{
    const pair_case *c = &pairs[v];
    kn_node *p = kt_param(g, dt, c->ndim, c->shape, -2, 2);
    return kn_graph_mse_loss(g, p, target_for(g, dt, c, -2, 2));
}

static kn_node *build_bce(kn_graph *g, kn_dtype dt, int v)
{
    const pair_case *c = &pairs[v];
    kn_node *x = kt_param(g, dt, c->ndim, c->shape, -4, 4);
    return kn_graph_bce_with_logits(g, x, target_for(g, dt, c, 0, 1));
}

static kn_node *build_kl(kn_graph *g, kn_dtype dt, int v)
{
    const pair_case *c = &pairs[v];
    kn_node *lq = kt_param(g, dt, c->ndim, c->shape, -4, -0.1);
    return kn_graph_kl_div(g, lq, target_for(g, dt, c, 0.1, 1));
}

/* ---- bad cases ------------------------------------------------------------------------- */
/* Runs `out` on the CPU (f32 kernels) and reference backends. Both must fail with the same
 * status and message; that message is recorded in g and NULL returned, as from a bad call.
 * Otherwise g gets KN_ERR_MISUSE naming both outcomes (the harness then reports it). */
static kn_node *run_both(kn_graph *g, kn_node *out)
{
    if (!out)
        return NULL;
    kn_status st[2];
    char msg[2][512];
    for (int be = 0; be < 2; be++) {
        kn_plan *p = NULL;
        kn_plan_opts o = {.backend = be ? KN_BACKEND_REF : KN_BACKEND_CPU};
        st[be] = kn_plan_compile(&p, g, &out, 1, &o);
        snprintf(msg[be], sizeof msg[be], "%s", st[be] ? kn_plan_last_error() : "");
        if (!st[be]) {
            st[be] = kn_plan_run(p);
            snprintf(msg[be], sizeof msg[be], "%s", kn_plan_error(p));
        }
        kn_plan_free(p);
    }
    if (st[0] == st[1] && strcmp(msg[0], msg[1]) == 0 && st[0] != KN_OK)
        kn__fail(g, st[0], "%s", msg[0]);
    else
        kn__fail(g, KN_ERR_MISUSE, "CPU run: %s \"%s\"; reference run: %s \"%s\"", kn_status_name(st[0]), msg[0],
                 kn_status_name(st[1]), msg[1]);
    return NULL;
}

static kn_node *bad_ce(kn_graph *g)
{
    kn_node *x = kt_p(g, KN_F32, -1, 1, 4, 5);
    return kn_graph_softmax_cross_entropy(g, x, kt_labels(g, KN_I64, 1, (const int64_t[]){3}, 5));
}

/* Label 5 of 5 classes in row 2, through the gradient of softmax_cross_entropy. */
static kn_node *bad_ce_bwd(kn_graph *g)
{
    kn_node *x = kt_p(g, KN_F32, -1, 1, 4, 5);
    kn_node *labels = kn_graph_const(g, KN_I64, 1, (const int64_t[]){4}, (const int64_t[]){0, 3, 5, 1});
    kn_node *loss = kn_graph_softmax_cross_entropy(g, x, labels), *dx = NULL;
    if (!loss || kn_graph_backward(g, loss, &x, 1, &dx) || !dx)
        return loss;
    return run_both(g, dx);
}

static kn_node *bad_nll(kn_graph *g)
{
    kn_node *x = kt_p(g, KN_F32, -2, -1, 3, 5);
    kn_node *labels = kn_graph_const(g, KN_I32, 1, (const int64_t[]){3}, (const int32_t[]){4, -1, 0});
    return run_both(g, kn_graph_nll_loss(g, x, labels));
}

static kn_node *bad_nll_bwd(kn_graph *g)
{
    return nll_bwd_node(g, kt_labels(g, KN_I64, 1, (const int64_t[]){3}, 5), kn_graph_scalar(g, KN_F32, 1), 4, 5);
}

static kn_node *bad_mse(kn_graph *g)
{
    return kn_graph_mse_loss(g, kt_p(g, KN_F32, 0, 1, 3, 4), kt_p(g, KN_F32, 0, 1, 4, 3));
}

static kn_node *bad_bce(kn_graph *g)
{
    return kn_graph_bce_with_logits(g, kt_p(g, KN_F32, 0, 1, 3, 4), kt_p(g, KN_F64, 0, 1, 3, 4));
}

static kn_node *bad_kl(kn_graph *g)
{
    const int64_t empty[2] = {0, 3};
    return kn_graph_kl_div(g, kn_graph_input(g, "log_q", KN_F32, 2, empty), kn_graph_input(g, "t", KN_F32, 2, empty));
}

const op_row kt_rows_loss[] = {
    {.op = KN_OP_SOFTMAX_CE, .label = "softmax_cross_entropy", .build = build_ce, .n_variants = N_CLS,
     .bad = bad_ce, .bad_code = KN_ERR_SHAPE,
     .bad_msg = "softmax_cross_entropy: labels [3] do not match logits [4,5] (4 rows)"},
    {.op = KN_OP_SOFTMAX_CE_BWD, .label = "softmax_cross_entropy_bwd", .build = build_ce_bwd, .n_variants = N_CLS,
     .bad = bad_ce_bwd, .bad_code = KN_ERR_RANGE,
     .bad_msg = "softmax_cross_entropy_bwd: label 5 at row 2 is outside [0, 5)"},
    {.op = KN_OP_NLL, .label = "nll_loss", .build = build_nll, .n_variants = N_CLS, .bad = bad_nll,
     .bad_code = KN_ERR_RANGE, .bad_msg = "nll_loss: label -1 at row 1 is outside [0, 5)"},
    {.op = KN_OP_NLL_BWD, .label = "nll_loss_bwd", .build = build_nll_bwd, .n_variants = N_CLS, .bad = bad_nll_bwd,
     .bad_code = KN_ERR_SHAPE, .bad_msg = "nll_loss_bwd: labels [3] do not match the gradient [4,5] (4 rows)"},
    {.op = KN_OP_MSE, .label = "mse_loss", .build = build_mse, .n_variants = N_PAIRS, .bad = bad_mse,
     .bad_code = KN_ERR_SHAPE, .bad_msg = "mse_loss: pred [3,4] and target [4,3] differ"},
    {.op = KN_OP_BCE_LOGITS, .label = "bce_with_logits", .build = build_bce, .n_variants = N_PAIRS, .bad = bad_bce,
     .bad_code = KN_ERR_DTYPE, .bad_msg = "bce_with_logits: logits and target have dtypes f32 and f64"},
    {.op = KN_OP_KL_DIV, .label = "kl_div", .build = build_kl, .n_variants = N_PAIRS, .bad = bad_kl,
     .bad_code = KN_ERR_SHAPE, .bad_msg = "kl_div: log_q [0,3] is empty"},
};
const int kt_n_rows_loss = sizeof kt_rows_loss / sizeof kt_rows_loss[0];
