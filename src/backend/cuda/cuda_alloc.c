/* cuda_alloc.c — kiln's caching device allocator. One cache per device for the whole process
 * (plans come and go: the trainer's, the evaluator's, a benchmark's): a freed block stays
 * cached and serves a later request of a similar size, so cudaMalloc runs only on a miss and
 * cudaFree only when the cache is released or a cudaMalloc fails for lack of memory (then
 * every idle block is returned and the request retried once). Sizes are rounded up to a
 * class (512 B below 1 MiB, 2 MiB above); a request takes the smallest idle block of at
 * least its class and at most twice it. One mutex for all devices: allocation happens when
 * plans are compiled, never per step. Not here: sub-allocation inside a block (a plan asks
 * for its whole arena at once) and stream-ordered reuse (blocks are freed after a plan's
 * stream is idle). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../../core/alloc.h"
#include "../../runtime/plan_device.h"
#include "cuda_internal.h"

#define MAX_DEVICES 64

typedef struct block {
    void *ptr;
    size_t size;
    bool used;
    struct block *next;
} block;

typedef struct cache {
    block *blocks;
    kn_cuda_cache_stats st;
} cache;

static cache caches[MAX_DEVICES];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static size_t size_class(size_t bytes)
{
    const size_t small = 512, big = (size_t)2 << 20;
    if (bytes <= ((size_t)1 << 20))
        return (bytes + small - 1) / small * small;
    if (bytes > SIZE_MAX - big)
        return SIZE_MAX;
    return (bytes + big - 1) / big * big;
}

static void human(size_t b, char *buf, size_t size)
{
    if (b >= ((size_t)1 << 30))
        snprintf(buf, size, "%.2f GiB", (double)b / (double)((size_t)1 << 30));
    else if (b >= ((size_t)1 << 20))
        snprintf(buf, size, "%.1f MiB", (double)b / (double)((size_t)1 << 20));
    else
        snprintf(buf, size, "%zu bytes", b);
}

/* Returns every idle block of c to the driver; mu held. */
static void release_idle(cache *c)
{
    for (block **pp = &c->blocks; *pp;) {
        block *b = *pp;
        if (b->used) {
            pp = &b->next;
            continue;
        }
        (void)cudaFree(b->ptr); /* an idle block: nothing can be using it */
        c->st.held -= b->size;
        c->st.frees++;
        *pp = b->next;
        kn__free(b);
    }
}

kn_status kn__cuda_malloc(int device, size_t bytes, void **out, char *msg, size_t size)
{
    *out = NULL;
    if (bytes == 0)
        return KN_OK;
    if (device < 0 || device >= MAX_DEVICES) {
        snprintf(msg, size, "cuda:%d: kiln's allocator handles devices 0..%d", device, MAX_DEVICES - 1);
        return KN_ERR_ARG;
    }
    size_t want = size_class(bytes);
    pthread_mutex_lock(&mu);
    cache *c = &caches[device];
    block *best = NULL;
    for (block *b = c->blocks; b; b = b->next)
        if (!b->used && b->size >= want && b->size / 2 <= want && (!best || b->size < best->size))
            best = b;
    if (best) {
        best->used = true;
        c->st.in_use += best->size;
        c->st.hits++;
        *out = best->ptr;
        pthread_mutex_unlock(&mu);
        return KN_OK;
    }
    block *nb = kn__calloc(1, sizeof *nb);
    if (!nb) {
        pthread_mutex_unlock(&mu);
        snprintf(msg, size, "out of host memory for the device allocator's bookkeeping");
        return KN_ERR_OOM;
    }
    void *ptr = NULL;
    cudaError_t err = want == SIZE_MAX ? cudaErrorMemoryAllocation : cudaMalloc(&ptr, want);
    if (err == cudaErrorMemoryAllocation && want != SIZE_MAX) {
        (void)cudaGetLastError(); /* clear it: this failure is handled here */
        release_idle(c);
        err = cudaMalloc(&ptr, want);
    }
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        kn__free(nb);
        size_t free_b = 0, total_b = 0;
        cudaError_t qerr = cudaMemGetInfo(&free_b, &total_b);
        (void)cudaGetLastError();
        char req[32], fr[32], tot[32], held[32], used[32];
        human(bytes, req, sizeof req);
        human(free_b, fr, sizeof fr);
        human(total_b, tot, sizeof tot);
        human(c->st.held, held, sizeof held);
        human(c->st.in_use, used, sizeof used);
        kn_status st;
        if (err == cudaErrorMemoryAllocation) {
            if (qerr == cudaSuccess)
                snprintf(msg, size,
                         "out of memory on cuda:%d: requested %s, free %s of %s, kiln's cache holds %s (%s in "
                         "use): use a smaller batch or model, or free other GPU programs",
                         device, req, fr, tot, held, used);
            else
                snprintf(msg, size, "out of memory on cuda:%d: requested %s, kiln's cache holds %s (%s in use)",
                         device, req, held, used);
            st = KN_ERR_OOM;
        } else {
            char why[256];
            st = kn__cuda_status(err, "cudaMalloc", why, sizeof why);
            snprintf(msg, size, "cuda:%d: allocating %s: %s", device, req, why);
        }
        pthread_mutex_unlock(&mu);
        return st;
    }
    nb->ptr = ptr;
    nb->size = want;
    nb->used = true;
    nb->next = c->blocks;
    c->blocks = nb;
    c->st.held += want;
    c->st.in_use += want;
    c->st.mallocs++;
    *out = ptr;
    pthread_mutex_unlock(&mu);
    return KN_OK;
}

void kn__cuda_free(int device, void *ptr)
{
    if (!ptr || device < 0 || device >= MAX_DEVICES)
        return;
    pthread_mutex_lock(&mu);
    cache *c = &caches[device];
    for (block *b = c->blocks; b; b = b->next)
        if (b->ptr == ptr && b->used) {
            b->used = false;
            c->st.in_use -= b->size;
            break;
        }
    pthread_mutex_unlock(&mu);
}

/* For the public calls: the device exists and is current, else why not in msg. */
static kn_status use_device(int device, char *msg, size_t size)
{
    kn_status st = kn__cuda_check_device(device, msg, size);
    return st ? st : kn__cuda_status(cudaSetDevice(device), "cudaSetDevice", msg, size);
}

kn_status kn_cuda_malloc(int device, size_t bytes, void **ptr)
{
    char msg[512];
    if (!ptr) {
        kn__cuda_set_last_error("cuda_malloc: NULL ptr");
        return KN_ERR_ARG;
    }
    *ptr = NULL;
    kn_status st = use_device(device, msg, sizeof msg);
    if (!st)
        st = kn__cuda_malloc(device, bytes, ptr, msg, sizeof msg);
    kn__cuda_set_last_error(st ? msg : "");
    return st;
}

void kn_cuda_free(int device, void *ptr) { kn__cuda_free(device, ptr); }

kn_status kn_cuda_cache_get_stats(int device, kn_cuda_cache_stats *out)
{
    if (!out || device < 0 || device >= MAX_DEVICES)
        return KN_ERR_ARG;
    pthread_mutex_lock(&mu);
    *out = caches[device].st;
    pthread_mutex_unlock(&mu);
    return KN_OK;
}

kn_status kn_cuda_cache_release(int device)
{
    if (device < 0 || device >= MAX_DEVICES)
        return KN_ERR_ARG;
    int prev = 0;
    if (cudaGetDevice(&prev) != cudaSuccess || cudaSetDevice(device) != cudaSuccess) {
        (void)cudaGetLastError();
        return KN_ERR_DEVICE;
    }
    pthread_mutex_lock(&mu);
    release_idle(&caches[device]);
    pthread_mutex_unlock(&mu);
    (void)cudaSetDevice(prev);
    return KN_OK;
}

kn_status kn_cuda_mem_info(int device, size_t *free_bytes, size_t *total_bytes, size_t *cached_idle)
{
    char msg[512];
    if (!free_bytes || !total_bytes || !cached_idle) {
        kn__cuda_set_last_error("cuda_mem_info: NULL output");
        return KN_ERR_ARG;
    }
    *free_bytes = *total_bytes = *cached_idle = 0;
    kn_status st = use_device(device, msg, sizeof msg);
    if (!st)
        st = kn__cuda_status(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo", msg, sizeof msg);
    if (!st && device < MAX_DEVICES) {
        pthread_mutex_lock(&mu);
        *cached_idle = caches[device].st.held - caches[device].st.in_use;
        pthread_mutex_unlock(&mu);
    }
    kn__cuda_set_last_error(st ? msg : "");
    return st;
}

bool kn_cuda_built(void) { return true; }
