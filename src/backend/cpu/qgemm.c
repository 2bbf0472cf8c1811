/* qgemm.c (CPU) — int8 QLINEAR and QCONV2D with int32 accumulation, and float32 FAKE_QUANT.
 *
 * One register-tile kernel serves both ops: C (MR × NR) = R · Pᵀ over K, where R is a
 * row-major byte matrix whose rows are broadcast 4 bytes at a time and P a "panel" of NR
 * columns packed as [K/4][NR][4] bytes, so one 64-byte load holds 4 consecutive k of 16
 * columns — the operand layout of AVX-512 VNNI's vpdpbusd (u8 × s8 → s32, 4 products per
 * lane). QLINEAR: R = the quantised input rows (u8), P = the weights (s8), a tile is 8 rows ×
 * 32 output channels of y [rows, out]. QCONV2D: R = the weights (s8, k ordered kh, kw, c),
 * P = the im2col of one image's quantised NHWC input (u8), a tile is 8 output channels × 32
 * output pixels, stored straight into y [N, O, OH, OW]. The epilogue subtracts zp·Σw per
 * channel, scales by s·s_w, adds the bias, optionally applies ReLU.
 *
 * Without AVX-512 VNNI (or with -DKN_CPU_NO_AVX512) a plain C tile does the same integer
 * math; results are identical. Weights are packed on every call (cheap next to the product:
 * 1/batch of it). Each output element is computed by one thread, so results do not depend on
 * the thread count. Not here: int8 outputs, requantisation between layers, GEMM K blocking
 * (K ≤ KN_Q_MAX_K is taken whole). */
#include <omp.h>
#include <string.h>
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && !defined(KN_CPU_NO_AVX512)
#include <immintrin.h>
#define Q_VNNI 1
#endif

#include "../../ops/conv_internal.h"
#include "../../ops/quant_internal.h"
#include "../backend.h"
#include "gemm.h"

#define MR 8
#define NR 32

static int64_t up(int64_t a, int64_t m) { return (a + m - 1) / m * m; }
static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

/* Per-channel epilogue constants. */
typedef struct qepi {
    const int32_t *zpw; /* zp·Σ q_w */
    const float *scale; /* s·s_w */
    const float *bias;  /* NULL = none */
    bool relu;
} qepi;

/* One tile: rows i < rows of R (row stride ldr) against the panel P (NR columns, KG groups of
 * 4), y[i·ldy + j] for j < cols. conv: the channel of element (i, j) is ch0 + i and R holds s8
 * weights, P u8 activations; else the channel is ch0 + j, R u8 and P s8. */
#ifdef Q_VNNI
static inline __attribute__((always_inline)) void tile_body(const uint8_t *R, int64_t ldr, int rows, const uint8_t *P,
                                                            int cols, int64_t KG, const bool conv, const qepi *e,
                                                            int64_t ch0, float *y, int64_t ldy)
{
    __m512i acc[MR][2];
    const uint8_t *rp[MR];
    for (int i = 0; i < MR; i++) {
        acc[i][0] = acc[i][1] = _mm512_setzero_si512();
        rp[i] = R + (i < rows ? i : 0) * ldr;
    }
    for (int64_t kg = 0; kg < KG; kg++) {
        __m512i p0 = _mm512_loadu_si512(P + kg * NR * 4), p1 = _mm512_loadu_si512(P + kg * NR * 4 + 64);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            int32_t v;
            memcpy(&v, rp[i] + kg * 4, 4);
            __m512i r = _mm512_set1_epi32(v);
            if (conv) {
                acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], p0, r);
                acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], p1, r);
            } else {
                acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], r, p0);
                acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], r, p1);
            }
        }
    }
    const __m512 zero = _mm512_setzero_ps();
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < 2 && v * 16 < cols; v++) {
            int n = cols - v * 16 < 16 ? cols - v * 16 : 16;
            __mmask16 m = (__mmask16)(n == 16 ? 0xFFFF : (1u << n) - 1);
            __m512i zpw;
            __m512 sc, b;
            if (conv) {
                int64_t ch = ch0 + i;
                zpw = _mm512_set1_epi32(e->zpw[ch]);
                sc = _mm512_set1_ps(e->scale[ch]);
                b = e->bias ? _mm512_set1_ps(e->bias[ch]) : zero;
            } else {
                int64_t ch = ch0 + v * 16;
                zpw = _mm512_maskz_loadu_epi32(m, e->zpw + ch);
                sc = _mm512_maskz_loadu_ps(m, e->scale + ch);
                b = e->bias ? _mm512_maskz_loadu_ps(m, e->bias + ch) : zero;
            }
            __m512 r = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][v], zpw)), sc, b);
            if (e->relu)
                r = _mm512_max_ps(r, zero);
            _mm512_mask_storeu_ps(y + i * ldy + v * 16, m, r);
        }
}

static void tile_lin(const uint8_t *R, int64_t ldr, int rows, const uint8_t *P, int cols, int64_t KG, const qepi *e,
                     int64_t ch0, float *y, int64_t ldy)
{
    tile_body(R, ldr, rows, P, cols, KG, false, e, ch0, y, ldy);
}

static void tile_conv(const uint8_t *R, int64_t ldr, int rows, const uint8_t *P, int cols, int64_t KG, const qepi *e,
                      int64_t ch0, float *y, int64_t ldy)
{
    tile_body(R, ldr, rows, P, cols, KG, true, e, ch0, y, ldy);
}
#else
static void tile_generic(const uint8_t *R, int64_t ldr, int rows, const uint8_t *P, int cols, int64_t KG, bool conv,
                         const qepi *e, int64_t ch0, float *y, int64_t ldy)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            int32_t acc = 0;
            for (int64_t kg = 0; kg < KG; kg++)
                for (int t = 0; t < 4; t++) {
                    int r = conv ? (int)(int8_t)R[i * ldr + kg * 4 + t] : (int)R[i * ldr + kg * 4 + t];
                    int p = conv ? (int)P[(kg * NR + j) * 4 + t] : (int)(int8_t)P[(kg * NR + j) * 4 + t];
                    acc += r * p;
                }
            int64_t ch = ch0 + (conv ? i : j);
            float v = (float)(acc - e->zpw[ch]) * e->scale[ch] + (e->bias ? e->bias[ch] : 0.0f);
            y[i * ldy + j] = e->relu && !(v > 0) ? 0.0f : v;
        }
}

static void tile_lin(const uint8_t *R, int64_t ldr, int rows, const uint8_t *P, int cols, int64_t KG, const qepi *e,
                     int64_t ch0, float *y, int64_t ldy)
{
    tile_generic(R, ldr, rows, P, cols, KG, false, e, ch0, y, ldy);
}

static void tile_conv(const uint8_t *R, int64_t ldr, int rows, const uint8_t *P, int cols, int64_t KG, const qepi *e,
                      int64_t ch0, float *y, int64_t ldy)
{
    tile_generic(R, ldr, rows, P, cols, KG, true, e, ch0, y, ldy);
}
#endif

/* Validates the run-time quantisation parameters; fills 1/s and zp. */
static kn_status qparams(const kn__kargs *a, int64_t out, float *inv, int *zp)
{
    const float *xq = a->src[KN_Q_XQ], *ws = a->src[KN_Q_WSCALE];
    const char *op = kn__op_names[a->node->op];
    if (!kn__q_params_ok(xq[0], xq[1]))
        return kn__kerr(a, "%s: input scale %g and zero point %g: the scale must be finite and > 0, the zero point an "
                        "integer in [0, 255] (a damaged quantised checkpoint?)", op, (double)xq[0], (double)xq[1]);
    for (int64_t o = 0; o < out; o++)
        if (!(isfinite(ws[o]) && ws[o] > 0))
            return kn__kerr(a, "%s: weight scale %lld is %g, must be finite and > 0", op, (long long)o, (double)ws[o]);
    *inv = kn__q_inv(xq[0]);
    *zp = (int)xq[1];
    return KN_OK;
}

/* Per-channel constants into zpw/scale: zp·Σw over rows of a [out, K] s8 matrix (row stride
 * ld) and s·s_w. */
static void channel_consts(const int8_t *w, int64_t out, int64_t K, int64_t ld, int zp, float s, const float *ws,
                           int32_t *zpw, float *scale)
{
    for (int64_t o = 0; o < out; o++) {
        int32_t sum = 0;
        for (int64_t k = 0; k < K; k++)
            sum += w[o * ld + k];
        zpw[o] = zp * sum;
        scale[o] = s * ws[o];
    }
}

/* ---- QLINEAR ------------------------------------------------------------------------------ */

typedef struct lin_dims {
    int64_t out, in, rows, Kp, KG, panels, blocks;
    size_t panel_bytes, xq_off, zpw_off, scale_off, total;
} lin_dims;

static lin_dims lin_of(const kn_node *n)
{
    lin_dims d;
    d.out = n->src[KN_Q_W]->shape[0];
    d.in = n->src[KN_Q_W]->shape[1];
    d.rows = d.out ? kn__numel(n) / d.out : 0;
    d.Kp = up(d.in, 4);
    d.KG = d.Kp / 4;
    d.panels = up(d.out, NR) / NR;
    d.blocks = up(d.rows, MR) / MR;
    d.panel_bytes = (size_t)(up(d.out, NR) * d.Kp);
    d.xq_off = (size_t)up((int64_t)d.panel_bytes, 64);
    d.zpw_off = d.xq_off + (size_t)up(d.rows * d.Kp, 64);
    d.scale_off = d.zpw_off + (size_t)up(d.out * 4, 64);
    d.total = d.scale_off + (size_t)up(d.out * 4, 64);
    return d;
}

static size_t qlinear_workspace(const kn_node *n) { return lin_of(n).total; }

static kn_status qlinear_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    lin_dims d = lin_of(n);
    if (d.rows == 0 || d.out == 0)
        return KN_OK;
    float inv;
    int zp;
    kn_status st = qparams(a, d.out, &inv, &zp);
    if (st)
        return st;
    const float *x = a->src[KN_Q_X];
    const int8_t *w = a->src[KN_Q_W];
    uint8_t *panel = a->work, *xq = (uint8_t *)a->work + d.xq_off;
    int32_t *zpw = (int32_t *)((char *)a->work + d.zpw_off);
    float *scale = (float *)((char *)a->work + d.scale_off);
    qepi e = {zpw, scale, n->nsrc > KN_Q_BIAS ? a->src[KN_Q_BIAS] : NULL, n->ai[KN_Q_RELU] != 0};
    channel_consts(w, d.out, d.in, d.in, zp, ((const float *)a->src[KN_Q_XQ])[0], a->src[KN_Q_WSCALE], zpw, scale);
    bool par = d.rows * d.out * d.in > (1 << 18);
#pragma omp parallel if (par)
    {
#pragma omp for schedule(static) nowait
        for (int64_t pj = 0; pj < d.panels; pj++) { /* weights → [K/4][NR][4] panels, zero-padded */
            uint8_t *p = panel + pj * NR * d.Kp;
            memset(p, 0, (size_t)(NR * d.Kp));
            for (int64_t j = 0; j < NR && pj * NR + j < d.out; j++) {
                const int8_t *wr = w + (pj * NR + j) * d.in;
                for (int64_t k = 0; k < d.in; k++)
                    p[((k >> 2) * NR + j) * 4 + (k & 3)] = (uint8_t)wr[k];
            }
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < d.rows; r++) { /* input rows → u8, K padded with zeros */
            const float *xr = x + r * d.in;
            uint8_t *q = xq + r * d.Kp;
            for (int64_t k = 0; k < d.in; k++)
                q[k] = (uint8_t)kn__q_u8(xr[k], inv, zp);
            for (int64_t k = d.in; k < d.Kp; k++)
                q[k] = 0;
        }
#pragma omp for collapse(2) schedule(static)
        for (int64_t bi = 0; bi < d.blocks; bi++)
            for (int64_t pj = 0; pj < d.panels; pj++) {
                int rows = (int)imin(MR, d.rows - bi * MR), cols = (int)imin(NR, d.out - pj * NR);
                tile_lin(xq + bi * MR * d.Kp, d.Kp, rows, panel + pj * NR * d.Kp, cols, d.KG, &e, pj * NR,
                         (float *)a->dst + bi * MR * d.out + pj * NR, d.out);
            }
    }
    return KN_OK;
}

/* ---- QCONV2D ------------------------------------------------------------------------------ */

typedef struct conv_dims {
    kn__conv_geom q;
    int64_t Hp, Wp, P, K, Kp, KG, tiles;
    int slices;
    size_t wr_off, zpw_off, scale_off, slice_off, slice_bytes, img_bytes, total;
} conv_dims;

static conv_dims conv_of(const kn_node *n)
{
    conv_dims d;
    d.q = kn__conv_geom_of(n);
    const kn__conv_geom *q = &d.q;
    d.Hp = q->H + 2 * q->ph;
    d.Wp = q->W + 2 * q->pw;
    d.P = q->OH * q->OW;
    d.K = q->KH * q->KW * q->Cg;
    d.Kp = up(d.K, 4);
    d.KG = d.Kp / 4;
    d.tiles = up(d.P, NR) / NR;
    d.slices = kn__cpu_slices(q->N);
    d.wr_off = 0; /* weights [G][O/G padded to MR][Kp], k = (kh·KW + kw)·Cg + c */
    d.zpw_off = (size_t)up(q->G * up(q->Og, MR) * d.Kp, 64);
    d.scale_off = d.zpw_off + (size_t)up(q->O * 4, 64);
    d.slice_off = d.scale_off + (size_t)up(q->O * 4, 64);
    d.img_bytes = (size_t)up(d.Hp * d.Wp * q->C, 64); /* one image, quantised, padded, NHWC */
    d.slice_bytes = d.img_bytes + (size_t)up(d.tiles * NR * d.Kp, 64); /* + its im2col panels */
    d.total = d.slice_off + (size_t)d.slices * d.slice_bytes;
    return d;
}

static size_t qconv2d_workspace(const kn_node *n) { return conv_of(n).total; }

/* Threads for a kernel with `slices` workspace slices. */
static int team(int slices)
{
    int t = omp_get_max_threads();
    return t < slices ? t : slices;
}

/* im2col of group gi of one quantised image (xq: [Hp][Wp][C]) into NR-column panels
 * [tiles][K/4][NR][4]; positions past P and k past K are zero. */
static void im2col_panels(const conv_dims *d, const uint8_t *xq, int64_t gi, uint8_t *panels)
{
    const kn__conv_geom *q = &d->q;
    memset(panels, 0, (size_t)(d->tiles * NR * d->Kp));
    bool words = q->Cg % 4 == 0;
    for (int64_t oh = 0; oh < q->OH; oh++)
        for (int64_t ow = 0; ow < q->OW; ow++) {
            int64_t p = oh * q->OW + ow;
            uint8_t *t = panels + (p / NR) * NR * d->Kp + (p % NR) * 4;
            for (int64_t kh = 0; kh < q->KH; kh++)
                for (int64_t kw = 0; kw < q->KW; kw++) {
                    const uint8_t *s = xq + ((oh * q->sh + kh * q->dh) * d->Wp + ow * q->sw + kw * q->dw) * q->C + gi * q->Cg;
                    int64_t k0 = (kh * q->KW + kw) * q->Cg;
                    if (words) {
                        for (int64_t c = 0; c < q->Cg; c += 4)
                            memcpy(t + ((k0 + c) >> 2) * NR * 4, s + c, 4);
                    } else {
                        for (int64_t c = 0; c < q->Cg; c++) {
                            int64_t k = k0 + c;
                            t[(k >> 2) * NR * 4 + (k & 3)] = s[c];
                        }
                    }
                }
        }
}

static kn_status qconv2d_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    conv_dims d = conv_of(n);
    const kn__conv_geom *q = &d.q;
    float inv;
    int zp;
    kn_status st = qparams(a, q->O, &inv, &zp);
    if (st)
        return st;
    const float *x = a->src[KN_Q_X];
    const int8_t *w = a->src[KN_Q_W];
    float *y = a->dst;
    uint8_t *wr = (uint8_t *)a->work + d.wr_off;
    int32_t *zpw = (int32_t *)((char *)a->work + d.zpw_off);
    float *scale = (float *)((char *)a->work + d.scale_off);
    int64_t Ogp = up(q->Og, MR), CHW = q->C * q->H * q->W;
    /* weights → rows [G][Og padded][Kp] with k = (kh, kw, c), zero-padded */
    memset(wr, 0, (size_t)(q->G * Ogp * d.Kp));
    for (int64_t o = 0; o < q->O; o++) {
        int8_t *row = (int8_t *)wr + ((o / q->Og) * Ogp + o % q->Og) * d.Kp;
        for (int64_t c = 0; c < q->Cg; c++)
            for (int64_t kh = 0; kh < q->KH; kh++)
                for (int64_t kw = 0; kw < q->KW; kw++)
                    row[(kh * q->KW + kw) * q->Cg + c] = w[((o * q->Cg + c) * q->KH + kh) * q->KW + kw];
    }
    for (int64_t gi = 0; gi < q->G; gi++)
        channel_consts((const int8_t *)wr + gi * Ogp * d.Kp, q->Og, d.K, d.Kp, zp, ((const float *)a->src[KN_Q_XQ])[0],
                       (const float *)a->src[KN_Q_WSCALE] + gi * q->Og, zpw + gi * q->Og, scale + gi * q->Og);
    qepi e = {zpw, scale, n->nsrc > KN_Q_BIAS ? a->src[KN_Q_BIAS] : NULL, n->ai[KN_Q_RELU] != 0};
#pragma omp parallel num_threads(team(d.slices))
    {
        uint8_t *xq = (uint8_t *)a->work + d.slice_off + (size_t)omp_get_thread_num() * d.slice_bytes;
        uint8_t *panels = xq + d.img_bytes;
#pragma omp for schedule(static)
        for (int64_t ni = 0; ni < q->N; ni++) {
            /* the image → u8, NHWC, borders at the zero point (= 0.0) */
            memset(xq, zp, (size_t)(d.Hp * d.Wp * q->C));
            const float *xi = x + ni * CHW;
            for (int64_t c = 0; c < q->C; c++)
                for (int64_t h = 0; h < q->H; h++) {
                    const float *xr = xi + (c * q->H + h) * q->W;
                    uint8_t *dst = xq + ((h + q->ph) * d.Wp + q->pw) * q->C + c;
                    for (int64_t wi = 0; wi < q->W; wi++)
                        dst[wi * q->C] = (uint8_t)kn__q_u8(xr[wi], inv, zp);
                }
            for (int64_t gi = 0; gi < q->G; gi++) {
                im2col_panels(&d, xq, gi, panels);
                const uint8_t *wg = wr + gi * Ogp * d.Kp;
                for (int64_t t = 0; t < d.tiles; t++)
                    for (int64_t o0 = 0; o0 < q->Og; o0 += MR) {
                        int rows = (int)imin(MR, q->Og - o0), cols = (int)imin(NR, d.P - t * NR);
                        int64_t ch = gi * q->Og + o0;
                        tile_conv(wg + o0 * d.Kp, d.Kp, rows, panels + t * NR * d.Kp, cols, d.KG, &e, ch,
                                  y + (ni * q->O + ch) * d.P + t * NR, d.P);
                    }
            }
        }
    }
    return KN_OK;
}

/* ---- FAKE_QUANT --------------------------------------------------------------------------- */

static kn_status fake_quant_f32(const kn__kargs *a)
{
    kn__fake_quant_f32(a->node, a->src[0], a->dst);
    return KN_OK;
}

/* f32 activations, scales and bias, i8 weights, a reduction that fits int32. */
static bool q_supports(const kn_node *n)
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

void kn__cpu_register_quant(kn__backend_kernel *t)
{
    t[KN_OP_QLINEAR] = (kn__backend_kernel){.fn = qlinear_f32, .workspace = qlinear_workspace, .supports = q_supports};
    t[KN_OP_QCONV2D] = (kn__backend_kernel){.fn = qconv2d_f32, .workspace = qconv2d_workspace, .supports = q_supports};
    t[KN_OP_FAKE_QUANT] = (kn__backend_kernel){.fn = fake_quant_f32};
}
