/* blis_lazy.c — BLIS's sgemm, loaded on first use (dlopen of Debian's libblis.so.4), for the
 * GEMM shapes where BLIS is the fastest library (narrow A·Bᵀ: a dense layer's forward pass;
 * see sgemm.c). BLIS is not linked: its BLAS symbols (sgemm_, cblas_sgemm) have the same names
 * as OpenBLAS's, so it is opened with RTLD_LOCAL and only its own bli_ API is called. Without
 * the library (or with KILN_BLIS=0 in the environment) kn__blis_sgemm_available() is false and
 * sgemm.c uses OpenBLAS. BLIS runs single-threaded: kiln splits the GEMM over its threads.
 * Not loaded under AddressSanitizer: LeakSanitizer's tracer crashes at exit on the thread-local
 * storage of a dlopen'ed BLIS once an OpenMP worker thread has called it (reproduced with a
 * 10-line program, gcc 12, glibc 2.36). */
#include "sgemm.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* BLIS 0.9's typed API (blis.h): dim_t and inc_t are 64-bit on x86-64, trans_t an enum with
 * BLIS_NO_TRANSPOSE = 0 and BLIS_TRANSPOSE = 8 (the trans bit, 1 << 3). */
typedef void (*bli_sgemm_fn)(int transa, int transb, int64_t m, int64_t n, int64_t k, float *alpha, float *a,
                             int64_t rsa, int64_t csa, float *b, int64_t rsb, int64_t csb, float *beta, float *c,
                             int64_t rsc, int64_t csc);
typedef void (*bli_set_threads_fn)(int64_t n);
#define BLI_NO_TRANSPOSE 0
#define BLI_TRANSPOSE 8

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bli_sgemm_fn blis_sgemm;

static void load(void)
{
#ifndef __SANITIZE_ADDRESS__
    const char *env = getenv("KILN_BLIS");
    if (env && strcmp(env, "0") == 0)
        return;
    void *h = dlopen("libblis.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    bli_sgemm_fn f = (bli_sgemm_fn)dlsym(h, "bli_sgemm");
    bli_set_threads_fn set_threads = (bli_set_threads_fn)dlsym(h, "bli_thread_set_num_threads");
    if (!f || !set_threads) {
        dlclose(h);
        return;
    }
    set_threads(1); /* kiln threads the call itself (and calls it from inside parallel regions) */
    blis_sgemm = f;
#endif
}

bool kn__blis_sgemm_available(void)
{
    pthread_once(&once, load);
    return blis_sgemm != NULL;
}

void kn__blis_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    /* row-major op(A) [M,K]: element (i,k) at A[i·lda + k], or A[k·lda + i] when transposed;
     * BLIS takes the transposition flag with the strides of the stored matrix */
    blis_sgemm(ta ? BLI_TRANSPOSE : BLI_NO_TRANSPOSE, tb ? BLI_TRANSPOSE : BLI_NO_TRANSPOSE, M, N, K, &alpha,
               (float *)A, lda, 1, (float *)B, ldb, 1, &beta, C, ldc, 1);
}
