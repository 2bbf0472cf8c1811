/* quant.cu — CUDA kernel of fake_quant (quantisation-aware training), f32: per channel along
 * the axis (or per tensor) the range [lo, hi] of the values, then every value quantised and
 * dequantised with the channel's scale and zero point — kn__fq_params / kn__fq_value of
 * src/ops/quant_internal.h, the very arithmetic of the reference and the CPU kernel, so the
 * GPU rounds alike. One block per channel: the range in a fixed tree (min/max do not depend on
 * order; NaN is skipped as the CPU's comparisons skip it), then the block writes the channel.
 * Its gradient is the straight-through dy (no kernel).
 * Not here: qlinear and qconv2d (int8 inference; they run on the CPU with copies), several
 * blocks per channel (a per-tensor fake_quant of a large activation is one block's work). */
#include "cuda_kern_util.cuh"

extern "C" {
#include "ops/quant_internal.h"
}

__global__ void fake_quant_f32_kernel(int64_t pre, int64_t C, int64_t post, bool asym, const float *__restrict__ x,
                                      float *__restrict__ y)
{
    __shared__ float s_lo[KN_CU_THREADS], s_hi[KN_CU_THREADS];
    const int64_t count = pre * post;
    for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
        float lo = INFINITY, hi = -INFINITY;
        for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
            float v = x[((j / post) * C + c) * post + j % post];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        s_lo[threadIdx.x] = lo;
        s_hi[threadIdx.x] = hi;
        __syncthreads();
        for (int s = KN_CU_THREADS / 2; s > 0; s >>= 1) {
            if ((int)threadIdx.x < s) {
                float l = s_lo[threadIdx.x + s], h = s_hi[threadIdx.x + s];
                s_lo[threadIdx.x] = l < s_lo[threadIdx.x] ? l : s_lo[threadIdx.x];
                s_hi[threadIdx.x] = h > s_hi[threadIdx.x] ? h : s_hi[threadIdx.x];
            }
            __syncthreads();
        }
        float scale;
        int zp;
        kn__fq_params(asym, s_lo[0], s_hi[0], &scale, &zp);
        const float inv = kn__q_inv(scale);
        for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
            int64_t k = ((j / post) * C + c) * post + j % post;
            y[k] = kn__fq_value(x[k], asym, scale, inv, zp);
        }
        __syncthreads(); /* s_lo/s_hi are reused by the block's next channel */
    }
}

static kn_status fake_quant_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t pre, C, post;
    kn__fq_dims(n, &pre, &C, &post);
    if (kn__numel(n) == 0)
        return KN_OK;
    fake_quant_f32_kernel<<<kn__cu_blocks(ctx, C, 1), KN_CU_THREADS, 0, ctx->stream>>>(
        pre, C, post, n->ai[1] != 0, (const float *)a->src[0], (float *)a->dst);
    return KN_CU_LAUNCHED(a, "fake_quant_f32_kernel");
}

extern "C" void kn__cuda_register_quant(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.fn = fake_quant_f32;
    k.supports = kn__cu_f32_only;
    t[KN_OP_FAKE_QUANT] = k;
}
