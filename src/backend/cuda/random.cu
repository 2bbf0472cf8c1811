/* random.cu — the CUDA kernel of dropout, f32. The mask is the CPU's, bit for bit: element i
 * is kept iff kn__u32_to_unit(philox_word(seed, stream, i)) >= p with stream = (key << 32) +
 * step (src/ops/random.c), drawn through the same host-device src/core/philox.h; one thread
 * per Philox block of four elements, as the CPU kernel walks them. Kept values are scaled by
 * (float)(1/(1−p)); in an inference plan dropout is a copy.
 * Not here: storing masks (the gradient redraws the same mask from the same key). */
#include "cuda_kern_util.cuh"

#include "core/philox.h"

/* The stream is (key << 32) + step, with the step read on the device from *step when the plan
 * gives its counter (so a captured CUDA graph draws a new mask every replay), else step0. */
__global__ void dropout_f32_kernel(int64_t n, const float *__restrict__ x, float *__restrict__ y, uint64_t seed,
                                   uint64_t key, const unsigned long long *step, uint64_t step0, double p, float scale)
{
    const uint64_t stream = (key << 32) + (step ? (uint64_t)*step : step0);
    KN_CU_GRID_LOOP(blk, (n + 3) / 4)
    {
        uint32_t w[4];
        kn__philox4x32(seed, stream, (uint64_t)blk, w);
        int64_t first = blk * 4;
#pragma unroll
        for (int j = 0; j < 4; j++)
            if (first + j < n)
                y[first + j] = (double)kn__u32_to_unit(w[j]) >= p ? x[first + j] * scale : 0.0f;
    }
}

static kn_status dropout_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t m = kn__numel(n);
    if (m == 0)
        return KN_OK;
    if (!a->training) {
        if (a->dst == a->src[0])
            return KN_OK;
        return kn__cu_check(a,
                            cudaMemcpyAsync(a->dst, a->src[0], (size_t)m * sizeof(float), cudaMemcpyDeviceToDevice,
                                            ctx->stream),
                            "cudaMemcpyAsync (dropout in inference)");
    }
    const double p = n->af[0];
    /* the CPU compares the f32 unit number with the double p (in double): so does the kernel,
     * since (float)p could round across a unit number and flip a mask bit */
    dropout_f32_kernel<<<kn__cu_blocks(ctx, (m + 3) / 4, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        m, (const float *)a->src[0], (float *)a->dst, a->seed, (uint64_t)n->ai[0], ctx->step, a->step, p,
        (float)(1.0 / (1.0 - p)));
    return KN_CU_LAUNCHED(a, "dropout_f32_kernel");
}

extern "C" void kn__cuda_register_random(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.supports = kn__cu_f32_only;
    k.fn = dropout_f32;
    t[KN_OP_DROPOUT] = k;
}
