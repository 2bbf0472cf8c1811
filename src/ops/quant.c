/* quant.c — the quantisation family: QLINEAR and QCONV2D (int8 inference: the float input is
 * quantised to u8 with a calibrated scale and zero point, multiplied with per-output-channel
 * symmetric s8 weights in integer arithmetic, and dequantised to float), and FAKE_QUANT
 * (quantisation-aware training: round to the int8 grid and back, straight-through gradient).
 * Builders, checks, FLOP counts and float64 reference kernels that do the same integer math
 * as the CPU kernels (src/backend/cpu/qgemm.c; rounding rules in quant_internal.h).
 * Deliberately not here: int8 outputs (every quantised op returns float, so the ops between
 * layers stay float), zero points for weights, int4.
 *
 * Inputs of QLINEAR and QCONV2D: (x f32, w s8, w_scale f32 [out], x_qparams f32 [2] =
 *   {scale, zero point}, optional bias f32 [out]). Scales come in as tensors (checkpoint
 *   parameters), so the kernels validate them at run time (KN_ERR_RANGE).
 *   QLINEAR  x [.., in], w [out, in] → [.., out]
 *   QCONV2D  x [N, C, H, W], w [O, C/groups, KH, KW] → [N, O, OH, OW]; ai[0..6] as CONV2D.
 *   ai[KN_Q_RELU] = 1: ReLU fused on the output. QCONV2D ai[KN_Q_POOL] = 2: a 2×2 stride-2 max
 *   pool fused after it (output [N, O, OH/2, OW/2]; set by kn__qconv2d_fuse_pool).
 * FAKE_QUANT x → same shape. ai[0] = axis of per-channel scales (-1: one scale per tensor),
 *   ai[1] = 0: symmetric s8 with scale max|x|/127 (weights), 1: asymmetric u8 over
 *   [min(x, 0), max(x, 0)] (activations). Scales come from the tensor itself on every run,
 *   so nothing is clipped and the straight-through gradient is dy unchanged. */
#include <string.h>

#include "conv_internal.h"
#include "quant_internal.h"

/* ---- checks --------------------------------------------------------------------------- */

static kn_status check_qparams(kn_graph *g, const kn_node *n, int64_t out)
{
    const char *op = kn__op_names[n->op];
    const kn_node *w = n->src[KN_Q_W], *ws = n->src[KN_Q_WSCALE], *xq = n->src[KN_Q_XQ];
    if (w->dtype != KN_I8)
        return kn__fail(g, KN_ERR_DTYPE, "%s: weight %s is %s, expected i8 (a quantised weight)", op, kn__shp(w),
                        kn_dtype_name(w->dtype));
    if (!kn_dtype_is_float(n->src[KN_Q_X]->dtype))
        return kn__fail(g, KN_ERR_DTYPE, "%s: input is %s, expected a float tensor", op,
                        kn_dtype_name(n->src[KN_Q_X]->dtype));
    for (int i = KN_Q_WSCALE; i < n->nsrc; i++)
        if (n->src[i]->dtype != n->src[KN_Q_X]->dtype)
            return kn__fail(g, KN_ERR_DTYPE, "%s: input %d is %s, the input x is %s; scales and bias need x's dtype", op,
                            i, kn_dtype_name(n->src[i]->dtype), kn_dtype_name(n->src[KN_Q_X]->dtype));
    if (ws->ndim != 1 || ws->shape[0] != out)
        return kn__fail(g, KN_ERR_SHAPE, "%s: weight scales %s do not fit weight %s, expected [%lld] (one per output)",
                        op, kn__shp(ws), kn__shp(w), (long long)out);
    if (xq->ndim != 1 || xq->shape[0] != 2)
        return kn__fail(g, KN_ERR_SHAPE, "%s: input quantisation parameters %s, expected [2] (scale, zero point)", op,
                        kn__shp(xq));
    if (n->nsrc > KN_Q_BIAS && (n->src[KN_Q_BIAS]->ndim != 1 || n->src[KN_Q_BIAS]->shape[0] != out))
        return kn__fail(g, KN_ERR_SHAPE, "%s: bias %s does not fit weight %s, expected [%lld]", op,
                        kn__shp(n->src[KN_Q_BIAS]), kn__shp(w), (long long)out);
    if (n->ai[KN_Q_RELU] != 0 && n->ai[KN_Q_RELU] != 1)
        return kn__fail(g, KN_ERR_ARG, "%s: relu attribute %lld, must be 0 or 1", op, (long long)n->ai[KN_Q_RELU]);
    return KN_OK;
}

static kn_status check_qlinear(kn_graph *g, kn_node *n)
{
    const kn_node *x = n->src[KN_Q_X], *w = n->src[KN_Q_W];
    if (x->ndim < 1)
        return kn__fail(g, KN_ERR_SHAPE, "qlinear: input %s needs at least 1 dimension [.., in]", kn__shp(x));
    if (w->ndim != 2)
        return kn__fail(g, KN_ERR_SHAPE, "qlinear: weight %s must be 2-D [out, in]", kn__shp(w));
    if (w->shape[1] != x->shape[x->ndim - 1])
        return kn__fail(g, KN_ERR_SHAPE, "qlinear: input %s has %lld features, weight %s expects %lld (weight is [out, in])",
                        kn__shp(x), (long long)x->shape[x->ndim - 1], kn__shp(w), (long long)w->shape[1]);
    kn_status st = check_qparams(g, n, w->shape[0]);
    if (st)
        return st;
    n->dtype = x->dtype;
    kn__set_shape(n, x->ndim, x->shape);
    n->shape[n->ndim - 1] = w->shape[0];
    return KN_OK;
}

static kn_status check_qconv2d(kn_graph *g, kn_node *n)
{
    const kn_node *x = n->src[KN_Q_X], *w = n->src[KN_Q_W];
    const int64_t *ai = n->ai;
    if (x->ndim != 4)
        return kn__fail(g, KN_ERR_SHAPE, "qconv2d: input %s must be 4-D [N, C, H, W]", kn__shp(x));
    if (w->ndim != 4)
        return kn__fail(g, KN_ERR_SHAPE, "qconv2d: weight %s must be 4-D [O, C/groups, KH, KW]", kn__shp(w));
    if (ai[KN_CONV_SH] < 1 || ai[KN_CONV_SW] < 1 || ai[KN_CONV_DH] < 1 || ai[KN_CONV_DW] < 1 || ai[KN_CONV_PH] < 0 ||
        ai[KN_CONV_PW] < 0 || ai[KN_CONV_G] < 1)
        return kn__fail(g, KN_ERR_ARG, "qconv2d: strides, dilations and groups must be >= 1 and padding >= 0");
    int64_t G = ai[KN_CONV_G];
    if (x->shape[1] % G || w->shape[0] % G || w->shape[1] * G != x->shape[1])
        return kn__fail(g, KN_ERR_SHAPE, "qconv2d: input %s has %lld channels, weight %s expects %lld (groups %lld)",
                        kn__shp(x), (long long)x->shape[1], kn__shp(w), (long long)(w->shape[1] * G), (long long)G);
    if (w->shape[2] < 1 || w->shape[3] < 1)
        return kn__fail(g, KN_ERR_SHAPE, "qconv2d: weight %s has an empty kernel", kn__shp(w));
    int64_t oh = kn__conv_out(x->shape[2], w->shape[2], ai[KN_CONV_SH], ai[KN_CONV_PH], ai[KN_CONV_DH]);
    int64_t ow = kn__conv_out(x->shape[3], w->shape[3], ai[KN_CONV_SW], ai[KN_CONV_PW], ai[KN_CONV_DW]);
    if (oh < 1 || ow < 1)
        return kn__fail(g, KN_ERR_SHAPE, "qconv2d: input %s is smaller than the kernel of weight %s", kn__shp(x),
                        kn__shp(w));
    kn_status st = check_qparams(g, n, w->shape[0]);
    if (st)
        return st;
    if (n->ai[KN_Q_POOL] != 0 && !(n->ai[KN_Q_POOL] == 2 && oh >= 2 && ow >= 2))
        return kn__fail(g, KN_ERR_SHAPE, "qconv2d: fused pool %lld on a %lldx%lld output; only 2 (2x2, stride 2) on at "
                        "least 2x2", (long long)n->ai[KN_Q_POOL], (long long)oh, (long long)ow);
    int64_t ps = n->ai[KN_Q_POOL] ? 2 : 1;
    n->dtype = x->dtype;
    kn__set_shape(n, 4, (const int64_t[]){x->shape[0], w->shape[0], oh / ps, ow / ps});
    return KN_OK;
}

kn_status kn__qconv2d_fuse_pool(kn_graph *g, kn_node *n)
{
    if (!n || n->op != KN_OP_QCONV2D || n->ai[KN_Q_POOL])
        return kn__fail(g, KN_ERR_ARG, "qconv2d: no unpooled qconv2d node to fuse a pool into");
    if (n->shape[2] < 2 || n->shape[3] < 2)
        return kn__fail(g, KN_ERR_SHAPE, "qconv2d: output %s is smaller than the 2x2 pool", kn__shp(n));
    n->ai[KN_Q_POOL] = 2;
    n->shape[2] /= 2;
    n->shape[3] /= 2;
    return KN_OK;
}

static kn_status check_fake_quant(kn_graph *g, kn_node *n)
{
    const kn_node *x = n->src[0];
    kn_status st = kn__check_float(g, n, 0);
    if (st)
        return st;
    if (n->ai[0] < -1 || n->ai[0] >= (x->ndim > 0 ? x->ndim : 0) || (n->ai[0] >= 0 && x->ndim == 0))
        return kn__fail(g, KN_ERR_ARG, "fake_quant: axis %lld for input %s, must be -1 (per tensor) or a dimension",
                        (long long)n->ai[0], kn__shp(x));
    if (n->ai[1] != 0 && n->ai[1] != 1)
        return kn__fail(g, KN_ERR_ARG, "fake_quant: mode %lld, must be 0 (symmetric s8) or 1 (asymmetric u8)",
                        (long long)n->ai[1]);
    n->dtype = x->dtype;
    kn__set_shape(n, x->ndim, x->shape);
    return KN_OK;
}

/* ---- builders ------------------------------------------------------------------------- */

kn_node *kn_graph_qlinear(kn_graph *g, kn_node *x, kn_node *w, kn_node *w_scale, kn_node *x_qparams, kn_node *b,
                          bool relu)
{
    kn_node *src[5] = {x, w, w_scale, x_qparams, b};
    kn_node *n = kn__node_new(g, KN_OP_QLINEAR, b ? 5 : 4, src);
    if (!n)
        return NULL;
    n->ai[KN_Q_RELU] = relu;
    return kn__node_finish(g, n);
}

kn_node *kn_graph_qconv2d(kn_graph *g, kn_node *x, kn_node *w, kn_node *w_scale, kn_node *x_qparams, kn_node *b,
                          const kn_conv2d_opts *opts, bool relu)
{
    kn_node *src[5] = {x, w, w_scale, x_qparams, b};
    kn_node *n = kn__node_new(g, KN_OP_QCONV2D, b ? 5 : 4, src);
    if (!n)
        return NULL;
    kn_conv2d_opts o = opts ? *opts : (kn_conv2d_opts){0};
    int64_t conv[7] = {o.stride_h ? o.stride_h : 1,     o.stride_w ? o.stride_w : 1, o.pad_h, o.pad_w,
                       o.dilation_h ? o.dilation_h : 1, o.dilation_w ? o.dilation_w : 1, o.groups ? o.groups : 1};
    memcpy(n->ai, conv, sizeof conv);
    n->ai[KN_Q_RELU] = relu;
    return kn__node_finish(g, n);
}

kn_node *kn_graph_fake_quant(kn_graph *g, kn_node *x, int axis, bool asymmetric)
{
    kn_node *n = kn__node_new(g, KN_OP_FAKE_QUANT, 1, &x);
    if (!n)
        return NULL;
    n->ai[0] = axis;
    n->ai[1] = asymmetric;
    return kn__node_finish(g, n);
}

/* ---- gradient (straight-through) and FLOPs --------------------------------------------- */

static kn_status grad_fake_quant(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    (void)n;
    if (need[0])
        dx[0] = dy;
    return kn_graph_status(g);
}

/* Integer multiply-adds counted like float ones (2 per MAC), plus the dequantisation. */
static double flops_qlinear(const kn_node *n)
{
    return (double)kn__numel(n) * (2.0 * (double)n->src[KN_Q_W]->shape[1] + 2.0);
}

static double flops_qconv2d(const kn_node *n)
{
    const kn_node *w = n->src[KN_Q_W];
    return (double)kn__numel(n) * (n->ai[KN_Q_POOL] ? 4.0 : 1.0) *
           (2.0 * (double)(w->shape[1] * w->shape[2] * w->shape[3]) + 2.0);
}

static double flops_fake_quant(const kn_node *n) { return kn__flops_per_elem(n, 4.0); }

/* ---- float64 reference kernels --------------------------------------------------------- */

kn_status kn__q_bad_input_params(const kn__kargs *a, double s, double zp)
{
    return kn__kerr(a, "%s: input scale %g and zero point %g: the scale must be finite and > 0, the zero point an "
                    "integer in [0, 255] (a damaged quantised checkpoint?)", kn__op_names[a->node->op], s, zp);
}

kn_status kn__q_bad_weight_scale(const kn__kargs *a, int64_t o, double ws)
{
    return kn__kerr(a, "%s: weight scale %lld is %g, must be finite and > 0", kn__op_names[a->node->op],
                    (long long)o, ws);
}

bool kn__q_supported(const kn_node *n)
{
    if (n->dtype != KN_F32 || n->src[KN_Q_W]->dtype != KN_I8)
        return false;
    for (int i = 0; i < n->nsrc; i++)
        if (i != KN_Q_W && n->src[i]->dtype != KN_F32)
            return false;
    const kn_node *w = n->src[KN_Q_W];
    int64_t K = kn__numel(w) / (w->shape[0] ? w->shape[0] : 1);
    return K <= KN_Q_MAX_K;
}

/* Reads and validates the quantisation parameters of a QLINEAR/QCONV2D call. */
static kn_status ref_qparams(const kn__kargs *a, int64_t out, float *inv, int *zp)
{
    const double *xq = a->src[KN_Q_XQ], *ws = a->src[KN_Q_WSCALE];
    if (!kn__q_params_ok(xq[0], xq[1]))
        return kn__q_bad_input_params(a, xq[0], xq[1]);
    for (int64_t o = 0; o < out; o++)
        if (!kn__q_wscale_ok(ws[o]))
            return kn__q_bad_weight_scale(a, o, ws[o]);
    *inv = kn__q_inv((float)xq[0]);
    *zp = (int)xq[1];
    return KN_OK;
}

static double dequant(const kn__kargs *a, int64_t o, int64_t acc)
{
    const double *xq = a->src[KN_Q_XQ], *ws = a->src[KN_Q_WSCALE];
    const double *b = a->node->nsrc > KN_Q_BIAS ? a->src[KN_Q_BIAS] : NULL;
    return (double)acc * ((double)(float)xq[0] * ws[o]) + (b ? b[o] : 0.0);
}

static double relu_if(const kn_node *n, double y) { return n->ai[KN_Q_RELU] && !(y > 0) ? 0.0 : y; }

static kn_status ref_qlinear(const kn__kargs *a)
{
    const kn_node *n = a->node;
    const double *x = a->src[KN_Q_X];
    const int8_t *w = a->src[KN_Q_W];
    double *y = a->dst;
    int64_t out = n->src[KN_Q_W]->shape[0], in = n->src[KN_Q_W]->shape[1];
    int64_t rows = out ? kn__numel(n) / out : 0;
    float inv;
    int zp;
    kn_status st = ref_qparams(a, out, &inv, &zp);
    if (st)
        return st;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) {
            int64_t acc = 0;
            for (int64_t k = 0; k < in; k++)
                acc += (int64_t)(kn__q_u8((float)x[r * in + k], inv, zp) - zp) * w[o * in + k];
            y[r * out + o] = relu_if(n, dequant(a, o, acc));
        }
    return KN_OK;
}

static kn_status ref_qconv2d(const kn__kargs *a)
{
    const kn_node *n = a->node;
    const double *x = a->src[KN_Q_X];
    const int8_t *w = a->src[KN_Q_W];
    double *y = a->dst;
    kn__conv_geom q = kn__conv_geom_of(n);
    float inv;
    int zp;
    kn_status st = ref_qparams(a, q.O, &inv, &zp);
    if (st)
        return st;
    /* geometry of the convolution itself (n's shape is the pooled one when a pool is fused) */
    int64_t ps = n->ai[KN_Q_POOL] ? 2 : 1, PH = n->shape[2], PW = n->shape[3];
    q.OH = kn__conv_out(q.H, q.KH, q.sh, q.ph, q.dh);
    q.OW = kn__conv_out(q.W, q.KW, q.sw, q.pw, q.dw);
    for (int64_t ni = 0; ni < q.N; ni++)
        for (int64_t o = 0; o < q.O; o++) {
            int64_t gi = o / q.Og;
            for (int64_t py = 0; py < PH; py++)
                for (int64_t px = 0; px < PW; px++) {
                    double best = -INFINITY;
                    for (int64_t oh = py * ps; oh < py * ps + ps; oh++)
                        for (int64_t ow = px * ps; ow < px * ps + ps; ow++) {
                            int64_t acc = 0;
                            for (int64_t c = 0; c < q.Cg; c++)
                                for (int64_t kh = 0; kh < q.KH; kh++)
                                    for (int64_t kw = 0; kw < q.KW; kw++) {
                                        int64_t ih = oh * q.sh - q.ph + kh * q.dh, iw = ow * q.sw - q.pw + kw * q.dw;
                                        if (ih < 0 || ih >= q.H || iw < 0 || iw >= q.W)
                                            continue; /* padding is 0.0, i.e. exactly the zero point */
                                        double v = x[((ni * q.C + gi * q.Cg + c) * q.H + ih) * q.W + iw];
                                        acc += (int64_t)(kn__q_u8((float)v, inv, zp) - zp) *
                                               w[((o * q.Cg + c) * q.KH + kh) * q.KW + kw];
                                    }
                            double v = dequant(a, o, acc);
                            best = v > best ? v : best;
                        }
                    y[((ni * q.O + o) * PH + py) * PW + px] = relu_if(n, best);
                }
        }
    return KN_OK;
}

/* A FAKE_QUANT input seen as [pre, C, post]: C channels along the axis, each with its own
 * scale (per tensor: pre = C = 1). */
void kn__fq_dims(const kn_node *n, int64_t *pre, int64_t *C, int64_t *post)
{
    const kn_node *x = n->src[0];
    int axis = (int)n->ai[0];
    *pre = *C = *post = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (axis < 0 || d > axis)
            *post *= x->shape[d];
        else if (d == axis)
            *C = x->shape[d];
        else
            *pre *= x->shape[d];
    }
}

static kn_status ref_fake_quant(const kn__kargs *a)
{
    const kn_node *n = a->node;
    const double *x = a->src[0];
    double *y = a->dst;
    int64_t pre, C, post;
    kn__fq_dims(n, &pre, &C, &post);
    bool asym = n->ai[1];
    for (int64_t c = 0; c < C; c++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int64_t p = 0; p < pre; p++)
            for (int64_t i = 0; i < post; i++) {
                float v = (float)x[(p * C + c) * post + i];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        float scale, inv;
        int zp;
        kn__fq_params(asym, lo, hi, &scale, &zp);
        inv = kn__q_inv(scale);
        for (int64_t p = 0; p < pre; p++)
            for (int64_t i = 0; i < post; i++) {
                int64_t k = (p * C + c) * post + i;
                y[k] = kn__fq_value((float)x[k], asym, scale, inv, zp);
            }
    }
    return KN_OK;
}

/* The CPU float32 FAKE_QUANT kernel shares these (one implementation, as the rounding must
 * agree bit for bit). */
void kn__fake_quant_f32(const kn_node *n, const float *x, float *y)
{
    int64_t pre, C, post;
    kn__fq_dims(n, &pre, &C, &post);
    bool asym = n->ai[1];
    for (int64_t c = 0; c < C; c++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int64_t p = 0; p < pre; p++)
            for (int64_t i = 0; i < post; i++) {
                float v = x[(p * C + c) * post + i];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        float scale;
        int zp;
        kn__fq_params(asym, lo, hi, &scale, &zp);
        float inv = kn__q_inv(scale);
        for (int64_t p = 0; p < pre; p++)
            for (int64_t i = 0; i < post; i++) {
                int64_t k = (p * C + c) * post + i;
                y[k] = kn__fq_value(x[k], asym, scale, inv, zp);
            }
    }
}

const kn__op_info kn__opdef_QLINEAR = {.check = check_qlinear, .flops = flops_qlinear, .ref = ref_qlinear};
const kn__op_info kn__opdef_QCONV2D = {.check = check_qconv2d, .flops = flops_qconv2d, .ref = ref_qconv2d};
const kn__op_info kn__opdef_FAKE_QUANT = {
    .check = check_fake_quant, .grad = grad_fake_quant, .flops = flops_fake_quant, .ref = ref_fake_quant};
