/* conv.cu — CUDA kernels of conv2d (NCHW, stride, padding, dilation, groups, optional bias) and
 * its backward ops, f32, written as direct convolutions: simple and obviously the reference's
 * loops, FP32 exact whatever ctx->math says, deterministic (no atomics):
 *   conv2d           one thread per output element, taps in the reference's (c, kh, kw) order;
 *   conv2d_bwd_data  one thread per input element gathers every (o, kh, kw) tap that reads it;
 *   conv2d_bwd_weight one block per weight element, a fixed-order tree sum over N·OH·OW.
 * This is the correctness baseline, not the fast path: cuDNN (or an implicit-GEMM kernel on
 * the tensor cores) should replace it where it wins — kiln_cuda does not link cuDNN yet
 * (CMakeLists.txt would need CUDA::cudnn and KN_HAVE_CUDNN). */
#include "cuda_kern_util.cuh"

extern "C" {
#include "ops/conv_internal.h"
}

__global__ void conv2d_f32_kernel(kn__conv_geom q, const float *__restrict__ x, const float *__restrict__ w,
                                  const float *__restrict__ b, float *__restrict__ y)
{
    KN_CU_GRID_LOOP(i, q.N * q.O * q.OH * q.OW)
    {
        int64_t ow = i % q.OW, oh = (i / q.OW) % q.OH, o = (i / (q.OW * q.OH)) % q.O, n = i / (q.OW * q.OH * q.O);
        int64_t c0 = (o / q.Og) * q.Cg;
        float s = b ? b[o] : 0.0f;
        for (int64_t c = 0; c < q.Cg; c++)
            for (int64_t kh = 0; kh < q.KH; kh++) {
                int64_t ih = oh * q.sh - q.ph + kh * q.dh;
                if (ih < 0 || ih >= q.H)
                    continue;
                for (int64_t kw = 0; kw < q.KW; kw++) {
                    int64_t iw = ow * q.sw - q.pw + kw * q.dw;
                    if (iw < 0 || iw >= q.W)
                        continue;
                    s += x[((n * q.C + c0 + c) * q.H + ih) * q.W + iw] * w[((o * q.Cg + c) * q.KH + kh) * q.KW + kw];
                }
            }
        y[i] = s;
    }
}

/* The output position along one axis whose tap k reads input position i, or -1. */
__device__ static inline int64_t tap_source(int64_t i, int64_t k, int64_t s, int64_t p, int64_t d, int64_t out)
{
    int64_t t = i + p - k * d; /* = o·s */
    if (t < 0 || t % s)
        return -1;
    t /= s;
    return t < out ? t : -1;
}

__global__ void conv2d_bwd_data_f32_kernel(kn__conv_geom q, const float *__restrict__ dy,
                                           const float *__restrict__ w, float *__restrict__ dx)
{
    KN_CU_GRID_LOOP(i, q.N * q.C * q.H * q.W)
    {
        int64_t iw = i % q.W, ih = (i / q.W) % q.H, ci = (i / (q.W * q.H)) % q.C, n = i / (q.W * q.H * q.C);
        int64_t gr = ci / q.Cg, c = ci % q.Cg;
        float s = 0;
        for (int64_t o = gr * q.Og; o < (gr + 1) * q.Og; o++)
            for (int64_t kh = 0; kh < q.KH; kh++) {
                int64_t oh = tap_source(ih, kh, q.sh, q.ph, q.dh, q.OH);
                if (oh < 0)
                    continue;
                for (int64_t kw = 0; kw < q.KW; kw++) {
                    int64_t ow = tap_source(iw, kw, q.sw, q.pw, q.dw, q.OW);
                    if (ow < 0)
                        continue;
                    s += dy[((n * q.O + o) * q.OH + oh) * q.OW + ow] * w[((o * q.Cg + c) * q.KH + kh) * q.KW + kw];
                }
            }
        dx[i] = s;
    }
}

__global__ void conv2d_bwd_weight_f32_kernel(kn__conv_geom q, const float *__restrict__ x,
                                             const float *__restrict__ dy, float *__restrict__ dw)
{
    __shared__ float scratch[32];
    const int64_t total = q.O * q.Cg * q.KH * q.KW, per = q.N * q.OH * q.OW;
    for (int64_t e = blockIdx.x; e < total; e += gridDim.x) {
        int64_t kw = e % q.KW, kh = (e / q.KW) % q.KH, c = (e / (q.KW * q.KH)) % q.Cg, o = e / (q.KW * q.KH * q.Cg);
        int64_t c0 = (o / q.Og) * q.Cg;
        float s = 0;
        for (int64_t t = threadIdx.x; t < per; t += blockDim.x) {
            int64_t ow = t % q.OW, oh = (t / q.OW) % q.OH, n = t / (q.OW * q.OH);
            int64_t ih = oh * q.sh - q.ph + kh * q.dh, iw = ow * q.sw - q.pw + kw * q.dw;
            if (ih >= 0 && ih < q.H && iw >= 0 && iw < q.W)
                s += dy[((n * q.O + o) * q.OH + oh) * q.OW + ow] * x[((n * q.C + c0 + c) * q.H + ih) * q.W + iw];
        }
        s = kn__cu_block_sum(s, scratch);
        if (threadIdx.x == 0)
            dw[e] = s;
    }
}

static kn_status conv_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    kn__conv_geom q = kn__conv_geom_of(n);
    int64_t total = kn__numel(n);
    if (total == 0)
        return KN_OK;
    switch (n->op) {
    case KN_OP_CONV2D:
        conv2d_f32_kernel<<<kn__cu_blocks(ctx, total, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
            q, (const float *)a->src[0], (const float *)a->src[1], n->nsrc == 3 ? (const float *)a->src[2] : NULL,
            (float *)a->dst);
        return KN_CU_LAUNCHED(a, "conv2d_f32_kernel");
    case KN_OP_CONV2D_BWD_DATA:
        conv2d_bwd_data_f32_kernel<<<kn__cu_blocks(ctx, total, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
            q, (const float *)a->src[0], (const float *)a->src[1], (float *)a->dst);
        return KN_CU_LAUNCHED(a, "conv2d_bwd_data_f32_kernel");
    default:
        conv2d_bwd_weight_f32_kernel<<<kn__cu_blocks(ctx, total, 1), KN_CU_THREADS, 0, ctx->stream>>>(
            q, (const float *)a->src[0], (const float *)a->src[1], (float *)a->dst);
        return KN_CU_LAUNCHED(a, "conv2d_bwd_weight_f32_kernel");
    }
}

extern "C" void kn__cuda_register_conv(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.supports = kn__cu_f32_only;
    k.fn = conv_f32;
    t[KN_OP_CONV2D] = t[KN_OP_CONV2D_BWD_DATA] = t[KN_OP_CONV2D_BWD_WEIGHT] = k;
}
