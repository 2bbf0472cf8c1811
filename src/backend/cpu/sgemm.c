/* sgemm.c — kiln's one entry point for a float32 GEMM on a BLAS library (kn__sgemm): picks the
 * library per shape and threads the call the way that works best for deep-learning shapes.
 *
 * Library: BLIS (loaded at run time, blis_lazy.c) for narrow A·Bᵀ, oneDNN's sgemm where it is
 * the faster tool, OpenBLAS otherwise (and for everything when neither is there). Measured per
 * core with bench/kernels/gemm_lab.c on the example models' shapes (Zen 4, process CPU time, bench/kernels/README.md): oneDNN runs
 * A·B and Aᵀ·B at 90–95% of the FMA peak where OpenBLAS 0.3.21 reaches 65–80%; on A·Bᵀ (a
 * dense layer's forward pass) neither wins everywhere: oneDNN is ahead when B has ≥ 256 rows
 * (MLP fc1: 83% vs 75%) or K ≥ 4096 (model A fc1), OpenBLAS on narrower outputs (model B fc1:
 * 73% vs 65%; MLP fc2: 66% vs 53%), and a small A·Bᵀ runs best threaded by OpenBLAS itself.
 * bench/gemm_vs_libs.sh compares every model shape with the best library.
 *
 * Threading: a GEMM of a training step is small (M = the batch, 64) and a BLAS threading it
 * internally leaves cores idle or waiting. So a mid-sized GEMM is split by the caller: the
 * columns of C (rows when C is narrow) in 16-wide blocks over the OpenMP threads, each thread
 * calling the library on its part (inside a parallel region the libraries run on one thread).
 * The split depends only on the shape and the thread count, so results are reproducible for a
 * given thread count. Tiny GEMMs run on the calling thread; very large ones are threaded by
 * the library. Called from inside a parallel region, kn__sgemm runs on the calling thread. */
#include "sgemm.h"

#include <cblas.h>
#include <omp.h>
#include <stdbool.h>
#ifdef KN_HAVE_DNNL
#include <dnnl.h>
#endif

#define TINY_FLOPS KN_SGEMM_SPLIT_MIN_FLOPS /* below: one thread (a parallel region costs more) */
#define LIBRARY_THREADED_FLOPS (1L << 31) /* above: the library threads the call itself */
#define SMALL_NT_FLOPS (1 << 23)     /* below: OpenBLAS threads a small A·Bᵀ itself (no BLIS) */
#define GEMV_SPLIT_ELEMS (1 << 16)   /* M ≤ 4 and B this large: split although tiny */
#define SPLIT_QUANTUM 16

typedef enum { LIB_OPENBLAS, LIB_DNNL, LIB_BLIS } library;

/* A·Bᵀ with fewer than 256 columns (a narrow dense layer's forward pass) is BLIS's shape when
 * it is there: 64×128×256 (MLP fc2) 173 GFLOP/s against OpenBLAS's 142, 64×64×5408 (model A
 * fc1) 192 against oneDNN's 161 (2 threads, split; bench/results/2026-11-21-cpu-gemm-vs-libs.md). */
static library pick(bool tb, int64_t M, int64_t N, int64_t K, double flops)
{
    if (flops < TINY_FLOPS || M <= 4) /* tiny, or a matrix-vector product: OpenBLAS's gemv */
        return LIB_OPENBLAS;
    if (tb && N < 256 && kn__blis_sgemm_available())
        return LIB_BLIS;
#ifdef KN_HAVE_DNNL
    if (!tb || N >= 256 || K >= 4096)
        return LIB_DNNL;
#else
    (void)K;
#endif
    return LIB_OPENBLAS;
}

/* One library call on the calling thread's (or the library's) threads. */
static void call(library lib, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (lib == LIB_BLIS) {
        kn__blis_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#ifdef KN_HAVE_DNNL
    if (lib == LIB_DNNL) {
        dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
                alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

const char *kn__sgemm_library(bool ta, bool tb, int64_t M, int64_t N, int64_t K)
{
    static const char *names[] = {"openblas", "onednn", "blis"};
    (void)ta; /* the choice does not depend on A's transposition */
    return names[pick(tb, M, N, K, 2.0 * (double)M * (double)N * (double)K)];
}

void kn__sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return;
    double flops = 2.0 * (double)M * (double)N * (double)K;
    library lib = pick(tb, M, N, K, flops);
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    /* a matrix-vector product (batch-1 inference) is bound by reading B, not by FLOPs: split it
     * once B is large (MLP fc1 at batch 1, 1×256×784: 90 GFLOP/s split vs 53 on one thread) */
    bool gemv_split = M <= 4 && (double)N * (double)K >= GEMV_SPLIT_ELEMS;
    /* small A·Bᵀ on OpenBLAS: its own threading beats splitting (MLP fc2 64×128×256: 145 vs
     * 120 GFLOP/s at 2 threads); BLIS runs single-threaded, so it is always split */
    bool library_threads = lib != LIB_BLIS && !gemv_split &&
                           (flops > (double)LIBRARY_THREADED_FLOPS || (tb && lib == LIB_OPENBLAS && flops < SMALL_NT_FLOPS));
    if (threads <= 1 || (flops < TINY_FLOPS && !gemv_split) || library_threads) {
        call(lib, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* split C's columns, or its rows when it is narrow, into 16-wide blocks per thread */
    bool by_cols = N >= M || N >= 64;
    int64_t span = by_cols ? N : M, blocks = (span + SPLIT_QUANTUM - 1) / SPLIT_QUANTUM;
    if (blocks < threads)
        threads = (int)blocks;
#pragma omp parallel num_threads(threads)
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t b0 = blocks * t / nt * SPLIT_QUANTUM, b1 = blocks * (t + 1) / nt * SPLIT_QUANTUM;
        b1 = b1 < span ? b1 : span;
        if (b1 > b0) {
            if (by_cols)
                call(lib, ta, tb, M, b1 - b0, K, alpha, A, lda, tb ? B + b0 * ldb : B + b0, ldb, beta, C + b0, ldc);
            else
                call(lib, ta, tb, b1 - b0, N, K, alpha, ta ? A + b0 : A + b0 * lda, lda, B, ldb, beta, C + b0 * ldc,
                     ldc);
        }
    }
}
