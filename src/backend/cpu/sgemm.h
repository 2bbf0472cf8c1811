/* sgemm.h — kn__sgemm: a float32 GEMM on the best BLAS library for the shape, threaded over
 * the OpenMP threads (sgemm.c says how it chooses). Row-major: C = alpha·op(A)·op(B) + beta·C,
 * op = transpose when ta/tb. Dimensions and leading dimensions must fit an int. */
#ifndef KN_CPU_SGEMM_H
#define KN_CPU_SGEMM_H

#include <stdbool.h>
#include <stdint.h>

/* Below this many FLOPs (2·M·N·K) a GEMM is not worth splitting over threads: a parallel
 * region costs more. Kernels that parallelise around small GEMMs use the same threshold. */
#define KN_SGEMM_SPLIT_MIN_FLOPS (1 << 19)

void kn__sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* The library kn__sgemm uses for a shape: "blis", "onednn" or "openblas" (for tests and tools). */
const char *kn__sgemm_library(bool ta, bool tb, int64_t M, int64_t N, int64_t K);

/* BLIS's sgemm on the calling thread, loaded on first use (blis_lazy.c); call only when
 * kn__blis_sgemm_available() says the library was found. */
bool kn__blis_sgemm_available(void);
void kn__blis_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

#endif
