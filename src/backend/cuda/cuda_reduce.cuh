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
 * for its items j. Every thread of the block must call it (it has barriers). */
template <int R, int G, class BaseOf, class Load>
__device__ void kn__cu_group_reduce(int64_t outs, int64_t count, float *__restrict__ y, BaseOf base_of, Load load)
{
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
                v = count ? v / (float)count : NAN;
            y[o] = v;
        }
        __syncthreads();
    }
}

/* Threads per output for a reduction over `count` items: a warp when the extent is small. */
static inline int kn__cu_reduce_group(int64_t count) { return count <= 64 ? 32 : KN_CU_THREADS; }

#endif
