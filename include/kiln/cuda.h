/* kiln/cuda.h — the CUDA backend's public entry points: device discovery, the caching
 * device allocator's statistics, a backend object holding a device index and a stream, and
 * one vector kernel (axpy) that proves the toolchain end to end. Plans run
 * on the GPU through kn_plan_opts.backend = KN_BACKEND_CUDA (kiln/plan.h, docs/cuda.md).
 * Part of libkiln; this header includes no CUDA header, so any C program can use it. In a
 * build without CUDA every function here fails with KN_ERR_UNSUPPORTED ("kiln was built
 * without CUDA: ...") and kn_cuda_device_count gives 0.
 *
 * Nothing here aborts: every CUDA and cuBLAS return value becomes a kn_status, with a message
 * from kn_cuda_last_error() (calls without a backend object) or kn_cuda_backend_error(). */
#ifndef KILN_CUDA_H
#define KILN_CUDA_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_cuda_backend kn_cuda_backend;

/* Number of CUDA devices. With no device or no usable driver, *count = 0 and the status is
 * KN_ERR_DEVICE (the CUDA runtime's reason in kn_cuda_last_error()); KN_ERR_ARG if count is
 * NULL. */
kn_status kn_cuda_device_count(int *count);

/* Name of `device` ("NVIDIA H100 80GB HBM3"), NUL-terminated and truncated to size bytes.
 * KN_ERR_ARG for a NULL/empty buffer or a device index out of range; KN_ERR_DEVICE when the
 * runtime fails. */
kn_status kn_cuda_device_name(int device, char *buf, size_t size);

/* Message of the last failed kn_cuda_* call on this thread that had no backend object to
 * hold it ("" if none). Borrowed; overwritten by the next failure. */
const char *kn_cuda_last_error(void);

/* Creates a backend on `device`: makes it current for the calling thread and creates a
 * non-blocking stream. Fails with KN_ERR_DEVICE ("no CUDA
 * device found (cudaGetDeviceCount: ...); use the CPU backend") when there is no device,
 * KN_ERR_ARG for a device index out of range, KN_ERR_OOM; *out is then NULL and the reason is
 * in kn_cuda_last_error(). The caller owns *out: free it with kn_cuda_backend_free. */
kn_status kn_cuda_backend_new(kn_cuda_backend **out, int device);
void kn_cuda_backend_free(kn_cuda_backend *b); /* NULL is a no-op */

int kn_cuda_backend_device(const kn_cuda_backend *b); /* -1 for NULL */
/* Message of the backend's last failed call ("" if none). Borrowed. */
const char *kn_cuda_backend_error(const kn_cuda_backend *b);

/* y[i] = alpha·x[i] + y[i] for i < n, on the device: x and y are HOST arrays (copied in,
 * computed on the backend's stream, y copied back; synchronous). n = 0 does nothing.
 * KN_ERR_ARG for n < 0 or NULL arrays, KN_ERR_OOM when device memory runs out,
 * KN_ERR_DEVICE for any other CUDA failure. */
kn_status kn_cuda_axpy_f32(kn_cuda_backend *b, int64_t n, float alpha, const float *x, float *y);

/* kiln's caching device allocator (one per device, shared by all plans of the process):
 * freed blocks stay cached and are reused by later requests of a similar size, so compiling,
 * freeing and recompiling plans calls cudaMalloc only on a miss. */
typedef struct kn_cuda_cache_stats {
    size_t held;       /* bytes obtained from cudaMalloc and not yet returned */
    size_t in_use;     /* of which handed out to plans now */
    uint64_t mallocs;  /* cudaMalloc calls so far (misses) */
    uint64_t hits;     /* requests served from the cache */
    uint64_t frees;    /* cudaFree calls (kn_cuda_cache_release, or retrying after OOM) */
} kn_cuda_cache_stats;
/* Device memory from kiln's cache (e.g. to keep data on the GPU): *ptr is a device address
 * of at least `bytes` bytes (NULL for 0 bytes). KN_ERR_OOM with "out of memory on cuda:D:
 * requested X, free Y of Z, kiln's cache holds W" in kn_cuda_last_error(), KN_ERR_DEVICE /
 * KN_ERR_ARG otherwise. kn_cuda_free returns the block to the cache (NULL is a no-op). */
kn_status kn_cuda_malloc(int device, size_t bytes, void **ptr);
void kn_cuda_free(int device, void *ptr);
/* KN_ERR_ARG for a NULL out or a device index < 0; zeroes when the device was never used. */
kn_status kn_cuda_cache_get_stats(int device, kn_cuda_cache_stats *out);
/* Returns every cached block not in use on `device` to the driver (cudaFree). */
kn_status kn_cuda_cache_release(int device);

/* Device memory the driver reports free and in all on `device` (cudaMemGetInfo), plus what
 * kiln's cache holds there without using it (reusable by kiln, not counted as free).
 * KN_ERR_ARG for NULL outputs, else as kn_cuda_malloc. */
kn_status kn_cuda_mem_info(int device, size_t *free_bytes, size_t *total_bytes, size_t *cached_idle);

/* True when kiln was built with the CUDA backend (whether or not a GPU is present). */
bool kn_cuda_built(void);

#ifdef __cplusplus
}
#endif
#endif
