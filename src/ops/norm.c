/* norm.c — batch normalisation and layer normalisation, with their backward ops.
 * Batch norm follows PyTorch exactly: a training plan normalises with the batch statistics
 * (biased variance) and updates the running ones in place, r = (1 − m)·r + m·stat with the
 * UNBIASED batch variance; an inference plan uses the running statistics. Layer norm
 * normalises over the last norm_dims dims with an optional elementwise affine.
 * Not here: group/instance/RMS norm, momentum = None (cumulative average), and an
 * inference-mode batch-norm gradient: the gradient rule is always the training-mode one
 * (BATCH_NORM_BWD has no access to the running statistics).
 *
 * Attributes:
 *   BATCH_NORM(x [N,C,...], gamma, beta, running_mean, running_var [C]):
 *       af[0] momentum in [0, 1], af[1] eps > 0. The running statistics must be frozen params.
 *   BATCH_NORM_BWD(x, gamma, dy): ai[0] which output: 0 dx [x's shape], 1 dgamma [C],
 *       2 dbeta [C]; af[1] eps. Batch mean/variance are recomputed from x.
 *   LAYER_NORM(x, [gamma], [beta]): ai[0] norm_dims (1..ndim), ai[1] 1 if gamma is present,
 *       ai[2] 1 if beta is present (present ones follow x in that order); af[0] eps > 0.
 *   LAYER_NORM_BWD(x, dy, [gamma]): ai[0] norm_dims, ai[1] which (0 dx, 1 dgamma, 2 dbeta,
 *       the last two of the normalised shape); af[0] eps. gamma only matters for dx. */
#include <math.h>

#include "op_table.h"

/* ---- checks ---- */
static kn_status bn_check(kn_graph *g, kn_node *n)
{
    kn_node *x = n->src[0];
    static const char *const names[] = {"x", "gamma", "beta", "running_mean", "running_var"};
    kn_status st = kn__check_float(g, n, 0);
    if (!st)
        st = kn__check_same_dtype(g, n);
    if (st)
        return st;
    if (x->ndim < 2)
        return kn__fail(g, KN_ERR_SHAPE, "batch_norm: input %s has %d dimensions, expected [N,C,...] (at least 2)",
                        kn__shp(x), x->ndim);
    for (int i = 1; i < 5; i++) {
        kn_node *s = n->src[i];
        if ((st = kn__check_float(g, n, i)))
            return st;
        if (s->ndim != 1 || s->shape[0] != x->shape[1])
            return kn__fail(g, KN_ERR_SHAPE, "batch_norm: %s has shape %s, input %s has %lld channels, expected [%lld]",
                            names[i], kn__shp(s), kn__shp(x), (long long)x->shape[1], (long long)x->shape[1]);
    }
    /* A frozen param normally; a graph input is accepted too (its plan-owned buffer is then what
     * training updates), which lets the model parser's shape probe allocate no parameters. */
    for (int i = 3; i < 5; i++)
        if ((n->src[i]->op != KN_OP_PARAM && n->src[i]->op != KN_OP_INPUT) || (n->src[i]->flags & KN_NODE_TRAINABLE))
            return kn__fail(g, KN_ERR_ARG,
                            "batch_norm: %s must be a frozen parameter (kn_graph_param, trainable = false): "
                            "training plans update it in place",
                            names[i]);
    double m = n->af[0], eps = n->af[1];
    if (!(m >= 0 && m <= 1) || !(eps > 0))
        return kn__fail(g, KN_ERR_ARG, "batch_norm: momentum %g must be in [0, 1] and eps %g > 0", m, eps);
    n->dtype = x->dtype;
    kn__set_shape(n, x->ndim, x->shape);
    return KN_OK;
}

static kn_status bn_bwd_check(kn_graph *g, kn_node *n)
{
    kn_node *x = n->src[0], *gamma = n->src[1], *dy = n->src[2];
    kn_status st = kn__check_float(g, n, 0);
    if (!st)
        st = kn__check_float(g, n, 1);
    if (!st)
        st = kn__check_float(g, n, 2);
    if (!st)
        st = kn__check_same_dtype(g, n);
    if (st)
        return st;
    if (x->ndim < 2)
        return kn__fail(g, KN_ERR_SHAPE, "batch_norm_bwd: input %s has %d dimensions, expected [N,C,...]", kn__shp(x),
                        x->ndim);
    if (gamma->ndim != 1 || gamma->shape[0] != x->shape[1])
        return kn__fail(g, KN_ERR_SHAPE, "batch_norm_bwd: gamma has shape %s, input %s expects [%lld]",
                        kn__shp(gamma), kn__shp(x), (long long)x->shape[1]);
    if (!kn__same_shape(dy, x))
        return kn__fail(g, KN_ERR_SHAPE, "batch_norm_bwd: dy has shape %s, expected the input's %s", kn__shp(dy),
                        kn__shp(x));
    if (n->ai[0] < 0 || n->ai[0] > 2 || !(n->af[1] > 0))
        return kn__fail(g, KN_ERR_ARG,
                        "batch_norm_bwd: output %lld must be 0 (dx), 1 (dgamma) or 2 (dbeta), eps %g > 0",
                        (long long)n->ai[0], n->af[1]);
    n->dtype = x->dtype;
    if (n->ai[0] == 0)
        kn__set_shape(n, x->ndim, x->shape);
    else
        kn__set_shape(n, 1, &x->shape[1]);
    return KN_OK;
}

/* gamma/beta (when given) have the shape of x's last norm_dims dims. */
static kn_status ln_check_affine(kn_graph *g, const kn_node *n, const kn_node *x, const kn_node *p, const char *what)
{
    int nd = (int)n->ai[0];
    bool ok = p->ndim == nd;
    for (int i = 0; ok && i < nd; i++)
        ok = p->shape[i] == x->shape[x->ndim - nd + i];
    if (!ok) {
        char b[128];
        return kn__fail(g, KN_ERR_SHAPE, "%s: %s has shape %s, input %s normalises over its last %d dims %s",
                        kn__op_names[n->op], what, kn__shp(p), kn__shp(x), nd,
                        kn__shape_str(nd, x->shape + x->ndim - nd, b, sizeof b));
    }
    return KN_OK;
}

static kn_status ln_check_common(kn_graph *g, const kn_node *n, double eps)
{
    kn_node *x = n->src[0];
    kn_status st = KN_OK;
    for (int i = 0; i < n->nsrc && !st; i++)
        st = kn__check_float(g, n, i);
    if (!st)
        st = kn__check_same_dtype(g, n);
    if (st)
        return st;
    if (n->ai[0] < 1 || n->ai[0] > x->ndim)
        return kn__fail(g, KN_ERR_ARG, "%s: norm_dims %lld for input %s, must be in [1, %d]", kn__op_names[n->op],
                        (long long)n->ai[0], kn__shp(x), x->ndim);
    if (!(eps > 0))
        return kn__fail(g, KN_ERR_ARG, "%s: eps %g must be > 0", kn__op_names[n->op], eps);
    return KN_OK;
}

static kn_status ln_check(kn_graph *g, kn_node *n)
{
    kn_status st = ln_check_common(g, n, n->af[0]);
    if (st)
        return st;
    if (n->nsrc != 1 + (n->ai[1] != 0) + (n->ai[2] != 0))
        return kn__fail(g, KN_ERR_ARG, "layer_norm: %d inputs but gamma %s and beta %s", n->nsrc,
                        n->ai[1] ? "given" : "absent", n->ai[2] ? "given" : "absent");
    for (int i = 1; i < n->nsrc; i++)
        if ((st = ln_check_affine(g, n, n->src[0], n->src[i], i == 1 && n->ai[1] ? "gamma" : "beta")))
            return st;
    n->dtype = n->src[0]->dtype;
    kn__set_shape(n, n->src[0]->ndim, n->src[0]->shape);
    return KN_OK;
}

static kn_status ln_bwd_check(kn_graph *g, kn_node *n)
{
    kn_node *x = n->src[0], *dy = n->src[1];
    kn_status st = ln_check_common(g, n, n->af[0]);
    if (st)
        return st;
    if (!kn__same_shape(dy, x))
        return kn__fail(g, KN_ERR_SHAPE, "layer_norm_bwd: dy has shape %s, expected the input's %s", kn__shp(dy),
                        kn__shp(x));
    if (n->nsrc == 3 && (st = ln_check_affine(g, n, x, n->src[2], "gamma")))
        return st;
    if (n->ai[1] < 0 || n->ai[1] > 2)
        return kn__fail(g, KN_ERR_ARG, "layer_norm_bwd: output %lld must be 0 (dx), 1 (dgamma) or 2 (dbeta)",
                        (long long)n->ai[1]);
    n->dtype = x->dtype;
    int nd = (int)n->ai[0];
    if (n->ai[1] == 0)
        kn__set_shape(n, x->ndim, x->shape);
    else
        kn__set_shape(n, nd, x->shape + x->ndim - nd);
    return KN_OK;
}

/* ---- builders ---- */
kn_node *kn_graph_batch_norm(kn_graph *g, kn_node *x, kn_node *gamma, kn_node *beta, kn_node *running_mean,
                             kn_node *running_var, double momentum, double eps)
{
    kn_node *s[5] = {x, gamma, beta, running_mean, running_var};
    kn_node *n = kn__node_new(g, KN_OP_BATCH_NORM, 5, s);
    if (!n)
        return NULL;
    n->af[0] = momentum;
    n->af[1] = eps;
    return kn__node_finish(g, n);
}

kn_node *kn_graph_layer_norm(kn_graph *g, kn_node *x, int norm_dims, kn_node *gamma, kn_node *beta, double eps)
{
    kn_node *s[3] = {x};
    int k = 1;
    if (gamma)
        s[k++] = gamma;
    if (beta)
        s[k++] = beta;
    kn_node *n = kn__node_new(g, KN_OP_LAYER_NORM, k, s);
    if (!n)
        return NULL;
    n->ai[0] = norm_dims;
    n->ai[1] = gamma != NULL;
    n->ai[2] = beta != NULL;
    n->af[0] = eps;
    return kn__node_finish(g, n);
}

static kn_node *bn_bwd(kn_graph *g, const kn_node *n, kn_node *dy, int which)
{
    kn_node *s[3] = {n->src[0], n->src[1], dy};
    kn_node *b = kn__node_new(g, KN_OP_BATCH_NORM_BWD, 3, s);
    if (!b)
        return NULL;
    b->ai[0] = which;
    b->af[1] = n->af[1];
    return kn__node_finish(g, b);
}

static kn_node *ln_bwd(kn_graph *g, const kn_node *n, kn_node *dy, int which)
{
    kn_node *s[3] = {n->src[0], dy, n->ai[1] ? n->src[1] : NULL};
    kn_node *b = kn__node_new(g, KN_OP_LAYER_NORM_BWD, s[2] && which == 0 ? 3 : 2, s);
    if (!b)
        return NULL;
    b->ai[0] = n->ai[0];
    b->ai[1] = which;
    b->af[0] = n->af[0];
    return kn__node_finish(g, b);
}

/* ---- gradients ---- */
static kn_status bn_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    for (int i = 0; i < 3; i++)
        if (need[i])
            dx[i] = bn_bwd(g, n, dy, i);
    return kn_graph_status(g); /* running statistics have no gradient */
}

static kn_status ln_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0])
        dx[0] = ln_bwd(g, n, dy, 0);
    int k = 1;
    if (n->ai[1] && need[k++])
        dx[1] = ln_bwd(g, n, dy, 1);
    if (n->ai[2] && need[k])
        dx[k] = ln_bwd(g, n, dy, 2);
    return kn_graph_status(g);
}

/* ---- FLOPs: mean, variance, normalise (+ affine) ≈ 8 per element; backward ≈ 10 ---- */
static double bn_flops(const kn_node *n) { return 8.0 * (double)kn__numel(n->src[0]); }
static double bwd_flops(const kn_node *n) { return 10.0 * (double)kn__numel(n->src[0]); }

/* ---- reference kernels (float64) ---- */
/* x [N, C, S...] as N × C × S. */
static void bn_dims(const kn_node *x, int64_t *N, int64_t *C, int64_t *S)
{
    *N = x->shape[0];
    *C = x->shape[1];
    int64_t nc = *N * *C;
    *S = nc > 0 ? kn__numel(x) / nc : 0;
}

static void bn_stats(const double *x, int64_t N, int64_t C, int64_t S, int64_t c, double *mean, double *var)
{
    double s = 0, q = 0, M = (double)(N * S);
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < S; j++)
            s += x[(i * C + c) * S + j];
    *mean = M > 0 ? s / M : 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < S; j++) {
            double d = x[(i * C + c) * S + j] - *mean;
            q += d * d;
        }
    *var = M > 0 ? q / M : 0;
}

static kn_status bn_ref(const kn__kargs *a)
{
    const kn_node *n = a->node;
    int64_t N, C, S;
    bn_dims(n->src[0], &N, &C, &S);
    const double *x = a->src[0], *gamma = a->src[1], *beta = a->src[2];
    double *rmean = a->src[3], *rvar = a->src[4], *y = a->dst;
    double m = n->af[0], eps = n->af[1];
    if (a->training && N * S < 2)
        return kn__kerr(a, "batch_norm: a training plan needs more than 1 value per channel, input %s has %lld",
                        kn__shp(n->src[0]), (long long)(N * S));
    for (int64_t c = 0; c < C; c++) {
        double mean, var;
        if (a->training) {
            bn_stats(x, N, C, S, c, &mean, &var);
            rmean[c] = (1 - m) * rmean[c] + m * mean;
            rvar[c] = (1 - m) * rvar[c] + m * var * (double)(N * S) / (double)(N * S - 1);
        } else {
            mean = rmean[c];
            var = rvar[c];
        }
        double istd = 1.0 / sqrt(var + eps);
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < S; j++) {
                int64_t k = (i * C + c) * S + j;
                y[k] = gamma[c] * (x[k] - mean) * istd + beta[c];
            }
    }
    return KN_OK;
}

/* Training-mode gradients with M = N·S, x̂ = (x − μ)/σ:
 * dβ = Σ dy, dγ = Σ dy·x̂, dx = γ/(σM)·(M·dy − dβ − x̂·dγ). */
static kn_status bn_bwd_ref(const kn__kargs *a)
{
    const kn_node *n = a->node;
    int64_t N, C, S;
    bn_dims(n->src[0], &N, &C, &S);
    const double *x = a->src[0], *gamma = a->src[1], *dy = a->src[2];
    double *out = a->dst, M = (double)(N * S);
    for (int64_t c = 0; c < C; c++) {
        double mean, var, sdy = 0, sdyx = 0;
        bn_stats(x, N, C, S, c, &mean, &var);
        double istd = 1.0 / sqrt(var + n->af[1]);
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < S; j++) {
                int64_t k = (i * C + c) * S + j;
                sdy += dy[k];
                sdyx += dy[k] * (x[k] - mean) * istd;
            }
        if (n->ai[0] == 1)
            out[c] = sdyx;
        else if (n->ai[0] == 2)
            out[c] = sdy;
        else
            for (int64_t i = 0; i < N; i++)
                for (int64_t j = 0; j < S; j++) {
                    int64_t k = (i * C + c) * S + j;
                    double xh = (x[k] - mean) * istd;
                    out[k] = gamma[c] * istd / M * (M * dy[k] - sdy - xh * sdyx);
                }
    }
    return KN_OK;
}

/* x as R rows of D (the normalised dims). */
static void ln_dims(const kn_node *n, int64_t *R, int64_t *D)
{
    const kn_node *x = n->src[0];
    *D = 1;
    for (int i = x->ndim - (int)n->ai[0]; i < x->ndim; i++)
        *D *= x->shape[i];
    *R = *D ? kn__numel(x) / *D : 0;
}

static void ln_stats(const double *row, int64_t D, double eps, double *mean, double *istd)
{
    double s = 0, q = 0;
    for (int64_t j = 0; j < D; j++)
        s += row[j];
    *mean = s / (double)D;
    for (int64_t j = 0; j < D; j++)
        q += (row[j] - *mean) * (row[j] - *mean);
    *istd = 1.0 / sqrt(q / (double)D + eps);
}

static kn_status ln_ref(const kn__kargs *a)
{
    const kn_node *n = a->node;
    int64_t R, D;
    ln_dims(n, &R, &D);
    const double *x = a->src[0];
    const double *gamma = n->ai[1] ? a->src[1] : NULL, *beta = n->ai[2] ? a->src[n->ai[1] ? 2 : 1] : NULL;
    double *y = a->dst;
    for (int64_t r = 0; r < R; r++) {
        double mean, istd;
        ln_stats(x + r * D, D, n->af[0], &mean, &istd);
        for (int64_t j = 0; j < D; j++) {
            double v = (x[r * D + j] - mean) * istd;
            y[r * D + j] = v * (gamma ? gamma[j] : 1.0) + (beta ? beta[j] : 0.0);
        }
    }
    return KN_OK;
}

/* Per row, with g = dy·γ: dx = (g − mean(g) − x̂·mean(g·x̂))/σ; dγ = Σ_rows dy·x̂, dβ = Σ_rows dy. */
static kn_status ln_bwd_ref(const kn__kargs *a)
{
    const kn_node *n = a->node;
    int64_t R, D;
    ln_dims(n, &R, &D);
    const double *x = a->src[0], *dy = a->src[1], *gamma = n->nsrc == 3 ? a->src[2] : NULL;
    double *out = a->dst;
    int which = (int)n->ai[1];
    if (which != 0)
        for (int64_t j = 0; j < D; j++)
            out[j] = 0;
    for (int64_t r = 0; r < R; r++) {
        const double *xr = x + r * D, *dyr = dy + r * D;
        double mean, istd, mg = 0, mgx = 0;
        ln_stats(xr, D, n->af[0], &mean, &istd);
        for (int64_t j = 0; j < D; j++) {
            double xh = (xr[j] - mean) * istd, gj = dyr[j] * (gamma ? gamma[j] : 1.0);
            if (which == 1)
                out[j] += dyr[j] * xh;
            else if (which == 2)
                out[j] += dyr[j];
            mg += gj;
            mgx += gj * xh;
        }
        if (which != 0)
            continue;
        mg /= (double)D;
        mgx /= (double)D;
        for (int64_t j = 0; j < D; j++) {
            double xh = (xr[j] - mean) * istd, gj = dyr[j] * (gamma ? gamma[j] : 1.0);
            out[r * D + j] = (gj - mg - xh * mgx) * istd;
        }
    }
    return KN_OK;
}

const kn__op_info kn__opdef_BATCH_NORM = {.check = bn_check, .grad = bn_grad, .flops = bn_flops, .ref = bn_ref};
const kn__op_info kn__opdef_BATCH_NORM_BWD = {.check = bn_bwd_check, .flops = bwd_flops, .ref = bn_bwd_ref};
const kn__op_info kn__opdef_LAYER_NORM = {.check = ln_check, .grad = ln_grad, .flops = bn_flops, .ref = ln_ref};
const kn__op_info kn__opdef_LAYER_NORM_BWD = {.check = ln_bwd_check, .flops = bwd_flops, .ref = ln_bwd_ref};
