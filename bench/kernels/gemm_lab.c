/* gemm_lab.c — sgemm speed on the GEMM shapes kiln's example models use (model A, model B,
 * MLP at batch 64: conv as im2col GEMMs, per image and batched over the batch; dense layers
 * forward and backward), for one BLAS at a time. Row-major C = op(A)·op(B), beta 0.
 * Not part of the CMake build; see bench/kernels/README.md for the build lines:
 *   -DLAB_OPENBLAS (cblas_sgemm), -DLAB_BLIS (BLIS's CBLAS), -DLAB_DNNL (dnnl_sgemm),
 *   -DLAB_KILN_SGEMM (kiln's dispatcher kn__sgemm from libkiln.a: the library and threading
 *   kiln's matmul/linear kernels use for each shape),
 *   -DLAB_KILN (src/backend/cpu/gemm.c: kn__gemm_run for NN / TN, A packed inside the timing,
 *   columns split over OpenMP threads in NR blocks; A·Bᵀ shapes are skipped: kiln leaves
 *   them to OpenBLAS).
 * Usage: gemm_lab [peak GFLOP/s, default 234] — threads from OMP_NUM_THREADS/BLIS_NUM_THREADS.
 * LAB_CLOCK=cpu times with the process CPU-time clock instead of wall time: on a shared
 * machine this discounts time slices lost to other processes (meaningful for 1 thread). */
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#if defined(LAB_KILN_SGEMM)
#include "backend/cpu/sgemm.h"
#define LIB "kiln kn__sgemm"
static int gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                int ldc)
{
    kn__sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
    return 1;
}
#elif defined(LAB_KILN)
#include <omp.h>
#include "backend/cpu/gemm.h"
#define LIB "kiln gemm.c"
static float *packed;
static int gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                int ldc)
{
    if (tb)
        return 0;
    kn__gemm_pack_a(M, K, A, ta ? 1 : lda, ta ? lda : 1, packed);
    int64_t blocks = (N + KN_GEMM_NR - 1) / KN_GEMM_NR;
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
        int64_t j0 = b0 * KN_GEMM_NR, j1 = b1 * KN_GEMM_NR < N ? b1 * KN_GEMM_NR : N;
        if (j1 > j0) {
            kn__gmat c = {C + j0, ldc, 0, 0, 0};
            kn__gemm_run(M, j1 - j0, K, packed, B + j0, ldb, NULL, c, NULL, false);
        }
    }
    return 1;
}
#elif defined(LAB_DNNL)
#include <dnnl.h>
#define LIB "oneDNN"
#define LAB_SPLITTABLE 1
static int lib_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                int ldc)
{
    dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
    return 1;
}
#else
#include <cblas.h>
#if defined(LAB_BLIS)
#define LIB "BLIS"
#else
#define LIB "OpenBLAS"
#endif
#define LAB_SPLITTABLE 1
static int lib_gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A,
                lda, B, ldb, 0.0f, C, ldc);
    return 1;
}
#endif

#ifdef LAB_SPLITTABLE
#include <omp.h>
/* LAB_SPLIT=1: the caller splits C's columns (rows when N is narrow) over the OpenMP threads
 * and each thread calls the library on its part (inside a parallel region the library runs
 * single-threaded), instead of the library threading one call itself. */
static int lab_split;
static int gemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                int ldc)
{
    if (!lab_split)
        return lib_gemm(ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
    bool by_cols = N >= M || N >= 64;
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int span = by_cols ? N : M, q = 16;
        int b0 = (int)((long)((span + q - 1) / q) * t / nt) * q, b1 = (int)((long)((span + q - 1) / q) * (t + 1) / nt) * q;
        b1 = b1 < span ? b1 : span;
        if (b1 > b0) {
            if (by_cols)
                lib_gemm(ta, tb, M, b1 - b0, K, A, lda, tb ? B + (long)b0 * ldb : B + b0, ldb, C + b0, ldc);
            else
                lib_gemm(ta, tb, b1 - b0, N, K, ta ? A + b0 : A + (long)b0 * lda, lda, B, ldb, C + (long)b0 * ldc, ldc);
        }
    }
    return 1;
}
#endif

typedef struct shape {
    const char *what;
    int ta, tb, M, N, K;
} shape;

static const shape shapes[] = {
    /* model B conv1 (1→32, 28×28, 3×3 pad 1): y = W [32,9] · col [9, P] */
    {"B conv1 fwd, per image", 0, 0, 32, 784, 9},
    {"B conv1 fwd, batched", 0, 0, 32, 50176, 9},
    {"B conv1 dW, batched", 0, 1, 32, 9, 50176},
    /* model B conv2 (32→64, 14×14, 3×3 pad 1) */
    {"B conv2 fwd, per image", 0, 0, 64, 196, 288},
    {"B conv2 fwd, batched", 0, 0, 64, 12544, 288},
    {"B conv2 dcol, per image", 1, 0, 288, 196, 64},
    {"B conv2 dcol, batched", 1, 0, 288, 12544, 64},
    {"B conv2 dW, per image", 0, 1, 64, 288, 196},
    {"B conv2 dW, batched", 0, 1, 64, 288, 12544},
    /* model B fc1 3136→128, fc2 128→10 */
    {"B fc1 fwd x·Wt", 0, 1, 64, 128, 3136},
    {"B fc1 dx dy·W", 0, 0, 64, 3136, 128},
    {"B fc1 dW dyt·x", 1, 0, 128, 3136, 64},
    {"B fc2 fwd", 0, 1, 64, 10, 128},
    /* model A conv1 (1→32, 26×26 out), fc1 5408→64 */
    {"A conv1 fwd, batched", 0, 0, 32, 43264, 9},
    {"A conv1 dW, batched", 0, 1, 32, 9, 43264},
    {"A fc1 fwd", 0, 1, 64, 64, 5408},
    {"A fc1 dx", 0, 0, 64, 5408, 64},
    {"A fc1 dW", 1, 0, 64, 5408, 64},
    /* MLP 784→256→128→10 */
    {"MLP fc1 fwd", 0, 1, 64, 256, 784},
    {"MLP fc1 dW", 1, 0, 256, 784, 64},
    {"MLP fc2 fwd", 0, 1, 64, 128, 256},
    {"MLP fc2 dx", 0, 0, 64, 256, 128},
    {"MLP fc2 dW", 1, 0, 128, 256, 64},
    /* inference at batch 256 and batch 1 (dense layers' forward passes) */
    {"MLP fc1 fwd b256", 0, 1, 256, 256, 784},
    {"MLP fc2 fwd b256", 0, 1, 256, 128, 256},
    {"MLP fc3 fwd b256", 0, 1, 256, 10, 128},
    {"B fc1 fwd b256", 0, 1, 256, 128, 3136},
    {"A fc1 fwd b256", 0, 1, 256, 64, 5408},
    {"MLP fc1 fwd b1", 0, 1, 1, 256, 784},
    {"B fc1 fwd b1", 0, 1, 1, 128, 3136},
    {"A fc1 fwd b1", 0, 1, 1, 64, 5408},
    /* reference: a big square GEMM */
    {"square 1024", 0, 0, 1024, 1024, 1024},
};

static clockid_t lab_clock = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(lab_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    double peak = argc > 1 ? atof(argv[1]) : 234.0;
    if (getenv("LAB_CLOCK") && !strcmp(getenv("LAB_CLOCK"), "cpu"))
        lab_clock = CLOCK_PROCESS_CPUTIME_ID;
#ifdef LAB_SPLITTABLE
    lab_split = getenv("LAB_SPLIT") && atoi(getenv("LAB_SPLIT"));
#endif
    printf("%s: C = op(A)·op(B), row-major, median of 7 rounds of >= 20 ms\n", LIB);
    printf("%-26s %2s %2s %6s %6s %6s %9s %8s %6s\n", "shape", "tA", "tB", "M", "N", "K", "us", "GFLOP/s", "%peak");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *q = &shapes[s];
        size_t na = (size_t)q->M * q->K, nb = (size_t)q->K * q->N, nc = (size_t)q->M * q->N;
        float *A = aligned_alloc(64, (na * 4 + 63) / 64 * 64), *B = aligned_alloc(64, (nb * 4 + 63) / 64 * 64);
        float *C = aligned_alloc(64, (nc * 4 + 63) / 64 * 64);
#ifdef LAB_KILN
        packed = aligned_alloc(64, (size_t)kn__gemm_packed_a_size(q->M, q->K) * 4 + 64);
#endif
        for (size_t i = 0; i < na; i++)
            A[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < nb; i++)
            B[i] = (float)(i % 5) * 0.1f;
        int lda = q->ta ? q->M : q->K, ldb = q->tb ? q->K : q->N;
        double fl = 2.0 * q->M * q->N * q->K;
        if (!gemm(q->ta, q->tb, q->M, q->N, q->K, A, lda, B, ldb, C, q->N)) {
            printf("%-26s %2d %2d %6d %6d %6d %9s\n", q->what, q->ta, q->tb, q->M, q->N, q->K, "n/a");
            goto next;
        }
        double t0 = now();
        gemm(q->ta, q->tb, q->M, q->N, q->K, A, lda, B, ldb, C, q->N);
        double one = now() - t0;
        int reps = one > 0 ? (int)(0.02 / one) + 1 : 1000;
        double rt[7];
        for (int r = 0; r < 7; r++) {
            t0 = now();
            for (int i = 0; i < reps; i++)
                gemm(q->ta, q->tb, q->M, q->N, q->K, A, lda, B, ldb, C, q->N);
            rt[r] = (now() - t0) / reps;
        }
        qsort(rt, 7, sizeof(double), cmp_d);
        double t = rt[3];
        printf("%-26s %2d %2d %6d %6d %6d %9.1f %8.1f %6.1f\n", q->what, q->ta, q->tb, q->M, q->N, q->K, t * 1e6,
               fl / t * 1e-9, 100 * fl / t * 1e-9 / peak);
    next:
        free(A);
        free(B);
        free(C);
#ifdef LAB_KILN
        free(packed);
#endif
    }
    return 0;
}
