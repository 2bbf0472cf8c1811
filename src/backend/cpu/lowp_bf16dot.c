/* lowp_bf16dot.c (CPU) — LINEAR with bf16 operands on AVX-512 BF16 (vdpbf16ps): y [rows, out]
 * = x [rows, in] · w [out, in]ᵀ (+ b), both operands contiguous along the reduction, so pairs
 * of bf16 products go straight into FP32 accumulators without widening anything. Register
 * tiles of 4 rows × 4 outputs (16 accumulators), K in steps of 32 with a masked tail; each
 * output is computed by one thread in a fixed order (thread-count independent), then the
 * bias (bf16) is added in FP32 and the result rounded to bf16 once.
 *
 * Chosen at run time (kn__bf16dot_available: compiled with AVX512BF16 and the CPU reports it);
 * otherwise lowp.c widens the operands and runs the f32 kernel. vdpbf16ps treats subnormal
 * bf16 inputs as zero, which is within the op's bf16 tolerance. Not here: matmul (its operands
 * are not both contiguous along K in the backward passes), convolutions. */
#include <string.h>
#if defined(__AVX512BF16__) && !defined(KN_CPU_NO_AVX512)
#include <immintrin.h>
#define BF16DOT 1
#endif

#include "../backend.h"
#include "lowp.h"

#ifdef BF16DOT
bool kn__bf16dot_available(void)
{
    static int ok = -1;
    if (ok < 0)
        ok = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
    return ok == 1;
}

static inline __m512bh load_bh(const uint16_t *p, __mmask32 m)
{
    return (__m512bh)_mm512_maskz_loadu_epi16(m, p);
}

/* A full 4×4 tile with constant bounds, so the 16 accumulators stay in registers. */
static void tile44(const uint16_t *x, const uint16_t *w, int64_t in, float out[4][4])
{
    __m512 acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < in; k += 32) {
        __mmask32 m = in - k >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << (in - k)) - 1);
        __m512bh xv[4], wv[4];
        for (int i = 0; i < 4; i++)
            xv[i] = load_bh(x + i * in + k, m);
        for (int j = 0; j < 4; j++)
            wv[j] = load_bh(w + j * in + k, m);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv[i], wv[j]);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
}

/* Dot products of rows r0..r0+R-1 of x with rows o0..o0+O-1 of w (R, O ≤ 4) into out[R][4]. */
static void tile(const uint16_t *x, const uint16_t *w, int64_t in, int R, int O, float out[4][4])
{
    if (R == 4 && O == 4) {
        tile44(x, w, in, out);
        return;
    }
    __m512 acc[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < in; k += 32) {
        __mmask32 m = in - k >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << (in - k)) - 1);
        __m512bh xv[4], wv[4];
        for (int i = 0; i < R; i++)
            xv[i] = load_bh(x + i * in + k, m);
        for (int j = 0; j < O; j++)
            wv[j] = load_bh(w + j * in + k, m);
        for (int i = 0; i < R; i++)
            for (int j = 0; j < O; j++)
                acc[i][j] = _mm512_dpbf16_ps(acc[i][j], xv[i], wv[j]);
    }
    for (int i = 0; i < R; i++)
        for (int j = 0; j < O; j++)
            out[i][j] = _mm512_reduce_add_ps(acc[i][j]);
}

kn_status kn__linear_bf16dot(const kn__kargs *a)
{
    const kn_node *n = a->node;
    const uint16_t *x = a->src[0], *w = a->src[1], *b = n->nsrc == 3 ? a->src[2] : NULL;
    uint16_t *y = a->dst;
    int64_t out = n->src[1]->shape[0], in = n->src[1]->shape[1];
    int64_t total = kn__numel(n);
    if (total == 0)
        return KN_OK;
    int64_t rows = total / out, rt = (rows + 3) / 4, ot = (out + 3) / 4;
#pragma omp parallel for schedule(static) collapse(2) if (rows * out * in > 65536)
    for (int64_t ri = 0; ri < rt; ri++)
        for (int64_t oi = 0; oi < ot; oi++) {
            int64_t r0 = ri * 4, o0 = oi * 4;
            int R = (int)(rows - r0 < 4 ? rows - r0 : 4), O = (int)(out - o0 < 4 ? out - o0 : 4);
            float acc[4][4];
            tile(x + r0 * in, w + o0 * in, in, R, O, acc);
            for (int i = 0; i < R; i++)
                for (int j = 0; j < O; j++) {
                    float v = acc[i][j] + (b ? kn_bf16_to_f32(b[o0 + j]) : 0.0f);
                    y[(r0 + i) * out + o0 + j] = kn_f32_to_bf16(v);
                }
        }
    return KN_OK;
}
#else
bool kn__bf16dot_available(void) { return false; }
kn_status kn__linear_bf16dot(const kn__kargs *a)
{
    (void)a;
    return KN_ERR_UNSUPPORTED;
}
#endif
