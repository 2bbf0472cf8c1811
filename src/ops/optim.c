/* optim.c — optimizer updates as graph nodes: SGD (momentum, Nesterov, weight decay) and
 * Adam/AdamW, with exactly PyTorch's torch.optim.SGD / Adam / AdamW arithmetic (dampening 0,
 * no amsgrad, no maximize). An update node writes its parameter and its state buffers in
 * place when the plan runs (flags ALIAS|MUTATES|UPDATE|NONDIFF): its output is the updated
 * parameter, sharing the parameter's storage; a plan runs it when it is among the plan's
 * outputs. lr (and t for Adam) are single-element inputs, so a schedule changes them per
 * step without recompiling.
 *
 * Not here: the optimizer objects that create state buffers and walk a model's parameters,
 * schedules, gradient clipping, loss scaling (src/optim/ when written); the f32 CPU kernels
 * (src/backend/cpu/optim.c).
 *
 * Inputs and attribute slots:
 *   SGD_UPDATE  (param, grad, lr [1 element], [momentum_buf])
 *               af[0] = momentum, af[1] = weight_decay, ai[0] = nesterov
 *               g = grad + wd·p;  buf = momentum·buf + g;  g = nesterov ? g + momentum·buf : buf;
 *               p -= lr·g.  The buffer starts at zero (a fresh frozen param), so the first step
 *               gives buf = g, which is what PyTorch's "buf = g on the first step" does.
 *   ADAM_UPDATE (param, grad, lr [1 element], t [1 element, the 1-based step], m, v)
 *               af[0] = beta1, af[1] = beta2, af[2] = eps, af[3] = weight_decay, ai[0] = adamw
 *               Adam: g = grad + wd·p;  AdamW: p *= 1 − lr·wd;  then
 *               m = b1·m + (1−b1)·g;  v = b2·v + (1−b2)·g²;
 *               p -= (lr / (1 − b1^t)) · m / (sqrt(v) / sqrt(1 − b2^t) + eps).
 * param, momentum_buf, m and v must be parameters (kn_graph_param; the state ones frozen and
 * zero-initialised), distinct, all of the param's shape and dtype; grad too. A run with
 * t < 1 fails with KN_ERR_RANGE.
 *
 * A non-finite lr skips the update: parameter and state stay exactly as they were. The
 * trainer feeds lr + 0·Σg², which is NaN as soon as any gradient is NaN or infinite, so a
 * step with non-finite gradients changes nothing (the numerical guard; also what dynamic
 * loss scaling needs). */
#include <math.h>
#include <string.h>

#include "op_table.h"

/* ---- shared checks ---------------------------------------------------------------------- */
static kn_status check_state(kn_graph *g, const kn_node *n, int i, const char *what, bool must_be_param)
{
    const char *op = kn__op_names[n->op];
    const kn_node *p = n->src[0], *x = n->src[i];
    if (must_be_param && x->op != KN_OP_PARAM)
        return kn__fail(g, KN_ERR_ARG,
                        "%s: %s is a %s node %s, expected a parameter (kn_graph_param) it can update in place",
                        op, what, kn__op_names[x->op], kn__shp(x));
    if (i > 0 && must_be_param)
        for (int k = 0; k < i; k++)
            if (n->src[k] == x)
                return kn__fail(g, KN_ERR_ARG, "%s: %s is the same node as input %d; state buffers must be distinct",
                                op, what, k);
    if (x->dtype != p->dtype)
        return kn__fail(g, KN_ERR_DTYPE, "%s: %s has dtype %s, param %s; they must match", op, what,
                        kn_dtype_name(x->dtype), kn_dtype_name(p->dtype));
    if (!kn__same_shape(x, p))
        return kn__fail(g, KN_ERR_SHAPE, "%s: %s has shape %s, param %s; they must match", op, what, kn__shp(x),
                        kn__shp(p));
    return KN_OK;
}

static kn_status check_scalar(kn_graph *g, const kn_node *n, int i, const char *what)
{
    const kn_node *x = n->src[i];
    if (!kn_dtype_is_float(x->dtype))
        return kn__fail(g, KN_ERR_DTYPE, "%s: %s has dtype %s, expected a floating type", kn__op_names[n->op], what,
                        kn_dtype_name(x->dtype));
    if (kn__numel(x) != 1)
        return kn__fail(g, KN_ERR_SHAPE, "%s: %s has shape %s, expected a single element (a 0-d input)",
                        kn__op_names[n->op], what, kn__shp(x));
    return KN_OK;
}

static kn_status check_param(kn_graph *g, kn_node *n)
{
    const kn_node *p = n->src[0];
    kn_status st;
    if ((st = check_state(g, n, 0, "param", true)))
        return st;
    if (!kn_dtype_is_float(p->dtype))
        return kn__fail(g, KN_ERR_DTYPE, "%s: param has dtype %s, expected a floating type", kn__op_names[n->op],
                        kn_dtype_name(p->dtype));
    if ((st = check_state(g, n, 1, "grad", false)) || (st = check_scalar(g, n, 2, "lr")))
        return st;
    if (n->src[1] == p)
        return kn__fail(g, KN_ERR_ARG, "%s: grad is the param node itself", kn__op_names[n->op]);
    n->dtype = p->dtype;
    kn__set_shape(n, p->ndim, p->shape);
    return KN_OK;
}

/* Where a reference kernel also has to leave the new parameter: on converted copies the
 * output buffer is not the parameter's (the plan copies it back from there). */
static void ref_store_out(const kn__kargs *a, const double *p, int64_t numel)
{
    if (a->dst != a->src[0])
        memcpy(a->dst, p, (size_t)numel * sizeof(double));
}

/* ==== SGD ================================================================================ */
kn_node *kn_graph_sgd_update(kn_graph *g, kn_node *param, kn_node *grad, kn_node *lr, kn_node *momentum_buf,
                             double momentum, double weight_decay, bool nesterov)
{
    kn_node *src[4] = {param, grad, lr, momentum_buf};
    kn_node *n = kn__node_new(g, KN_OP_SGD_UPDATE, momentum_buf ? 4 : 3, src);
    if (!n)
        return NULL;
    n->af[0] = momentum;
    n->af[1] = weight_decay;
    n->ai[0] = nesterov;
    return kn__node_finish(g, n);
}

static kn_status sgd_check(kn_graph *g, kn_node *n)
{
    double mu = n->af[0], wd = n->af[1];
    kn_status st = check_param(g, n);
    if (st)
        return st;
    if (!(mu >= 0) || !(wd >= 0) || isinf(mu) || isinf(wd))
        return kn__fail(g, KN_ERR_ARG,
                        "sgd_update: momentum %g, weight decay %g for param %s; both must be finite and >= 0", mu,
                        wd, kn__shp(n->src[0]));
    if (n->ai[0] && mu == 0)
        return kn__fail(g, KN_ERR_ARG, "sgd_update: nesterov needs momentum > 0 (got 0) for param %s",
                        kn__shp(n->src[0]));
    if (mu != 0 && n->nsrc < 4)
        return kn__fail(g, KN_ERR_ARG,
                        "sgd_update: momentum %g for param %s needs a momentum buffer (a frozen param of its shape)",
                        mu, kn__shp(n->src[0]));
    if (n->nsrc == 4 && (st = check_state(g, n, 3, "momentum_buf", true)))
        return st;
    return KN_OK;
}

static double sgd_flops(const kn_node *n)
{
    double per = 2 + (n->af[1] != 0 ? 2 : 0) + (n->af[0] != 0 ? 2 : 0) + (n->ai[0] ? 2 : 0);
    return kn__flops_per_elem(n, per);
}

static kn_status sgd_ref(const kn__kargs *a)
{
    const kn_node *n = a->node;
    double *p = a->src[0];
    const double *grad = a->src[1];
    double lr = ((const double *)a->src[2])[0];
    double *buf = n->nsrc > 3 ? a->src[3] : NULL;
    double mu = n->af[0], wd = n->af[1];
    int64_t numel = kn__numel(n);
    for (int64_t i = 0; i < numel && isfinite(lr); i++) {
        double g = grad[i];
        if (wd != 0)
            g += wd * p[i];
        if (mu != 0) {
            buf[i] = mu * buf[i] + g;
            g = n->ai[0] ? g + mu * buf[i] : buf[i];
        }
        p[i] -= lr * g;
    }
    ref_store_out(a, p, numel);
    return KN_OK;
}

const kn__op_info kn__opdef_SGD_UPDATE = {.check = sgd_check, .flops = sgd_flops, .ref = sgd_ref};

/* ==== Adam / AdamW ======================================================================= */
kn_node *kn_graph_adam_update(kn_graph *g, kn_node *param, kn_node *grad, kn_node *lr, kn_node *t, kn_node *m,
                              kn_node *v, double beta1, double beta2, double eps, double weight_decay, bool adamw)
{
    kn_node *src[6] = {param, grad, lr, t, m, v};
    kn_node *n = kn__node_new(g, KN_OP_ADAM_UPDATE, 6, src);
    if (!n)
        return NULL;
    n->af[0] = beta1;
    n->af[1] = beta2;
    n->af[2] = eps;
    n->af[3] = weight_decay;
    n->ai[0] = adamw;
    return kn__node_finish(g, n);
}

static kn_status adam_check(kn_graph *g, kn_node *n)
{
    double b1 = n->af[0], b2 = n->af[1], eps = n->af[2], wd = n->af[3];
    kn_status st = check_param(g, n);
    if (st || (st = check_scalar(g, n, 3, "t")) || (st = check_state(g, n, 4, "m", true)) ||
        (st = check_state(g, n, 5, "v", true)))
        return st;
    if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1))
        return kn__fail(g, KN_ERR_ARG, "adam_update: betas (%g, %g) for param %s, each must be in [0, 1)", b1, b2,
                        kn__shp(n->src[0]));
    if (!(eps >= 0) || !(wd >= 0) || isinf(eps) || isinf(wd))
        return kn__fail(g, KN_ERR_ARG,
                        "adam_update: eps %g, weight decay %g for param %s; both must be finite and >= 0", eps,
                        wd, kn__shp(n->src[0]));
    return KN_OK;
}

static double adam_flops(const kn_node *n)
{
    return kn__flops_per_elem(n, 13 + (n->af[3] != 0 ? 2 : 0));
}

static kn_status adam_ref(const kn__kargs *a)
{
    const kn_node *n = a->node;
    double *p = a->src[0], *m = a->src[4], *v = a->src[5];
    const double *grad = a->src[1];
    double lr = ((const double *)a->src[2])[0], t = ((const double *)a->src[3])[0];
    double b1 = n->af[0], b2 = n->af[1], eps = n->af[2], wd = n->af[3];
    if (!(t >= 1))
        return kn__kerr(a, "adam_update: step t = %g, expected >= 1 (t counts steps from 1)", t);
    double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
    int64_t numel = kn__numel(n);
    for (int64_t i = 0; i < numel && isfinite(lr); i++) {
        double g = grad[i];
        if (n->ai[0])
            p[i] *= 1 - lr * wd;
        else
            g += wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        p[i] -= lr * (m[i] / bc1) / (sqrt(v[i] / bc2) + eps);
    }
    ref_store_out(a, p, numel);
    return KN_OK;
}

const kn__op_info kn__opdef_ADAM_UPDATE = {.check = adam_check, .flops = adam_flops, .ref = adam_ref};
