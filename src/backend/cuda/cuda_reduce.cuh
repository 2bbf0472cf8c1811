/* cuda_reduce.cuh — the deterministic grouped reduction of reduce.cu, shared with the fused
 * chains that end in a sum or mean (chain.cu), so that a fused chain adds in exactly the order
 * the sum kernel does. G threads (32 or KN_CU_THREADS) reduce one output: lane l combines
 * items l, l + G, l + 2G, ... in turn, then the G partial values meet in a fixed tree in
 * shared memory. blockDim.x = KN_CU_THREADS, so a block holds KN_CU_THREADS / G groups; groups
 * walk the outputs grid-stride. Sums use __fadd_rn so that an inlined load ending in a
 * multiply (a chain's g·g) is not contracted into an FMA. Included only by .cu files. */
#ifndef KN_CUDA_REDUCE_CUH
#define KN_CUDA_REDUCE_CUH

#include "cuda_kern_util.cuh"

enum { KN_CU_R_SUM = 0, KN_CU_R_MEAN = 1, KN_CU_R_MAX = 2, KN_CU_R_MIN = 3 };

template <int R> __device__ __forceinline__ float kn__cu_r_init()
{
    return R == KN_CU_R_MAX ? -INFINITY : R == KN_CU_R_MIN ? INFINITY : 0.0f;
}

template <int R> __device__ __forceinline__ float kn__cu_r_combine(float acc, float v)
{
    if (R == KN_CU_R_MAX)
        return v > acc ? v : acc;
    if (R == KN_CU_R_MIN)
        return v < acc ? v : acc;
    return __fadd_rn(acc, v);
}

/* y[o] for o < outs, each over `count` items: base_of(o) once per output, then load(o, base, j)
 * for its items j. A mean divides by `divisor` (default: count). Every thread of the block must
 * call it (it has barriers). */
template <int R, int G, class BaseOf, class Load>
__device__ void kn__cu_group_reduce(int64_t outs, int64_t count, float *__restrict__ y, BaseOf base_of, Load load,
                                    int64_t divisor = -1)
{
    if (divisor < 0)
        divisor = count;
    __shared__ float part[KN_CU_THREADS];
    const int groups_per_block = KN_CU_THREADS / G;
    const int lane = threadIdx.x % G, grp = threadIdx.x / G;
    /* every thread runs the same number of iterations, so the barriers below are uniform */
    int64_t rounds = (outs + (int64_t)gridDim.x * groups_per_block - 1) / ((int64_t)gridDim.x * groups_per_block);
    for (int64_t it = 0; it < rounds; it++) {
        int64_t o = (it * gridDim.x + blockIdx.x) * groups_per_block + grp;
        float acc = kn__cu_r_init<R>();
        if (o < outs) {
            int64_t base = base_of(o);
            for (int64_t j = lane; j < count; j += G)
                acc = kn__cu_r_combine<R>(acc, load(o, base, j));
        }
        part[threadIdx.x] = acc;
        __syncthreads();
        for (int s = G / 2; s > 0; s >>= 1) {
            if (lane < s)
                part[threadIdx.x] = kn__cu_r_combine<R>(part[threadIdx.x], part[threadIdx.x + s]);
            __syncthreads();
        }
        if (lane == 0 && o < outs) {
            float v = part[threadIdx.x];
            if (R == KN_CU_R_MEAN)
                v = divisor ? v / (float)divisor : NAN;
            y[o] = v;
        }
        __syncthreads();
    }
}

/* Threads per output for a reduction over `count` items: a warp when the extent is small. */
static inline int kn__cu_reduce_group(int64_t count) { return count <= 64 ? 32 : KN_CU_THREADS; }

/* ---- split reductions ------------------------------------------------------------------------
 * A few outputs over many items each (a full sum of a 400k-element gradient, the trainer's
 * Σ g²) would keep one block busy and the rest of the GPU idle. Then each output's items are cut
 * into segments of KN_CU_SEGMENT (a fixed size, so the order depends on the shape only, not on
 * the GPU), one block group reduces each segment into a partial in the node's workspace, and a
 * second launch reduces each output's partials in segment order: still deterministic. */
#define KN_CU_SEGMENT 16384

/* Segments per output (1: one pass). */
static inline int64_t kn__cu_segments(int64_t outs, int64_t count)
{
    return outs <= 64 && count >= 4 * KN_CU_SEGMENT ? (count + KN_CU_SEGMENT - 1) / KN_CU_SEGMENT : 1;
}

/* Workspace of a reduction of `outs` outputs over `count` items: the partials when split. */
static inline size_t kn__cu_split_workspace(int64_t outs, int64_t count)
{
    int64_t S = kn__cu_segments(outs, count);
    return S > 1 ? (size_t)(outs * S) * sizeof(float) : 0;
}

/* Pass 1: part[o·S + s] = R over segment s of output o's items (a mean sums here). Items past
 * `count` in the last segment load as R's identity. */
template <int R, class BaseOf, class Load>
__device__ void kn__cu_segment_reduce(int64_t outs, int64_t count, int64_t S, float *__restrict__ part, BaseOf base_of,
                                      Load load)
{
    constexpr int R1 = R == KN_CU_R_MEAN ? KN_CU_R_SUM : R;
    kn__cu_group_reduce<R1, KN_CU_THREADS>(
        outs * S, KN_CU_SEGMENT, part, [&](int64_t os) { return base_of(os / S); },
        [&](int64_t os, int64_t base, int64_t j) {
            int64_t i = (os % S) * KN_CU_SEGMENT + j;
            return i < count ? load(os / S, base, i) : kn__cu_r_init<R1>();
        });
}

/* Pass 2: y[o] = R over part[o·S .. o·S + S), a mean divided by the items' count. */
template <int R, int G>
__global__ void kn__cu_partials_kernel(int64_t outs, int64_t S, int64_t count, const float *__restrict__ part,
                                       float *__restrict__ y)
{
    kn__cu_group_reduce<R, G>(
        outs, S, y, [&](int64_t o) { return o * S; }, [&](int64_t, int64_t base, int64_t j) { return part[base + j]; },
        count);
}

/* Launches pass 2 on ctx's stream (pass 1 must be enqueued before). */
template <int R>
static inline void kn__cu_partials_launch(const kn__cuda_ctx *ctx, int64_t outs, int64_t S, int64_t count,
                                          const float *part, float *y)
{
    if (kn__cu_reduce_group(S) == 32)
        kn__cu_partials_kernel<R, 32><<<kn__cu_blocks(ctx, outs, KN_CU_THREADS / 32), KN_CU_THREADS, 0, ctx->stream>>>(
            outs, S, count, part, y);
    else
        kn__cu_partials_kernel<R, KN_CU_THREADS><<<kn__cu_blocks(ctx, outs, 1), KN_CU_THREADS, 0, ctx->stream>>>(
            outs, S, count, part, y);
}

#endif
