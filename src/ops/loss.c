/* loss.c — the loss family: SOFTMAX_CE (fused, log-sum-exp stable) and its one-pass backward
 * SOFTMAX_CE_BWD, NLL and NLL_BWD, MSE, BCE_LOGITS (stable form) and KL_DIV (batchmean).
 * Builders, checks, gradient rules, FLOP counts and the float64 reference kernels.
 * Every loss returns a 0-d scalar with mean reduction (KL_DIV: sum / dim 0, PyTorch's
 * 'batchmean'). Labels out of [0, C) are run-time data errors (KN_ERR_RANGE, naming the
 * label, its row and the class count).
 * Not here: other reductions ('sum', 'none'), class weights, ignore_index, label smoothing,
 * logits of more than two dims (reshape to [N, C] first). MSE/BCE/KL gradients are built from
 * elementwise ops, so they have no backward op of their own.
 *
 * Attributes:
 *   SOFTMAX_CE, SOFTMAX_CE_BWD, NLL, MSE, BCE_LOGITS, KL_DIV: none.
 *   NLL_BWD (labels, dy): ai[0] = N (rows), ai[1] = C (classes); output [N, C]. */
#include <math.h>
#include <stdio.h>

#include "op_table.h"

/* ---- builders -------------------------------------------------------------------------- */
static kn_node *binary_loss(kn_graph *g, int op, kn_node *a, kn_node *b)
{
    kn_node *src[2] = {a, b};
    kn_node *n = kn__node_new(g, op, 2, src);
    if (!n)
        return NULL;
    return kn__node_finish(g, n);
}

kn_node *kn_graph_softmax_cross_entropy(kn_graph *g, kn_node *logits, kn_node *labels)
{
    return binary_loss(g, KN_OP_SOFTMAX_CE, logits, labels);
}

kn_node *kn_graph_nll_loss(kn_graph *g, kn_node *log_probs, kn_node *labels)
{
    return binary_loss(g, KN_OP_NLL, log_probs, labels);
}

kn_node *kn_graph_mse_loss(kn_graph *g, kn_node *pred, kn_node *target)
{
    return binary_loss(g, KN_OP_MSE, pred, target);
}

kn_node *kn_graph_bce_with_logits(kn_graph *g, kn_node *logits, kn_node *target)
{
    return binary_loss(g, KN_OP_BCE_LOGITS, logits, target);
}

kn_node *kn_graph_kl_div(kn_graph *g, kn_node *log_q, kn_node *target)
{
    return binary_loss(g, KN_OP_KL_DIV, log_q, target);
}

static kn_node *ce_bwd(kn_graph *g, kn_node *logits, kn_node *labels, kn_node *dy)
{
    kn_node *src[3] = {logits, labels, dy};
    kn_node *n = kn__node_new(g, KN_OP_SOFTMAX_CE_BWD, 3, src);
    if (!n)
        return NULL;
    return kn__node_finish(g, n);
}

static kn_node *nll_bwd(kn_graph *g, kn_node *labels, kn_node *dy, int64_t rows, int64_t classes)
{
    kn_node *src[2] = {labels, dy};
    kn_node *n = kn__node_new(g, KN_OP_NLL_BWD, 2, src);
    if (!n)
        return NULL;
    n->ai[0] = rows;
    n->ai[1] = classes;
    return kn__node_finish(g, n);
}

/* ---- checks ---------------------------------------------------------------------------- */
static bool is_index(kn_dtype dt) { return dt == KN_I32 || dt == KN_I64 || dt == KN_I8 || dt == KN_U8; }

/* labels: an integer vector of `rows` entries. */
static kn_status check_labels(kn_graph *g, const kn_node *n, const kn_node *labels, int64_t rows,
                              const char *rows_from)
{
    const char *name = kn__op_names[n->op];
    if (!is_index(labels->dtype))
        return kn__fail(g, KN_ERR_DTYPE, "%s: labels %s have dtype %s, expected an integer type (i32/i64)",
                        name, kn__shp(labels), kn_dtype_name(labels->dtype));
    if (labels->ndim != 1 || labels->shape[0] != rows)
        return kn__fail(g, KN_ERR_SHAPE, "%s: labels %s do not match %s (%lld rows), expected labels [%lld]",
                        name, kn__shp(labels), rows_from, (long long)rows, (long long)rows);
    return KN_OK;
}

/* (logits|log_probs [N, C], labels [N]) of SOFTMAX_CE, NLL and SOFTMAX_CE_BWD. */
static kn_status check_class_input(kn_graph *g, const kn_node *n)
{
    const char *name = kn__op_names[n->op];
    const kn_node *x = n->src[0];
    const char *what = n->op == KN_OP_NLL ? "log_probs" : "logits";
    if (!kn_dtype_is_float(x->dtype))
        return kn__fail(g, KN_ERR_DTYPE, "%s: %s %s have dtype %s, expected a floating type", name, what,
                        kn__shp(x), kn_dtype_name(x->dtype));
    if (x->ndim != 2 || x->shape[0] < 1 || x->shape[1] < 1)
        return kn__fail(g, KN_ERR_SHAPE, "%s: %s %s, expected [N, C] with N, C >= 1 (reshape to 2 dims first)",
                        name, what, kn__shp(x));
    char from[160];
    snprintf(from, sizeof from, "%s %s", what, kn__shp(x));
    return check_labels(g, n, n->src[1], x->shape[0], from);
}

/* A float gradient input dy holding one element, of dtype dt. */
static kn_status check_dy(kn_graph *g, const kn_node *n, const kn_node *dy, kn_dtype dt)
{
    const char *name = kn__op_names[n->op];
    if (dy->dtype != dt)
        return kn__fail(g, KN_ERR_DTYPE, "%s: dy has dtype %s, expected %s", name, kn_dtype_name(dy->dtype),
                        kn_dtype_name(dt));
    if (kn__numel(dy) != 1)
        return kn__fail(g, KN_ERR_SHAPE, "%s: dy %s is not a scalar, the loss is one value", name, kn__shp(dy));
    return KN_OK;
}

static kn_status check_class_loss(kn_graph *g, kn_node *n)
{
    kn_status st = check_class_input(g, n);
    if (st)
        return st;
    n->dtype = n->src[0]->dtype;
    n->ndim = 0;
    return KN_OK;
}

static kn_status check_ce_bwd(kn_graph *g, kn_node *n)
{
    kn_status st = check_class_input(g, n);
    if (st || (st = check_dy(g, n, n->src[2], n->src[0]->dtype)))
        return st;
    n->dtype = n->src[0]->dtype;
    kn__set_shape(n, 2, n->src[0]->shape);
    return KN_OK;
}

static kn_status check_nll_bwd(kn_graph *g, kn_node *n)
{
    const kn_node *labels = n->src[0], *dy = n->src[1];
    if (n->ai[0] < 1 || n->ai[1] < 1)
        return kn__fail(g, KN_ERR_ARG, "nll_loss_bwd: %lld rows and %lld classes, both must be >= 1",
                        (long long)n->ai[0], (long long)n->ai[1]);
    char from[64];
    snprintf(from, sizeof from, "the gradient [%lld,%lld]", (long long)n->ai[0], (long long)n->ai[1]);
    kn_status st = check_labels(g, n, labels, n->ai[0], from);
    if (st)
        return st;
    if (!kn_dtype_is_float(dy->dtype))
        return kn__fail(g, KN_ERR_DTYPE, "nll_loss_bwd: dy has dtype %s, expected a floating type",
                        kn_dtype_name(dy->dtype));
    if ((st = check_dy(g, n, dy, dy->dtype)))
        return st;
    n->dtype = dy->dtype;
    kn__set_shape(n, 2, (const int64_t[]){n->ai[0], n->ai[1]});
    return KN_OK;
}

/* (a, b) of MSE, BCE_LOGITS, KL_DIV: floats of one dtype and one non-empty shape. */
static kn_status check_pair(kn_graph *g, kn_node *n)
{
    static const char *const names[][2] = {{"pred", "target"}, {"logits", "target"}, {"log_q", "target"}};
    int k = n->op == KN_OP_MSE ? 0 : n->op == KN_OP_BCE_LOGITS ? 1 : 2;
    const char *name = kn__op_names[n->op];
    const kn_node *a = n->src[0], *b = n->src[1];
    if (!kn_dtype_is_float(a->dtype) || a->dtype != b->dtype)
        return kn__fail(g, KN_ERR_DTYPE, "%s: %s and %s have dtypes %s and %s, expected one floating type", name,
                        names[k][0], names[k][1], kn_dtype_name(a->dtype), kn_dtype_name(b->dtype));
    if (!kn__same_shape(a, b))
        return kn__fail(g, KN_ERR_SHAPE, "%s: %s %s and %s %s differ, they must have the same shape", name,
                        names[k][0], kn__shp(a), names[k][1], kn__shp(b));
    if (kn__numel(a) == 0)
        return kn__fail(g, KN_ERR_SHAPE, "%s: %s %s is empty, the mean needs at least one element", name,
                        names[k][0], kn__shp(a));
    n->dtype = a->dtype;
    n->ndim = 0;
    return KN_OK;
}

/* ---- gradients ------------------------------------------------------------------------- */
static kn_status grad_ce(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0])
        dx[0] = ce_bwd(g, n->src[0], n->src[1], dy);
    return kn_graph_status(g);
}

static kn_status grad_nll(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0])
        dx[0] = nll_bwd(g, n->src[1], dy, n->src[0]->shape[0], n->src[0]->shape[1]);
    return kn_graph_status(g);
}

/* d/dp mean (p−t)² = 2(p−t)/M; d/dt is its negative. */
static kn_status grad_mse(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    double m = (double)kn__numel(n->src[0]);
    kn_node *d = kn_graph_mul(g, kn_graph_scale(g, kn_graph_sub(g, n->src[0], n->src[1]), 2.0 / m, 0), dy);
    if (need[0])
        dx[0] = d;
    if (need[1])
        dx[1] = kn_graph_neg(g, d);
    return kn_graph_status(g);
}

/* d/dx = (σ(x) − t)/M; d/dt = −x/M. */
static kn_status grad_bce(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    kn_node *x = n->src[0], *t = n->src[1];
    double m = (double)kn__numel(x);
    if (need[0])
        dx[0] = kn_graph_mul(g, kn_graph_scale(g, kn_graph_sub(g, kn_graph_sigmoid(g, x), t), 1.0 / m, 0), dy);
    if (need[1])
        dx[1] = kn_graph_mul(g, kn_graph_scale(g, x, -1.0 / m, 0), dy);
    return kn_graph_status(g);
}

static double kl_rows(const kn_node *x) { return x->ndim ? (double)x->shape[0] : 1.0; }

/* d/dlog_q = −t/N; d/dt = (log t + 1 − log_q)/N (−inf where t = 0: targets are usually
 * constants, which need no gradient). */
static kn_status grad_kl(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    kn_node *lq = n->src[0], *t = n->src[1];
    double r = kl_rows(lq);
    if (need[0])
        dx[0] = kn_graph_mul(g, kn_graph_scale(g, t, -1.0 / r, 0), dy);
    if (need[1])
        dx[1] = kn_graph_mul(g, kn_graph_scale(g, kn_graph_sub(g, kn_graph_log(g, t), lq), 1.0 / r, 1.0 / r), dy);
    return kn_graph_status(g);
}

/* ---- FLOPs ----------------------------------------------------------------------------- */
/* Per logit: max, subtract, exp, add (and for the backward a scale and a multiply). */
static double flops_ce(const kn_node *n) { return 4.0 * (double)kn__numel(n->src[0]); }
static double flops_ce_bwd(const kn_node *n) { return 6.0 * (double)kn__numel(n); }
static double flops_nll(const kn_node *n) { return (double)n->src[0]->shape[0]; }
static double flops_nll_bwd(const kn_node *n) { return (double)n->ai[0]; }
static double flops_mse(const kn_node *n) { return 3.0 * (double)kn__numel(n->src[0]); }
static double flops_bce(const kn_node *n) { return 7.0 * (double)kn__numel(n->src[0]); }
static double flops_kl(const kn_node *n) { return 4.0 * (double)kn__numel(n->src[0]); }

/* ---- reference kernels (float64) ------------------------------------------------------- */
/* Validates every label of a class loss; KN_ERR_RANGE names the first bad one. */
static kn_status labels_ok(const kn__kargs *a, const void *labels, kn_dtype dt, int64_t rows, int64_t classes)
{
    for (int64_t i = 0; i < rows; i++) {
        int64_t l = kn__index_at(labels, dt, i);
        if (l < 0 || l >= classes)
            return kn__kerr(a, "%s: label %lld at row %lld is outside [0, %lld)", kn__op_names[a->node->op],
                            (long long)l, (long long)i, (long long)classes);
    }
    return KN_OK;
}

static double ref_lse(const double *x, int64_t c)
{
    double m = -INFINITY, s = 0;
    for (int64_t j = 0; j < c; j++)
        m = fmax(m, x[j]);
    for (int64_t j = 0; j < c; j++)
        s += exp(x[j] - m);
    return m + log(s);
}

/* SOFTMAX_CE: mean of logsumexp(row) − row[label]; NLL: mean of −row[label]. */
static kn_status ref_ce(const kn__kargs *a)
{
    const kn_node *n = a->node, *lab = n->src[1];
    const double *x = a->src[0];
    int64_t rows = n->src[0]->shape[0], c = n->src[0]->shape[1];
    kn_status st = labels_ok(a, a->src[1], lab->dtype, rows, c);
    if (st)
        return st;
    double sum = 0;
    for (int64_t i = 0; i < rows; i++) {
        const double *xi = x + i * c;
        double v = n->op == KN_OP_NLL ? -xi[kn__index_at(a->src[1], lab->dtype, i)]
                                      : ref_lse(xi, c) - xi[kn__index_at(a->src[1], lab->dtype, i)];
        sum += v;
    }
    *(double *)a->dst = sum / (double)rows;
    return KN_OK;
}

static kn_status ref_ce_bwd(const kn__kargs *a)
{
    const kn_node *n = a->node, *lab = n->src[1];
    const double *x = a->src[0];
    double *dx = a->dst;
    int64_t rows = n->shape[0], c = n->shape[1];
    kn_status st = labels_ok(a, a->src[1], lab->dtype, rows, c);
    if (st)
        return st;
    double gs = ((const double *)a->src[2])[0] / (double)rows;
    for (int64_t i = 0; i < rows; i++) {
        double lse = ref_lse(x + i * c, c);
        int64_t l = kn__index_at(a->src[1], lab->dtype, i);
        for (int64_t j = 0; j < c; j++)
            dx[i * c + j] = (exp(x[i * c + j] - lse) - (j == l ? 1.0 : 0.0)) * gs;
    }
    return KN_OK;
}

static kn_status ref_nll_bwd(const kn__kargs *a)
{
    const kn_node *n = a->node, *lab = n->src[0];
    double *dx = a->dst;
    int64_t rows = n->shape[0], c = n->shape[1];
    kn_status st = labels_ok(a, a->src[0], lab->dtype, rows, c);
    if (st)
        return st;
    double gs = ((const double *)a->src[1])[0] / (double)rows;
    for (int64_t i = 0; i < rows * c; i++)
        dx[i] = 0;
    for (int64_t i = 0; i < rows; i++)
        dx[i * c + kn__index_at(a->src[0], lab->dtype, i)] = -gs;
    return KN_OK;
}

static kn_status ref_pair(const kn__kargs *a)
{
    const kn_node *n = a->node;
    const double *p = a->src[0], *t = a->src[1];
    int64_t m = kn__numel(n->src[0]);
    double sum = 0;
    for (int64_t i = 0; i < m; i++) {
        double x = p[i], y = t[i];
        switch (n->op) {
        case KN_OP_MSE: sum += (x - y) * (x - y); break;
        case KN_OP_BCE_LOGITS: sum += fmax(x, 0) - x * y + log1p(exp(-fabs(x))); break;
        default: sum += y == 0 ? 0 : y * (log(y) - x); break; /* KL: x = log q, y = target */
        }
    }
    double div = n->op == KN_OP_KL_DIV ? kl_rows(n->src[0]) : (double)m;
    *(double *)a->dst = sum / div;
    return KN_OK;
}

const kn__op_info kn__opdef_SOFTMAX_CE = {
    .check = check_class_loss, .grad = grad_ce, .flops = flops_ce, .ref = ref_ce};
const kn__op_info kn__opdef_SOFTMAX_CE_BWD = {.check = check_ce_bwd, .flops = flops_ce_bwd, .ref = ref_ce_bwd};
const kn__op_info kn__opdef_NLL = {.check = check_class_loss, .grad = grad_nll, .flops = flops_nll, .ref = ref_ce};
const kn__op_info kn__opdef_NLL_BWD = {.check = check_nll_bwd, .flops = flops_nll_bwd, .ref = ref_nll_bwd};
const kn__op_info kn__opdef_MSE = {.check = check_pair, .grad = grad_mse, .flops = flops_mse, .ref = ref_pair};
const kn__op_info kn__opdef_BCE_LOGITS = {
    .check = check_pair, .grad = grad_bce, .flops = flops_bce, .ref = ref_pair};
const kn__op_info kn__opdef_KL_DIV = {.check = check_pair, .grad = grad_kl, .flops = flops_kl, .ref = ref_pair};
