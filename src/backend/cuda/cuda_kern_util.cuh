/* cuda_kern_util.cuh — private helpers of the op-table CUDA kernels (elementwise.cu, reduce.cu,
 * softmax.cu, loss.cu, matmul.cu, random.cu, optim.cu, ...): the context lookup, the grid
 * size of grid-stride loops, turning every CUDA/cuBLASLt result into a kn_status with a
 * message in a->err, deterministic block reductions, dtype loads/stores on the device, and
 * the per-node data-error record (labels out of range, Adam's t < 1) that kernels cannot
 * return synchronously. Included only by .cu files of the CUDA backend. */
#ifndef KN_CUDA_KERN_UTIL_CUH
#define KN_CUDA_KERN_UTIL_CUH

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include <cublasLt.h>
#include <cuda_runtime.h>

/* The library's C headers first, with C linkage (cuda_kernels.h includes backend.h without
 * an extern "C" of its own). */
extern "C" {
#include "backend/backend.h"
#include "ops/broadcast.h"
#include "ops/op_table.h"
}

#include "cuda_kern_check.h"
#include "cuda_kernels.h"

#define KN_CU_THREADS 256 /* threads per block of the elementwise and reduction kernels */

/* The per-plan context; NULL when the plan did not give one (a programming error). */
static inline const kn__cuda_ctx *kn__cu_ctx(const kn__kargs *a)
{
    return (const kn__cuda_ctx *)a->device;
}

/* Writes "op (node #id): what" into a->err and returns code. */
static inline kn_status kn__cu_fail(const kn__kargs *a, kn_status code, const char *what)
{
    if (a->err && a->err_size)
        snprintf(a->err, a->err_size, "%s (CUDA, node %d): %s", kn__op_names[a->node->op], a->node->id,
                 what);
    return code;
}

/* KN_OK for cudaSuccess; otherwise a message naming the op, the call and the CUDA error. */
static inline kn_status kn__cu_check(const kn__kargs *a, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return KN_OK;
    char buf[384];
    snprintf(buf, sizeof buf, "%s failed: %s (%s)", what, cudaGetErrorName(e), cudaGetErrorString(e));
    return kn__cu_fail(a, e == cudaErrorMemoryAllocation ? KN_ERR_OOM : KN_ERR_DEVICE, buf);
}

/* After a <<<>>> launch: the launch error (bad configuration, no kernel image for the GPU). */
#define KN_CU_LAUNCHED(a, name) kn__cu_check((a), cudaGetLastError(), "launch of " name)

/* The context, or a KN_ERR_DEVICE return when the plan gave none. */
#define KN_CU_CTX(a, ctx)                                                                      \
    const kn__cuda_ctx *ctx = kn__cu_ctx(a);                                                   \
    if (!ctx)                                                                                  \
        return kn__cu_fail((a), KN_ERR_DEVICE, "no CUDA context in kn__kargs.device");

/* The f32 kernels' supports(): every float input and the output are f32 (integer inputs such
 * as labels and indices are fine). Set explicitly on every entry, so the table does not depend
 * on what the plan assumes for a NULL supports. */
static inline bool kn__cu_f32_only(const kn_node *n) { return kn__backend_all_f32(n); }

/* Blocks of KN_CU_THREADS for a grid-stride loop over n items: enough to fill the GPU a few
 * times over, never more than the items need, at least 1. */
static inline unsigned kn__cu_blocks(const kn__cuda_ctx *ctx, int64_t n, int threads)
{
    int64_t need = (n + threads - 1) / threads;
    int64_t cap = (int64_t)(ctx->sm_count > 0 ? ctx->sm_count : 132) * 16;
    if (need > cap)
        need = cap;
    return (unsigned)(need < 1 ? 1 : need);
}

/* First index and stride of a grid-stride loop, 64-bit. */
#define KN_CU_GRID_LOOP(i, n)                                                                  \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                  \
         i += (int64_t)gridDim.x * blockDim.x)

/* ---- dtype access on the device ------------------------------------------------------------ */

/* The same bit-exact conversions as src/core/dtype.c (round to nearest even, NaN kept quiet). */
__device__ static inline uint16_t kn__cu_f32_to_f16(float x)
{
    uint32_t u = __float_as_uint(x);
    uint32_t sign = (u >> 16) & 0x8000u, exp = (u >> 23) & 0xFFu, man = u & 0x7FFFFFu;
    if (exp == 0xFF)
        return (uint16_t)(sign | 0x7C00u | (man ? 0x200u : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7C00u);
    if (e <= 0) {
        if (e < -10)
            return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1)))
        half++;
    return (uint16_t)half;
}

__device__ static inline float kn__cu_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
    if (exp == 0) {
        if (man == 0)
            return __uint_as_float(sign);
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    if (exp == 31)
        return __uint_as_float(sign | 0x7F800000u | (man << 13));
    return __uint_as_float(sign | ((exp - 15 + 127) << 23) | (man << 13));
}

__device__ static inline uint16_t kn__cu_f32_to_bf16(float x)
{
    uint32_t u = __float_as_uint(x);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x7FFFFFu))
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

__device__ static inline float kn__cu_bf16_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

/* Element i of a buffer of dtype dt as double (src/core/dtype.c's load). */
__device__ static inline double kn__cu_load(const void *p, int dt, int64_t i)
{
    switch (dt) {
    case KN_F32: return ((const float *)p)[i];
    case KN_F64: return ((const double *)p)[i];
    case KN_F16: return kn__cu_f16_to_f32(((const uint16_t *)p)[i]);
    case KN_BF16: return kn__cu_bf16_to_f32(((const uint16_t *)p)[i]);
    case KN_I8: return ((const int8_t *)p)[i];
    case KN_I32: return ((const int32_t *)p)[i];
    case KN_I64: return (double)((const int64_t *)p)[i];
    case KN_U8: return ((const uint8_t *)p)[i];
    default: return 0;
    }
}

/* Integer element i (labels, indices), as kn__index_at. */
__device__ static inline int64_t kn__cu_index(const void *p, int dt, int64_t i)
{
    switch (dt) {
    case KN_I32: return ((const int32_t *)p)[i];
    case KN_I64: return ((const int64_t *)p)[i];
    case KN_I8: return ((const int8_t *)p)[i];
    case KN_U8: return ((const uint8_t *)p)[i];
    default: return -1;
    }
}

/* ---- deterministic reductions ------------------------------------------------------------- */

/* Sum over the warp, fixed order (a butterfly): every lane gets the same total. */
__device__ static inline float kn__cu_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ static inline float kn__cu_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}

/* Sum over the whole block (blockDim.x a multiple of 32, at most 1024), fixed order; every
 * thread gets the total. scratch: 32 floats of shared memory. Ends with a barrier so scratch
 * can be reused right away. */
__device__ static inline float kn__cu_block_sum(float v, float *scratch)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = kn__cu_warp_sum(v);
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    float t = lane < nw ? scratch[lane] : 0.0f;
    t = kn__cu_warp_sum(t);
    __syncthreads();
    return t;
}

/* Max over the block (NaN-free inputs; -inf identity); as kn__cu_block_sum. */
__device__ static inline float kn__cu_block_max(float v, float *scratch)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = kn__cu_warp_max(v);
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    float t = lane < nw ? scratch[lane] : -INFINITY;
    t = kn__cu_warp_max(t);
    __syncthreads();
    return t;
}

/* Same in double (the per-row partial sums of the losses are combined in double). */
__device__ static inline double kn__cu_block_sum_f64(double v, double *scratch)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    double t = lane < nw ? scratch[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1)
        t += __shfl_xor_sync(0xffffffffu, t, o);
    __syncthreads();
    return t;
}

/* ---- the per-plan algorithm cache (kn__cuda_algo_cache) ---------------------------------- */

/* FNV-1a over n 64-bit words: the geometry key of an algorithm choice. */
static inline uint64_t kn__cu_geometry(const int64_t *w, int n)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)w[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The cache slot of (node, kind, geometry): *hit says whether it holds a choice already; a
 * miss returns the free slot to fill (set node, kind, geometry after picking). NULL when the
 * plan has no cache or it is full: pick without caching. */
static inline kn__cuda_algo *kn__cu_algo_slot(const kn__cuda_ctx *ctx, const void *node, int kind, uint64_t geometry,
                                              bool *hit)
{
    *hit = false;
    if (!ctx->algos)
        return NULL;
    const int64_t key[3] = {(int64_t)(uintptr_t)node, kind, (int64_t)geometry};
    uint64_t h = kn__cu_geometry(key, 3);
    for (int probe = 0; probe < KN_CUDA_ALGO_SLOTS; probe++) {
        kn__cuda_algo *s = &ctx->algos->slot[(h + (uint64_t)probe) % KN_CUDA_ALGO_SLOTS];
        if (!s->node) {
            ctx->algos->picks++;
            return s;
        }
        if (s->node == node && s->kind == kind && s->geometry == geometry) {
            ctx->algos->reuses++;
            *hit = true;
            return s;
        }
    }
    return NULL;
}

/* ---- data errors --------------------------------------------------------------------------- */

/* Records that item `where` (a row, an element) is bad; the smallest index wins, so the record
 * does not depend on thread order. e may be NULL (no record wanted). */
__device__ static inline void kn__cu_derr_set(kn__cuda_derr *e, int code, int64_t where)
{
    if (!e)
        return;
    atomicMin((unsigned long long *)&e->where, (unsigned long long)where);
    e->code = code; /* every writer of one kernel stores the same code */
}

/* Resets a node's data-error record (the start of a->work) on the stream: all bits set. */
static inline kn_status kn__cu_derr_reset(const kn__kargs *a, const kn__cuda_ctx *ctx)
{
    if (!a->work)
        return kn__cu_fail(a, KN_ERR_DEVICE, "no workspace for the data-error record");
    return kn__cu_check(a, cudaMemsetAsync(a->work, 0xFF, sizeof(kn__cuda_derr), ctx->stream),
                        "cudaMemsetAsync (reset the data-error record)");
}

#endif
