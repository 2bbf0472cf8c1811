/* device.cu — CUDA device discovery and the backend object (device index, stream), plus the
 * helpers that turn every CUDA/cuBLAS result into a kn_status. No process-wide state besides
 * the thread-local message of kn_cuda_last_error. Kernels live in their own files; plans run
 * through plan_cuda.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

static thread_local char last_error[512];

const char *kn_cuda_last_error(void) { return last_error; }

extern "C" void kn__cuda_set_last_error(const char *msg) { snprintf(last_error, sizeof last_error, "%s", msg); }

kn_status kn__cuda_status(cudaError_t err, const char *what, char *msg, size_t size)
{
    if (err == cudaSuccess)
        return KN_OK;
    snprintf(msg, size, "%s: %s (%s)", what, cudaGetErrorName(err), cudaGetErrorString(err));
    return err == cudaErrorMemoryAllocation ? KN_ERR_OOM : KN_ERR_DEVICE;
}

kn_status kn__cublas_status(cublasStatus_t st, const char *what, char *msg, size_t size)
{
    if (st == CUBLAS_STATUS_SUCCESS)
        return KN_OK;
    snprintf(msg, size, "%s: %s (%s)", what, cublasLtGetStatusName(st), cublasLtGetStatusString(st));
    return st == CUBLAS_STATUS_ALLOC_FAILED ? KN_ERR_OOM : KN_ERR_DEVICE;
}

kn_status kn__cuda_enter(kn_cuda_backend *b)
{
    return kn__cuda_status(cudaSetDevice(b->device), "cudaSetDevice", b->msg, sizeof b->msg);
}

kn_status kn_cuda_device_count(int *count)
{
    last_error[0] = 0;
    if (!count) {
        snprintf(last_error, sizeof last_error, "cuda_device_count: NULL count");
        return KN_ERR_ARG;
    }
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        *count = 0;
        (void)cudaGetLastError(); /* do not leave the failure for an unrelated later check */
        kn__cuda_status(err, "cudaGetDeviceCount", last_error, sizeof last_error);
        return KN_ERR_DEVICE; /* "no device" and "no driver" alike: there is nothing to use */
    }
    *count = n;
    return KN_OK;
}

/* KN_OK when device is a valid index; otherwise the reason is in last_error. */
static kn_status check_device(int device)
{
    int n = 0;
    kn_status st = kn_cuda_device_count(&n);
    if (st == KN_OK && n == 0) {
        snprintf(last_error, sizeof last_error, "cudaGetDeviceCount: 0 devices");
        st = KN_ERR_DEVICE;
    }
    if (st == KN_ERR_DEVICE) {
        char why[sizeof last_error];
        memcpy(why, last_error, sizeof why);
        snprintf(last_error, sizeof last_error, "no CUDA device found (%.400s); use the CPU backend", why);
        return st;
    }
    if (st)
        return st;
    if (device < 0 || device >= n) {
        snprintf(last_error, sizeof last_error, "CUDA device %d out of range (%d device%s)", device,
                 n, n == 1 ? "" : "s");
        return KN_ERR_ARG;
    }
    return KN_OK;
}

kn_status kn_cuda_device_name(int device, char *buf, size_t size)
{
    if (!buf || size == 0) {
        snprintf(last_error, sizeof last_error, "cuda_device_name: NULL or empty buffer");
        return KN_ERR_ARG;
    }
    buf[0] = 0;
    kn_status st = check_device(device);
    if (st)
        return st;
    cudaDeviceProp prop;
    st = kn__cuda_status(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties",
                         last_error, sizeof last_error);
    if (st)
        return st;
    snprintf(buf, size, "%.*s", (int)sizeof prop.name, prop.name);
    return KN_OK;
}

void kn_cuda_backend_free(kn_cuda_backend *b)
{
    if (!b)
        return;
    /* Teardown errors cannot be reported to anyone; the resources are gone either way. */
    if (cudaSetDevice(b->device) == cudaSuccess) {
        if (b->stream) {
            (void)cudaStreamSynchronize(b->stream);
            (void)cudaStreamDestroy(b->stream);
        }
    }
    free(b);
}

kn_status kn_cuda_backend_new(kn_cuda_backend **out, int device)
{
    last_error[0] = 0;
    if (!out) {
        snprintf(last_error, sizeof last_error, "cuda_backend_new: NULL out");
        return KN_ERR_ARG;
    }
    *out = NULL;
    kn_status st = check_device(device);
    if (st)
        return st;
    kn_cuda_backend *b = (kn_cuda_backend *)calloc(1, sizeof *b);
    if (!b) {
        snprintf(last_error, sizeof last_error, "cuda_backend_new: out of host memory");
        return KN_ERR_OOM;
    }
    b->device = device;
    st = kn__cuda_enter(b);
    if (!st)
        st = kn__cuda_status(cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking),
                             "cudaStreamCreateWithFlags", b->msg, sizeof b->msg);
    if (st) {
        snprintf(last_error, sizeof last_error, "CUDA device %d: %.400s", device, b->msg);
        kn_cuda_backend_free(b);
        return st;
    }
    *out = b;
    return KN_OK;
}

int kn_cuda_backend_device(const kn_cuda_backend *b) { return b ? b->device : -1; }

const char *kn_cuda_backend_error(const kn_cuda_backend *b) { return b ? b->msg : "no backend"; }
