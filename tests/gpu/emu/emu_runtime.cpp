/* emu_runtime.cpp — the emulated CUDA runtime calls (see cuda_runtime.h here) and the globals of
 * emu_device.h (cuBLASLt is in emu_cublaslt.cpp): one device, cuda:0, of 16 GiB host memory;
 * a stream capture records launches and async copies/memsets and a graph launch replays them;
 * what may not happen during a capture (allocating, synchronous copies, waiting) fails with
 * cudaErrorStreamCaptureUnsupported and invalidates it, as in thread-local capture mode.
 *
 * Stream work (launches, async copies and memsets, library calls, graph launches) runs at once
 * by default. With EMU_ASYNC=<seed> it is queued per stream instead and runs in a random order
 * that respects only what CUDA guarantees: order within a stream, cudaStreamWaitEvent, and the
 * host's waits (stream/event synchronisation, cudaFree, copies to pageable memory). A program
 * that forgets a wait (refills a pinned buffer before its upload ran, lets one stream
 * overwrite what another still reads) then computes wrong numbers, which its test sees. Async
 * copies from pageable host memory take the bytes at the call, as the real runtime does. */
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>
#include <deque>
#include <map>
#include <memory>
#include <set>

#include "emu_device.h"
thread_local emu_dim3 threadIdx, blockIdx;
emu_dim3 blockDim, gridDim;
double emu_shfl[1024];
std::mutex emu_atomic;
cudaError_t emu_last_error = cudaSuccess;
static std::vector<std::function<void()>> *emu_capture; /* the open stream capture, or NULL */

/* ---- streams and events (EMU_ASYNC) ---- */
struct emu_stream {
    struct item {
        std::function<void()> work; /* empty: a wait for (on, seq) */
        emu_stream *on;
        unsigned long long seq;
    };
    std::deque<item> q;
    unsigned long long enqueued = 0, done = 0;
    bool blocking = true; /* synchronises with the legacy stream */
    int speed = 1;        /* EMU_ASYNC: 0 lazy (runs when waited for), 1 sometimes, 2 eager */
};
struct emu_event { emu_stream *s = nullptr; unsigned long long seq = 0; };
static emu_stream &legacy = *new emu_stream;
static std::vector<emu_stream *> &streams = *new std::vector<emu_stream *>{&legacy};
static int async_on = -1; /* -1: not read yet */
static unsigned long long rng_state;

static bool async_mode()
{
    if (async_on < 0) {
        const char *e = getenv("EMU_ASYNC");
        async_on = e && *e && strcmp(e, "0") != 0;
        rng_state = async_on ? strtoull(e, NULL, 10) * 0x9E3779B97F4A7C15ull + 1 : 0;
    }
    return async_on;
}
static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((rng_state >> 33) % n);
}
static emu_stream *S(cudaStream_t s) { return s ? s : &legacy; }

static void drain(emu_stream *st, unsigned long long upto);
/* Runs st's first item (its wait first satisfied when `force`); false if it must wait. */
static bool run_front(emu_stream *st, bool force)
{
    emu_stream::item it = st->q.front();
    if (!it.work && it.on->done < it.seq) {
        if (!force)
            return false;
        drain(it.on, it.seq);
    }
    st->q.pop_front();
    if (it.work)
        it.work();
    st->done++;
    return true;
}
static void drain(emu_stream *st, unsigned long long upto)
{
    while (st->done < upto && !st->q.empty())
        run_front(st, true);
}
static void drain_all()
{
    for (emu_stream *st : streams)
        drain(st, st->enqueued);
}
/* Some queued work runs now, as each stream's speed (drawn when it was created) says: a
 * lazy stream's work waits for the host to wait for it, an eager one's runs as soon as it
 * may; so seeds where the copy stream races ahead of the compute stream (or lags behind it)
 * both occur. */
static void progress()
{
    for (int round = 0; round < 4; round++)
        for (emu_stream *st : streams)
            while (!st->q.empty() && (st->speed == 2 || (st->speed == 1 && rnd(2))))
                if (!run_front(st, false))
                    break;
}
static void enqueue(cudaStream_t s, emu_stream::item it)
{
    emu_stream *st = S(s);
    st->q.push_back(std::move(it));
    st->enqueued++;
    progress();
}
/* Pinned host memory (cudaMallocHost, cudaHostRegister): async copies read or write it later. */
static std::map<const char *, size_t> &pinned_ranges = *new std::map<const char *, size_t>;
static bool is_pinned(const void *p)
{
    auto it = pinned_ranges.upper_bound((const char *)p);
    if (it == pinned_ranges.begin())
        return false;
    --it;
    return (const char *)p < it->first + it->second;
}

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
extern "C" long emu_lt_calls, emu_lt_heuristics;
static struct emu_report {
    ~emu_report()
    {
        if (getenv("EMU_QUIET"))
            return;
        fprintf(stderr,
                "emulator: %ld graph launches replaying %ld captured operations; %ld cuBLASLt matmuls, %ld "
                "heuristic queries\n",
                emu_graph_launches, emu_captured_ops, emu_lt_calls, emu_lt_heuristics);
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

void emu_run_or_record(cudaStream_t s, std::function<void()> work)
{
    if (emu_capture)
        emu_capture->push_back(std::move(work));
    else if (async_mode())
        enqueue(s, {std::move(work), nullptr, 0});
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
    if (async_mode()) /* cudaFree waits for the device */
        drain_all();
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
    if (*p) {
        std::lock_guard<std::mutex> g(mem_m);
        pinned_ranges[(const char *)*p] = n;
    }
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFreeHost(void *p)
{
    if (async_mode()) /* it waits for the device, like cudaFree */
        drain_all();
    std::lock_guard<std::mutex> g(mem_m);
    pinned_ranges.erase((const char *)p);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaHostRegister(void *p, size_t n, unsigned)
{
    std::lock_guard<std::mutex> g(mem_m);
    if (!registered.insert(p).second)
        return emu_last_error = cudaErrorHostMemoryAlreadyRegistered;
    pinned_ranges[(const char *)p] = n;
    return cudaSuccess;
}
cudaError_t cudaHostUnregister(void *p)
{
    if (async_mode())
        drain_all();
    std::lock_guard<std::mutex> g(mem_m);
    if (!registered.erase(p))
        return emu_last_error = cudaErrorHostMemoryNotRegistered;
    pinned_ranges.erase((const char *)p);
    return cudaSuccess;
}
/* The legacy stream: waits for the blocking streams, then runs at once (host-synchronous). */
static void legacy_sync()
{
    if (!async_mode())
        return;
    for (emu_stream *st : streams)
        if (st->blocking)
            drain(st, st->enqueued);
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind)
{
    if (refused_in_capture())
        return cudaErrorStreamCaptureUnsupported;
    legacy_sync();
    if (n)
        memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, enum cudaMemcpyKind k, cudaStream_t st)
{
    if (async_mode() && !emu_capture && n) {
        if (k == cudaMemcpyHostToDevice && !is_pinned(s)) { /* pageable: the bytes are taken now */
            std::shared_ptr<std::vector<char>> copy = std::make_shared<std::vector<char>>((const char *)s, (const char *)s + n);
            emu_run_or_record(st, [=] { memmove(d, copy->data(), n); });
            return cudaSuccess;
        }
        if (k == cudaMemcpyDeviceToHost && !is_pinned(d)) { /* pageable: returns when done */
            drain(S(st), S(st)->enqueued);
            memmove(d, s, n);
            return cudaSuccess;
        }
    }
    emu_run_or_record(st, [=] { if (n) memmove(d, s, n); });
    return cudaSuccess;
}
cudaError_t cudaMemset(void *d, int v, size_t n)
{
    if (refused_in_capture())
        return cudaErrorStreamCaptureUnsupported;
    legacy_sync();
    memset(d, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st)
{
    emu_run_or_record(st, [=] { memset(d, v, n); });
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned f)
{
    emu_stream *st = new emu_stream;
    st->blocking = !(f & cudaStreamNonBlocking);
    st->speed = async_mode() ? (int)rnd(3) : 1;
    streams.push_back(st);
    *s = st;
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    if (!s)
        return cudaErrorInvalidValue;
    drain(s, s->enqueued); /* its work still completes */
    for (size_t i = 0; i < streams.size(); i++)
        if (streams[i] == s)
            streams.erase(streams.begin() + (long)i);
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    if (refused_in_capture())
        return cudaErrorStreamCaptureUnsupported;
    drain(S(s), S(s)->enqueued);
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned)
{
    if (!e)
        return cudaErrorInvalidValue;
    if (async_mode() && !emu_capture && e->s) /* an event never recorded: nothing to wait for */
        enqueue(s, {std::function<void()>(), e->s, e->seq});
    return cudaSuccess;
}
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
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s)
{
    if (!e || emu_capture)
        return cudaErrorInvalidValue;
    std::vector<std::function<void()>> ops = e->ops; /* the graph may be destroyed before it runs */
    emu_run_or_record(s, [ops] {
        for (auto &op : ops)
            op();
    });
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
cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = new emu_event; return cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    if (!e)
        return cudaErrorInvalidValue;
    if (!emu_capture) { /* done once everything s has been given so far is done */
        e->s = S(s);
        e->seq = S(s)->enqueued;
    }
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    if (refused_in_capture())
        return cudaErrorStreamCaptureUnsupported;
    if (e && e->s)
        drain(e->s, e->seq);
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t, cudaEvent_t) { *ms = 0; return cudaSuccess; }
}
