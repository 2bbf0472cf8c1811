/* cuda_internal.h — shared by the CUDA backend's files only (never by core code; .cu files
 * and the backend's plain C files alike, hence the C linkage): the backend object, the
 * helpers that turn CUDA/cuBLAS return values into kn_status with a message, and kiln's
 * caching device allocator (cuda_alloc.c). Not a public header; include/kiln/cuda.h is. */
#ifndef KN_CUDA_INTERNAL_H
#define KN_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "kiln/cuda.h"

struct kn_cuda_backend {
    int device;
    cudaStream_t stream;   /* every kernel and copy of this backend runs here */
    char msg[512];         /* last failure */
};

#ifdef __cplusplus
extern "C" {
#endif

/* Records "what: cudaErrorX (description)" in msg (size bytes) and returns the kn_status for
 * err (KN_OK for cudaSuccess, KN_ERR_OOM for allocation failures, else KN_ERR_DEVICE). */
kn_status kn__cuda_status(cudaError_t err, const char *what, char *msg, size_t size);
kn_status kn__cublas_status(cublasStatus_t st, const char *what, char *msg, size_t size);

/* Makes b's device current for the calling thread (the runtime's current device is
 * per-thread, so each entry point sets it rather than trusting an earlier call). */
kn_status kn__cuda_enter(kn_cuda_backend *b);

/* Caching device allocator (cuda_alloc.c): per device, size-class free lists, cudaMalloc
 * only on a miss; the calling thread's current device must be `device`. On failure *out is
 * NULL and msg says "out of memory on cuda:D: requested X, free Y of Z, kiln's cache holds
 * W (V in use)" (KN_ERR_OOM) or the CUDA error (KN_ERR_DEVICE). bytes = 0 gives NULL, KN_OK. */
kn_status kn__cuda_malloc(int device, size_t bytes, void **out, char *msg, size_t size);
/* Returns a block to the cache (NULL is a no-op). Never calls cudaFree. */
void kn__cuda_free(int device, void *ptr);

/* Sets kn_cuda_last_error() of the calling thread (device.cu). */
void kn__cuda_set_last_error(const char *msg);

/* KN_OK when kernels of this build run on `device` (compiled for its architecture); else
 * KN_ERR_UNSUPPORTED with a message naming the device's compute capability, the
 * architectures built and how to rebuild (blas1.cu: probes a real kernel). */
kn_status kn__cuda_probe_arch(int device, char *msg, size_t size);

#ifdef __cplusplus
}
#endif

#endif
