/* emu_runtime.cpp — the emulated CUDA runtime calls (see cuda_runtime.h here) and the globals of
 * emu_device.h (cuBLASLt is in emu_cublaslt.cpp). */
#include <stdio.h>
#include <stdlib.h>
#include <condition_variable>

#include "emu_device.h"
thread_local emu_dim3 threadIdx, blockIdx;
emu_dim3 blockDim, gridDim;
emu_barrier *emu_bar;
double emu_shfl[1024];
std::mutex emu_atomic;
cudaError_t emu_last_error = cudaSuccess;

/* the pool: worker i runs the current block's job when i < its size */
/* never destroyed: the detached workers still wait on them when the process exits */
static std::mutex &pool_m = *new std::mutex;
static std::condition_variable &pool_cv = *new std::condition_variable, &pool_done = *new std::condition_variable;
static std::vector<std::thread> &pool = *new std::vector<std::thread>;
static uint64_t pool_gen;
static unsigned pool_block, pool_bidx, pool_left;
static const std::function<void()> *pool_job;

static void worker(unsigned id)
{
    uint64_t seen = 0;
    for (;;) {
        std::unique_lock<std::mutex> lk(pool_m);
        pool_cv.wait(lk, [&] { return pool_gen != seen && id < pool_block; });
        seen = pool_gen;
        unsigned b = pool_bidx;
        const std::function<void()> *job = pool_job;
        lk.unlock();
        threadIdx = {id, 0, 0};
        blockIdx = {b, 0, 0};
        (*job)();
        lk.lock();
        if (--pool_left == 0)
            pool_done.notify_all();
    }
}

void emu_run_block(unsigned block, unsigned b, const std::function<void()> &job)
{
    emu_barrier bar(block);
    std::unique_lock<std::mutex> lk(pool_m);
    while (pool.size() < block) {
        pool.emplace_back(worker, (unsigned)pool.size());
        pool.back().detach();
    }
    emu_bar = &bar;
    pool_job = &job;
    pool_block = block;
    pool_bidx = b;
    pool_left = block;
    pool_gen++;
    pool_cv.notify_all();
    pool_done.wait(lk, [] { return pool_left == 0; });
    pool_block = 0;
}
extern "C" {
cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int) { snprintf(p->name, sizeof p->name, "CPU emulator"); p->multiProcessorCount = 1; return cudaSuccess; }
cudaError_t cudaMalloc(void **p, size_t n) { *p = malloc(n ? n : 1); return *p ? cudaSuccess : cudaErrorMemoryAllocation; }
cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind) { if (n) memmove(d, s, n); return cudaSuccess; }
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, enum cudaMemcpyKind k, cudaStream_t) { return cudaMemcpy(d, s, n, k); }
cudaError_t cudaMemset(void *d, int v, size_t n) { memset(d, v, n); return cudaSuccess; }
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) { return cudaMemset(d, v, n); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = (cudaStream_t)1; return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaGetLastError(void) { cudaError_t e = emu_last_error; emu_last_error = cudaSuccess; return e; }
const char *cudaGetErrorName(cudaError_t e) { return e ? "cudaErrorEmu" : "cudaSuccess"; }
const char *cudaGetErrorString(cudaError_t e) { return e ? "emulated error" : "no error"; }
cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = (cudaEvent_t)1; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t, cudaEvent_t) { *ms = 0; return cudaSuccess; }
}
