/* test_sgemm.c — kiln's GEMM dispatcher (src/backend/cpu/sgemm.c) against a float64 reference,
 * for all four transpositions and shapes that reach each of its paths: tiny (one thread),
 * split over the threads (OpenBLAS, oneDNN, BLIS), library-threaded, alpha/beta and leading
 * dimensions wider than the matrices; and the library it picks for the models' shapes. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "backend/cpu/sgemm.h"
#include "util.h"

static float rnd(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* C = alpha·op(A)·op(B) + beta·C with ld = cols + pad; relative error against float64 */
static double one(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, float beta, int64_t pad)
{
    int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int64_t lda = ac + pad, ldb = bc + pad, ldc = N + pad;
    float *A = malloc(sizeof(float) * (size_t)(ar * lda)), *B = malloc(sizeof(float) * (size_t)(br * ldb));
    float *C = malloc(sizeof(float) * (size_t)(M * ldc));
    double *R = malloc(sizeof(double) * (size_t)(M * N));
    unsigned s = (unsigned)(M * 7 + N * 13 + K);
    for (int64_t i = 0; i < ar * lda; i++)
        A[i] = rnd(&s);
    for (int64_t i = 0; i < br * ldb; i++)
        B[i] = rnd(&s);
    for (int64_t i = 0; i < M * ldc; i++)
        C[i] = rnd(&s);
    double scale = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)(ta ? A[k * lda + i] : A[i * lda + k]) * (double)(tb ? B[j * ldb + k] : B[k * ldb + j]);
            R[i * N + j] = alpha * acc + beta * (double)C[i * ldc + j];
            scale = fmax(scale, fabs(R[i * N + j]));
        }
    float guard = C[M * ldc - 1]; /* a padding element past the last row's N columns */
    kn__sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double err = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            err = fmax(err, fabs((double)C[i * ldc + j] - R[i * N + j]));
    if (pad > 0 && C[M * ldc - 1] != guard)
        err = INFINITY; /* wrote outside C */
    free(A), free(B), free(C), free(R);
    return err / (scale > 0 ? scale : 1);
}

int main(void)
{
    static const int64_t shapes[][3] = {
        {3, 5, 7},      /* tiny */
        {64, 10, 128},  /* model B fc2 */
        {64, 128, 256}, /* MLP fc2 (A·Bᵀ: BLIS when there) */
        {64, 64, 5408}, /* model A fc1 */
        {64, 256, 784}, /* MLP fc1 */
        {33, 47, 301},  /* odd sizes, split with a partial block */
        {300, 20, 90},  /* narrow C: split by rows */
    };
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 4; t++) {
                bool ta = t & 1, tb = t & 2;
                int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                double e1 = one(ta, tb, M, N, K, 1.0f, 0.0f, 0);
                double e2 = one(ta, tb, M, N, K, 0.5f, 1.5f, 3);
                CHECK(e1 < 1e-5 && e2 < 1e-5, "%d threads, %s·%s %ldx%ldx%ld (%s): rel err %.2e, with alpha/beta/ld %.2e",
                      threads, ta ? "At" : "A", tb ? "Bt" : "B", (long)M, (long)N, (long)K,
                      kn__sgemm_library(ta, tb, M, N, K), e1, e2);
            }
    }
    /* the library choice for the models' shapes: tiny ones always OpenBLAS, narrow A·Bᵀ BLIS when
     * it was found */
    CHECK(strcmp(kn__sgemm_library(false, false, 3, 5, 7), "openblas") == 0, "tiny GEMM on %s",
          kn__sgemm_library(false, false, 3, 5, 7));
    const char *fc2 = kn__sgemm_library(false, true, 64, 128, 256);
    CHECK((strcmp(fc2, "blis") == 0) == kn__blis_sgemm_available(), "MLP fc2 forward on %s with BLIS %s", fc2,
          kn__blis_sgemm_available() ? "present" : "absent");
    printf("BLIS %s; MLP fc2 forward runs on %s\n", kn__blis_sgemm_available() ? "loaded" : "not found", fc2);
    return kt_finish("test_sgemm");
}
