/* qgemm.c (CPU) — int8 QLINEAR and QCONV2D with int32 accumulation, and float32 FAKE_QUANT.
 *
 * One register-tile kernel serves both ops: C (MR × NR) = R · Pᵀ over K, where R is a
 * row-major byte matrix whose rows are broadcast 4 bytes at a time and P a "panel": for each
 * group of 4 k, 64 + 64 bytes holding those 4 k of NR = 32 columns (at P + koff[k/4]) — the
 * operand layout of AVX-512 VNNI's vpdpbusd (u8 × s8 → s32, 4 products per lane).
 *   QLINEAR: R = the quantised input rows (u8), P = the packed weights (s8); a tile is 8 rows
 *     × 32 output channels of y [rows, out].
 *   QCONV2D, direct (stride 1, one group, C % 4 == 0 — model B's second convolution): the
 *     image is quantised into a zero-point-padded, channel-blocked plane [C/4][Hp][Wp][4], so
 *     the 4 channels of 16 consecutive positions are 64 contiguous bytes and a panel is just an
 *     offset into the plane (koff per (kh, kw, c/4)): no im2col. Columns are positions of an
 *     OH × Wp grid (the padded width), the columns past OW are computed and dropped. R = the
 *     weights (s8, k ordered kh, kw, c); a tile is 8 output channels × 32 grid positions.
 *   QCONV2D, otherwise: im2col of one image's quantised NHWC plane into packed panels.
 * The epilogue subtracts zp·Σw per channel, scales by s·s_w, adds the bias, applies a fused
 * ReLU and stores float32 straight into y.
 *
 * Without AVX-512 VNNI/VBMI (or with -DKN_CPU_NO_AVX512) plain C does the same integer math;
 * results are identical. Weights are packed on every call (cheap next to the product: 1/batch
 * of it). Each output element is computed by one thread, so results do not depend on the
 * thread count. Not here: int8 outputs, requantisation between layers, GEMM K blocking
 * (K ≤ KN_Q_MAX_K is taken whole). */
#include <omp.h>
#include <string.h>
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VBMI__) && !defined(KN_CPU_NO_AVX512)
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

/* Where a tile's MR × NR results go: row i at y + i·ldy. Plain tiles store columns j < cols
 * at + j. Grid tiles (Wp > 0): column j is grid position p = p0 + j of an [np / Wp] × Wp
 * grid, kept when p < np and p % Wp < OW, stored at + (p / Wp)·OW + p % Wp. */
typedef struct qout {
    float *y;
    int64_t ldy;
    int cols;
    int64_t p0, Wp, OW, np;
    int64_t p1off;  /* bytes from a panel's first 16 columns to its second (64 but in pool tiles) */
    int64_t poff;   /* pool tiles: where the 8 pooled values of a row go (y + i·ldy + poff) */
    int pcount;     /* pool tiles: how many of them are real */
} qout;

/* Q_LIN: channel = column (R u8, P s8). Q_CONV, Q_GRID: channel = row (R s8, P u8). Q_POOL: a
 * grid tile whose two 16-column halves are the same 16 columns of two consecutive rows
 * (p1off = one row), reduced to 8 outputs of a 2×2 stride-2 max pool. */
enum { Q_LIN, Q_CONV, Q_GRID, Q_POOL };

#ifndef Q_VNNI
/* Stores one row's 32 dequantised values of a grid tile (the vector tile stores from registers). */
static inline void grid_store(const float *v, const qout *o, float *yrow)
{
    for (int64_t j = 0; j < NR;) {
        int64_t p = o->p0 + j;
        if (p >= o->np)
            break;
        int64_t ow = p % o->Wp;
        if (ow >= o->OW) {
            j += o->Wp - ow;
            continue;
        }
        int64_t len = imin(o->OW - ow, NR - j);
        memcpy(yrow + (p / o->Wp) * o->OW + ow, v + j, (size_t)len * sizeof(float));
        j += len;
    }
}
#endif

#ifdef Q_VNNI
static inline int32_t ld32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* A pool tile's row of one channel: a0, a1 = the accumulators of 16 columns of two consecutive
 * conv rows → 8 outputs of the 2×2 stride-2 max pool. The max is taken on the integers, then
 * dequantised once: (a − zp·Σw)·s + b is non-decreasing in a (s > 0, and every step rounds
 * monotonically), so this equals the max of the dequantised values, bit for bit. */
static inline __attribute__((always_inline)) void pool_row(__m512i a0, __m512i a1, const qepi *e, int64_t ch,
                                                           float *y, __mmask8 pm)
{
    __m512i m = _mm512_max_epi32(a0, a1);                          /* the two rows */
    m = _mm512_max_epi32(m, _mm512_shuffle_epi32(m, _MM_PERM_CDAB)); /* neighbour columns: even lanes */
    __m256i c = _mm512_castsi512_si256(_mm512_maskz_compress_epi32(0x5555, m)); /* 8 pooled values */
    __m256 r = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(c, _mm256_set1_epi32(e->zpw[ch]))),
                               _mm256_set1_ps(e->scale[ch]), e->bias ? _mm256_set1_ps(e->bias[ch]) : _mm256_setzero_ps());
    if (e->relu)
        r = _mm256_max_ps(r, _mm256_setzero_ps());
    _mm256_mask_storeu_ps(y, pm, r);
}

/* The K loop keeps the 16 accumulators in named registers (an indexed array gets spilled);
 * pool tiles reduce them straight from there (pool_row), the others hand them to the
 * epilogue through an aligned buffer. */
static inline __attribute__((always_inline)) void tile_body(const uint8_t *R, int64_t ldr, int rows, const uint8_t *P,
                                                            const int64_t *koff, int64_t KG, const int mode,
                                                            const qepi *e, int64_t ch0, const qout *o)
{
#define ROW(i) const uint8_t *r##i = R + ((i) < rows ? (i) : 0) * ldr;
#define ACC(i) __m512i a##i##0 = _mm512_setzero_si512(), a##i##1 = _mm512_setzero_si512();
#define STEP(i)                                                                   \
    {                                                                             \
        __m512i b = _mm512_set1_epi32(ld32(r##i + kg * 4));                       \
        if (mode != Q_LIN) {                                                      \
            a##i##0 = _mm512_dpbusd_epi32(a##i##0, p0, b);                        \
            a##i##1 = _mm512_dpbusd_epi32(a##i##1, p1, b);                        \
        } else {                                                                  \
            a##i##0 = _mm512_dpbusd_epi32(a##i##0, b, p0);                        \
            a##i##1 = _mm512_dpbusd_epi32(a##i##1, b, p1);                        \
        }                                                                         \
    }
#define SAVE(i)                                                                   \
    _mm512_store_si512(buf[i], a##i##0);                                          \
    _mm512_store_si512(buf[i] + 16, a##i##1);
    ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6) ROW(7)
    ACC(0) ACC(1) ACC(2) ACC(3) ACC(4) ACC(5) ACC(6) ACC(7)
    for (int64_t kg = 0; kg < KG; kg++) {
        const uint8_t *pp = P + koff[kg];
        __m512i p0 = _mm512_loadu_si512(pp), p1 = _mm512_loadu_si512(pp + o->p1off);
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7)
    }
    if (mode == Q_POOL) { /* straight from the registers */
        const __mmask8 pm = (__mmask8)((1u << o->pcount) - 1);
#define POOL(i)                                                                   \
    if ((i) < rows)                                                               \
        pool_row(a##i##0, a##i##1, e, ch0 + (i), o->y + (i) * o->ldy + o->poff, pm);
        POOL(0) POOL(1) POOL(2) POOL(3) POOL(4) POOL(5) POOL(6) POOL(7)
#undef POOL
        return;
    }
    int32_t buf[MR][NR] __attribute__((aligned(64)));
    SAVE(0) SAVE(1) SAVE(2) SAVE(3) SAVE(4) SAVE(5) SAVE(6) SAVE(7)
#undef ROW
#undef ACC
#undef STEP
#undef SAVE
    const __m512 zero = _mm512_setzero_ps();
    /* grid tiles: vector v is grid row (p0 + 16v) / Wp from column (p0 + 16v) % Wp (Wp is a
     * multiple of 16); its first OW − column lanes are real outputs */
    __mmask16 gm[2] = {0, 0};
    int64_t goff[2] = {0, 0};
    if (mode == Q_GRID)
        for (int v = 0; v < 2; v++) {
            int64_t p = o->p0 + v * 16, ow = p % o->Wp, n = imin(o->OW - ow, 16);
            if (p < o->np && n > 0) {
                gm[v] = (__mmask16)(n == 16 ? 0xFFFF : (1u << n) - 1);
                goff[v] = (p / o->Wp) * o->OW + ow;
            }
        }
    for (int i = 0; i < rows; i++) {
        for (int v = 0; v < 2; v++) {
            int n = mode == Q_GRID ? 16 : o->cols - v * 16 < 16 ? o->cols - v * 16 : 16;
            if (n <= 0)
                break;
            __mmask16 m = (__mmask16)(n == 16 ? 0xFFFF : (1u << n) - 1);
            __m512i zpw;
            __m512 sc, b;
            if (mode != Q_LIN) {
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
            __m512i acc = _mm512_load_si512(buf[i] + v * 16);
            __m512 r = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, zpw)), sc, b);
            if (e->relu)
                r = _mm512_max_ps(r, zero);
            if (mode == Q_GRID) {
                if (gm[v])
                    _mm512_mask_storeu_ps(o->y + i * o->ldy + goff[v], gm[v], r);
            } else {
                _mm512_mask_storeu_ps(o->y + i * o->ldy + v * 16, m, r);
            }
        }
    }
}
#else
static inline void tile_body(const uint8_t *R, int64_t ldr, int rows, const uint8_t *P, const int64_t *koff, int64_t KG,
                             const int mode, const qepi *e, int64_t ch0, const qout *o)
{
    float vals[NR];
    for (int i = 0; i < rows; i++) {
        int cols = mode == Q_GRID || mode == Q_POOL ? NR : o->cols;
        for (int j = 0; j < cols; j++) {
            int32_t acc = 0;
            int64_t col = j < 16 ? j * 4 : o->p1off + (j - 16) * 4;
            for (int64_t kg = 0; kg < KG; kg++)
                for (int t = 0; t < 4; t++) {
                    uint8_t rb = R[i * ldr + kg * 4 + t], pb = P[koff[kg] + col + t];
                    acc += mode == Q_LIN ? (int)rb * (int)(int8_t)pb : (int)(int8_t)rb * (int)pb;
                }
            int64_t ch = ch0 + (mode == Q_LIN ? j : i);
            float v = (float)(acc - e->zpw[ch]) * e->scale[ch] + (e->bias ? e->bias[ch] : 0.0f);
            if (mode == Q_GRID || mode == Q_POOL)
                vals[j] = mode == Q_POOL ? v : e->relu && !(v > 0) ? 0.0f : v;
            else
                o->y[i * o->ldy + j] = e->relu && !(v > 0) ? 0.0f : v;
        }
        if (mode == Q_GRID)
            grid_store(vals, o, o->y + i * o->ldy);
        for (int k = 0; mode == Q_POOL && k < o->pcount; k++) {
            float m = fmaxf(fmaxf(vals[2 * k], vals[2 * k + 1]), fmaxf(vals[16 + 2 * k], vals[17 + 2 * k]));
            o->y[i * o->ldy + o->poff + k] = e->relu && !(m > 0) ? 0.0f : m;
        }
    }
}
#endif

static __attribute__((noinline)) void tile_lin(const uint8_t *R, int64_t ldr, int rows, const uint8_t *P,
                                               const int64_t *koff, int64_t KG, const qepi *e, int64_t ch0,
                                               const qout *o)
{
    tile_body(R, ldr, rows, P, koff, KG, Q_LIN, e, ch0, o);
}

static __attribute__((noinline)) void tile_conv(const uint8_t *R, int64_t ldr, int rows, const uint8_t *P,
                                                const int64_t *koff, int64_t KG, const qepi *e, int64_t ch0,
                                                const qout *o)
{
    tile_body(R, ldr, rows, P, koff, KG, Q_CONV, e, ch0, o);
}

static __attribute__((noinline)) void tile_pool(const uint8_t *R, int64_t ldr, int rows, const uint8_t *P,
                                                const int64_t *koff, int64_t KG, const qepi *e, int64_t ch0,
                                                const qout *o)
{
    tile_body(R, ldr, rows, P, koff, KG, Q_POOL, e, ch0, o);
}

static __attribute__((noinline)) void tile_grid(const uint8_t *R, int64_t ldr, int rows, const uint8_t *P,
                                                const int64_t *koff, int64_t KG, const qepi *e, int64_t ch0,
                                                const qout *o)
{
    tile_body(R, ldr, rows, P, koff, KG, Q_GRID, e, ch0, o);
}

#ifdef Q_VNNI
/* 16 floats (lanes outside m: anything) → u8 with kn__q_u8's rounding: the same clamps, and
 * vcvtps2dq rounds to nearest even like nearbyintf. */
static inline __m128i quant16(const float *x, __mmask16 m, __m512 inv, __m512i zp)
{
    const __m512 lo = _mm512_set1_ps(-256.0f), hi = _mm512_set1_ps(256.0f);
    __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x), inv), lo), hi);
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);
    q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(255));
    return _mm512_cvtepi32_epi8(q);
}
#endif

/* x[0..n) → u8. */
static void quant_row(const float *x, int64_t n, float inv, int zp, uint8_t *dst)
{
    int64_t i = 0;
#ifdef Q_VNNI
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i vzp = _mm512_set1_epi32(zp);
    for (; i + 16 <= n; i += 16)
        _mm_storeu_si128((__m128i *)(dst + i), quant16(x + i, 0xFFFF, vinv, vzp));
#endif
    for (; i < n; i++)
        dst[i] = (uint8_t)kn__q_u8(x[i], inv, zp);
}

/* One image [C][H][W] (C % 4 == 0) → the channel-blocked plane [C/4][plane][4] of the direct
 * convolution: row h, column w at ((h + ph)·Wp + w + pw), everything else the zero point. */
static __attribute__((noinline)) void quant_blocked(const float *x, int64_t C, int64_t H, int64_t W, float inv,
                                                    int zp, int64_t plane, int64_t Wp, int64_t ph, int64_t pw,
                                                    uint8_t *xq)
{
    memset(xq, zp, (size_t)(C * plane));
    for (int64_t c4 = 0; c4 < C / 4; c4++)
        for (int64_t h = 0; h < H; h++) {
            const float *r = x + (c4 * 4 * H + h) * W;
            uint8_t *dst = xq + (c4 * plane + (h + ph) * Wp + pw) * 4;
            int64_t w0 = 0;
#ifdef Q_VNNI
            const __m512 vinv = _mm512_set1_ps(inv);
            const __m512i vzp = _mm512_set1_epi32(zp);
            /* byte j of the result = byte (j % 4)·16 + j / 4 of [q0 | q1 | q2 | q3] */
            static const uint8_t perm[64] = {0, 16, 32, 48, 1, 17, 33, 49, 2, 18, 34, 50, 3, 19, 35, 51,
                                             4, 20, 36, 52, 5, 21, 37, 53, 6, 22, 38, 54, 7, 23, 39, 55,
                                             8, 24, 40, 56, 9, 25, 41, 57, 10, 26, 42, 58, 11, 27, 43, 59,
                                             12, 28, 44, 60, 13, 29, 45, 61, 14, 30, 46, 62, 15, 31, 47, 63};
            const __m512i idx = _mm512_loadu_si512(perm);
            for (; w0 < W; w0 += 16) {
                int n = (int)imin(16, W - w0);
                __mmask16 m = (__mmask16)(n == 16 ? 0xFFFF : (1u << n) - 1);
                __m512i all = _mm512_castsi128_si512(quant16(r + w0, m, vinv, vzp));
                all = _mm512_inserti32x4(all, quant16(r + H * W + w0, m, vinv, vzp), 1);
                all = _mm512_inserti32x4(all, quant16(r + 2 * H * W + w0, m, vinv, vzp), 2);
                all = _mm512_inserti32x4(all, quant16(r + 3 * H * W + w0, m, vinv, vzp), 3);
                __mmask64 bm = n == 16 ? ~(__mmask64)0 : (((__mmask64)1 << (4 * n)) - 1);
                _mm512_mask_storeu_epi8(dst + w0 * 4, bm, _mm512_permutexvar_epi8(idx, all));
            }
#endif
            for (; w0 < W; w0++)
                for (int t = 0; t < 4; t++)
                    dst[w0 * 4 + t] = (uint8_t)kn__q_u8(r[t * H * W + w0], inv, zp);
        }
}

/* Validates the run-time quantisation parameters; fills 1/s and zp. */
static kn_status qparams(const kn__kargs *a, int64_t out, float *inv, int *zp)
{
    const float *xq = a->src[KN_Q_XQ], *ws = a->src[KN_Q_WSCALE];
    if (!kn__q_params_ok(xq[0], xq[1]))
        return kn__q_bad_input_params(a, xq[0], xq[1]);
    for (int64_t o = 0; o < out; o++)
        if (!kn__q_wscale_ok(ws[o]))
            return kn__q_bad_weight_scale(a, o, ws[o]);
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
    size_t xq_off, zpw_off, scale_off, koff_off, total;
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
    d.xq_off = (size_t)up(d.panels * NR * d.Kp, 64); /* packed weights first */
    d.zpw_off = d.xq_off + (size_t)up(d.rows * d.Kp, 64);
    d.scale_off = d.zpw_off + (size_t)up(d.out * 4, 64);
    d.koff_off = d.scale_off + (size_t)up(d.out * 4, 64);
    d.total = d.koff_off + (size_t)d.KG * sizeof(int64_t);
    return d;
}

static size_t qlinear_workspace(const kn_node *n) { return lin_of(n).total; }

/* Rows w [jn ≤ NR][in] (s8) → one panel [Kp/4][NR][4]: the 4 bytes k..k+3 of row j at
 * (k/4·NR + j)·4. Rows past jn and k past in are zeros. Only the padding is cleared (a memset
 * of the whole panel cost more than the product on model A's 5408 → 64 layer), and a full
 * panel goes 16 rows × 16 groups of 4 bytes at a time through a 16 × 16 transpose of 32-bit
 * words. */
static void pack_panel(const int8_t *w, int jn, int64_t in, int64_t Kp, uint8_t *p)
{
    const int64_t KG = Kp / 4;
    int64_t kg = 0;
#ifdef Q_VNNI
    for (; jn == NR && kg + 16 <= in / 4; kg += 16)
        for (int h = 0; h < 2; h++) { /* rows 16h .. 16h+15 → bytes 64h .. 64h+63 of each group */
            __m512i r[16], t[16];
            for (int j = 0; j < 16; j++) /* r[j] word g = bytes 4g..4g+3 of group kg+g, row 16h+j */
                r[j] = _mm512_loadu_si512(w + (16 * h + j) * in + kg * 4);
            for (int j = 0; j < 16; j += 2) {
                t[j] = _mm512_unpacklo_epi32(r[j], r[j + 1]);
                t[j + 1] = _mm512_unpackhi_epi32(r[j], r[j + 1]);
            }
            /* r[4q+m], 128-bit lane L: rows 4q..4q+3 of word 4L+m */
            for (int q = 0; q < 16; q += 4) {
                r[q] = _mm512_unpacklo_epi64(t[q], t[q + 2]);
                r[q + 1] = _mm512_unpackhi_epi64(t[q], t[q + 2]);
                r[q + 2] = _mm512_unpacklo_epi64(t[q + 1], t[q + 3]);
                r[q + 3] = _mm512_unpackhi_epi64(t[q + 1], t[q + 3]);
            }
            /* word 4L+m: lane q from r[4q+m] lane L (a 4 × 4 transpose of 128-bit lanes) */
            for (int m = 0; m < 4; m++) {
                __m512i v0 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0x44), v1 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0xEE);
                __m512i v2 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0x44);
                __m512i v3 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0xEE);
                t[m] = _mm512_shuffle_i32x4(v0, v2, 0x88);
                t[4 + m] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
                t[8 + m] = _mm512_shuffle_i32x4(v1, v3, 0x88);
                t[12 + m] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
            }
            for (int g = 0; g < 16; g++)
                _mm512_storeu_si512(p + (kg + g) * NR * 4 + h * 64, t[g]);
        }
#endif
    for (; kg < KG; kg++) {
        uint8_t *dst = p + kg * NR * 4;
        for (int j = 0; j < NR; j++) {
            const int8_t *src = w + j * in + kg * 4;
            if (j >= jn)
                memset(dst + j * 4, 0, 4);
            else if (kg * 4 + 4 <= in)
                memcpy(dst + j * 4, src, 4);
            else
                for (int b = 0; b < 4; b++)
                    dst[j * 4 + b] = kg * 4 + b < in ? (uint8_t)src[b] : 0;
        }
    }
}

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
    int64_t *koff = (int64_t *)((char *)a->work + d.koff_off);
    for (int64_t kg = 0; kg < d.KG; kg++)
        koff[kg] = kg * NR * 4;
    qepi e = {zpw, scale, n->nsrc > KN_Q_BIAS ? a->src[KN_Q_BIAS] : NULL, n->ai[KN_Q_RELU] != 0};
    channel_consts(w, d.out, d.in, d.in, zp, ((const float *)a->src[KN_Q_XQ])[0], a->src[KN_Q_WSCALE], zpw, scale);
    const int64_t in = d.in, Kp = d.Kp, out = d.out;
    bool par = d.rows * d.out * d.in > (1 << 18);
#pragma omp parallel if (par)
    {
#pragma omp for schedule(static) nowait
        for (int64_t pj = 0; pj < d.panels; pj++) /* weights → [K/4][NR][4] panels, zero-padded */
            pack_panel(w + pj * NR * in, (int)imin(NR, out - pj * NR), in, Kp, panel + pj * NR * Kp);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < d.rows; r++) { /* input rows → u8, K padded with zeros */
            uint8_t *q = xq + r * Kp;
            quant_row(x + r * in, in, inv, zp, q);
            for (int64_t k = in; k < Kp; k++)
                q[k] = 0;
        }
#pragma omp for collapse(2) schedule(static)
        for (int64_t bi = 0; bi < d.blocks; bi++)
            for (int64_t pj = 0; pj < d.panels; pj++) {
                int rows = (int)imin(MR, d.rows - bi * MR);
                qout o = {.y = (float *)a->dst + bi * MR * out + pj * NR, .ldy = out, .cols = (int)imin(NR, out - pj * NR),
                          .p1off = 64};
                tile_lin(xq + bi * MR * Kp, Kp, rows, panel + pj * NR * Kp, koff, d.KG, &e, pj * NR, &o);
            }
    }
    return KN_OK;
}

/* ---- QCONV2D ------------------------------------------------------------------------------ */

typedef struct conv_dims {
    kn__conv_geom q;           /* OH, OW: of the convolution (before a fused pool) */
    bool pool;                 /* 2×2 stride-2 max pool fused: output [N, O, OH/2, OW/2] */
    int64_t PH, PW;            /* output extent (pooled or not) */
    bool direct;               /* stride 1, one group, C % 4 == 0: no im2col */
    bool shift;                /* stride 1, one group, C == 1, KW <= 4: no im2col either */
    int64_t Hp, Wp, P, K, Kp, KG, tiles;
    int64_t plane;             /* direct: positions per channel block of the quantised plane */
    int slices;
    size_t zpw_off, scale_off, koff_off, slice_off, slice_bytes, img_bytes, total;
} conv_dims;

static conv_dims conv_of(const kn_node *n)
{
    conv_dims d;
    d.q = kn__conv_geom_of(n);
    const kn__conv_geom *q = &d.q;
    d.pool = n->ai[KN_Q_POOL] != 0;
    d.PH = n->shape[2];
    d.PW = n->shape[3];
    d.q.OH = kn__conv_out(q->H, q->KH, q->sh, q->ph, q->dh);
    d.q.OW = kn__conv_out(q->W, q->KW, q->sw, q->pw, q->dw);
    d.direct = q->sh == 1 && q->sw == 1 && q->G == 1 && q->C % 4 == 0;
    d.shift = q->sh == 1 && q->sw == 1 && q->G == 1 && q->C == 1 && q->KW <= 4;
    d.Hp = q->H + 2 * q->ph;
    /* grid paths: rows a multiple of 16 wide, so each 16-lane vector of a tile is one row */
    d.Wp = d.direct || d.shift ? up(q->W + 2 * q->pw, 16) : q->W + 2 * q->pw;
    d.P = q->OH * q->OW;
    d.K = d.shift ? q->KH * 4 : q->KH * q->KW * q->Cg; /* shift: kw padded to 4 per kh */
    d.Kp = up(d.K, 4);
    d.KG = d.Kp / 4;
    /* grid tiles over OH × Wp (direct, shift) or tiles over the P output pixels (im2col) */
    d.tiles = up(d.direct || d.shift ? q->OH * d.Wp : d.P, NR) / NR;
    /* the last grid tile reads up to (KH−1)·dh rows and (KW−1)·dw columns past its positions */
    int64_t reach = d.tiles * NR + (q->KH - 1) * q->dh * d.Wp + (d.shift ? 0 : (q->KW - 1) * q->dw);
    d.plane = d.Hp * d.Wp > reach ? d.Hp * d.Wp : reach;
    d.slices = kn__cpu_slices(q->N);
    /* weights [G][O/G padded to MR][Kp], k = (kh·KW + kw)·Cg + c */
    d.zpw_off = (size_t)up(q->G * up(q->Og, MR) * d.Kp, 64);
    d.scale_off = d.zpw_off + (size_t)up(q->O * 4, 64);
    d.koff_off = d.scale_off + (size_t)up(q->O * 4, 64);
    d.slice_off = d.koff_off + (size_t)up(d.KG * 8, 64);
    if (d.direct) {
        d.img_bytes = (size_t)up(q->C * d.plane, 64); /* the blocked plane */
        d.slice_bytes = d.img_bytes;
    } else if (d.shift) {
        d.img_bytes = (size_t)up(4 * d.plane, 64); /* the shifted plane, then the plain one */
        d.slice_bytes = d.img_bytes + (size_t)up(d.plane + 3 * q->dw + 64, 64);
    } else {
        d.img_bytes = (size_t)up(d.Hp * d.Wp * q->C, 64); /* NHWC plane, then its im2col panels */
        d.slice_bytes = d.img_bytes + (size_t)up(d.tiles * NR * d.Kp, 64);
        if (d.pool) /* and the unpooled output of one image */
            d.slice_bytes += (size_t)up(q->O * d.P * 4, 64);
    }
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

/* im2col of group gi of one quantised image (xq: NHWC [Hp][Wp][C]) into NR-column panels
 * [tiles][K/4][NR][4]; positions past P and k past K are zero. */
static __attribute__((noinline)) void im2col_panels(const conv_dims *d, const uint8_t *xq, int64_t gi,
                                                    uint8_t *panels)
{
    /* locals, not d->q.*: byte stores may alias anything, so fields would be reloaded */
    const int64_t KH = d->q.KH, KW = d->q.KW, Cg = d->q.Cg, C = d->q.C, OH = d->q.OH, OW = d->q.OW;
    const int64_t sh = d->q.sh, dh = d->q.dh, dw = d->q.dw, Wp = d->Wp;
    const int64_t tile_bytes = NR * d->Kp, step = d->q.sw * C;
    memset(panels, 0, (size_t)(d->tiles * tile_bytes));
    for (int64_t kh = 0; kh < KH; kh++)
        for (int64_t kw = 0; kw < KW; kw++) {
            const int64_t k0 = (kh * KW + kw) * Cg;
            for (int64_t oh = 0; oh < OH; oh++) {
                const uint8_t *row = xq + ((oh * sh + kh * dh) * Wp + kw * dw) * C + gi * Cg;
                const int64_t p0 = oh * OW;
                if (Cg % 4 == 0) {
                    for (int64_t ow = 0; ow < OW; ow++) {
                        int64_t p = p0 + ow;
                        uint8_t *t = panels + (p / NR) * tile_bytes + (p % NR) * 4 + (k0 >> 2) * NR * 4;
                        const uint8_t *s = row + ow * step;
                        for (int64_t c = 0; c < Cg; c += 4, t += NR * 4)
                            memcpy(t, s + c, 4);
                    }
                } else {
                    for (int64_t c = 0; c < Cg; c++) {
                        const int64_t k = k0 + c;
                        uint8_t *t = panels + (k >> 2) * NR * 4 + (k & 3);
                        const uint8_t *s = row + c;
                        for (int64_t ow = 0, p = p0; ow < OW; ow++, p++, s += step)
                            t[(p / NR) * tile_bytes + (p % NR) * 4] = *s;
                    }
                }
            }
        }
}

/* One image into its NHWC quantised plane, borders at the zero point (= 0.0). */
static void quant_nhwc(const conv_dims *d, const float *xi, float inv, int zp, uint8_t *xq)
{
    const int64_t C = d->q.C, H = d->q.H, W = d->q.W, Wp = d->Wp, ph = d->q.ph, pw = d->q.pw;
    memset(xq, zp, (size_t)(d->Hp * Wp * C));
    for (int64_t c = 0; c < C; c++)
        for (int64_t h = 0; h < H; h++) {
            const float *xr = xi + (c * H + h) * W;
            uint8_t *dst = xq + ((h + ph) * Wp + pw) * C + c;
            if (C == 1) {
                quant_row(xr, W, inv, zp, dst);
                continue;
            }
            uint8_t tmp[256];
            for (int64_t w0 = 0; w0 < W; w0 += 256) {
                int64_t len = imin(256, W - w0);
                quant_row(xr + w0, len, inv, zp, tmp);
                for (int64_t wi = 0; wi < len; wi++)
                    dst[(w0 + wi) * C] = tmp[wi];
            }
        }
}

/* One single-channel image → the "shifted" plane of the C == 1 direct convolution: byte t of
 * position i is the padded image's pixel i + t·dw, so the 4 bytes at a position are the kw =
 * 0..3 taps of one kernel row (weights k = kh·4 + kw). plain: scratch for the padded image. */
static __attribute__((noinline)) void quant_shift(const conv_dims *d, const float *xi, float inv, int zp,
                                                  uint8_t *plain, uint8_t *z)
{
    const int64_t H = d->q.H, W = d->q.W, Wp = d->Wp, dw = d->q.dw, plane = d->plane;
    memset(plain, zp, (size_t)(plane + 3 * dw + 64));
    for (int64_t h = 0; h < H; h++)
        quant_row(xi + h * W, W, inv, zp, plain + (h + d->q.ph) * Wp + d->q.pw);
    int64_t i = 0;
#ifdef Q_VNNI
    static const uint8_t perm[64] = {0, 16, 32, 48, 1, 17, 33, 49, 2, 18, 34, 50, 3, 19, 35, 51,
                                     4, 20, 36, 52, 5, 21, 37, 53, 6, 22, 38, 54, 7, 23, 39, 55,
                                     8, 24, 40, 56, 9, 25, 41, 57, 10, 26, 42, 58, 11, 27, 43, 59,
                                     12, 28, 44, 60, 13, 29, 45, 61, 14, 30, 46, 62, 15, 31, 47, 63};
    const __m512i idx = _mm512_loadu_si512(perm);
    for (; i + 16 <= plane; i += 16) {
        __m512i all = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(plain + i)));
        all = _mm512_inserti32x4(all, _mm_loadu_si128((const __m128i *)(plain + i + dw)), 1);
        all = _mm512_inserti32x4(all, _mm_loadu_si128((const __m128i *)(plain + i + 2 * dw)), 2);
        all = _mm512_inserti32x4(all, _mm_loadu_si128((const __m128i *)(plain + i + 3 * dw)), 3);
        _mm512_storeu_si512(z + i * 4, _mm512_permutexvar_epi8(idx, all));
    }
#endif
    for (; i < plane; i++)
        for (int t = 0; t < 4; t++)
            z[i * 4 + t] = plain[i + t * dw];
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
    uint8_t *wr = a->work;
    int32_t *zpw = (int32_t *)((char *)a->work + d.zpw_off);
    float *scale = (float *)((char *)a->work + d.scale_off);
    int64_t *koff = (int64_t *)((char *)a->work + d.koff_off);
    int64_t Ogp = up(q->Og, MR), CHW = q->C * q->H * q->W;
    /* weights → rows [G][Og padded][Kp] with k = (kh, kw, c), zero-padded */
    memset(wr, 0, (size_t)(q->G * Ogp * d.Kp));
    for (int64_t o = 0; o < q->O; o++) {
        int8_t *row = (int8_t *)wr + ((o / q->Og) * Ogp + o % q->Og) * d.Kp;
        for (int64_t c = 0; c < q->Cg; c++)
            for (int64_t kh = 0; kh < q->KH; kh++)
                for (int64_t kw = 0; kw < q->KW; kw++)
                    row[d.shift ? kh * 4 + kw : (kh * q->KW + kw) * q->Cg + c] =
                        w[((o * q->Cg + c) * q->KH + kh) * q->KW + kw];
    }
    for (int64_t gi = 0; gi < q->G; gi++)
        channel_consts((const int8_t *)wr + gi * Ogp * d.Kp, q->Og, d.K, d.Kp, zp, ((const float *)a->src[KN_Q_XQ])[0],
                       (const float *)a->src[KN_Q_WSCALE] + gi * q->Og, zpw + gi * q->Og, scale + gi * q->Og);
    /* where the 4 k of group kg sit: a (kh, kw, c/4) offset into the blocked plane, or the
     * next 128 bytes of an im2col panel */
    for (int64_t kg = 0; kg < d.KG; kg++) {
        if (d.direct) {
            int64_t c4 = kg % (q->C / 4), khw = kg / (q->C / 4), kh = khw / q->KW, kw = khw % q->KW;
            koff[kg] = (c4 * d.plane + kh * q->dh * d.Wp + kw * q->dw) * 4;
        } else if (d.shift) {
            koff[kg] = kg * q->dh * d.Wp * 4;
        } else {
            koff[kg] = kg * NR * 4;
        }
    }
    qepi e = {zpw, scale, n->nsrc > KN_Q_BIAS ? a->src[KN_Q_BIAS] : NULL, n->ai[KN_Q_RELU] != 0};
#pragma omp parallel num_threads(team(d.slices))
    {
        uint8_t *xq = (uint8_t *)a->work + d.slice_off + (size_t)omp_get_thread_num() * d.slice_bytes;
        uint8_t *panels = xq + d.img_bytes;
#pragma omp for schedule(static)
        for (int64_t ni = 0; ni < q->N; ni++) {
            const float *xi = x + ni * CHW;
            const int64_t out_img = d.PH * d.PW;
            float *yi = y + ni * q->O * out_img;
            if (d.direct || d.shift) {
                if (d.direct)
                    quant_blocked(xi, q->C, q->H, q->W, inv, zp, d.plane, d.Wp, q->ph, q->pw, xq);
                else
                    quant_shift(&d, xi, inv, zp, panels, xq);
                if (d.pool) { /* tiles: 16 columns of rows 2r and 2r + 1 → 8 pooled outputs */
                    for (int64_t r = 0; r < d.PH; r++)
                        for (int64_t cb = 0; cb * 8 < d.PW; cb++) {
                            qout o = {.ldy = out_img, .p1off = d.Wp * 4, .poff = r * d.PW + cb * 8,
                                      .pcount = (int)imin(8, d.PW - cb * 8)};
                            const uint8_t *pan = xq + (2 * r * d.Wp + cb * 16) * 4;
                            for (int64_t o0 = 0; o0 < q->O; o0 += MR) {
                                o.y = yi + o0 * out_img;
                                tile_pool(wr + o0 * d.Kp, d.Kp, (int)imin(MR, q->O - o0), pan, koff, d.KG, &e, o0, &o);
                            }
                        }
                    continue;
                }
                for (int64_t t = 0; t < d.tiles; t++) {
                    qout o = {.ldy = d.P, .p0 = t * NR, .Wp = d.Wp, .OW = q->OW, .np = q->OH * d.Wp, .p1off = 64};
                    for (int64_t o0 = 0; o0 < q->O; o0 += MR) {
                        o.y = yi + o0 * d.P;
                        tile_grid(wr + o0 * d.Kp, d.Kp, (int)imin(MR, q->O - o0), xq + t * NR * 4, koff, d.KG, &e, o0,
                                  &o);
                    }
                }
                continue;
            }
            float *conv_out = d.pool ? (float *)(panels + (size_t)up(d.tiles * NR * d.Kp, 64)) : yi;
            quant_nhwc(&d, xi, inv, zp, xq);
            for (int64_t gi = 0; gi < q->G; gi++) {
                im2col_panels(&d, xq, gi, panels);
                const uint8_t *wg = wr + gi * Ogp * d.Kp;
                for (int64_t t = 0; t < d.tiles; t++)
                    for (int64_t o0 = 0; o0 < q->Og; o0 += MR) {
                        int64_t ch = gi * q->Og + o0;
                        qout o = {.y = conv_out + ch * d.P + t * NR, .ldy = d.P, .cols = (int)imin(NR, d.P - t * NR),
                                  .p1off = 64};
                        tile_conv(wg + o0 * d.Kp, d.Kp, (int)imin(MR, q->Og - o0), panels + t * NR * d.Kp, koff, d.KG,
                                  &e, ch, &o);
                    }
            }
            if (d.pool) /* 2×2 stride-2 max of the (ReLU'd: max commutes with it) outputs */
                for (int64_t c = 0; c < q->O; c++)
                    for (int64_t r = 0; r < d.PH; r++)
                        for (int64_t k = 0; k < d.PW; k++) {
                            const float *s0 = conv_out + c * d.P + 2 * r * q->OW + 2 * k, *s1 = s0 + q->OW;
                            yi[c * out_img + r * d.PW + k] = fmaxf(fmaxf(s0[0], s0[1]), fmaxf(s1[0], s1[1]));
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

void kn__cpu_register_quant(kn__backend_kernel *t)
{
    t[KN_OP_QLINEAR] =
        (kn__backend_kernel){.fn = qlinear_f32, .workspace = qlinear_workspace, .supports = kn__q_supported};
    t[KN_OP_QCONV2D] =
        (kn__backend_kernel){.fn = qconv2d_f32, .workspace = qconv2d_workspace, .supports = kn__q_supported};
    t[KN_OP_FAKE_QUANT] = (kn__backend_kernel){.fn = fake_quant_f32};
}
