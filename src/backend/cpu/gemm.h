/* gemm.h — kiln's own single-threaded float32 GEMM building blocks for the CPU convolution
 * kernels (conv.c): an AVX-512 8×32 register-tile kernel over a packed A and a row-major or
 * packed B, whose C may be "grouped" (the columns of an image batch [N, O, P] seen as one
 * [O, N·P] matrix) and may get a per-row bias. Callers split the work over threads; every C
 * element is computed by one call in a fixed order, so results do not depend on the thread
 * count. Without AVX-512 (or with -DKN_CPU_NO_AVX512) plain C loops
 * give the same results up to rounding. Not here: threading, K blocking (K is taken whole:
 * convolution K = C·KH·KW is at most a few thousand), double precision. */
#ifndef KN_BACKEND_CPU_GEMM_H
#define KN_BACKEND_CPU_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#define KN_GEMM_MR 8  /* rows of a register tile (A panel height) */
#define KN_GEMM_NR 32 /* columns of a register tile (B panel width) */

/* Per-thread workspace slices for a kernel with `tasks` independent tasks: the processors
 * OpenMP reports at the first call (cached, so a workspace sized when a plan was compiled
 * always has as many slices as the kernel later uses), at most 64 and at most tasks, ≥ 1. */
int kn__cpu_slices(int64_t tasks);

/* Floats kn__gemm_pack_a writes for an M×K matrix. */
static inline int64_t kn__gemm_packed_a_size(int64_t M, int64_t K)
{
    return (M + KN_GEMM_MR - 1) / KN_GEMM_MR * KN_GEMM_MR * K;
}
/* Floats kn__gemm_pack_b writes for a K×N matrix. */
static inline int64_t kn__gemm_packed_b_size(int64_t K, int64_t N)
{
    return (N + KN_GEMM_NR - 1) / KN_GEMM_NR * KN_GEMM_NR * K;
}

/* A (M×K) with element (i, k) at a[i·rs + k·cs] → MR-row panels: ap[(i/MR)·K·MR + k·MR + i%MR],
 * rows past M zero. */
void kn__gemm_pack_a(int64_t M, int64_t K, const float *a, int64_t rs, int64_t cs, float *ap);

/* A matrix whose columns come in groups of `grp` (grp = 0: one group), of which the first
 * `valid` exist: element (i, j) at p[i·rs + (j / grp)·gs + j % grp], columns with
 * j % grp ≥ valid are dropped (C only). An image batch [N, O, P] read as [O, N·P] is
 * {p, rs = P, grp = P, gs = O·P, valid = P}; output rows OW wide computed on a grid Wp wide
 * are {p, rs = OH·OW, grp = Wp, gs = OW, valid = OW}; a row-major matrix is {p, ld, 0, 0, 0}. */
typedef struct kn__gmat {
    float *p;
    int64_t rs, grp, gs, valid;
} kn__gmat;

/* B (K×N, grouped columns) → NR-column panels: bp[(j/NR)·K·NR + k·NR + j%NR], columns past
 * N zero. */
void kn__gemm_pack_b(int64_t K, int64_t N, kn__gmat b, float *bp);

/* C (M×N) = Ap·B (+ bias[i] when bias) (+ C when accumulate), one thread. Ap from
 * kn__gemm_pack_a; B is row k at b + boff[k] when boff (rows at arbitrary offsets: shifted
 * views of one padded image for an implicit-GEMM convolution; N floats readable from each),
 * else row-major (ldb > 0: B(k, j) = b[k·ldb + j]) or packed by kn__gemm_pack_b (ldb = 0). */
void kn__gemm_run(int64_t M, int64_t N, int64_t K, const float *ap, const float *b, int64_t ldb,
                  const int64_t *boff, kn__gmat c, const float *bias, bool accumulate);

/* Same with A unpacked, stored transposed: A(i, k) = at[k·lda + i] (rows of A contiguous
 * along M, e.g. transformed tiles [tiles, channels]). Rows of a ragged last MR panel read up
 * to MR − 1 floats past column M−1 of at's rows (must be readable; their sums are dropped). */
void kn__gemm_run_at(int64_t M, int64_t N, int64_t K, const float *at, int64_t lda, const float *b, int64_t ldb,
                     kn__gmat c, bool accumulate);

#endif
