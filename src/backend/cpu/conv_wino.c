/* conv_wino.c — Winograd F(2×2, 3×3) convolution (forward and backward data) for the CPU.
 *
 * Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A per 2×2 output tile: each 4×4 input patch d and 3×3
 * filter g go to a 4×4 transformed domain where the channel sum is 16 independent GEMMs
 * (ξ = 0..15: M_ξ [Co, tiles] = U_ξ [Co, Ci] · V_ξ [Ci, tiles]), 2.25× fewer multiplies than
 * the direct convolution; the transforms only add and subtract (G has halves), so rounding
 * stays close to the direct sum. The batch is split into tasks of a few images (about
 * WINO_TILES tiles, so a GEMM has a few hundred columns); a thread runs whole tasks in its
 * own workspace slice: pad one image at a time and transform it into V, run the 16·G GEMMs
 * of gemm.c into M, transform M back into the images' outputs (bias added there). The
 * input and output transforms work on a row of tiles at a time: 16 tiles per AVX-512
 * vector, even and odd columns split (and merged back) with one permute.
 * The backward-data pass is the forward pass on dy padded by 2 − pad with each filter
 * rotated 180° and input/output channels swapped. The weight gradient transposes the same
 * bilinear form: dg = Gᵀ [ Σ_tiles (A dy Aᵀ) ⊙ (Bᵀ d B) ] G, i.e. 16 GEMMs that reduce
 * over the tiles of every image, chunk by chunk of images, threads splitting the output
 * panels, then one 4×4 → 3×3 transform per filter (see the section's own note).
 * Without AVX-512 nothing runs here (kn__wino_ok is false): conv.c's implicit GEMM does.
 * Not here: F(4×4, 3×3) (larger tiles, worse rounding), strides, dilation. */
#include "conv_wino.h"

#include <omp.h>
#include <string.h>

#include "epilogue.h"
#include "gemm.h"

#if defined(__AVX512F__) && !defined(KN_CPU_NO_AVX512)
#include <immintrin.h>

#define WINO_TILES 256  /* target tiles (GEMM columns) per task */
#define WINO_MIN_CH 16  /* channels per group, in and out, below which the GEMMs are too thin */
#define WINO_MAX_BYTES ((int64_t)8 << 20) /* cap of one image's transformed tiles (V and M) */

typedef struct wg {
    int64_t N, G;
    int64_t Ci, Hi, Wi, ph, pw; /* input planes (x; dy for backward data) and their padding */
    int64_t Co, Ho, Wo;         /* output planes (y; dx) */
    int64_t Cig, Cog;           /* per group */
    int64_t TH, TW, TT;         /* 2×2 tiles per image: rows, columns, all */
    int64_t Hq, RS;             /* padded image: Hq rows of RS floats per channel */
    int64_t nb, T, tasks;       /* images per task, tiles per task (row length of V and M), tasks */
    int slices;
    int64_t pa;                 /* floats of one packed U_ξ,g */
    int64_t u, packed, slice;   /* floats: raw U [16][Co][Cig], all packed U, one slice */
} wg;

static int64_t round16(int64_t n) { return (n + 15) & ~(int64_t)15; }
static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

bool kn__wino_ok(const kn__conv_geom *q, bool bwd)
{
    if (q->KH != 3 || q->KW != 3 || q->sh != 1 || q->sw != 1 || q->dh != 1 || q->dw != 1)
        return false;
    if (q->Cg < WINO_MIN_CH || q->Og < WINO_MIN_CH || q->OH < 1 || q->OW < 1)
        return false;
    /* a task holds at least one image's transformed tiles, in and out: keep that bounded
     * (large images go to conv.c's implicit GEMM) */
    int64_t tiles = (q->OH + 1) / 2 * ((q->OW + 1) / 2), H = bwd ? q->H : q->OH, W = bwd ? q->W : q->OW;
    tiles = (H + 1) / 2 * ((W + 1) / 2) > tiles ? (H + 1) / 2 * ((W + 1) / 2) : tiles;
    if (16 * tiles * (q->C + q->O) * (int64_t)sizeof(float) > WINO_MAX_BYTES)
        return false;
    return !bwd || (q->ph <= 2 && q->pw <= 2);
}

static wg wg_of(const kn__conv_geom *q, bool bwd)
{
    wg r;
    r.N = q->N, r.G = q->G;
    if (!bwd) {
        r.Ci = q->C, r.Hi = q->H, r.Wi = q->W, r.ph = q->ph, r.pw = q->pw, r.Co = q->O, r.Ho = q->OH, r.Wo = q->OW;
        r.Cig = q->Cg, r.Cog = q->Og;
    } else {
        r.Ci = q->O, r.Hi = q->OH, r.Wi = q->OW, r.ph = 2 - q->ph, r.pw = 2 - q->pw, r.Co = q->C, r.Ho = q->H,
        r.Wo = q->W;
        r.Cig = q->Og, r.Cog = q->Cg;
    }
    r.TH = (r.Ho + 1) / 2, r.TW = (r.Wo + 1) / 2, r.TT = r.TH * r.TW;
    r.Hq = 2 * r.TH + 2, r.RS = round16(2 * r.TW + 32); /* the transform's loads reach 2·TW + 31 */
    int64_t nb = r.TT > 0 ? (WINO_TILES + r.TT / 2) / r.TT : 1;
    r.nb = nb < 1 ? 1 : nb > r.N ? (r.N > 0 ? r.N : 1) : nb;
    r.T = r.nb * r.TT, r.tasks = r.N > 0 ? (r.N + r.nb - 1) / r.nb : 0;
    r.slices = kn__cpu_slices((int64_t)1 << 30); /* one per core: with fewer tasks than cores the threads share them */
    r.pa = round16(kn__gemm_packed_a_size(r.Cog, r.Cig));
    r.u = round16(16 * r.Co * r.Cig), r.packed = 16 * r.G * r.pa;
    r.slice = round16(r.Ci * r.Hq * r.RS) + round16(16 * r.Ci * r.T) + round16(16 * r.Co * r.T);
    return r;
}

size_t kn__wino_workspace(const kn__conv_geom *q, bool bwd)
{
    wg r = wg_of(q, bwd);
    return (size_t)(r.u + r.packed + r.slices * r.slice) * sizeof(float);
}

/* U[ξ][co][ci] = (G g Gᵀ)[ξ/4][ξ%4] for the filter g feeding output channel co from input
 * channel ci of its group (backward data: W[g·Og + ci][co − g·Cg] rotated 180°). */
static void weight_transform(const kn__conv_geom *q, const wg *r, bool bwd, const float *w, float *U, int64_t co)
{
    const int64_t gi = co / r->Cog;
    for (int64_t ci = 0; ci < r->Cig; ci++) {
        float g[3][3], t[4][3];
        const float *f = !bwd ? w + (co * q->Cg + ci) * 9 : w + ((gi * q->Og + ci) * q->Cg + (co - gi * q->Cg)) * 9;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                g[i][j] = !bwd ? f[i * 3 + j] : f[(2 - i) * 3 + (2 - j)];
        for (int j = 0; j < 3; j++) { /* t = G g */
            t[0][j] = g[0][j];
            t[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
            t[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
            t[3][j] = g[2][j];
        }
        for (int i = 0; i < 4; i++) { /* U = t Gᵀ */
            float u4[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]), 0.5f * (t[i][0] - t[i][1] + t[i][2]),
                           t[i][2]};
            for (int j = 0; j < 4; j++)
                U[((4 * i + j) * r->Co + co) * r->Cig + ci] = u4[j];
        }
    }
}

static inline __mmask16 lanes(int64_t n) { return n >= 16 ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

static const int EVEN[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
static const int ODD[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
static const int LO[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
static const int HI[16] = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

/* V[ξ][c][t0 + th·TW + tw] = (Bᵀ d B)[ξ/4][ξ%4] for channels c0 ≤ c < c1 of image img
 * [Ci, Hi, Wi] (pad: scratch). */
static void input_transform(const wg *r, const float *img, float *pad, float *V, int64_t t0, int64_t c0, int64_t c1)
{
    memset(pad + c0 * r->Hq * r->RS, 0, (size_t)((c1 - c0) * r->Hq * r->RS) * sizeof(float));
    for (int64_t c = c0; c < c1; c++)
        for (int64_t h = 0; h < r->Hi; h++) {
            int64_t hq = h + r->ph;
            if (hq < r->Hq) /* rows past the last tile's patch are never read */
                memcpy(pad + (c * r->Hq + hq) * r->RS + r->pw, img + (c * r->Hi + h) * r->Wi,
                       (size_t)imin(r->Wi, r->RS - r->pw) * sizeof(float));
        }
    const __m512i ev = _mm512_loadu_si512(EVEN), od = _mm512_loadu_si512(ODD);
    const int64_t CT = r->Ci * r->T;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t th = 0; th < r->TH; th++) {
            const float *r0 = pad + (c * r->Hq + 2 * th) * r->RS, *r1 = r0 + r->RS, *r2 = r1 + r->RS, *r3 = r2 + r->RS;
            for (int64_t tw0 = 0; tw0 < r->TW; tw0 += 16) {
                const int64_t col = 2 * tw0;
                const __mmask16 keep = lanes(r->TW - tw0);
                __m512 A0[4], A1[4], B0[4], B1[4];
#define VERT(OFF, X)                                                                         \
    do {                                                                                     \
        __m512 x0 = _mm512_loadu_ps(r0 + col + OFF), x1 = _mm512_loadu_ps(r1 + col + OFF);   \
        __m512 x2 = _mm512_loadu_ps(r2 + col + OFF), x3 = _mm512_loadu_ps(r3 + col + OFF);   \
        X[0] = _mm512_sub_ps(x0, x2), X[1] = _mm512_add_ps(x1, x2);                          \
        X[2] = _mm512_sub_ps(x2, x1), X[3] = _mm512_sub_ps(x1, x3);                          \
    } while (0)
                VERT(0, A0);
                VERT(16, A1);
                VERT(2, B0);
                VERT(18, B1);
#undef VERT
                float *dst = V + c * r->T + t0 + th * r->TW + tw0;
                for (int i = 0; i < 4; i++) { /* columns 2tw, 2tw+1, 2tw+2, 2tw+3 of each tile */
                    __m512 e = _mm512_permutex2var_ps(A0[i], ev, A1[i]), o = _mm512_permutex2var_ps(A0[i], od, A1[i]);
                    __m512 es = _mm512_permutex2var_ps(B0[i], ev, B1[i]), os = _mm512_permutex2var_ps(B0[i], od, B1[i]);
                    float *d = dst + 4 * i * CT;
                    _mm512_mask_storeu_ps(d, keep, _mm512_sub_ps(e, es));
                    _mm512_mask_storeu_ps(d + CT, keep, _mm512_add_ps(o, es));
                    _mm512_mask_storeu_ps(d + 2 * CT, keep, _mm512_sub_ps(es, o));
                    _mm512_mask_storeu_ps(d + 3 * CT, keep, _mm512_sub_ps(o, os));
                }
            }
        }
}

/* Channels o0 ≤ o < o1 of image [Co, Ho, Wo] from M[ξ][co][t0 + tile] (+ bias). */
static void output_transform(const wg *r, const float *M, int64_t t0, const float *bias, float *out, int64_t o0,
                             int64_t o1)
{
    const __m512i lo = _mm512_loadu_si512(LO), hi = _mm512_loadu_si512(HI);
    const int64_t CT = r->Co * r->T;
    for (int64_t o = o0; o < o1; o++) {
        const __m512 bb = _mm512_set1_ps(bias ? bias[o] : 0.0f);
        for (int64_t th = 0; th < r->TH; th++)
            for (int64_t tw0 = 0; tw0 < r->TW; tw0 += 16) {
                const __mmask16 keep = lanes(r->TW - tw0);
                const float *m = M + o * r->T + t0 + th * r->TW + tw0;
                __m512 s0[4], s1[4];
                for (int j = 0; j < 4; j++) { /* Aᵀ m: rows 0+1+2 and 1−2−3 */
                    __m512 m0 = _mm512_maskz_loadu_ps(keep, m + j * CT);
                    __m512 m1 = _mm512_maskz_loadu_ps(keep, m + (4 + j) * CT);
                    __m512 m2 = _mm512_maskz_loadu_ps(keep, m + (8 + j) * CT);
                    __m512 m3 = _mm512_maskz_loadu_ps(keep, m + (12 + j) * CT);
                    s0[j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                    s1[j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
                }
                const int64_t valid = imin(32, r->Wo - 2 * tw0);
                for (int k = 0; k < 2 && 2 * th + k < r->Ho; k++) {
                    const __m512 *s = k ? s1 : s0;
                    __m512 y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), s[2]), bb);
                    __m512 y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[1], s[2]), s[3]), bb);
                    float *d = out + (o * r->Ho + 2 * th + k) * r->Wo + 2 * tw0;
                    _mm512_mask_storeu_ps(d, lanes(valid), _mm512_permutex2var_ps(y0, lo, y1));
                    _mm512_mask_storeu_ps(d + 16, lanes(valid - 16), _mm512_permutex2var_ps(y0, hi, y1));
                }
            }
    }
}

/* Task t of the forward pass (images t·nb ..): input transforms into V, the 16·G GEMMs into
 * M, output transforms. Called by `share` threads at once (thread `me` of them), they split
 * each stage and meet at a barrier between stages (share = 1: one thread, no barriers). The
 * arithmetic of every element is the same whoever computes it, so results do not depend on
 * the thread count. */
static void wino_task(const wg *r, int64_t t, int me, int share, const float *in, const float *bias,
                      const kn__epilogue *epi, float *out, const float *packed, float *pad, float *V, float *M)
{
    const int64_t in_img = r->Ci * r->Hi * r->Wi, out_img = r->Co * r->Ho * r->Wo;
    int64_t n0 = t * r->nb, nb = imin(r->nb, r->N - n0), T = nb * r->TT;
    /* transforms: whole images per thread, or (fewer images than threads) channels per thread */
    const bool by_image = nb >= share;
    for (int64_t i = by_image ? me : 0; i < nb; i += by_image ? share : 1)
        input_transform(r, in + (n0 + i) * in_img, pad, V, i * r->TT, by_image ? 0 : r->Ci * me / share,
                        by_image ? r->Ci : r->Ci * (me + 1) / share);
    if (share > 1) {
#pragma omp barrier
    }
    for (int64_t u = me; u < 16 * r->G; u += share) {
        int64_t xi = u / r->G, g = u % r->G;
        kn__gmat c = {M + (xi * r->Co + g * r->Cog) * r->T, r->T, 0, 0, 0};
        kn__gemm_run(r->Cog, T, r->Cig, packed + u * r->pa, V + (xi * r->Ci + g * r->Cig) * r->T, r->T, NULL, c, NULL,
                     false);
    }
    if (share > 1) {
#pragma omp barrier
    }
    for (int64_t i = by_image ? me : 0; i < nb; i += by_image ? share : 1) {
        int64_t o0 = by_image ? 0 : r->Co * me / share, o1 = by_image ? r->Co : r->Co * (me + 1) / share;
        output_transform(r, M, i * r->TT, bias, out + (n0 + i) * out_img, o0, o1);
        for (int64_t o = o0; epi && o < o1; o++)
            kn__epi_apply(epi, out + (n0 + i) * out_img + o * r->Ho * r->Wo, o, r->Ho * r->Wo);
    }
    if (share > 1) {
#pragma omp barrier /* the next task reuses V and M */
    }
}

void kn__wino_run(const kn__conv_geom *q, bool bwd, const float *in, const float *w, const float *bias,
                  const kn__epilogue *epi, float *out, float *work)
{
    const wg r = wg_of(q, bwd);
    float *U = work, *packed = U + r.u, *slices = packed + r.packed;
    int nt = omp_get_max_threads();
    nt = nt < r.slices ? nt : r.slices;
#pragma omp parallel num_threads(nt)
    {
        float *pad = slices + omp_get_thread_num() * r.slice;
        float *V = pad + round16(r.Ci * r.Hq * r.RS), *M = V + round16(16 * r.Ci * r.T);
        const int64_t panels = (r.Cog + KN_GEMM_MR - 1) / KN_GEMM_MR;
#pragma omp for schedule(static)
        for (int64_t u = 0; u < r.G * panels; u++) { /* U of 8 output channels, then their panel of each U_ξ,g */
            int64_t g = u / panels, i0 = u % panels * KN_GEMM_MR, mr = imin(KN_GEMM_MR, r.Cog - i0);
            for (int64_t co = g * r.Cog + i0; co < g * r.Cog + i0 + mr; co++)
                weight_transform(q, &r, bwd, w, U, co);
            for (int64_t xi = 0; xi < 16; xi++)
                kn__gemm_pack_a(mr, r.Cig, U + (xi * r.Co + g * r.Cog + i0) * r.Cig, r.Cig, 1,
                                packed + (xi * r.G + g) * r.pa + i0 * r.Cig);
        }
        if (r.tasks >= nt) { /* enough images: each thread runs whole tasks in its own slice */
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < r.tasks; t++)
                wino_task(&r, t, 0, 1, in, bias, epi, out, packed, pad, V, M);
        } else { /* fewer tasks than threads (small batches): the threads share each task's
                  * transforms and split its 16·G GEMMs, in the first slice's V and M */
            float *V0 = slices + round16(r.Ci * r.Hq * r.RS), *M0 = V0 + round16(16 * r.Ci * r.T);
            for (int64_t t = 0; t < r.tasks; t++)
                wino_task(&r, t, omp_get_thread_num(), omp_get_num_threads(), in, bias, epi, out, packed, pad, V0, M0);
        }
    }
}

/* ---- weight gradient ------------------------------------------------------------------
 * Here the transforms vectorise over 16 channels instead of 16 tiles: each padded image (and
 * its dy) is first transposed to channels-innermost ([h][w][c], 16×16 blocks in registers),
 * so a tile's 16 (or 4) patch vectors are contiguous loads and its 16 transformed vectors
 * are contiguous stores into V_ξ [tiles, C] and Z_ξ [tiles, O]. The reduction over tiles is
 * then Σ_ξ [O, C] = Z_ξᵀ · V_ξ: an ordinary GEMM (gemm.c's 8×32 kernel, A read transposed).
 * The batch is cut into chunks of a few images; a thread runs whole chunks in its own slice
 * (transforms, then the 16·G GEMMs over the chunk's tiles), so the transformed tiles never
 * move between cores. Chunk k adds into partial sum k mod WINO_DW_PARTS (each partial is
 * one thread's, chunk after chunk in order); the partials are added in a fixed order at the
 * end — the result depends on the shapes only, not on the thread count. */
#define WINO_DW_TILES 98  /* target tiles per chunk (its V and Z stay in L2) */
#define WINO_DW_PARTS 16  /* partial sums (the most threads that share the work) */

typedef struct wdw {
    wg r;                  /* forward geometry (x → y) and tiles */
    int64_t CH, OH16;      /* channels of V rows / Z rows, rounded up to 16 */
    int64_t Wq;            /* padded image width: 2·TW + 2 */
    int64_t nb, T;         /* images per chunk, tiles per chunk */
    int64_t chunks, parts;
    int slices;
    int64_t S, slice;      /* floats: one partial Σ [16][G][Og][Cg]; one thread's xh, dyh, V, Z */
    int64_t xh, dyh, V;    /* offsets in a slice */
} wdw;

static wdw wdw_of(const kn__conv_geom *q)
{
    wdw d;
    d.r = wg_of(q, false);
    d.CH = round16(q->C), d.OH16 = round16(q->O), d.Wq = 2 * d.r.TW + 2;
    int64_t nb = d.r.TT > 0 ? (WINO_DW_TILES + d.r.TT / 2) / d.r.TT : 1;
    d.nb = nb < 1 ? 1 : nb > q->N ? (q->N > 0 ? q->N : 1) : nb;
    d.T = d.nb * d.r.TT;
    d.chunks = q->N > 0 ? (q->N + d.nb - 1) / d.nb : 0;
    d.parts = d.chunks < WINO_DW_PARTS ? (d.chunks > 0 ? d.chunks : 1) : WINO_DW_PARTS;
    d.slices = kn__cpu_slices(d.parts);
    d.S = round16(16 * q->O * q->Cg);
    d.xh = 0, d.dyh = round16(d.r.Hq * d.Wq * d.CH);
    d.V = d.dyh + round16(2 * d.r.TH * 2 * d.r.TW * d.OH16);
    /* Z follows V; a ragged last 8-row panel of Zᵀ reads ≤ 7 floats past it */
    d.slice = d.V + round16(16 * d.T * d.CH) + round16(16 * d.T * d.OH16) + 16;
    return d;
}

bool kn__wino_dw_ok(const kn__conv_geom *q) { return kn__wino_ok(q, false); }

size_t kn__wino_dw_workspace(const kn__conv_geom *q)
{
    wdw d = wdw_of(q);
    return (size_t)(d.parts * d.S + d.slices * d.slice) * sizeof(float);
}

/* 16 rows of 16 floats in place: r[i][j] → r[j][i]. */
static void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) /* t[i] holds columns 4L+0, 4L+1 of rows i, i+1; t[i+1] columns 4L+2, 4L+3 */
        for (int k = 0; k < 2; k++) {
            __m512d lo = _mm512_castps_pd(t[i + k]), hi = _mm512_castps_pd(t[i + k + 2]);
            r[i + 2 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi));
            r[i + 2 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi));
        }
    /* r[4a + b] now holds, in 128-bit lane L, rows 4a..4a+3 at column 4L + b */
    for (int i = 0; i < 16; i += 8)
        for (int k = 0; k < 4; k++) {
            t[i + k] = _mm512_shuffle_f32x4(r[i + k], r[i + k + 4], 0x88);
            t[i + k + 4] = _mm512_shuffle_f32x4(r[i + k], r[i + k + 4], 0xDD);
        }
    for (int k = 0; k < 8; k++) {
        r[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
        r[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xDD);
    }
}

/* dst[(h + oh)·dw_ + (w + ow)][c] (row of `ch` floats) = src[c][h][w] for c < C, h < H, w < W;
 * the caller zeroed dst. */
static void to_hwc(const float *src, int64_t C, int64_t H, int64_t W, float *dst, int64_t oh, int64_t ow, int64_t dw_,
                   int64_t ch)
{
    for (int64_t h = 0; h < H; h++)
        for (int64_t c0 = 0; c0 < C; c0 += 16)
            for (int64_t w0 = 0; w0 < W; w0 += 16) {
                __m512 r[16];
                __mmask16 m = lanes(W - w0);
                for (int i = 0; i < 16; i++)
                    r[i] = c0 + i < C ? _mm512_maskz_loadu_ps(m, src + ((c0 + i) * H + h) * W + w0)
                                      : _mm512_setzero_ps();
                transpose16(r);
                for (int64_t j = 0; j < 16 && w0 + j < W; j++)
                    _mm512_storeu_ps(dst + ((h + oh) * dw_ + w0 + j + ow) * ch + c0, r[j]);
            }
}

/* V_ξ[t0 + tile][c] from the channels-innermost padded image xh [Hq][Wq][CH]. */
static void input_transform_hwc(const wdw *d, const float *xh, float *V, int64_t t0)
{
    const int64_t CH = d->CH, TS = d->T * CH;
    for (int64_t th = 0; th < d->r.TH; th++)
        for (int64_t tw = 0; tw < d->r.TW; tw++) {
            const float *p = xh + (2 * th * d->Wq + 2 * tw) * CH;
            float *v = V + (t0 + th * d->r.TW + tw) * CH;
            for (int64_t c0 = 0; c0 < CH; c0 += 16) {
                __m512 t[4][4];
                for (int j = 0; j < 4; j++) { /* Bᵀ d down each patch column */
                    __m512 x0 = _mm512_loadu_ps(p + j * CH + c0), x1 = _mm512_loadu_ps(p + (d->Wq + j) * CH + c0);
                    __m512 x2 = _mm512_loadu_ps(p + (2 * d->Wq + j) * CH + c0);
                    __m512 x3 = _mm512_loadu_ps(p + (3 * d->Wq + j) * CH + c0);
                    t[0][j] = _mm512_sub_ps(x0, x2), t[1][j] = _mm512_add_ps(x1, x2);
                    t[2][j] = _mm512_sub_ps(x2, x1), t[3][j] = _mm512_sub_ps(x1, x3);
                }
                for (int i = 0; i < 4; i++) { /* · B along each row */
                    float *o = v + 4 * i * TS + c0;
                    _mm512_storeu_ps(o, _mm512_sub_ps(t[i][0], t[i][2]));
                    _mm512_storeu_ps(o + TS, _mm512_add_ps(t[i][1], t[i][2]));
                    _mm512_storeu_ps(o + 2 * TS, _mm512_sub_ps(t[i][2], t[i][1]));
                    _mm512_storeu_ps(o + 3 * TS, _mm512_sub_ps(t[i][1], t[i][3]));
                }
            }
        }
}

/* Z_ξ[t0 + tile][o] = (A dy Aᵀ) from the channels-innermost dy [2·TH][2·TW][OH16] (zero past the edge). */
static void dy_transform_hwc(const wdw *d, const float *dyh, float *Z, int64_t t0)
{
    const int64_t OC = d->OH16, ZS = d->T * OC, W2 = 2 * d->r.TW;
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t th = 0; th < d->r.TH; th++)
        for (int64_t tw = 0; tw < d->r.TW; tw++) {
            const float *e = dyh + (2 * th * W2 + 2 * tw) * OC;
            float *z = Z + (t0 + th * d->r.TW + tw) * OC;
            for (int64_t o0 = 0; o0 + 16 <= OC; o0 += 16) {
                __m512 a = _mm512_loadu_ps(e + o0), b = _mm512_loadu_ps(e + OC + o0);
                __m512 c = _mm512_loadu_ps(e + W2 * OC + o0), dd = _mm512_loadu_ps(e + (W2 + 1) * OC + o0);
                /* A · tile: rows dy0, dy0 + dy1, dy0 − dy1, −dy1 (p: left column, q: right) */
                __m512 p[4] = {a, _mm512_add_ps(a, c), _mm512_sub_ps(a, c), _mm512_sub_ps(zero, c)};
                __m512 q4[4] = {b, _mm512_add_ps(b, dd), _mm512_sub_ps(b, dd), _mm512_sub_ps(zero, dd)};
                for (int i = 0; i < 4; i++) { /* · Aᵀ: columns p, p + q, p − q, −q */
                    float *o = z + 4 * i * ZS + o0;
                    _mm512_storeu_ps(o, p[i]);
                    _mm512_storeu_ps(o + ZS, _mm512_add_ps(p[i], q4[i]));
                    _mm512_storeu_ps(o + 2 * ZS, _mm512_sub_ps(p[i], q4[i]));
                    _mm512_storeu_ps(o + 3 * ZS, _mm512_sub_ps(zero, q4[i]));
                }
            }
        }
}

void kn__wino_dw_run(const kn__conv_geom *q, const float *x, const float *dy, float *dw, float *work)
{
    const wdw d = wdw_of(q);
    const wg *r = &d.r;
    float *S = work, *slices = S + d.parts * d.S;
    const int64_t x_img = q->C * q->H * q->W, y_img = q->O * q->OH * q->OW;
    const int64_t panels = (q->Og + KN_GEMM_MR - 1) / KN_GEMM_MR;
    int nt = omp_get_max_threads();
    nt = nt < d.slices ? nt : d.slices;
#pragma omp parallel num_threads(nt)
    {
        float *slice = slices + omp_get_thread_num() * d.slice;
        float *xh = slice + d.xh, *dyh = slice + d.dyh, *V = slice + d.V, *Z = V + round16(16 * d.T * d.CH);
#pragma omp for schedule(dynamic, 1)
        for (int64_t part = 0; part < d.parts; part++)
            for (int64_t k = part; k < d.chunks; k += d.parts) {
                int64_t n0 = k * d.nb, m = imin(d.nb, q->N - n0), T = m * r->TT;
                for (int64_t i = 0; i < m; i++) {
                    memset(xh, 0, (size_t)d.V * sizeof(float));
                    to_hwc(x + (n0 + i) * x_img, q->C, q->H, q->W, xh, r->ph, r->pw, d.Wq, d.CH);
                    to_hwc(dy + (n0 + i) * y_img, q->O, q->OH, q->OW, dyh, 0, 0, 2 * r->TW, d.OH16);
                    input_transform_hwc(&d, xh, V, i * r->TT);
                    dy_transform_hwc(&d, dyh, Z, i * r->TT);
                }
                for (int64_t u = 0; u < 16 * q->G * panels; u++) { /* Σ_ξ,g [8 rows of Og, Cg] += Z_ξᵀ · V_ξ */
                    int64_t xi = u / (q->G * panels), g = u / panels % q->G, i0 = u % panels * KN_GEMM_MR;
                    kn__gmat c = {S + part * d.S + ((xi * q->G + g) * q->Og + i0) * q->Cg, q->Cg, 0, 0, 0};
                    kn__gemm_run_at(imin(KN_GEMM_MR, q->Og - i0), q->Cg, T, Z + xi * d.T * d.OH16 + g * q->Og + i0,
                                    d.OH16, V + xi * d.T * d.CH + g * q->Cg, d.CH, c, k > part);
                }
            }
        const int64_t sn = 16 * q->O * q->Cg, blocks = (sn + 1023) / 1024;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < blocks; b++) { /* partial 0 += partials 1, 2, ... in order */
            float *restrict s0 = S + b * 1024;
            int64_t n = imin(1024, sn - b * 1024);
            for (int64_t part = 1; part < d.parts; part++) {
                const float *restrict sp = s0 + part * d.S;
                for (int64_t i = 0; i < n; i++)
                    s0[i] += sp[i];
            }
        }
#pragma omp for schedule(static)
        for (int64_t o = 0; o < q->O; o++) { /* dw = Gᵀ Σ G per filter */
            int64_t g = o / q->Og, ol = o % q->Og;
            for (int64_t c = 0; c < q->Cg; c++) {
                float s4[4][4], t[3][4];
                for (int xi = 0; xi < 16; xi++)
                    s4[xi / 4][xi % 4] = S[((xi * q->G + g) * q->Og + ol) * q->Cg + c];
                for (int j = 0; j < 4; j++) {
                    t[0][j] = s4[0][j] + 0.5f * (s4[1][j] + s4[2][j]);
                    t[1][j] = 0.5f * (s4[1][j] - s4[2][j]);
                    t[2][j] = 0.5f * (s4[1][j] + s4[2][j]) + s4[3][j];
                }
                float *f = dw + (o * q->Cg + c) * 9;
                for (int i = 0; i < 3; i++) {
                    f[i * 3 + 0] = t[i][0] + 0.5f * (t[i][1] + t[i][2]);
                    f[i * 3 + 1] = 0.5f * (t[i][1] - t[i][2]);
                    f[i * 3 + 2] = 0.5f * (t[i][1] + t[i][2]) + t[i][3];
                }
            }
        }
    }
}

#else /* no AVX-512: never chosen */

bool kn__wino_ok(const kn__conv_geom *q, bool bwd)
{
    (void)q, (void)bwd;
    return false;
}

size_t kn__wino_workspace(const kn__conv_geom *q, bool bwd)
{
    (void)q, (void)bwd;
    return 0;
}

void kn__wino_run(const kn__conv_geom *q, bool bwd, const float *in, const float *w, const float *bias,
                  const kn__epilogue *epi, float *out, float *work)
{
    (void)q, (void)bwd, (void)in, (void)w, (void)bias, (void)epi, (void)out, (void)work;
}

bool kn__wino_dw_ok(const kn__conv_geom *q)
{
    (void)q;
    return false;
}

size_t kn__wino_dw_workspace(const kn__conv_geom *q)
{
    (void)q;
    return 0;
}

void kn__wino_dw_run(const kn__conv_geom *q, const float *x, const float *dy, float *dw, float *work)
{
    (void)q, (void)x, (void)dy, (void)dw, (void)work;
}

#endif
