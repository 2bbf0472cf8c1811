/* emu_device.h — the CUDA device side emulated on the CPU, for checking the op kernels' logic
 * without a GPU: one fiber (a user-level context) per CUDA thread of a block, blocks one after
 * another (so __shared__ = static is per block), a barrier for __syncthreads and for the warp
 * shuffles (so every thread of a block must call them equally often — true of every kernel
 * here).
 * Stream capture records launches (kn_emu_launch) for a graph launch to replay.
 * What it cannot show: races between blocks, warp-synchronous bugs, the real libm's ulps,
 * launch limits, memory errors (host malloc). compute-sanitizer on a GPU is still the check. */
#ifndef EMU_DEVICE_H
#define EMU_DEVICE_H
#include <functional>
#include <cmath>
#include <cstring>
#include <mutex>
#include <tuple>
#include <vector>
#include <math.h>
#include "cuda_runtime.h"
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
struct emu_dim3 { unsigned x, y, z; };
extern thread_local emu_dim3 threadIdx, blockIdx;
extern emu_dim3 blockDim, gridDim;
/* __syncthreads: the calling CUDA thread (a fiber, emu_runtime.cpp) waits until every thread
 * of its block has arrived. */
void emu_syncthreads();
extern double emu_shfl[1024];
extern std::mutex emu_atomic;
inline void __syncthreads() { emu_syncthreads(); }
template <typename T> inline T __shfl_xor_sync(unsigned, T v, int o)
{
    unsigned t = threadIdx.x;
    emu_syncthreads();
    emu_shfl[t] = (double)v;
    emu_syncthreads();
    T r = (T)emu_shfl[t ^ (unsigned)o];
    return r;
}
inline unsigned long long atomicMin(unsigned long long *p, unsigned long long v)
{
    std::lock_guard<std::mutex> g(emu_atomic);
    unsigned long long old = *p;
    if (v < old)
        *p = v;
    return old;
}
inline unsigned __float_as_uint(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; memcpy(&x, &u, 4); return x; }
/* round-to-nearest arithmetic that nvcc never contracts into an FMA (g++ here makes no FMA) */
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
/* dp4a: the four signed byte products of a and b (byte 0 the lowest) added to c */
inline int __dp4a(int a, int b, int c)
{
    for (int t = 0; t < 4; t++)
        c += (int)(signed char)(a >> (8 * t)) * (int)(signed char)(b >> (8 * t));
    return c;
}
using std::isnan;
using std::isfinite;
extern cudaError_t emu_last_error;
/* Runs job() as `block` fibers with threadIdx.x = 0..block-1, blockIdx.x = b; returns when all
 * are done (emu_runtime.cpp). */
void emu_run_block(unsigned block, unsigned b, const std::function<void()> &job);
/* A launch: f calls the kernel with its arguments evaluated and copied at the launch
 * (transform.py), so a queued or captured launch runs with the values it was enqueued with. */
template <class F> void kn_emu_launch(unsigned grid, unsigned block, size_t, cudaStream_t s, F f)
{
    if (grid == 0 || block == 0 || block > 1024) {
        emu_last_error = cudaErrorInvalidValue;
        return;
    }
    std::function<void()> run = [grid, block, f] {
        gridDim = {grid, 1, 1};
        blockDim = {block, 1, 1};
        std::function<void()> job = [&] { f(); };
        for (unsigned b = 0; b < grid; b++)
            emu_run_block(block, b, job);
    };
    emu_run_or_record(s, run);
}
#endif
