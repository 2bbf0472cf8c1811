/* pool.c — 2-D pooling over NCHW images: max_pool2d, avg_pool2d, global_avg_pool, and the
 * backward ops of the first two. Square kernels and strides, symmetric zero padding, floor
 * output size (PyTorch's ceil_mode=False). Max pooling never lets padding win; avg pooling
 * counts padded zeros in the divisor (PyTorch's count_include_pad=True default).
 * Not here: ceil_mode, dilation, non-square kernels, adaptive pooling, returned indices.
 *
 * Attributes (MAX_POOL2D, MAX_POOL2D_BWD, AVG_POOL2D, AVG_POOL2D_BWD):
 *   ai[0] kernel (≥ 1), ai[1] stride (≥ 1; the builders turn 0 into kernel), ai[2] pad
 *   (0 ≤ pad ≤ kernel/2, as PyTorch requires, so every window holds a real element).
 *   AVG_POOL2D_BWD also: ai[3..6] = N, C, H, W of the pooled input (its output shape).
 * MAX_POOL2D_BWD(x, dy) recomputes each window's argmax from x (first maximum on ties,
 * NaN wins like PyTorch) and routes dy there. GLOBAL_AVG_POOL has no attributes. */
#include <math.h>

#include "op_table.h"

/* Output size of one spatial dim; -1 when the padded input is smaller than the kernel. */
static int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p)
{
    return in + 2 * p < k ? -1 : (in + 2 * p - k) / s + 1;
}

/* Validates the attributes and a 4-D float input; fills out[4] with the pooled shape. */
static kn_status pool_geometry(kn_graph *g, const kn_node *n, const kn_node *x, int64_t out[4])
{
    const char *op = kn__op_names[n->op];
    int64_t k = n->ai[0], s = n->ai[1], p = n->ai[2];
    if (!kn_dtype_is_float(x->dtype))
        return kn__fail(g, KN_ERR_DTYPE, "%s: input %s has dtype %s, expected a floating type", op, kn__shp(x),
                        kn_dtype_name(x->dtype));
    if (x->ndim != 4)
        return kn__fail(g, KN_ERR_SHAPE, "%s: input %s has %d dimensions, expected 4 [N,C,H,W]", op, kn__shp(x),
                        x->ndim);
    if (k < 1 || k > (1 << 20) || s < 1 || s > (1 << 20))
        return kn__fail(g, KN_ERR_ARG, "%s: kernel %lld and stride %lld must be at least 1", op, (long long)k,
                        (long long)s);
    if (p < 0 || p > k / 2)
        return kn__fail(g, KN_ERR_ARG, "%s: pad %lld with kernel %lld, pad must be in [0, kernel/2]", op,
                        (long long)p, (long long)k);
    int64_t oh = pool_out(x->shape[2], k, s, p), ow = pool_out(x->shape[3], k, s, p);
    if (oh < 1 || ow < 1)
        return kn__fail(g, KN_ERR_SHAPE, "%s: input %s is smaller than kernel %lld with pad %lld", op, kn__shp(x),
                        (long long)k, (long long)p);
    out[0] = x->shape[0];
    out[1] = x->shape[1];
    out[2] = oh;
    out[3] = ow;
    return KN_OK;
}

/* dy must have exactly the pooled shape and x's dtype. */
static kn_status pool_check_dy(kn_graph *g, const kn_node *n, const kn_node *dy, kn_dtype dt, const int64_t *want)
{
    const char *op = kn__op_names[n->op];
    if (dy->dtype != dt)
        return kn__fail(g, KN_ERR_DTYPE, "%s: dy has dtype %s, expected %s", op, kn_dtype_name(dy->dtype),
                        kn_dtype_name(dt));
    char b[128];
    bool same = dy->ndim == 4;
    for (int i = 0; same && i < 4; i++)
        same = dy->shape[i] == want[i];
    if (!same)
        return kn__fail(g, KN_ERR_SHAPE, "%s: dy has shape %s, the pooled shape is %s", op, kn__shp(dy),
                        kn__shape_str(4, want, b, sizeof b));
    return KN_OK;
}

static kn_status pool_check(kn_graph *g, kn_node *n)
{
    int64_t out[4];
    kn_status st = pool_geometry(g, n, n->src[0], out);
    if (st)
        return st;
    n->dtype = n->src[0]->dtype;
    kn__set_shape(n, 4, out);
    return KN_OK;
}

static kn_status max_bwd_check(kn_graph *g, kn_node *n) /* (x, dy) → x's shape */
{
    int64_t out[4];
    kn_status st = pool_geometry(g, n, n->src[0], out);
    if (!st)
        st = pool_check_dy(g, n, n->src[1], n->src[0]->dtype, out);
    if (st)
        return st;
    n->dtype = n->src[0]->dtype;
    kn__set_shape(n, 4, n->src[0]->shape);
    return KN_OK;
}

static kn_status avg_bwd_check(kn_graph *g, kn_node *n) /* (dy) → ai[3..6] */
{
    for (int i = 3; i < 7; i++)
        if (n->ai[i] < 0)
            return kn__fail(g, KN_ERR_ARG, "avg_pool2d_bwd: input shape [%lld,%lld,%lld,%lld] has a negative size",
                            (long long)n->ai[3], (long long)n->ai[4], (long long)n->ai[5], (long long)n->ai[6]);
    kn_node shape_of_x = {.op = n->op, .dtype = n->src[0]->dtype, .ndim = 4};
    for (int i = 0; i < 4; i++)
        shape_of_x.shape[i] = n->ai[3 + i];
    int64_t out[4];
    kn_status st = pool_geometry(g, n, &shape_of_x, out);
    if (!st)
        st = pool_check_dy(g, n, n->src[0], n->src[0]->dtype, out);
    if (st)
        return st;
    n->dtype = n->src[0]->dtype;
    kn__set_shape(n, 4, shape_of_x.shape);
    return KN_OK;
}

static kn_status global_check(kn_graph *g, kn_node *n)
{
    kn_node *x = n->src[0];
    kn_status st = kn__check_float(g, n, 0);
    if (st)
        return st;
    if (x->ndim != 4)
        return kn__fail(g, KN_ERR_SHAPE, "global_avg_pool: input %s has %d dimensions, expected 4 [N,C,H,W]",
                        kn__shp(x), x->ndim);
    n->dtype = x->dtype;
    kn__set_shape(n, 4, (const int64_t[]){x->shape[0], x->shape[1], 1, 1});
    return KN_OK;
}

/* ---- builders ---- */
static kn_node *pool(kn_graph *g, int op, int nsrc, kn_node *const *src, const int64_t *attrs, int nattr)
{
    kn_node *n = kn__node_new(g, op, nsrc, src);
    if (!n)
        return NULL;
    for (int i = 0; i < nattr; i++)
        n->ai[i] = attrs[i];
    if (n->ai[1] == 0)
        n->ai[1] = n->ai[0];
    return kn__node_finish(g, n);
}

kn_node *kn_graph_max_pool2d(kn_graph *g, kn_node *x, int kernel, int stride, int pad)
{
    return pool(g, KN_OP_MAX_POOL2D, 1, &x, (const int64_t[]){kernel, stride, pad}, 3);
}

kn_node *kn_graph_avg_pool2d(kn_graph *g, kn_node *x, int kernel, int stride, int pad)
{
    return pool(g, KN_OP_AVG_POOL2D, 1, &x, (const int64_t[]){kernel, stride, pad}, 3);
}

kn_node *kn_graph_global_avg_pool(kn_graph *g, kn_node *x)
{
    return kn__node_finish(g, kn__node_new(g, KN_OP_GLOBAL_AVG_POOL, 1, &x));
}

/* ---- gradients ---- */
static kn_status max_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0]) {
        kn_node *s[2] = {n->src[0], dy};
        dx[0] = pool(g, KN_OP_MAX_POOL2D_BWD, 2, s, n->ai, 3);
    }
    return kn_graph_status(g);
}

static kn_status avg_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0]) {
        const int64_t *xs = n->src[0]->shape;
        dx[0] = pool(g, KN_OP_AVG_POOL2D_BWD, 1, &dy,
                     (const int64_t[]){n->ai[0], n->ai[1], n->ai[2], xs[0], xs[1], xs[2], xs[3]}, 7);
    }
    return kn_graph_status(g);
}

static kn_status global_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0]) {
        const kn_node *x = n->src[0];
        double hw = (double)(x->shape[2] * x->shape[3]);
        kn_node *e = kn_graph_expand(g, dy, 4, x->shape);
        dx[0] = kn_graph_scale(g, e, hw > 0 ? 1.0 / hw : 0.0, 0.0);
    }
    return kn_graph_status(g);
}

/* ---- FLOPs: one compare or add per window element ---- */
static double window_flops(const kn_node *n)
{
    const kn_node *pooled = n->op == KN_OP_MAX_POOL2D_BWD || n->op == KN_OP_AVG_POOL2D_BWD ? n->src[n->nsrc - 1] : n;
    return (double)kn__numel(pooled) * (double)(n->ai[0] * n->ai[0]);
}

static double global_flops(const kn_node *n) { return (double)kn__numel(n->src[0]); }

/* ---- reference kernels (float64) ---- */
typedef struct geom {
    int64_t planes, H, W, OH, OW, k, s, p;
} geom;

static geom geom_of(const kn_node *n, const int64_t *xshape, const int64_t *yshape)
{
    return (geom){xshape[0] * xshape[1], xshape[2], xshape[3], yshape[2], yshape[3], n->ai[0], n->ai[1], n->ai[2]};
}

/* Index in the plane of the window (oh, ow)'s maximum: first maximum in row-major window
 * order; a NaN replaces the running maximum (PyTorch's rule). */
static int64_t window_argmax(const double *plane, const geom *q, int64_t oh, int64_t ow)
{
    int64_t h0 = oh * q->s - q->p, w0 = ow * q->s - q->p, best = -1;
    double m = -INFINITY;
    for (int64_t ih = h0 < 0 ? 0 : h0; ih < h0 + q->k && ih < q->H; ih++)
        for (int64_t iw = w0 < 0 ? 0 : w0; iw < w0 + q->k && iw < q->W; iw++) {
            double v = plane[ih * q->W + iw];
            if (best < 0 || v > m || isnan(v)) {
                best = ih * q->W + iw;
                m = v;
            }
        }
    return best;
}

static kn_status max_ref(const kn__kargs *a)
{
    const kn_node *n = a->node;
    geom q = geom_of(n, n->src[0]->shape, n->shape);
    const double *x = a->src[0];
    double *y = a->dst;
    for (int64_t pl = 0; pl < q.planes; pl++)
        for (int64_t oh = 0; oh < q.OH; oh++)
            for (int64_t ow = 0; ow < q.OW; ow++) {
                const double *plane = x + pl * q.H * q.W;
                y[(pl * q.OH + oh) * q.OW + ow] = plane[window_argmax(plane, &q, oh, ow)];
            }
    return KN_OK;
}

static kn_status max_bwd_ref(const kn__kargs *a)
{
    const kn_node *n = a->node;
    geom q = geom_of(n, n->src[0]->shape, n->src[1]->shape);
    const double *x = a->src[0], *dy = a->src[1];
    double *dx = a->dst;
    for (int64_t i = 0; i < q.planes * q.H * q.W; i++)
        dx[i] = 0;
    for (int64_t pl = 0; pl < q.planes; pl++)
        for (int64_t oh = 0; oh < q.OH; oh++)
            for (int64_t ow = 0; ow < q.OW; ow++)
                dx[pl * q.H * q.W + window_argmax(x + pl * q.H * q.W, &q, oh, ow)] +=
                    dy[(pl * q.OH + oh) * q.OW + ow];
    return KN_OK;
}

static kn_status avg_ref(const kn__kargs *a)
{
    const kn_node *n = a->node;
    geom q = geom_of(n, n->src[0]->shape, n->shape);
    const double *x = a->src[0];
    double *y = a->dst;
    for (int64_t pl = 0; pl < q.planes; pl++)
        for (int64_t oh = 0; oh < q.OH; oh++)
            for (int64_t ow = 0; ow < q.OW; ow++) {
                double s = 0;
                for (int64_t kh = 0; kh < q.k; kh++)
                    for (int64_t kw = 0; kw < q.k; kw++) {
                        int64_t ih = oh * q.s - q.p + kh, iw = ow * q.s - q.p + kw;
                        if (ih >= 0 && ih < q.H && iw >= 0 && iw < q.W)
                            s += x[(pl * q.H + ih) * q.W + iw];
                    }
                y[(pl * q.OH + oh) * q.OW + ow] = s / (double)(q.k * q.k);
            }
    return KN_OK;
}

static kn_status avg_bwd_ref(const kn__kargs *a)
{
    const kn_node *n = a->node;
    geom q = geom_of(n, n->shape, n->src[0]->shape);
    const double *dy = a->src[0];
    double *dx = a->dst;
    for (int64_t i = 0; i < q.planes * q.H * q.W; i++)
        dx[i] = 0;
    for (int64_t pl = 0; pl < q.planes; pl++)
        for (int64_t oh = 0; oh < q.OH; oh++)
            for (int64_t ow = 0; ow < q.OW; ow++)
                for (int64_t kh = 0; kh < q.k; kh++)
                    for (int64_t kw = 0; kw < q.k; kw++) {
                        int64_t ih = oh * q.s - q.p + kh, iw = ow * q.s - q.p + kw;
                        if (ih >= 0 && ih < q.H && iw >= 0 && iw < q.W)
                            dx[(pl * q.H + ih) * q.W + iw] += dy[(pl * q.OH + oh) * q.OW + ow] / (double)(q.k * q.k);
                    }
    return KN_OK;
}

static kn_status global_ref(const kn__kargs *a)
{
    const kn_node *x = a->node->src[0];
    int64_t planes = x->shape[0] * x->shape[1], hw = x->shape[2] * x->shape[3];
    const double *in = a->src[0];
    double *y = a->dst;
    for (int64_t pl = 0; pl < planes; pl++) {
        double s = 0;
        for (int64_t i = 0; i < hw; i++)
            s += in[pl * hw + i];
        y[pl] = hw ? s / (double)hw : 0.0;
    }
    return KN_OK;
}

const kn__op_info kn__opdef_MAX_POOL2D = {.check = pool_check, .grad = max_grad, .flops = window_flops, .ref = max_ref};
const kn__op_info kn__opdef_MAX_POOL2D_BWD = {.check = max_bwd_check, .flops = window_flops, .ref = max_bwd_ref};
const kn__op_info kn__opdef_AVG_POOL2D = {.check = pool_check, .grad = avg_grad, .flops = window_flops, .ref = avg_ref};
const kn__op_info kn__opdef_AVG_POOL2D_BWD = {.check = avg_bwd_check, .flops = window_flops, .ref = avg_bwd_ref};
const kn__op_info kn__opdef_GLOBAL_AVG_POOL = {.check = global_check, .grad = global_grad, .flops = global_flops,
                                               .ref = global_ref};
