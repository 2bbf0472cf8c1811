/* blas1.cu — level-1 vector kernels of the CUDA backend. For now one: axpy, the smallest
 * real kernel, which proves the toolchain end to end (compile for sm_90, launch on the
 * backend's stream, copy back) and is what tests/gpu/test_cuda_smoke.c checks against the
 * CPU. Layout per DESIGN.md: <op>_<dtype>_kernel, a launcher taking a cudaStream_t, one
 * backend entry. Not an op of the op table; op kernels arrive per family (conv.cu, ...). */
#include <stdio.h>

#include "cuda_internal.h"

/* y[i] = alpha·x[i] + y[i]; grid-stride loop so any grid size covers any n. */
__global__ void axpy_f32_kernel(int64_t n, float alpha, const float *__restrict__ x,
                                float *__restrict__ y)
{
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = fmaf(alpha, x[i], y[i]);
}

static cudaError_t axpy_f32_launch(cudaStream_t stream, int64_t n, float alpha, const float *x,
                                   float *y)
{
    const int threads = 256;
    int64_t blocks = (n + threads - 1) / threads;
    if (blocks > 65535 * 8)
        blocks = 65535 * 8; /* enough to fill any current GPU; the loop does the rest */
    axpy_f32_kernel<<<(unsigned)blocks, threads, 0, stream>>>(n, alpha, x, y);
    return cudaGetLastError();
}

kn_status kn_cuda_axpy_f32(kn_cuda_backend *b, int64_t n, float alpha, const float *x, float *y)
{
    if (!b)
        return KN_ERR_ARG;
    b->msg[0] = 0;
    if (n < 0 || (n > 0 && (!x || !y))) {
        snprintf(b->msg, sizeof b->msg, "cuda axpy_f32: n = %lld, x = %p, y = %p", (long long)n,
                 (const void *)x, (void *)y);
        return KN_ERR_ARG;
    }
    if (n == 0)
        return KN_OK;
    if ((uint64_t)n > SIZE_MAX / 2 / sizeof(float)) {
        snprintf(b->msg, sizeof b->msg, "cuda axpy_f32: n = %lld overflows a byte size", (long long)n);
        return KN_ERR_ARG;
    }
    size_t bytes = (size_t)n * sizeof(float);
    kn_status st = kn__cuda_enter(b);
    if (st)
        return st;
    float *d = NULL; /* x and y in one allocation: [x | y] */
    st = kn__cuda_status(cudaMallocAsync((void **)&d, 2 * bytes, b->stream), "cudaMallocAsync",
                         b->msg, sizeof b->msg);
    if (st)
        return st;
    float *dx = d, *dy = d + n;
    st = kn__cuda_status(cudaMemcpyAsync(dx, x, bytes, cudaMemcpyHostToDevice, b->stream),
                         "cudaMemcpyAsync(x)", b->msg, sizeof b->msg);
    if (!st)
        st = kn__cuda_status(cudaMemcpyAsync(dy, y, bytes, cudaMemcpyHostToDevice, b->stream),
                             "cudaMemcpyAsync(y)", b->msg, sizeof b->msg);
    if (!st)
        st = kn__cuda_status(axpy_f32_launch(b->stream, n, alpha, dx, dy), "axpy_f32_kernel launch",
                             b->msg, sizeof b->msg);
    if (!st)
        st = kn__cuda_status(cudaMemcpyAsync(y, dy, bytes, cudaMemcpyDeviceToHost, b->stream),
                             "cudaMemcpyAsync(y back)", b->msg, sizeof b->msg);
    /* Free and wait even after a failure, so nothing leaks; keep the first error. */
    char tail[sizeof b->msg];
    kn_status st2 = kn__cuda_status(cudaFreeAsync(d, b->stream), "cudaFreeAsync", tail, sizeof tail);
    if (!st2)
        st2 = kn__cuda_status(cudaStreamSynchronize(b->stream), "cudaStreamSynchronize (axpy_f32)",
                              tail, sizeof tail);
    if (!st && st2) {
        st = st2;
        snprintf(b->msg, sizeof b->msg, "%s", tail);
    }
    return st;
}

#ifndef KN_CUDA_ARCHS
#define KN_CUDA_ARCHS "(unknown)"
#endif

/* Whether this build's kernels run on `device`: asks the runtime for a real kernel's
 * attributes, which fails when no embedded image (SASS or PTX) suits the device. */
extern "C" kn_status kn__cuda_probe_arch(int device, char *msg, size_t size)
{
    cudaDeviceProp prop;
    kn_status st = kn__cuda_status(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties", msg, size);
    if (st)
        return st;
    cudaFuncAttributes attr;
    cudaError_t err = cudaFuncGetAttributes(&attr, axpy_f32_kernel);
    if (err == cudaSuccess)
        return KN_OK;
    (void)cudaGetLastError();
    snprintf(msg, size,
             "cuda:%d (%.200s, compute capability %d.%d) is not supported by this build of kiln (CUDA "
             "architectures %s: %s): rebuild with -DCMAKE_CUDA_ARCHITECTURES=native on this machine",
             device, prop.name, prop.major, prop.minor, KN_CUDA_ARCHS, cudaGetErrorString(err));
    return KN_ERR_UNSUPPORTED;
}
