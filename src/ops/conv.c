/* conv.c — the conv family: CONV2D (NCHW, stride, padding, dilation, groups, optional bias)
 * and its two backward ops CONV2D_BWD_DATA (dy, w → dx) and CONV2D_BWD_WEIGHT (x, dy → dw).
 * Builders, checks, gradient rules, FLOP counts and float64 reference kernels written as
 * direct 7-loop convolutions (the oracle for im2col + GEMM in src/backend/cpu/conv.c).
 * Deliberately not here: 1-D/3-D convolution, transposed convolution, NHWC layouts, and
 * double backward (the backward ops are NONDIFF).
 *
 * Attributes (all three ops; see conv_internal.h):
 *   ai[0..6] = stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups (resolved:
 *              the builder turns the public 0 = default into 1/1/0/0/1/1/1).
 *   CONV2D_BWD_DATA   ai[7..10] = N, C, H, W of x (the shape of dx).
 *   CONV2D_BWD_WEIGHT ai[7..10] = O, C/groups, KH, KW of w (the shape of dw). */
#include "conv_internal.h"

/* ---- checks --------------------------------------------------------------------------- */

/* Validates attributes and the x/w pair (shapes as arrays, so the backward ops share it) and
 * returns the output extent. */
static kn_status conv_validate(kn_graph *g, const kn_node *n, const int64_t *xs, const int64_t *ws, int64_t *oh,
                               int64_t *ow)
{
    const char *op = kn__op_names[n->op];
    const int64_t *ai = n->ai;
    char bx[128], bw[128];
    kn__shape_str(4, xs, bx, sizeof bx);
    kn__shape_str(4, ws, bw, sizeof bw);
    if (ai[KN_CONV_SH] < 1 || ai[KN_CONV_SW] < 1 || ai[KN_CONV_DH] < 1 || ai[KN_CONV_DW] < 1 ||
        ai[KN_CONV_PH] < 0 || ai[KN_CONV_PW] < 0 || ai[KN_CONV_G] < 1)
        return kn__fail(g, KN_ERR_ARG,
                        "%s: stride (%lld,%lld), padding (%lld,%lld), dilation (%lld,%lld), groups %lld: strides, "
                        "dilations and groups must be >= 1 and padding >= 0",
                        op, (long long)ai[0], (long long)ai[1], (long long)ai[2], (long long)ai[3], (long long)ai[4],
                        (long long)ai[5], (long long)ai[6]);
    int64_t G = ai[KN_CONV_G];
    if (xs[1] % G != 0 || ws[0] % G != 0)
        return kn__fail(g, KN_ERR_SHAPE,
                        "%s: input %s has %lld channels and weight %s %lld filters, both must be divisible by groups %lld",
                        op, bx, (long long)xs[1], bw, (long long)ws[0], (long long)G);
    if (ws[1] * G != xs[1])
        return kn__fail(g, KN_ERR_SHAPE, "%s: input %s has %lld channels, weight %s expects %lld (groups %lld)", op, bx,
                        (long long)xs[1], bw, (long long)(ws[1] * G), (long long)G);
    if (ws[2] < 1 || ws[3] < 1)
        return kn__fail(g, KN_ERR_SHAPE, "%s: weight %s has an empty kernel, expected [O, C/groups, KH>=1, KW>=1]", op, bw);
    *oh = kn__conv_out(xs[2], ws[2], ai[KN_CONV_SH], ai[KN_CONV_PH], ai[KN_CONV_DH]);
    *ow = kn__conv_out(xs[3], ws[3], ai[KN_CONV_SW], ai[KN_CONV_PW], ai[KN_CONV_DW]);
    if (*oh < 1 || *ow < 1)
        return kn__fail(g, KN_ERR_SHAPE,
                        "%s: input %s is smaller than kernel %lldx%lld (dilation %lldx%lld, padding %lldx%lld), output "
                        "would be %lldx%lld; needs H + 2*pad >= dilation*(K-1) + 1",
                        op, bx, (long long)ws[2], (long long)ws[3], (long long)ai[KN_CONV_DH], (long long)ai[KN_CONV_DW],
                        (long long)ai[KN_CONV_PH], (long long)ai[KN_CONV_PW], (long long)*oh, (long long)*ow);
    return KN_OK;
}

static kn_status check_conv2d(kn_graph *g, kn_node *n)
{
    const kn_node *x = n->src[0], *w = n->src[1];
    kn_status st;
    for (int i = 0; i < n->nsrc; i++)
        if ((st = kn__check_float(g, n, i)))
            return st;
    if ((st = kn__check_same_dtype(g, n)))
        return st;
    if (x->ndim != 4)
        return kn__fail(g, KN_ERR_SHAPE, "conv2d: input %s must be 4-D [N, C, H, W]", kn__shp(x));
    if (w->ndim != 4)
        return kn__fail(g, KN_ERR_SHAPE, "conv2d: weight %s must be 4-D [O, C/groups, KH, KW]", kn__shp(w));
    int64_t oh, ow;
    if ((st = conv_validate(g, n, x->shape, w->shape, &oh, &ow)))
        return st;
    if (n->nsrc == 3 && (n->src[2]->ndim != 1 || n->src[2]->shape[0] != w->shape[0]))
        return kn__fail(g, KN_ERR_SHAPE, "conv2d: bias %s does not fit weight %s, expected [%lld]", kn__shp(n->src[2]),
                        kn__shp(w), (long long)w->shape[0]);
    n->dtype = x->dtype;
    kn__set_shape(n, 4, (const int64_t[]){x->shape[0], w->shape[0], oh, ow});
    return KN_OK;
}

static kn_status check_dy(kn_graph *g, const kn_node *n, const kn_node *dy, int64_t N, int64_t O, int64_t oh,
                          int64_t ow)
{
    if (dy->ndim != 4 || dy->shape[0] != N || dy->shape[1] != O || dy->shape[2] != oh || dy->shape[3] != ow)
        return kn__fail(g, KN_ERR_SHAPE, "%s: dy %s does not match the convolution's output [%lld,%lld,%lld,%lld]",
                        kn__op_names[n->op], kn__shp(dy), (long long)N, (long long)O, (long long)oh, (long long)ow);
    return KN_OK;
}

static kn_status check_bwd_data(kn_graph *g, kn_node *n)
{
    const kn_node *dy = n->src[0], *w = n->src[1];
    const int64_t *xs = n->ai + KN_CONV_X0;
    kn_status st;
    if ((st = kn__check_float(g, n, 0)) || (st = kn__check_float(g, n, 1)) || (st = kn__check_same_dtype(g, n)))
        return st;
    if ((st = kn__check_ndim(g, n, 1, 4)))
        return st;
    for (int i = 0; i < 4; i++)
        if (xs[i] < 0)
            return kn__fail(g, KN_ERR_ARG, "conv2d_bwd_data: input shape attribute has a negative dimension");
    int64_t oh, ow;
    if ((st = conv_validate(g, n, xs, w->shape, &oh, &ow)) || (st = check_dy(g, n, dy, xs[0], w->shape[0], oh, ow)))
        return st;
    n->dtype = dy->dtype;
    kn__set_shape(n, 4, xs);
    return KN_OK;
}

static kn_status check_bwd_weight(kn_graph *g, kn_node *n)
{
    const kn_node *x = n->src[0], *dy = n->src[1];
    const int64_t *ws = n->ai + KN_CONV_X0;
    kn_status st;
    if ((st = kn__check_float(g, n, 0)) || (st = kn__check_float(g, n, 1)) || (st = kn__check_same_dtype(g, n)))
        return st;
    if ((st = kn__check_ndim(g, n, 0, 4)))
        return st;
    for (int i = 0; i < 4; i++)
        if (ws[i] < 0)
            return kn__fail(g, KN_ERR_ARG, "conv2d_bwd_weight: weight shape attribute has a negative dimension");
    int64_t oh, ow;
    if ((st = conv_validate(g, n, x->shape, ws, &oh, &ow)) || (st = check_dy(g, n, dy, x->shape[0], ws[0], oh, ow)))
        return st;
    n->dtype = x->dtype;
    kn__set_shape(n, 4, ws);
    return KN_OK;
}

/* ---- builders ------------------------------------------------------------------------- */

static void set_conv_attrs(kn_node *n, const int64_t *conv)
{
    for (int i = 0; i < 7; i++)
        n->ai[i] = conv[i];
}

kn_node *kn_graph_conv2d(kn_graph *g, kn_node *x, kn_node *w, kn_node *b, const kn_conv2d_opts *opts)
{
    kn_node *src[3] = {x, w, b};
    kn_node *n = kn__node_new(g, KN_OP_CONV2D, b ? 3 : 2, src);
    if (!n)
        return NULL;
    kn_conv2d_opts o = opts ? *opts : (kn_conv2d_opts){0};
    int64_t conv[7] = {o.stride_h ? o.stride_h : 1,     o.stride_w ? o.stride_w : 1, o.pad_h, o.pad_w,
                       o.dilation_h ? o.dilation_h : 1, o.dilation_w ? o.dilation_w : 1,
                       o.groups ? o.groups : 1};
    set_conv_attrs(n, conv);
    return kn__node_finish(g, n);
}

kn_node *kn__conv2d_bwd_data(kn_graph *g, kn_node *dy, kn_node *w, const int64_t *conv, const int64_t *x_shape)
{
    kn_node *src[2] = {dy, w};
    kn_node *n = kn__node_new(g, KN_OP_CONV2D_BWD_DATA, 2, src);
    if (!n)
        return NULL;
    set_conv_attrs(n, conv);
    for (int i = 0; i < 4; i++)
        n->ai[KN_CONV_X0 + i] = x_shape[i];
    return kn__node_finish(g, n);
}

kn_node *kn__conv2d_bwd_weight(kn_graph *g, kn_node *x, kn_node *dy, const int64_t *conv, const int64_t *w_shape)
{
    kn_node *src[2] = {x, dy};
    kn_node *n = kn__node_new(g, KN_OP_CONV2D_BWD_WEIGHT, 2, src);
    if (!n)
        return NULL;
    set_conv_attrs(n, conv);
    for (int i = 0; i < 4; i++)
        n->ai[KN_CONV_X0 + i] = w_shape[i];
    return kn__node_finish(g, n);
}

/* ---- gradient --------------------------------------------------------------------------- */

static kn_status grad_conv2d(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    kn_node *x = n->src[0], *w = n->src[1];
    if (need[0])
        dx[0] = kn__conv2d_bwd_data(g, dy, w, n->ai, x->shape);
    if (need[1])
        dx[1] = kn__conv2d_bwd_weight(g, x, dy, n->ai, w->shape);
    if (n->nsrc == 3 && need[2])
        dx[2] = kn_graph_sum(g, dy, 0xdu /* N, H, W */, false);
    return kn_graph_status(g);
}

/* ---- FLOPs ---------------------------------------------------------------------------- */

static double conv_macs(const kn_node *n)
{
    kn__conv_geom q = kn__conv_geom_of(n);
    return (double)q.N * (double)q.O * (double)(q.OH * q.OW) * (double)(q.Cg * q.KH * q.KW);
}

static double flops_conv2d(const kn_node *n)
{
    return 2.0 * conv_macs(n) + (n->nsrc == 3 ? (double)kn__numel(n) : 0.0);
}

static double flops_bwd(const kn_node *n) { return 2.0 * conv_macs(n); }

/* ---- float64 reference kernels: direct loops ---------------------------------------------
 * For output (n, o, oh, ow), kernel tap (c, kh, kw) of group gr = o / Og reads input channel
 * gr·Cg + c at row oh·sh − ph + kh·dh and column ow·sw − pw + kw·dw (zero outside). */

static kn_status ref_conv2d(const kn__kargs *a)
{
    const kn_node *node = a->node;
    kn__conv_geom q = kn__conv_geom_of(node);
    const double *x = a->src[0], *w = a->src[1], *b = node->nsrc == 3 ? a->src[2] : NULL;
    double *y = a->dst;
    for (int64_t n = 0; n < q.N; n++)
        for (int64_t o = 0; o < q.O; o++) {
            int64_t c0 = (o / q.Og) * q.Cg;
            for (int64_t oh = 0; oh < q.OH; oh++)
                for (int64_t ow = 0; ow < q.OW; ow++) {
                    double s = b ? b[o] : 0.0;
                    for (int64_t c = 0; c < q.Cg; c++)
                        for (int64_t kh = 0; kh < q.KH; kh++) {
                            int64_t ih = oh * q.sh - q.ph + kh * q.dh;
                            if (ih < 0 || ih >= q.H)
                                continue;
                            for (int64_t kw = 0; kw < q.KW; kw++) {
                                int64_t iw = ow * q.sw - q.pw + kw * q.dw;
                                if (iw < 0 || iw >= q.W)
                                    continue;
                                s += x[((n * q.C + c0 + c) * q.H + ih) * q.W + iw] *
                                     w[((o * q.Cg + c) * q.KH + kh) * q.KW + kw];
                            }
                        }
                    y[((n * q.O + o) * q.OH + oh) * q.OW + ow] = s;
                }
        }
    return KN_OK;
}

static kn_status ref_bwd_data(const kn__kargs *a)
{
    kn__conv_geom q = kn__conv_geom_of(a->node);
    const double *dy = a->src[0], *w = a->src[1];
    double *dx = a->dst;
    for (int64_t i = 0; i < q.N * q.C * q.H * q.W; i++)
        dx[i] = 0.0;
    for (int64_t n = 0; n < q.N; n++)
        for (int64_t o = 0; o < q.O; o++) {
            int64_t c0 = (o / q.Og) * q.Cg;
            for (int64_t oh = 0; oh < q.OH; oh++)
                for (int64_t ow = 0; ow < q.OW; ow++) {
                    double d = dy[((n * q.O + o) * q.OH + oh) * q.OW + ow];
                    for (int64_t c = 0; c < q.Cg; c++)
                        for (int64_t kh = 0; kh < q.KH; kh++) {
                            int64_t ih = oh * q.sh - q.ph + kh * q.dh;
                            if (ih < 0 || ih >= q.H)
                                continue;
                            for (int64_t kw = 0; kw < q.KW; kw++) {
                                int64_t iw = ow * q.sw - q.pw + kw * q.dw;
                                if (iw < 0 || iw >= q.W)
                                    continue;
                                dx[((n * q.C + c0 + c) * q.H + ih) * q.W + iw] +=
                                    d * w[((o * q.Cg + c) * q.KH + kh) * q.KW + kw];
                            }
                        }
                }
        }
    return KN_OK;
}

static kn_status ref_bwd_weight(const kn__kargs *a)
{
    kn__conv_geom q = kn__conv_geom_of(a->node);
    const double *x = a->src[0], *dy = a->src[1];
    double *dw = a->dst;
    for (int64_t o = 0; o < q.O; o++) {
        int64_t c0 = (o / q.Og) * q.Cg;
        for (int64_t c = 0; c < q.Cg; c++)
            for (int64_t kh = 0; kh < q.KH; kh++)
                for (int64_t kw = 0; kw < q.KW; kw++) {
                    double s = 0.0;
                    for (int64_t n = 0; n < q.N; n++)
                        for (int64_t oh = 0; oh < q.OH; oh++) {
                            int64_t ih = oh * q.sh - q.ph + kh * q.dh;
                            if (ih < 0 || ih >= q.H)
                                continue;
                            for (int64_t ow = 0; ow < q.OW; ow++) {
                                int64_t iw = ow * q.sw - q.pw + kw * q.dw;
                                if (iw < 0 || iw >= q.W)
                                    continue;
                                s += dy[((n * q.O + o) * q.OH + oh) * q.OW + ow] *
                                     x[((n * q.C + c0 + c) * q.H + ih) * q.W + iw];
                            }
                        }
                    dw[((o * q.Cg + c) * q.KH + kh) * q.KW + kw] = s;
                }
    }
    return KN_OK;
}

const kn__op_info kn__opdef_CONV2D = {
    .check = check_conv2d, .grad = grad_conv2d, .flops = flops_conv2d, .ref = ref_conv2d};
const kn__op_info kn__opdef_CONV2D_BWD_DATA = {.check = check_bwd_data, .flops = flops_bwd, .ref = ref_bwd_data};
const kn__op_info kn__opdef_CONV2D_BWD_WEIGHT = {
    .check = check_bwd_weight, .flops = flops_bwd, .ref = ref_bwd_weight};
