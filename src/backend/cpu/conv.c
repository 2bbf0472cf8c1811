/* conv.c (CPU) — float32 CONV2D, CONV2D_BWD_DATA and CONV2D_BWD_WEIGHT on kiln's own GEMM
 * kernels (gemm.c), per group, batched over images. Each pass picks one of three methods
 * by shape (the workspace function makes the same choice):
 *
 * 1. Winograd F(2×2, 3×3) (conv_wino.c): 3×3, stride 1, undilated, ≥ 16 channels per group
 *    in and out — all three passes. Model B's second convolution.
 * 2. Implicit GEMM on a zero-padded plane ("grid", below): the forward and backward-data
 *    passes of any other stride-1 convolution but 1×1 unpadded ones. B's rows are shifted
 *    views of the padded image, read through a table of offsets, so there is no im2col;
 *    backward data is the same forward computation on dy with flipped weights (no col2im)
 *    — except with few input channels per group, where method 3 wins.
 * 3. im2col/col2im + GEMM: strides > 1 (and backward data of thin first layers). Forward
 *    and backward data split the batch into tasks of a few images (about TASK_COLS output
 *    pixels, so each GEMM has a few hundred columns and the im2col block stays in L2); a
 *    thread runs whole tasks in its own workspace slice: im2col, then one GEMM whose C is
 *    the images' outputs [nb, O, P] seen as [O, nb·P] (bias added in the GEMM's store) — or
 *    one GEMM into a col block and col2im. A 1×1, stride-1, unpadded conv reads x (dy)
 *    directly. Every weight gradient but Winograd's: im2col of a chunk of images, then
 *    OpenBLAS per image (A·Bᵀ with both operands contiguous along the reduction, which
 *    OpenBLAS runs better than gemm.c).
 *
 * The forward kernel applies a fused epilogue (kn__kargs.epi: batch norm, activation) to each
 * task's output planes right after their GEMM, while they are in cache.
 *
 * Every output element of kiln's own kernels is computed by one thread in an order fixed by
 * the shapes, so results do not depend on the thread count (OpenBLAS splits M and N, not K,
 * across its threads). The workspace (plan-owned) holds the packed
 * weights and one slice per thread, the number of slices fixed at compile time
 * (omp_get_num_procs(), at most 64) — a kernel never runs more threads than slices.
 * Deliberately not here: FFT, direct depthwise kernels, NHWC layouts. */
#include <limits.h>
#include <omp.h>
#include <string.h>
#if defined(__AVX512F__) && !defined(KN_CPU_NO_AVX512)
#include <immintrin.h>
#define CONV_AVX512 1
#endif

#include "../../ops/conv_internal.h"
#include "../backend.h"
#include "conv_c1.h"
#include "conv_wino.h"
#include "epilogue.h"
#include "gemm.h"
#include "sgemm.h"

#define TASK_COLS 512                    /* target output pixels of one thread's GEMM */
#define TASK_BYTES ((int64_t)768 << 10)  /* cap of one thread's im2col block */
#define DW_BYTES ((int64_t)4 << 20)      /* weight gradient: im2col chunk shared by the threads */
#define DW_PART_MAX 4096  /* image-parallel weight gradient: dw has at most this many elements */
#define DW_SLICES 16      /* ... over at most this many threads' copies of dw */

static bool is_pointwise(const kn__conv_geom *q)
{
    return q->KH == 1 && q->KW == 1 && q->sh == 1 && q->sw == 1 && q->ph == 0 && q->pw == 0;
}

static int64_t align16(int64_t floats) { return (floats + 15) & ~(int64_t)15; }
static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

/* Geometry plus the derived sizes every kernel and its workspace function agree on. */
typedef struct plan {
    kn__conv_geom q;
    int64_t P, K, R;  /* output pixels per image, GEMM depth per group (Cg·KH·KW), col rows (C·KH·KW) */
    bool pw;          /* 1×1 stride 1 unpadded: no im2col */
    int64_t nb, tasks; /* images per task, tasks */
    int slices;       /* per-thread workspace slices */
    int64_t packed, slice; /* floats: packed weights (all groups), one slice */
} plan;

static int64_t task_images(const kn__conv_geom *q, int64_t P, int64_t floats_per_pixel)
{
    if (P <= 0 || q->N <= 0)
        return 1;
    int64_t nb = (TASK_COLS + P - 1) / P;
    int64_t per = floats_per_pixel * P * (int64_t)sizeof(float);
    if (per > 0 && TASK_BYTES / per < nb)
        nb = TASK_BYTES / per;
    return nb < 1 ? 1 : nb > q->N ? q->N : nb;
}

static int slices_for(int64_t tasks) { return kn__cpu_slices(tasks); }

/* Forward (bwd = false) or backward-data (bwd = true) plan. */
static plan plan_of(const kn_node *n, bool bwd)
{
    plan p;
    p.q = kn__conv_geom_of(n);
    const kn__conv_geom *q = &p.q;
    p.P = q->OH * q->OW, p.K = q->Cg * q->KH * q->KW, p.R = q->C * q->KH * q->KW, p.pw = is_pointwise(q);
    int64_t L; /* floats per pixel of a slice */
    if (!bwd)
        L = p.pw ? p.K : p.R; /* packed x block, or col */
    else
        L = q->Og + (p.pw ? 0 : p.R); /* packed dy block (+ dcol) */
    p.nb = task_images(q, p.P, L);
    p.tasks = q->N > 0 ? (q->N + p.nb - 1) / p.nb : 0;
    p.slices = slices_for(p.tasks);
    int64_t cols = p.nb * p.P, pcols = (cols + KN_GEMM_NR - 1) / KN_GEMM_NR * KN_GEMM_NR;
    if (!bwd) {
        p.packed = q->G * align16(kn__gemm_packed_a_size(q->Og, p.K));
        p.slice = align16(p.pw ? p.K * pcols : p.R * cols);
    } else {
        p.packed = q->G * align16(kn__gemm_packed_a_size(p.K, q->Og));
        p.slice = align16(q->Og * pcols) + (p.pw ? 0 : align16(p.R * cols));
    }
    return p;
}

static bool grid_ok(const kn__conv_geom *q, bool bwd);
static size_t grid_workspace(const kn_node *n, bool bwd);

/* Forward at batch 1 or 2 (batch-1 inference): per image, im2col and one GEMM
 * y [O, P] = W [O, K] · col [K, P] that kn__sgemm splits over the threads (oneDNN), then bias
 * and epilogue. Winograd, the implicit GEMM and gemm.c's tasks parallelise over images and
 * tiles, and at batch 1 they also pay for transforming or packing the weights on every call:
 * model B's conv2 (32→64, 14×14) at batch 1 takes 98 µs in Winograd and 83 in the implicit
 * GEMM at 2 threads, against 39 µs for the GEMM plus a few for im2col. */
#define SMALL_BATCH 2

static void im2col_row_part(const kn__conv_geom *q, const float *x, int64_t img, int64_t r, int64_t oh0, int64_t oh1,
                            float *dst);

static bool small_batch_ok(const kn__conv_geom *q)
{
    return q->N <= SMALL_BATCH && q->G == 1 && !kn__conv_c1_ok(q) && q->OH * q->OW > 0;
}

static size_t small_batch_workspace(const kn__conv_geom *q)
{
    return is_pointwise(q) ? 0 : (size_t)(q->C * q->KH * q->KW * q->OH * q->OW) * sizeof(float);
}

static void small_batch_run(const kn__conv_geom *q, const float *x, const float *w, const float *b,
                            const kn__epilogue *epi, float *y, float *col)
{
    const int64_t P = q->OH * q->OW, K = q->C * q->KH * q->KW;
    const bool pw = is_pointwise(q);
    /* each thread takes a band of output rows: im2col of its columns, the GEMM on them, bias and
     * epilogue, all on its own core and without a barrier between */
    const int64_t bands = (int64_t)omp_get_max_threads() < q->OH ? omp_get_max_threads() : q->OH;
    const bool parallel = bands > 1 && 2.0 * (double)q->O * (double)K * (double)P >= KN_SGEMM_SPLIT_MIN_FLOPS;
    for (int64_t n = 0; n < q->N; n++) {
        float *out = y + n * q->O * P;
        const float *xn = x + n * q->C * P;
#pragma omp parallel num_threads(parallel ? (int)bands : 1)
        {
            int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
            int64_t oh0 = q->OH * t / nt, oh1 = q->OH * (t + 1) / nt, p0 = oh0 * q->OW, np = (oh1 - oh0) * q->OW;
            float *mine = col + K * p0; /* this band's col [K, np], apart from the other bands' */
            if (!pw)
                for (int64_t r = 0; r < K; r++)
                    im2col_row_part(q, x, n, r, oh0, oh1, mine + r * np - p0);
            if (np > 0)
                kn__sgemm(false, false, q->O, np, K, 1.0f, w, K, pw ? xn + p0 : mine, pw ? P : np, 0.0f, out + p0, P);
            for (int64_t o = 0; np > 0 && (b || epi) && o < q->O; o++) {
                float *yo = out + o * P + p0;
                if (b) {
                    const float bo = b[o];
#pragma omp simd
                    for (int64_t i = 0; i < np; i++)
                        yo[i] += bo;
                }
                /* batch norm and activation are per element: a band at a time is the same */
                kn__epi_apply(epi, yo, o, np);
            }
        }
    }
}

static size_t fwd_workspace(const kn_node *n)
{
    kn__conv_geom q = kn__conv_geom_of(n);
    if (small_batch_ok(&q))
        return small_batch_workspace(&q);
    if (kn__wino_ok(&q, false))
        return kn__wino_workspace(&q, false);
    if (kn__conv_c1_ok(&q))
        return kn__conv_c1_workspace(&q);
    if (grid_ok(&q, false))
        return grid_workspace(n, false);
    plan p = plan_of(n, false);
    return (size_t)(p.packed + p.slices * p.slice) * sizeof(float);
}

static int64_t dw_chunk(const kn__conv_geom *q);
static bool dw_by_image(const kn__conv_geom *q);

/* Backward data through im2col's path with fewer col rows per group than 4 register tiles
 * (a thin first layer): gemm.c would leave most of its 8-row tiles empty. */
static bool thin_bwd(const kn__conv_geom *q)
{
    return !is_pointwise(q) && q->Cg * q->KH * q->KW < 4 * KN_GEMM_MR;
}

static size_t bwd_data_workspace(const kn_node *n)
{
    kn__conv_geom q = kn__conv_geom_of(n);
    if (kn__wino_ok(&q, true))
        return kn__wino_workspace(&q, true);
    if (grid_ok(&q, true))
        return grid_workspace(n, true);
    if (thin_bwd(&q))
        return (size_t)(q.C * q.KH * q.KW * dw_chunk(&q) * q.OH * q.OW) * sizeof(float);
    plan p = plan_of(n, true);
    return (size_t)(p.packed + p.slices * p.slice) * sizeof(float);
}

/* Threads for a kernel with `slices` workspace slices. */
static int team(int slices)
{
    int t = omp_get_max_threads();
    return t < slices ? t : slices;
}

static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

/* Output columns [*lo, *hi) whose input column ow·sw + off lies inside [0, W). */
static void valid_range(int64_t off, int64_t s, int64_t W, int64_t OW, int64_t *lo, int64_t *hi)
{
    int64_t a = ceil_div(-off, s), b = ceil_div(W - off, s);
    a = a < 0 ? 0 : a > OW ? OW : a;
    b = b < a ? a : b > OW ? OW : b;
    *lo = a;
    *hi = b;
}

#ifdef CONV_AVX512
static inline __mmask16 lanes(int64_t n) { return n >= 16 ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }
/* Lanes l of [0, 16) with lo ≤ l < hi. */
static inline __mmask16 lane_range(int64_t lo, int64_t hi) { return (__mmask16)(lanes(hi) & ~lanes(lo)); }
#endif

/* Row r = (c·KH + kh)·KW + kw of image img's col, output rows oh0 .. oh1−1 only: values
 * dst[oh0·OW .. oh1·OW). */
static void im2col_row_part(const kn__conv_geom *q, const float *x, int64_t img, int64_t r, int64_t oh0, int64_t oh1,
                            float *dst)
{
    const int64_t KHW = q->KH * q->KW;
    int64_t c = r / KHW, kh = (r / q->KW) % q->KH, kw = r % q->KW;
    const float *src = x + (img * q->C + c) * q->H * q->W;
    int64_t off = kw * q->dw - q->pw, lo, hi;
    valid_range(off, q->sw, q->W, q->OW, &lo, &hi);
#ifdef CONV_AVX512
    if (q->sw == 1) { /* each output row: masked loads of the input row shifted by off, zeros outside */
        for (int64_t oh = oh0; oh < oh1; oh++) {
            int64_t ih = oh * q->sh - q->ph + kh * q->dh;
            bool in = ih >= 0 && ih < q->H;
            const float *s = src + (in ? ih : 0) * q->W + off;
            float *d = dst + oh * q->OW;
            for (int64_t ow = 0; ow < q->OW; ow += 16) {
                __mmask16 m = in ? lane_range(lo - ow, hi - ow) : 0;
                _mm512_mask_storeu_ps(d + ow, lanes(q->OW - ow), _mm512_maskz_loadu_ps(m, s + ow));
            }
        }
        return;
    }
#endif
    for (int64_t oh = oh0; oh < oh1; oh++) {
        int64_t ih = oh * q->sh - q->ph + kh * q->dh;
        float *d = dst + oh * q->OW;
        if (ih < 0 || ih >= q->H) {
            memset(d, 0, (size_t)q->OW * sizeof(float));
            continue;
        }
        const float *s = src + ih * q->W; /* input column ow·sw + off, in range for lo ≤ ow < hi */
        for (int64_t ow = 0; ow < lo; ow++)
            d[ow] = 0.0f;
        if (q->sw == 1 && hi > lo)
            memcpy(d + lo, s + lo + off, (size_t)(hi - lo) * sizeof(float));
        else
            for (int64_t ow = lo; ow < hi; ow++)
                d[ow] = s[ow * q->sw + off];
        for (int64_t ow = hi; ow < q->OW; ow++)
            d[ow] = 0.0f;
    }
}

/* Row r of image img's col: all OH·OW values into dst. */
static void im2col_row(const kn__conv_geom *q, const float *x, int64_t img, int64_t r, float *dst)
{
    im2col_row_part(q, x, img, r, 0, q->OH, dst);
}

/* col [R, nb·P] (row-major) of images n0 .. n0+nb−1, one thread. */
static void im2col(const kn__conv_geom *q, const float *x, int64_t n0, int64_t nb, float *col)
{
    const int64_t R = q->C * q->KH * q->KW, P = q->OH * q->OW;
    for (int64_t r = 0; r < R; r++)
        for (int64_t i = 0; i < nb; i++)
            im2col_row(q, x, n0 + i, r, col + r * nb * P + i * P);
}

/* dx planes of image img = Σ over kernel taps of its col rows (image i of a col block with
 * leading dimension ld) scattered back. */
static void col2im_image(const kn__conv_geom *q, const float *col, int64_t ld, int64_t i, int64_t img, float *dx)
{
    const int64_t P = q->OH * q->OW, HW = q->H * q->W;
    for (int64_t c = 0; c < q->C; c++) {
        float *plane = dx + (img * q->C + c) * HW;
        memset(plane, 0, (size_t)HW * sizeof(float));
        for (int64_t kh = 0; kh < q->KH; kh++)
            for (int64_t kw = 0; kw < q->KW; kw++) {
                const float *src = col + ((c * q->KH + kh) * q->KW + kw) * ld + i * P;
                int64_t off = kw * q->dw - q->pw, lo, hi;
                valid_range(off, q->sw, q->W, q->OW, &lo, &hi);
                for (int64_t oh = 0; oh < q->OH; oh++) {
                    int64_t ih = oh * q->sh - q->ph + kh * q->dh;
                    if (ih < 0 || ih >= q->H)
                        continue;
                    float *d = plane + ih * q->W;
                    const float *s = src + oh * q->OW;
                    if (q->sw == 1) {
#ifdef CONV_AVX512
                        for (int64_t ow = 0; ow < q->OW; ow += 16) {
                            __mmask16 m = lane_range(lo - ow, hi - ow);
                            __m512 v = _mm512_maskz_loadu_ps(m, d + off + ow);
                            _mm512_mask_storeu_ps(d + off + ow, m, _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, s + ow)));
                        }
#else
                        float *restrict dd = d + lo + off;
                        const float *restrict ss = s + lo;
                        for (int64_t j = 0; j < hi - lo; j++)
                            dd[j] += ss[j];
#endif
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++)
                            d[ow * q->sw + off] += s[ow];
                    }
                }
            }
    }
}

/* dx planes of images n0 .. n0+nb−1 from their col block [R, nb·P]. */
static void col2im(const kn__conv_geom *q, const float *col, int64_t n0, int64_t nb, float *dx)
{
    for (int64_t i = 0; i < nb; i++)
        col2im_image(q, col, nb * q->OH * q->OW, i, n0 + i, dx);
}



/* ---- stride 1: implicit GEMM on a zero-padded plane ------------------------------------
 * With stride 1, output pixel (oh, ow) computed at column j = oh·Wp + ow of a grid as wide
 * as the padded input row reads tap (c, kh, kw) at padded-plane index
 * c·Hp·Wp + kh·dh·Wp + kw·dw − pw + j: every GEMM row of B is the padded image itself,
 * shifted. Rows are stored Wp = W + pw wide (data, then pw zeros that are both this row's
 * right padding and the next row's left padding), so only Wp − OW columns per row (1 for
 * a 3×3 "same" conv) are computed and dropped. The GEMM reads B through a table of row
 * offsets — no im2col — and skips the dropped columns when it stores C. The backward-data
 * pass is the same computation on dy padded by (K−1)·d − p with the weights flipped and
 * transposed (no col2im). (The weight gradient is not done this way: pairing rows of dy with
 * the shifted views is an A·Bᵀ reduction, which OpenBLAS runs better — see bwd_weight_f32.) */
typedef struct grid {
    int64_t Ci, Hi, Wi, ph, pw;  /* input planes (x; dy for backward data) and their padding */
    int64_t Hp, Wp, HWp;         /* padded plane: Hp rows of Wp */
    int64_t Co, Ho, Wo;          /* output planes (y; dx for backward data) */
    int64_t L;                   /* computed columns per image: Ho·Wp */
    int64_t KH, KW, dh, dw, G, K; /* K = GEMM depth per group: Ci/G·KH·KW */
    int64_t plane;               /* floats of one padded image with its lead and slack, 16-aligned */
} grid;

static bool grid_ok(const kn__conv_geom *q, bool bwd)
{
    if (q->sh != 1 || q->sw != 1 || is_pointwise(q)) /* 1×1: no padding, x itself is B */
        return false;
    /* a first layer's few taps (K = C·KH·KW ≤ 16): the tile stores outweigh the FMAs, and
     * the ragged grid rows make them split; im2col's dense columns store faster */
    if (!bwd && q->Cg * q->KH * q->KW <= 16)
        return false;
    /* backward data: the GEMM's M is C/G, so a few input channels (the first layer's) would
     * leave most of each 8-row register tile empty; im2col + col2im does better there */
    return !bwd || (q->ph <= (q->KH - 1) * q->dh && q->pw <= (q->KW - 1) * q->dw && q->Cg >= KN_GEMM_MR / 2);
}

static grid grid_of(const kn__conv_geom *q, bool bwd)
{
    grid r;
    if (!bwd) {
        r.Ci = q->C, r.Hi = q->H, r.Wi = q->W, r.ph = q->ph, r.pw = q->pw, r.Co = q->O, r.Ho = q->OH, r.Wo = q->OW;
    } else {
        r.Ci = q->O, r.Hi = q->OH, r.Wi = q->OW, r.ph = (q->KH - 1) * q->dh - q->ph, r.pw = (q->KW - 1) * q->dw - q->pw;
        r.Co = q->C, r.Ho = q->H, r.Wo = q->W;
    }
    r.Hp = r.Hi + 2 * r.ph;
    r.Wp = r.Wi + r.pw > r.Wo ? r.Wi + r.pw : r.Wo; /* the gap after each row holds ≥ pw zeros */
    r.HWp = r.Hp * r.Wp, r.L = r.Ho * r.Wp;
    r.KH = q->KH, r.KW = q->KW, r.dh = q->dh, r.dw = q->dw, r.G = q->G, r.K = r.Ci / q->G * q->KH * q->KW;
    /* pw zeros lead the planes (row 0's left padding); the last computed column of the last
     * row reads up to (KW−1)·dw − pw past them */
    r.plane = align16(r.pw + r.Ci * r.HWp + (r.KW - 1) * r.dw + 16);
    return r;
}

/* Row offsets of the implicit B, from the first plane: tap (c, kh, kw) of a group →
 * c·HWp + kh·dh·Wp + kw·dw − pw. */
static void grid_offsets(const grid *r, int64_t *off)
{
    for (int64_t k = 0; k < r->K; k++) {
        int64_t c = k / (r->KH * r->KW), kh = k / r->KW % r->KH, kw = k % r->KW;
        off[k] = c * r->HWp + kh * r->dh * r->Wp + kw * r->dw - r->pw;
    }
}

/* First plane of a padded image buffer (after the pw leading zeros). */
static float *grid_planes(const grid *r, float *buf) { return buf + r->pw; }

/* One image [Ci, Hi, Wi] into its zero-padded planes (with the lead and the read slack). */
static void pad_planes(const grid *r, const float *src, float *dst)
{
    memset(dst, 0, (size_t)r->pw * sizeof(float));
    float *planes = grid_planes(r, dst);
    for (int64_t c = 0; c < r->Ci; c++)
        for (int64_t hp = 0; hp < r->Hp; hp++) {
            float *d = planes + c * r->HWp + hp * r->Wp;
            int64_t h = hp - r->ph;
            if (h < 0 || h >= r->Hi) {
                memset(d, 0, (size_t)r->Wp * sizeof(float));
                continue;
            }
            memcpy(d, src + (c * r->Hi + h) * r->Wi, (size_t)r->Wi * sizeof(float));
            memset(d + r->Wi, 0, (size_t)(r->Wp - r->Wi) * sizeof(float));
        }
    int64_t used = r->pw + r->Ci * r->HWp;
    memset(dst + used, 0, (size_t)(r->plane - used) * sizeof(float));
}

/* Workspace floats: offsets (int64, as floats), packed weights of all groups, slices. */
static int64_t grid_off_floats(const grid *r) { return align16(2 * r->K); }
static int64_t grid_packed(const grid *r) { return align16(kn__gemm_packed_a_size(r->Co / r->G, r->K)); }

static size_t grid_workspace(const kn_node *n, bool bwd)
{
    kn__conv_geom q = kn__conv_geom_of(n);
    grid r = grid_of(&q, bwd);
    return (size_t)(grid_off_floats(&r) + r.G * grid_packed(&r) + slices_for(q.N) * r.plane) * sizeof(float);
}

/* Weights as the GEMM's A, group by group, packed. Forward: A_g = W_g [Og, Cg·KH·KW].
 * Backward data: A_g(c, (o, kh, kw)) = W[g·Og + o][c][KH−1−kh][KW−1−kw]. Panels over threads. */
static void grid_pack_weights(const kn__conv_geom *q, const grid *r, const float *w, bool bwd, float *packed)
{
    const int64_t M = r->Co / r->G, pa = grid_packed(r), panels = (M + KN_GEMM_MR - 1) / KN_GEMM_MR;
    const int64_t KHW = q->KH * q->KW, wK = q->Cg * KHW;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < r->G * panels; t++) {
        int64_t g = t / panels, i0 = t % panels * KN_GEMM_MR, mr = imin(KN_GEMM_MR, M - i0);
        float *dst = packed + g * pa + i0 * r->K;
        if (!bwd) {
            kn__gemm_pack_a(mr, r->K, w + (g * q->Og + i0) * wK, wK, 1, dst);
            continue;
        }
        for (int64_t k = 0; k < r->K; k++) {
            int64_t o = k / KHW, kh = k / q->KW % q->KH, kw = k % q->KW;
            const float *src = w + (g * q->Og + o) * wK + (q->KH - 1 - kh) * q->KW + (q->KW - 1 - kw);
            for (int64_t i = 0; i < KN_GEMM_MR; i++)
                dst[k * KN_GEMM_MR + i] = i < mr ? src[(i0 + i) * KHW] : 0.0f;
        }
    }
}

/* Forward (in = x, out = y, bias) or backward data (in = dy, out = dx), image by image. */
static void grid_run(const kn__kargs *a, bool bwd)
{
    kn__conv_geom q = kn__conv_geom_of(a->node);
    grid r = grid_of(&q, bwd);
    const float *in = a->src[0], *w = a->src[1];
    const float *bias = !bwd && a->node->nsrc == 3 ? a->src[2] : NULL;
    float *out = a->dst, *ws = a->work;
    int64_t *off = (int64_t *)ws;
    float *packed = ws + grid_off_floats(&r), *planes = packed + r.G * grid_packed(&r);
    const int64_t M = r.Co / r.G, Cig = r.Ci / r.G, in_img = r.Ci * r.Hi * r.Wi, out_img = r.Co * r.Ho * r.Wo;
    const int slices = slices_for(q.N);
    grid_offsets(&r, off);
#pragma omp parallel num_threads(team(slices))
    {
        float *mine = planes + omp_get_thread_num() * r.plane;
        grid_pack_weights(&q, &r, w, bwd, packed);
#pragma omp for schedule(dynamic, 1)
        for (int64_t n = 0; n < q.N; n++) {
            pad_planes(&r, in + n * in_img, mine);
            for (int64_t g = 0; g < r.G; g++) {
                kn__gmat c = {out + n * out_img + g * M * r.Ho * r.Wo, r.Ho * r.Wo, r.Wp, r.Wo, r.Wo};
                kn__gemm_run(M, r.L, r.K, packed + g * grid_packed(&r), grid_planes(&r, mine) + g * Cig * r.HWp, 0,
                             off, c, bias ? bias + g * M : NULL, false);
                for (int64_t o = 0; a->epi && o < M; o++)
                    kn__epi_apply(a->epi, c.p + o * r.Ho * r.Wo, g * M + o, r.Ho * r.Wo);
            }
        }
    }
}

/* ---- other strides: im2col + GEMM ---------------------------------------------------- */

/* y [N, O, P] = W_g [Og, K] · col_g [K, nb·P] + b, per task of nb images and per group. */
static kn_status conv2d_f32(const kn__kargs *a)
{
    const kn_node *node = a->node;
    plan p = plan_of(node, false);
    const kn__conv_geom *q = &p.q;
    const float *x = a->src[0], *w = a->src[1], *b = node->nsrc == 3 ? a->src[2] : NULL;
    float *y = a->dst, *packed = a->work, *slices = packed + p.packed;
    if (kn__numel(node) == 0)
        return KN_OK;
    if (small_batch_ok(q)) {
        small_batch_run(q, x, w, b, a->epi, y, a->work);
        return KN_OK;
    }
    if (kn__wino_ok(q, false)) {
        kn__wino_run(q, false, x, w, b, a->epi, y, a->work);
        return KN_OK;
    }
    if (kn__conv_c1_ok(q)) {
        kn__conv_c1_run(q, x, w, b, a->epi, y, a->work);
        return KN_OK;
    }
    if (grid_ok(q, false)) {
        grid_run(a, false);
        return KN_OK;
    }
    const int64_t pa = align16(kn__gemm_packed_a_size(q->Og, p.K)), panels = (q->Og + KN_GEMM_MR - 1) / KN_GEMM_MR;
#pragma omp parallel num_threads(team(p.slices))
    {
        float *mine = slices + omp_get_thread_num() * p.slice;
#pragma omp for schedule(static)
        for (int64_t t = 0; t < q->G * panels; t++) { /* pack W_g [Og, K] in MR-row panels */
            int64_t g = t / panels, i0 = t % panels * KN_GEMM_MR;
            kn__gemm_pack_a(imin(KN_GEMM_MR, q->Og - i0), p.K, w + (g * q->Og + i0) * p.K, p.K, 1,
                            packed + g * pa + i0 * p.K);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < p.tasks; t++) {
            int64_t n0 = t * p.nb, nb = imin(p.nb, q->N - n0), cols = nb * p.P;
            if (!p.pw)
                im2col(q, x, n0, nb, mine);
            for (int64_t g = 0; g < q->G; g++) {
                const float *B = mine + g * p.K * cols;
                int64_t ldb = cols;
                if (p.pw) { /* pack x's channels of group g: [Cg, nb·P] from [nb, C, P] */
                    kn__gmat xs = {(float *)x + (n0 * q->C + g * q->Cg) * p.P, p.P, p.P, q->C * p.P, p.P};
                    kn__gemm_pack_b(p.K, cols, xs, mine);
                    B = mine, ldb = 0;
                }
                kn__gmat c = {y + (n0 * q->O + g * q->Og) * p.P, p.P, p.P, q->O * p.P, p.P};
                kn__gemm_run(q->Og, cols, p.K, packed + g * pa, B, ldb, NULL, c, b ? b + g * q->Og : NULL, false);
                for (int64_t u = 0; a->epi && u < nb * q->Og; u++) /* image u / Og, channel u % Og */
                    kn__epi_apply(a->epi, c.p + (u / q->Og) * q->O * p.P + (u % q->Og) * p.P, g * q->Og + u % q->Og,
                                  p.P);
            }
        }
    }
    return KN_OK;
}

/* col_g [K, nb·P] = W_gᵀ [K, Og] · dy_g [Og, nb·P], then col2im into dx (pointwise: into dx). */
static kn_status bwd_data_f32(const kn__kargs *a)
{
    const kn_node *node = a->node;
    plan p = plan_of(node, true);
    const kn__conv_geom *q = &p.q;
    const float *dy = a->src[0], *w = a->src[1];
    float *dx = a->dst, *packed = a->work, *slices = packed + p.packed;
    if (kn__numel(node) == 0)
        return KN_OK;
    if (q->Og == 0 || p.P == 0) {
        memset(dx, 0, (size_t)kn__numel(node) * sizeof(float));
        return KN_OK;
    }
    if (kn__wino_ok(q, true)) {
        kn__wino_run(q, true, dy, w, NULL, NULL, dx, a->work);
        return KN_OK;
    }
    if (grid_ok(q, true)) {
        grid_run(a, true);
        return KN_OK;
    }
    if (thin_bwd(q)) { /* few col rows: OpenBLAS from serial code (it threads itself), col2im over threads */
        const int64_t nb = dw_chunk(q);
        for (int64_t n0 = 0; n0 < q->N; n0 += nb) {
            int64_t m = imin(nb, q->N - n0), cols = m * p.P;
            for (int64_t i = 0; i < m; i++)
                for (int64_t g = 0; g < q->G; g++)
                    kn__sgemm(true, false, p.K, p.P, q->Og, 1.0f, w + g * q->Og * p.K, p.K,
                              dy + ((n0 + i) * q->O + g * q->Og) * p.P, p.P, 0.0f, packed + g * p.K * cols + i * p.P,
                              cols);
#pragma omp parallel for schedule(static) if (m * p.R * p.P > 32768)
            for (int64_t i = 0; i < m; i++)
                col2im_image(q, packed, cols, i, n0 + i, dx);
        }
        return KN_OK;
    }
    const int64_t pa = align16(kn__gemm_packed_a_size(p.K, q->Og)), panels = (p.K + KN_GEMM_MR - 1) / KN_GEMM_MR;
    const int64_t pcols = (p.nb * p.P + KN_GEMM_NR - 1) / KN_GEMM_NR * KN_GEMM_NR;
    const bool thin = !p.pw && p.K < 4 * KN_GEMM_MR && p.P <= INT_MAX && p.nb * p.P <= INT_MAX;
#pragma omp parallel num_threads(team(p.slices))
    {
        float *bp = slices + omp_get_thread_num() * p.slice, *dcol = bp + align16(q->Og * pcols);
#pragma omp for schedule(static)
        for (int64_t t = 0; t < q->G * panels; t++) { /* pack W_gᵀ: element (k, o) = W[g·Og + o][k] */
            int64_t g = t / panels, i0 = t % panels * KN_GEMM_MR;
            kn__gemm_pack_a(imin(KN_GEMM_MR, p.K - i0), q->Og, w + g * q->Og * p.K + i0, 1, p.K,
                            packed + g * pa + i0 * q->Og);
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < p.tasks; t++) {
            int64_t n0 = t * p.nb, nb = imin(p.nb, q->N - n0), cols = nb * p.P;
            for (int64_t g = 0; g < q->G; g++) {
                if (thin) { /* K < 4 tiles of rows: OpenBLAS (single-threaded inside this region) wastes less */
                    for (int64_t i = 0; i < nb; i++)
                        kn__sgemm(true, false, p.K, p.P, q->Og, 1.0f, w + g * q->Og * p.K, p.K,
                                  dy + ((n0 + i) * q->O + g * q->Og) * p.P, p.P, 0.0f,
                                  dcol + g * p.K * cols + i * p.P, cols);
                    continue;
                }
                kn__gmat dys = {(float *)dy + (n0 * q->O + g * q->Og) * p.P, p.P, p.P, q->O * p.P, p.P};
                kn__gemm_pack_b(q->Og, cols, dys, bp);
                kn__gmat c = p.pw ? (kn__gmat){dx + (n0 * q->C + g * q->Cg) * p.P, p.P, p.P, q->C * p.P, p.P}
                                  : (kn__gmat){dcol + g * p.K * cols, cols, 0, 0, 0};
                kn__gemm_run(p.K, cols, q->Og, packed + g * pa, bp, 0, NULL, c, NULL, false);
            }
            if (!p.pw)
                col2im(q, dcol, n0, nb, dx);
        }
    }
    return KN_OK;
}

/* Images per weight-gradient chunk (col of the chunk ≤ DW_BYTES, at least one image). */
static int64_t dw_chunk(const kn__conv_geom *q)
{
    int64_t per = q->C * q->KH * q->KW * q->OH * q->OW * (int64_t)sizeof(float);
    int64_t nb = per > 0 ? DW_BYTES / per : q->N;
    return nb < 1 ? 1 : nb > q->N ? q->N : nb;
}

static size_t bwd_weight_workspace(const kn_node *n)
{
    kn__conv_geom q = kn__conv_geom_of(n);
    if (q.N == 0)
        return 0;
    if (kn__wino_dw_ok(&q))
        return kn__wino_dw_workspace(&q);
    if (is_pointwise(&q))
        return 0;
    size_t parts = dw_by_image(&q) ? (size_t)DW_SLICES * (size_t)(q.O * q.Cg * q.KH * q.KW) : 0;
    return (size_t)(q.C * q.KH * q.KW * dw_chunk(&q) * q.OH * q.OW + (int64_t)parts) * sizeof(float);
}

/* A weight gradient whose per-image GEMM is too small to split over the threads (first-layer
 * convolutions: model B's conv1 is 32×9×784 per image) runs image-parallel instead: each
 * thread takes whole images (im2col and GEMM on its own core) and sums into its own copy of
 * dw; the copies are added in thread order at the end, so results depend only on the thread
 * count. */
static bool dw_by_image(const kn__conv_geom *q)
{
    int64_t K = q->C * q->KH * q->KW;
    return !is_pointwise(q) && q->G == 1 && q->N > 1 && q->O * K <= DW_PART_MAX &&
           2.0 * (double)q->O * (double)K * (double)(q->OH * q->OW) < KN_SGEMM_SPLIT_MIN_FLOPS;
}

static void bwd_weight_by_image(const kn__conv_geom *q, const float *x, const float *dy, float *dw, float *col)
{
    const int64_t P = q->OH * q->OW, K = q->C * q->KH * q->KW, dwn = q->O * K, nb = dw_chunk(q);
    float *parts = col + K * nb * P;
    const int team_size = team(DW_SLICES);
    memset(parts, 0, (size_t)(team_size * dwn) * sizeof(float));
    for (int64_t n0 = 0; n0 < q->N; n0 += nb) {
        int64_t m = imin(nb, q->N - n0);
#pragma omp parallel num_threads(team_size)
        {
            float *mine = parts + omp_get_thread_num() * dwn;
#pragma omp for schedule(static)
            for (int64_t i = 0; i < m; i++) {
                for (int64_t r = 0; r < K; r++)
                    im2col_row(q, x, n0 + i, r, col + r * m * P + i * P);
                kn__sgemm(false, true, q->O, K, P, 1.0f, dy + (n0 + i) * q->O * P, P, col + i * P, m * P, 1.0f, mine,
                          K);
            }
        }
    }
    memcpy(dw, parts, (size_t)dwn * sizeof(float));
    for (int t = 1; t < team_size; t++)
        for (int64_t j = 0; j < dwn; j++)
            dw[j] += parts[t * dwn + j];
}

/* dw_g [Og, K] = Σ_n dy_g [Og, P] · col_g [K, P]ᵀ, chunk by chunk of images: im2col of the
 * chunk over all threads, then OpenBLAS (threaded by itself, called from serial code) per
 * image and group — both operands are contiguous along the reduction, a shape OpenBLAS runs
 * better than gemm.c's kernels. */
static kn_status bwd_weight_f32(const kn__kargs *a)
{
    const kn_node *node = a->node;
    kn__conv_geom q = kn__conv_geom_of(node);
    const float *x = a->src[0], *dy = a->src[1];
    float *dw = a->dst, *col = a->work;
    const int64_t P = q.OH * q.OW, K = q.Cg * q.KH * q.KW, R = q.C * q.KH * q.KW;
    if (kn__numel(node) == 0)
        return KN_OK;
    if (kn__wino_dw_ok(&q)) {
        kn__wino_dw_run(&q, x, dy, dw, a->work);
        return KN_OK;
    }
    if (P > 0 && dw_by_image(&q) && omp_get_max_threads() > 1) {
        bwd_weight_by_image(&q, x, dy, dw, col);
        return KN_OK;
    }
    memset(dw, 0, (size_t)kn__numel(node) * sizeof(float));
    if (P == 0)
        return KN_OK;
    const bool pw = is_pointwise(&q);
    const int64_t nb = pw ? 1 : dw_chunk(&q);
    for (int64_t n0 = 0; n0 < q.N; n0 += nb) {
        int64_t m = imin(nb, q.N - n0);
        if (!pw) {
#pragma omp parallel for schedule(static) if (m * R * P > 32768)
            for (int64_t u = 0; u < m * R; u++)
                im2col_row(&q, x, n0 + u / R, u % R, col + (u % R) * m * P + (u / R) * P);
        }
        for (int64_t i = 0; i < m; i++)
            for (int64_t g = 0; g < q.G; g++) {
                const float *B = pw ? x + ((n0 + i) * q.C + g * q.Cg) * P : col + g * K * m * P + i * P;
                kn__sgemm(false, true, q.Og, K, P, 1.0f, dy + ((n0 + i) * q.O + g * q.Og) * P, P, B, pw ? P : m * P,
                          1.0f, dw + g * q.Og * K, K);
            }
    }
    return KN_OK;
}

/* f32 everywhere, and (for the weight gradient's BLAS calls) every GEMM dimension and
 * leading dimension fits BLAS's int. */
static bool conv_supports(const kn_node *n)
{
    if (n->dtype != KN_F32)
        return false;
    for (int i = 0; i < n->nsrc; i++)
        if (n->src[i]->dtype != KN_F32)
            return false;
    kn__conv_geom q = kn__conv_geom_of(n);
    int64_t P = q.OH * q.OW, ld = is_pointwise(&q) ? P : dw_chunk(&q) * P;
    return P <= INT_MAX && ld <= INT_MAX && q.Cg * q.KH * q.KW <= INT_MAX && q.Og <= INT_MAX;
}

void kn__cpu_register_conv(kn__backend_kernel *t)
{
    t[KN_OP_CONV2D] = (kn__backend_kernel){
        .fn = conv2d_f32, .workspace = fwd_workspace, .supports = conv_supports, .epilogue = true};
    t[KN_OP_CONV2D_BWD_DATA] =
        (kn__backend_kernel){.fn = bwd_data_f32, .workspace = bwd_data_workspace, .supports = conv_supports};
    t[KN_OP_CONV2D_BWD_WEIGHT] =
        (kn__backend_kernel){.fn = bwd_weight_f32, .workspace = bwd_weight_workspace, .supports = conv_supports};
}
