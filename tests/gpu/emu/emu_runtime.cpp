/* emu_runtime.cpp — the emulated CUDA runtime calls (see cuda_runtime.h here) and the globals of
 * emu_device.h (cuBLASLt is in emu_cublaslt.cpp): one device, cuda:0, of 16 GiB host memory;
 * every call runs at once; a stream capture records launches and async copies/memsets and a
 * graph launch replays them; what may not happen during a capture (allocating, synchronous
 * copies, waiting) fails with cudaErrorStreamCaptureUnsupported and invalidates it, as in
 * thread-local capture mode. */
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>
#include <map>
#include <set>

#include "emu_device.h"
thread_local emu_dim3 threadIdx, blockIdx;
emu_dim3 blockDim, gridDim;
double emu_shfl[1024];
std::mutex emu_atomic;
cudaError_t emu_last_error = cudaSuccess;
static std::vector<std::function<void()>> *emu_capture; /* the open stream capture, or NULL */

/* ---- CUDA threads as fibers: the threads of a block run one at a time on the calling thread,
 * each until it finishes or reaches a barrier; when every unfinished thread waits there, all
 * go on. A switch costs a swapcontext, not a futex wake of an OS thread. ---- */
enum { FIBER_STACK = 256 << 10 };
static struct fiber {
    ucontext_t ctx;
    char *stack;
    bool waiting, done;
} fibers[1024];
static ucontext_t scheduler;
static unsigned current;
static const std::function<void()> *block_job;

static void fiber_main()
{
    (*block_job)();
    fibers[current].done = true; /* returns to uc_link: the scheduler */
}

void emu_syncthreads()
{
    fibers[current].waiting = true;
    swapcontext(&fibers[current].ctx, &scheduler);
}

void emu_run_block(unsigned block, unsigned b, const std::function<void()> &job)
{
    block_job = &job;
    blockIdx = {b, 0, 0};
    for (unsigned i = 0; i < block; i++) {
        fiber *f = &fibers[i];
        if (!f->stack && !(f->stack = (char *)malloc(FIBER_STACK))) {
            fprintf(stderr, "emulator: out of memory for a fiber stack\n");
            abort();
        }
        getcontext(&f->ctx);
        f->ctx.uc_stack.ss_sp = f->stack;
        f->ctx.uc_stack.ss_size = FIBER_STACK;
        f->ctx.uc_link = &scheduler;
        makecontext(&f->ctx, fiber_main, 0);
        f->waiting = f->done = false;
    }
    for (;;) {
        unsigned live = 0;
        for (unsigned i = 0; i < block; i++) {
            if (fibers[i].done)
                continue;
            fibers[i].waiting = false; /* everyone arrived (or it never waited): go on */
            current = i;
            threadIdx = {i, 0, 0};
            swapcontext(&scheduler, &fibers[i].ctx);
            live += !fibers[i].done;
        }
        if (!live)
            return;
    }
}

/* ---- memory: a budget, so that an impossible request fails like on a device ---- */
static const size_t CAPACITY = (size_t)16 << 30;
static std::mutex &mem_m = *new std::mutex;
static std::map<void *, size_t> &device_blocks = *new std::map<void *, size_t>;
static std::set<void *> &registered = *new std::set<void *>;
static size_t device_used;
static bool capture_broken;

struct emu_graph { std::vector<std::function<void()>> ops; };

/* At exit, what the emulated device did: proof of which paths a run took. */
extern "C" long emu_lt_calls;
static struct emu_report {
    ~emu_report()
    {
        if (getenv("EMU_QUIET"))
            return;
        fprintf(stderr, "emulator: %ld graph launches replaying %ld captured operations; %ld cuBLASLt matmuls\n",
                emu_graph_launches, emu_captured_ops, emu_lt_calls);
    }
} report;

/* What a capture does not allow: fails it, as thread-local capture mode does. */
static bool refused_in_capture()
{
    if (!emu_capture)
        return false;
    capture_broken = true;
    return true;
}

void emu_run_or_record(std::function<void()> work)
{
    if (emu_capture)
        emu_capture->push_back(std::move(work));
    else
        work();
}

extern "C" {
long emu_graph_launches, emu_captured_ops;
cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int dev)
{
    if (dev != 0)
        return cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU emulator");
    p->totalGlobalMem = CAPACITY;
    p->major = 9;
    p->multiProcessorCount = 1;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr a, int dev)
{
    if (dev != 0 || a != cudaDevAttrMultiProcessorCount)
        return cudaErrorInvalidValue;
    *v = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) { return dev == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
cudaError_t cudaGetDevice(int *dev) { *dev = 0; return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t *f, size_t *t)
{
    std::lock_guard<std::mutex> g(mem_m);
    *f = CAPACITY - device_used;
    *t = CAPACITY;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t n)
{
    *p = NULL;
    if (refused_in_capture())
        return cudaErrorStreamCaptureUnsupported;
    std::lock_guard<std::mutex> g(mem_m);
    if (n > CAPACITY - device_used)
        return emu_last_error = cudaErrorMemoryAllocation;
    *p = malloc(n ? n : 1);
    if (!*p)
        return emu_last_error = cudaErrorMemoryAllocation;
    device_blocks[*p] = n;
    device_used += n;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p)
{
    if (!p)
        return cudaSuccess;
    std::lock_guard<std::mutex> g(mem_m);
    auto it = device_blocks.find(p);
    if (it == device_blocks.end())
        return emu_last_error = cudaErrorInvalidValue; /* not a device allocation */
    device_used -= it->second;
    device_blocks.erase(it);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocAsync(void **p, size_t n, cudaStream_t) { return cudaMalloc(p, n); }
cudaError_t cudaFreeAsync(void *p, cudaStream_t) { return cudaFree(p); }
cudaError_t cudaMallocHost(void **p, size_t n)
{
    *p = malloc(n ? n : 1);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFreeHost(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaHostRegister(void *p, size_t, unsigned)
{
    std::lock_guard<std::mutex> g(mem_m);
    return registered.insert(p).second ? cudaSuccess : (emu_last_error = cudaErrorHostMemoryAlreadyRegistered);
}
cudaError_t cudaHostUnregister(void *p)
{
    std::lock_guard<std::mutex> g(mem_m);
    return registered.erase(p) ? cudaSuccess : (emu_last_error = cudaErrorHostMemoryNotRegistered);
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind)
{
    if (refused_in_capture())
        return cudaErrorStreamCaptureUnsupported;
    if (n)
        memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, enum cudaMemcpyKind, cudaStream_t)
{
    emu_run_or_record([=] { if (n) memmove(d, s, n); });
    return cudaSuccess;
}
cudaError_t cudaMemset(void *d, int v, size_t n)
{
    if (refused_in_capture())
        return cudaErrorStreamCaptureUnsupported;
    memset(d, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t)
{
    emu_run_or_record([=] { memset(d, v, n); });
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { *s = (cudaStream_t)1; return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = (cudaStream_t)1; return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t)
{
    return refused_in_capture() ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t cudaStreamBeginCapture(cudaStream_t, enum cudaStreamCaptureMode)
{
    if (emu_capture)
        return cudaErrorIllegalState;
    emu_capture = new std::vector<std::function<void()>>;
    capture_broken = false;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t *g)
{
    *g = NULL;
    if (!emu_capture)
        return cudaErrorIllegalState;
    std::vector<std::function<void()>> *ops = emu_capture;
    emu_capture = NULL;
    if (capture_broken) {
        delete ops;
        return cudaErrorStreamCaptureInvalidated;
    }
    emu_captured_ops += (long)ops->size();
    *g = new emu_graph{std::move(*ops)};
    delete ops;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long)
{
    *e = g ? new emu_graph(*g) : NULL;
    return g ? cudaSuccess : cudaErrorInvalidValue;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t)
{
    if (!e || emu_capture)
        return cudaErrorInvalidValue;
    for (auto &op : e->ops)
        op();
    emu_graph_launches++;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) { delete e; return cudaSuccess; }
cudaError_t cudaGetLastError(void) { cudaError_t e = emu_last_error; emu_last_error = cudaSuccess; return e; }
const char *cudaGetErrorName(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    default: return "cudaError(emulated)";
    }
}
const char *cudaGetErrorString(cudaError_t e) { return e ? cudaGetErrorName(e) : "no error"; }
cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = (cudaEvent_t)1; return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { *e = (cudaEvent_t)1; return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t)
{
    return refused_in_capture() ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t, cudaEvent_t) { *ms = 0; return cudaSuccess; }
}
