/* cublaslt_lazy.c — cuBLASLt loaded on first use instead of at program start.
 *
 * Linking libcublasLt makes every program that links kiln map and relocate it at start-up:
 * about 210 MB of resident memory and 0.1 s before main, even for CPU-only runs. So kiln does
 * not link it: this file defines the cuBLASLt functions the CUDA backend calls, and the first
 * call dlopen()s libcublasLt (the toolkit's directory from the build, then the loader's search
 * path) and forwards to the real functions. If the library cannot be loaded, every call
 * returns CUBLAS_STATUS_NOT_INITIALIZED and the status strings say which file was missing,
 * so a GEMM fails with a kiln error instead of the program failing to start. The definitions
 * are weak so that a test's mock of cuBLASLt (tests/mock) can replace them. */
#include <cublasLt.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#ifndef KN_CUBLASLT_DIR
#define KN_CUBLASLT_DIR "/usr/local/cuda/lib64"
#endif

#define STR2(x) #x
#define STR(x) STR2(x)
#define SOVER STR(CUBLAS_VER_MAJOR)

static void *lib;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char why[512] = "libcublasLt was not loaded";

static void load(void)
{
    static const char *const names[] = {KN_CUBLASLT_DIR "/libcublasLt.so." SOVER, "libcublasLt.so." SOVER,
                                        "libcublasLt.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++)
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        snprintf(why, sizeof why, "cannot load libcublasLt.so.%s (%s): install the CUDA toolkit's cuBLAS or put "
                 "its directory on LD_LIBRARY_PATH", SOVER, e ? e : "not found");
    }
}

static void *sym(const char *name)
{
    pthread_once(&once, load);
    return lib ? dlsym(lib, name) : NULL;
}

/* One forwarding definition per function (looked up per call: a GEMM launch makes a few
 * calls, a replayed CUDA graph none); NOT_INITIALIZED when the library is missing. */
#define FORWARD(name, params, args)                                  \
    __attribute__((weak)) cublasStatus_t CUBLASWINAPI name params    \
    {                                                                \
        cublasStatus_t (*fn) params;                                 \
        *(void **)&fn = sym(#name);                                  \
        return fn ? fn args : CUBLAS_STATUS_NOT_INITIALIZED;         \
    }

FORWARD(cublasLtCreate, (cublasLtHandle_t *h), (h))
FORWARD(cublasLtDestroy, (cublasLtHandle_t h), (h))
FORWARD(cublasLtMatmulDescCreate, (cublasLtMatmulDesc_t *d, cublasComputeType_t c, cudaDataType_t s), (d, c, s))
FORWARD(cublasLtMatmulDescDestroy, (cublasLtMatmulDesc_t d), (d))
FORWARD(cublasLtMatmulDescSetAttribute,
        (cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void *buf, size_t n), (d, a, buf, n))
FORWARD(cublasLtMatrixLayoutCreate, (cublasLtMatrixLayout_t *l, cudaDataType t, uint64_t r, uint64_t c, int64_t ld),
        (l, t, r, c, ld))
FORWARD(cublasLtMatrixLayoutDestroy, (cublasLtMatrixLayout_t l), (l))
FORWARD(cublasLtMatrixLayoutSetAttribute,
        (cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a, const void *buf, size_t n), (l, a, buf, n))
FORWARD(cublasLtMatmulPreferenceCreate, (cublasLtMatmulPreference_t *p), (p))
FORWARD(cublasLtMatmulPreferenceDestroy, (cublasLtMatmulPreference_t p), (p))
FORWARD(cublasLtMatmulPreferenceSetAttribute,
        (cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, const void *buf, size_t n),
        (p, a, buf, n))
FORWARD(cublasLtMatmulAlgoGetHeuristic,
        (cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
         cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t pref, int want,
         cublasLtMatmulHeuristicResult_t res[], int *got),
        (h, op, a, b, c, d, pref, want, res, got))
FORWARD(cublasLtMatmul,
        (cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void *alpha, const void *A, cublasLtMatrixLayout_t ad,
         const void *B, cublasLtMatrixLayout_t bd, const void *beta, const void *C, cublasLtMatrixLayout_t cd, void *D,
         cublasLtMatrixLayout_t dd, const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes, cudaStream_t s),
        (h, op, alpha, A, ad, B, bd, beta, C, cd, D, dd, algo, ws, ws_bytes, s))

__attribute__((weak)) const char *CUBLASWINAPI cublasLtGetStatusName(cublasStatus_t st)
{
    const char *(*fn)(cublasStatus_t);
    *(void **)&fn = sym("cublasLtGetStatusName");
    return fn ? fn(st) : "CUBLAS_STATUS_NOT_INITIALIZED";
}

__attribute__((weak)) const char *CUBLASWINAPI cublasLtGetStatusString(cublasStatus_t st)
{
    const char *(*fn)(cublasStatus_t);
    *(void **)&fn = sym("cublasLtGetStatusString");
    return fn ? fn(st) : why;
}
