/* gemm.c — the single-threaded float32 GEMM kernels of gemm.h (used by conv.c, conv_wino.c).
 *
 * kn__gemm_run: for each NR = 32-column block of B and each MR = 8-row panel of A, an 8×32
 * tile of C lives in 16 zmm registers over the whole K loop (per k: two B loads, eight
 * broadcast-FMA pairs), then is stored once, with the bias added and the columns split at
 * group boundaries by masked stores (a 16-column half that crosses from one image — or one
 * output row — into the next is up to three masked stores). K is never blocked: A panels
 * (8·K floats) stay in L1 for conv-sized K and B blocks come from L2. B is row-major, packed,
 * or rows at arbitrary offsets (implicit GEMM); A is packed, or (kn__gemm_run_at) read
 * transposed in place.
 *
 * (A dot-product kernel for C = A·Bᵀ with both operands contiguous along K — 24 accumulators
 * of 16 partial sums, reduced by a transposing add tree — was tried for the weight gradient:
 * it streams 10 rows per step and ran at 70–75% of peak, below OpenBLAS; see
 * bench/kernels/README.md.)
 *
 * Not here: threading (callers split columns, tiles or images), K blocking, other dtypes. */
#include "gemm.h"

#include <omp.h>
#include <stdatomic.h>
#include <string.h>
#if defined(__AVX512F__) && !defined(KN_CPU_NO_AVX512)
#include <immintrin.h>
#define GEMM_AVX512 1
#endif

#define MR KN_GEMM_MR
#define NR KN_GEMM_NR

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

int kn__cpu_slices(int64_t tasks)
{
    static atomic_int procs;
    int p = atomic_load(&procs);
    if (!p) {
        p = omp_get_num_procs();
        p = p < 1 ? 1 : p > 64 ? 64 : p;
        int expected = 0;
        if (!atomic_compare_exchange_strong(&procs, &expected, p))
            p = expected;
    }
    return tasks < 1 ? 1 : tasks < p ? (int)tasks : p;
}

void kn__gemm_pack_a(int64_t M, int64_t K, const float *a, int64_t rs, int64_t cs, float *ap)
{
    for (int64_t i0 = 0; i0 < M; i0 += MR) {
        int64_t mr = min64(MR, M - i0);
        float *dst = ap + i0 * K;
        for (int64_t i = 0; i < MR; i++) {
            const float *src = a + (i0 + i) * rs;
            if (i < mr)
                for (int64_t k = 0; k < K; k++)
                    dst[k * MR + i] = src[k * cs];
            else
                for (int64_t k = 0; k < K; k++)
                    dst[k * MR + i] = 0.0f;
        }
    }
}

/* Address offset of column j of a grouped matrix, from its row start. */
static inline int64_t col_off(const kn__gmat *m, int64_t j)
{
    return m->grp ? j / m->grp * m->gs + j % m->grp : j;
}

void kn__gemm_pack_b(int64_t K, int64_t N, kn__gmat b, float *bp)
{
    for (int64_t j0 = 0; j0 < N; j0 += NR) {
        int64_t nr = min64(NR, N - j0);
        /* the block's columns as runs contiguous in b: (first column in block, source offset, length) */
        int64_t rj[NR], ro[NR], rl[NR], nrun = 0;
        for (int64_t j = 0; j < nr;) {
            int64_t col = j0 + j, len = nr - j;
            if (b.grp)
                len = min64(len, b.grp - col % b.grp);
            rj[nrun] = j, ro[nrun] = col_off(&b, col), rl[nrun] = len, nrun++;
            j += len;
        }
        float *dst = bp + j0 * K;
        for (int64_t k = 0; k < K; k++) {
            const float *row = b.p + k * b.rs;
            float *d = dst + k * NR;
            for (int64_t r = 0; r < nrun; r++)
                memcpy(d + rj[r], row + ro[r], (size_t)rl[r] * sizeof(float));
            for (int64_t j = nr; j < NR; j++)
                d[j] = 0.0f;
        }
    }
}

#ifdef GEMM_AVX512

static inline __mmask16 lanes(int64_t n) { return n >= 16 ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

/* Where the 16 columns of one half of a tile go, relative to a C row: up to three runs of
 * lanes (m[s] at off[s]: a run per group the half touches, its dropped columns masked out).
 * scalar: the half touches more groups than that. */
#define SEGS 3
typedef struct half_store {
    int64_t off[SEGS];
    __mmask16 m[SEGS];
    int n;
    bool scalar;
} half_store;

static half_store plan_half(const kn__gmat *c, int64_t col, int64_t valid)
{
    half_store h = {{0}, {0}, 0, false};
    if (valid <= 0)
        return h;
    if (!c->grp) {
        h.off[0] = col, h.m[0] = lanes(valid), h.n = 1;
        return h;
    }
    for (int64_t l = 0; l < valid;) {
        int64_t j = col + l, g = j / c->grp, p = j % c->grp, len = min64(valid - l, c->grp - p);
        int64_t keep = min64(len, c->valid - p); /* columns p .. p+keep−1 of the group exist */
        if (keep > 0) {
            if (h.n == SEGS) {
                h.scalar = true;
                return h;
            }
            h.off[h.n] = g * c->gs + p - l;
            h.m[h.n++] = (__mmask16)(lanes(l + keep) & ~lanes(l));
        }
        l += len;
    }
    return h;
}

static inline void store_half(float *row, const half_store *h, __m512 v, bool accumulate)
{
    for (int s = 0; s < h->n; s++) {
        __m512 u = accumulate ? _mm512_add_ps(v, _mm512_maskz_loadu_ps(h->m[s], row + h->off[s])) : v;
        _mm512_mask_storeu_ps(row + h->off[s], h->m[s], u);
    }
}

/* One 8×32 tile over the whole K loop, in 16 named accumulators (an array would be kept in
 * memory by GCC); LOAD0/LOAD1 read B row k (masked at the N edge). */
#define FMA_ROW(i)                                                               \
    do {                                                                         \
        __m512 av = _mm512_set1_ps(ak[i]);                                       \
        c##i##0 = _mm512_fmadd_ps(av, b0, c##i##0);                              \
        c##i##1 = _mm512_fmadd_ps(av, b1, c##i##1);                              \
    } while (0)
#define TILE_BODY(ROW, LOAD0, LOAD1)                                             \
    for (int64_t k = 0; k < K; k++) {                                            \
        const float *bk = ROW, *ak = a + k * as;                                 \
        __m512 b0 = LOAD0, b1 = LOAD1;                                           \
        FMA_ROW(0); FMA_ROW(1); FMA_ROW(2); FMA_ROW(3);                          \
        FMA_ROW(4); FMA_ROW(5); FMA_ROW(6); FMA_ROW(7);                          \
    }

/* A(i, k) = ap[(i/MR)·ps + k·as + i%MR]: packed (ps = MR·K, as = MR) or transposed (ps = MR, as = lda). */
static void run(int64_t M, int64_t N, int64_t K, const float *ap, int64_t ps, int64_t as, const float *b_, int64_t ldb,
                const int64_t *boff, kn__gmat c, const float *bias, bool accumulate)
{
    for (int64_t j0 = 0; j0 < N; j0 += NR) {
        int64_t nr = min64(NR, N - j0);
        half_store h[2] = {plan_half(&c, j0, nr), plan_half(&c, j0 + 16, nr - 16)};
        const float *b = boff || ldb ? b_ + j0 : b_ + j0 * K;
        const int64_t bs = ldb ? ldb : NR;
        const __mmask16 l0 = lanes(nr), l1 = lanes(nr - 16);
        const bool full = (!boff && !ldb) || nr == NR;
        for (int64_t i0 = 0; i0 < M; i0 += MR) {
            int64_t mr = min64(MR, M - i0);
            const float *a = ap + i0 / MR * ps;
            __m512 z = _mm512_setzero_ps();
            __m512 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
            __m512 c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
            if (boff) {
                if (full) {
                    TILE_BODY(b + boff[k], _mm512_loadu_ps(bk), _mm512_loadu_ps(bk + 16))
                } else {
                    TILE_BODY(b + boff[k], _mm512_maskz_loadu_ps(l0, bk), _mm512_maskz_loadu_ps(l1, bk + 16))
                }
            } else if (full) {
                TILE_BODY(b + k * bs, _mm512_loadu_ps(bk), _mm512_loadu_ps(bk + 16))
            } else {
                TILE_BODY(b + k * bs, _mm512_maskz_loadu_ps(l0, bk), _mm512_maskz_loadu_ps(l1, bk + 16))
            }
            const __m512 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31},
                                       {c40, c41}, {c50, c51}, {c60, c61}, {c70, c71}};
            for (int64_t i = 0; i < mr; i++) {
                float *row = c.p + (i0 + i) * c.rs;
                __m512 v0 = acc[i][0], v1 = acc[i][1];
                if (bias) {
                    __m512 bb = _mm512_set1_ps(bias[i0 + i]);
                    v0 = _mm512_add_ps(v0, bb), v1 = _mm512_add_ps(v1, bb);
                }
                if (h[0].scalar || h[1].scalar) { /* groups narrower than a third of a half */
                    float t[NR];
                    _mm512_storeu_ps(t, v0), _mm512_storeu_ps(t + 16, v1);
                    for (int64_t j = 0; j < nr; j++) {
                        if (c.grp && (j0 + j) % c.grp >= c.valid)
                            continue;
                        float *d = row + col_off(&c, j0 + j);
                        *d = accumulate ? *d + t[j] : t[j];
                    }
                    continue;
                }
                store_half(row, &h[0], v0, accumulate);
                store_half(row, &h[1], v1, accumulate);
            }
        }
    }
}

void kn__gemm_run(int64_t M, int64_t N, int64_t K, const float *ap, const float *b, int64_t ldb,
                  const int64_t *boff, kn__gmat c, const float *bias, bool accumulate)
{
    run(M, N, K, ap, MR * K, MR, b, ldb, boff, c, bias, accumulate);
}

void kn__gemm_run_at(int64_t M, int64_t N, int64_t K, const float *at, int64_t lda, const float *b, int64_t ldb,
                     kn__gmat c, bool accumulate)
{
    run(M, N, K, at, MR, lda, b, ldb, NULL, c, NULL, accumulate);
}

#else /* plain C: same tiles and summation structure, scalar arithmetic */

static void run(int64_t M, int64_t N, int64_t K, const float *ap, int64_t ps, int64_t as, const float *b, int64_t ldb,
                const int64_t *boff, kn__gmat c, const float *bias, bool accumulate)
{
    for (int64_t j0 = 0; j0 < N; j0 += NR) {
        int64_t nr = min64(NR, N - j0);
        for (int64_t i0 = 0; i0 < M; i0 += MR) {
            int64_t mr = min64(MR, M - i0);
            const float *a = ap + i0 / MR * ps;
            float acc[MR][NR] = {{0}};
            for (int64_t k = 0; k < K; k++) {
                const float *bk = boff ? b + boff[k] + j0 : ldb ? b + k * ldb + j0 : b + j0 * K + k * NR;
                for (int64_t i = 0; i < mr; i++)
                    for (int64_t j = 0; j < nr; j++)
                        acc[i][j] += a[k * as + i] * bk[j];
            }
            for (int64_t i = 0; i < mr; i++)
                for (int64_t j = 0; j < nr; j++) {
                    if (c.grp && (j0 + j) % c.grp >= c.valid)
                        continue;
                    float *d = c.p + (i0 + i) * c.rs + col_off(&c, j0 + j);
                    float v = acc[i][j] + (bias ? bias[i0 + i] : 0.0f);
                    *d = accumulate ? *d + v : v;
                }
        }
    }
}

void kn__gemm_run(int64_t M, int64_t N, int64_t K, const float *ap, const float *b, int64_t ldb,
                  const int64_t *boff, kn__gmat c, const float *bias, bool accumulate)
{
    run(M, N, K, ap, MR * K, MR, b, ldb, boff, c, bias, accumulate);
}

void kn__gemm_run_at(int64_t M, int64_t N, int64_t K, const float *at, int64_t lda, const float *b, int64_t ldb,
                     kn__gmat c, bool accumulate)
{
    run(M, N, K, at, MR, lda, b, ldb, NULL, c, NULL, accumulate);
}

#endif
