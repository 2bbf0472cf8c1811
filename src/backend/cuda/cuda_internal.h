/* cuda_internal.h — shared by the CUDA backend's .cu files only (never by core code): the
 * backend object and the helpers that turn CUDA/cuBLAS return values into kn_status with a
 * message. Not a public header; include/kiln/cuda.h is. */
#ifndef KN_CUDA_INTERNAL_H
#define KN_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kiln/cuda.h"

struct kn_cuda_backend {
    int device;
    cudaStream_t stream;   /* every kernel and copy of this backend runs here */
    cublasHandle_t cublas; /* bound to stream */
    char msg[512];         /* last failure */
};

/* Records "what: cudaErrorX (description)" in msg (size bytes) and returns the kn_status for
 * err (KN_OK for cudaSuccess, KN_ERR_OOM for allocation failures, else KN_ERR_DEVICE). */
kn_status kn__cuda_status(cudaError_t err, const char *what, char *msg, size_t size);
kn_status kn__cublas_status(cublasStatus_t st, const char *what, char *msg, size_t size);

/* Makes b's device current for the calling thread (the runtime's current device is
 * per-thread, so each entry point sets it rather than trusting an earlier call). */
kn_status kn__cuda_enter(kn_cuda_backend *b);

#endif
