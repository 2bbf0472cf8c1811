/* device_stub.c — stands in for the CUDA backend in a build without it (no nvcc, or
 * -DKILN_CUDA=OFF): every CUDA entry point (kiln/cuda.h and the plan seam plan_device.h)
 * exists and fails cleanly with KN_ERR_UNSUPPORTED and a message saying how to get CUDA, so
 * programs link and run the same against either build. Empty when KN_HAVE_CUDA is set. */
#ifndef KN_HAVE_CUDA
#include <stdio.h>
#include <string.h>

#include "kiln/cuda.h"
#include "plan_device.h"

#define NO_CUDA "kiln was built without CUDA: install the CUDA toolkit (nvcc) and rebuild, or use --device cpu"

static _Thread_local char last_error[256];

static kn_status no_cuda(void)
{
    snprintf(last_error, sizeof last_error, "%s", NO_CUDA);
    return KN_ERR_UNSUPPORTED;
}

bool kn_cuda_built(void) { return false; }

kn_status kn_cuda_device_count(int *count)
{
    if (count)
        *count = 0;
    return no_cuda();
}

kn_status kn_cuda_device_name(int device, char *buf, size_t size)
{
    (void)device;
    if (buf && size)
        buf[0] = 0;
    return no_cuda();
}

const char *kn_cuda_last_error(void) { return last_error; }

kn_status kn_cuda_backend_new(kn_cuda_backend **out, int device)
{
    (void)device;
    if (out)
        *out = NULL;
    return no_cuda();
}

void kn_cuda_backend_free(kn_cuda_backend *b) { (void)b; }
int kn_cuda_backend_device(const kn_cuda_backend *b) { (void)b; return -1; }
const char *kn_cuda_backend_error(const kn_cuda_backend *b) { (void)b; return NO_CUDA; }

kn_status kn_cuda_axpy_f32(kn_cuda_backend *b, int64_t n, float alpha, const float *x, float *y)
{
    (void)b, (void)n, (void)alpha, (void)x, (void)y;
    return no_cuda();
}

kn_status kn_cuda_malloc(int device, size_t bytes, void **ptr)
{
    (void)device, (void)bytes;
    if (ptr)
        *ptr = NULL;
    return no_cuda();
}

void kn_cuda_free(int device, void *ptr) { (void)device, (void)ptr; }

kn_status kn_cuda_cache_get_stats(int device, kn_cuda_cache_stats *out)
{
    (void)device;
    if (out)
        memset(out, 0, sizeof *out);
    return no_cuda();
}

kn_status kn_cuda_cache_release(int device)
{
    (void)device;
    return no_cuda();
}

kn_status kn_cuda_mem_info(int device, size_t *free_bytes, size_t *total_bytes, size_t *cached_idle)
{
    (void)device;
    if (free_bytes)
        *free_bytes = 0;
    if (total_bytes)
        *total_bytes = 0;
    if (cached_idle)
        *cached_idle = 0;
    return no_cuda();
}

/* ---- the plan seam ---- */
kn_status kn__cuda_check_device(int device, char *msg, size_t size)
{
    (void)device;
    if (msg && size)
        snprintf(msg, size, "%s", NO_CUDA);
    return KN_ERR_UNSUPPORTED;
}

bool kn__cuda_step_supported(const kn_node *n, size_t *workspace)
{
    (void)n;
    if (workspace)
        *workspace = 0;
    return false;
}

kn_status kn__cuda_plan_new(kn__cuda_plan **out, kn_plan *p, char *msg, size_t size)
{
    (void)p;
    *out = NULL;
    return kn__cuda_check_device(0, msg, size);
}

void kn__cuda_plan_free(kn__cuda_plan *d) { (void)d; }

kn_status kn__cuda_plan_run(kn__cuda_plan *d, char *msg, size_t size)
{
    (void)d;
    return kn__cuda_check_device(0, msg, size);
}

kn_status kn__cuda_plan_launch(kn__cuda_plan *d, char *msg, size_t size)
{
    (void)d;
    return kn__cuda_check_device(0, msg, size);
}

kn_status kn__cuda_plan_wait(kn__cuda_plan *d, char *msg, size_t size)
{
    (void)d;
    return kn__cuda_check_device(0, msg, size);
}

kn_status kn__cuda_plan_prefetch(kn__cuda_plan *d, int i, char *msg, size_t size)
{
    (void)d, (void)i;
    return kn__cuda_check_device(0, msg, size);
}

void kn__cuda_plan_cancel_prefetch(kn__cuda_plan *d, int i) { (void)d, (void)i; }

kn_status kn__cuda_plan_fetch(kn__cuda_plan *d, int i, char *msg, size_t size)
{
    (void)d, (void)i;
    return kn__cuda_check_device(0, msg, size);
}

int kn__cuda_plan_num_fallbacks(const kn__cuda_plan *d) { (void)d; return 0; }
int kn__cuda_plan_num_grouped(const kn__cuda_plan *d) { (void)d; return 0; }
bool kn__cuda_plan_uses_graph(const kn__cuda_plan *d) { (void)d; return false; }
#endif
