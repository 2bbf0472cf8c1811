/* emu_device.h — the CUDA device side emulated on the CPU, for checking the op kernels' logic
 * without a GPU: one std::thread per CUDA thread of a block, blocks one after another (so
 * __shared__ = static is per block), a sleeping barrier for __syncthreads and for the warp shuffles
 * (so every thread of a block must call them equally often — true of every kernel here).
 * What it cannot show: races between blocks, warp-synchronous bugs, the real libm's ulps,
 * launch limits, memory errors (host malloc). compute-sanitizer on a GPU is still the check. */
#ifndef EMU_DEVICE_H
#define EMU_DEVICE_H
#include <condition_variable>
#include <functional>
#include <cmath>
#include <cstring>
#include <mutex>
#include <thread>
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
/* A barrier that sleeps (mutex + condition variable) instead of spinning: hundreds of emulated
 * threads on a few cores. */
struct emu_barrier {
    std::mutex m;
    std::condition_variable cv;
    unsigned n, waiting = 0;
    unsigned long gen = 0;
    explicit emu_barrier(unsigned count) : n(count) {}
    void arrive_and_wait()
    {
        std::unique_lock<std::mutex> lk(m);
        unsigned long g = gen;
        if (++waiting == n) {
            waiting = 0;
            gen++;
            cv.notify_all();
            return;
        }
        cv.wait(lk, [&] { return gen != g; });
    }
};
extern emu_barrier *emu_bar;
extern double emu_shfl[1024];
extern std::mutex emu_atomic;
inline void __syncthreads() { emu_bar->arrive_and_wait(); }
template <typename T> inline T __shfl_xor_sync(unsigned, T v, int o)
{
    unsigned t = threadIdx.x;
    emu_bar->arrive_and_wait();
    emu_shfl[t] = (double)v;
    emu_bar->arrive_and_wait();
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
using std::isnan;
using std::isfinite;
extern cudaError_t emu_last_error;
/* Runs job() on `block` pool threads with threadIdx.x = 0..block-1, blockIdx.x = b; returns when
 * all are done (emu_runtime.cpp: a persistent pool, so a launch costs no thread creation). */
void emu_run_block(unsigned block, unsigned b, const std::function<void()> &job);
template <class F> void kn_emu_launch(unsigned grid, unsigned block, size_t, cudaStream_t, F f)
{
    if (grid == 0 || block == 0 || block > 1024) {
        emu_last_error = cudaErrorInvalidValue;
        return;
    }
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    std::function<void()> job = [&] { f(); };
    for (unsigned b = 0; b < grid; b++)
        emu_run_block(block, b, job);
}
#endif
