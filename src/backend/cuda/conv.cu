/* conv.cu — CUDA kernels of conv2d (NCHW, stride, padding, dilation, groups, optional bias) and
 * its backward ops, f32. Built with cuDNN (KN_HAVE_CUDNN) and given a handle (ctx->dnn), a node
 * runs through cuDNN's legacy convolution API: the first algorithm of cuDNN's ranking that fits
 * the shared workspace (and is deterministic when ctx->deterministic), FMA math unless
 * ctx->math allows tensor cores; no fitting algorithm → the direct kernels below. The choice is
 * made on the node's first call and kept in the plan's kn__cuda_algo_cache, so later runs and
 * the CUDA-graph capture reuse it without asking cuDNN again. The direct kernels are
 * simple and obviously the reference's loops, FP32 exact whatever ctx->math says,
 * deterministic (no atomics):
 *   conv2d           one thread per output element, taps in the reference's (c, kh, kw) order;
 *   conv2d_bwd_data  one thread per input element gathers every (o, kh, kw) tap that reads it;
 *   conv2d_bwd_weight one block per weight element, a fixed-order tree sum over N·OH·OW.
 * They are the correctness baseline, not the fast path. CMakeLists.txt defines KN_HAVE_CUDNN and
 * links libcudnn when it finds cuDNN (-DKILN_CUDNN=OFF: never); plan_cuda.c makes the handle.
 * Without a GPU, tests/gpu/emu/run.sh runs the cuDNN path against an emulated cuDNN. */
#include <string.h>

#include "cuda_kern_util.cuh"

extern "C" {
#include "ops/conv_internal.h"
}

#ifdef KN_HAVE_CUDNN
#include <cudnn.h>
#endif

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

#ifdef KN_HAVE_CUDNN
/* ---- cuDNN (when kiln_cuda is built with it and the plan made a handle: ctx->dnn) --------- */

static kn_status dnn_check(const kn__kargs *a, cudnnStatus_t st, const char *what)
{
    if (st == CUDNN_STATUS_SUCCESS)
        return KN_OK;
    char buf[384];
    snprintf(buf, sizeof buf, "%s failed: %s", what, cudnnGetErrorString(st));
    return kn__cu_fail(a, st == CUDNN_STATUS_ALLOC_FAILED ? KN_ERR_OOM : KN_ERR_DEVICE, buf);
}

struct dnn_descs {
    cudnnTensorDescriptor_t x, y, b;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t c;
};

static void dnn_destroy(dnn_descs *d)
{
    if (d->x)
        cudnnDestroyTensorDescriptor(d->x);
    if (d->y)
        cudnnDestroyTensorDescriptor(d->y);
    if (d->b)
        cudnnDestroyTensorDescriptor(d->b);
    if (d->w)
        cudnnDestroyFilterDescriptor(d->w);
    if (d->c)
        cudnnDestroyConvolutionDescriptor(d->c);
}

/* Every extent fits the int cuDNN's legacy API takes. */
static bool dnn_fits(const kn__conv_geom *q)
{
    const int64_t v[] = {q->N, q->C, q->H, q->W, q->O, q->KH, q->KW, q->OH, q->OW, q->sh, q->sw, q->ph, q->pw,
                         q->dh, q->dw, q->G, q->N * q->C * q->H * q->W, q->N * q->O * q->OH * q->OW};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (v[i] > INT32_MAX)
            return false;
    return true;
}

static kn_status dnn_setup(const kn__kargs *a, const kn__cuda_ctx *ctx, const kn__conv_geom *q, dnn_descs *d)
{
    memset(d, 0, sizeof *d);
    kn_status st = dnn_check(a, cudnnCreateTensorDescriptor(&d->x), "cudnnCreateTensorDescriptor");
    if (!st)
        st = dnn_check(a, cudnnCreateTensorDescriptor(&d->y), "cudnnCreateTensorDescriptor");
    if (!st)
        st = dnn_check(a, cudnnCreateTensorDescriptor(&d->b), "cudnnCreateTensorDescriptor");
    if (!st)
        st = dnn_check(a, cudnnCreateFilterDescriptor(&d->w), "cudnnCreateFilterDescriptor");
    if (!st)
        st = dnn_check(a, cudnnCreateConvolutionDescriptor(&d->c), "cudnnCreateConvolutionDescriptor");
    if (!st)
        st = dnn_check(a,
                       cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)q->N, (int)q->C,
                                                  (int)q->H, (int)q->W),
                       "cudnnSetTensor4dDescriptor(x)");
    if (!st)
        st = dnn_check(a,
                       cudnnSetTensor4dDescriptor(d->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)q->N, (int)q->O,
                                                  (int)q->OH, (int)q->OW),
                       "cudnnSetTensor4dDescriptor(y)");
    if (!st)
        st = dnn_check(a, cudnnSetTensor4dDescriptor(d->b, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, (int)q->O, 1, 1),
                       "cudnnSetTensor4dDescriptor(bias)");
    if (!st)
        st = dnn_check(a,
                       cudnnSetFilter4dDescriptor(d->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)q->O, (int)q->Cg,
                                                  (int)q->KH, (int)q->KW),
                       "cudnnSetFilter4dDescriptor");
    if (!st)
        st = dnn_check(a,
                       cudnnSetConvolution2dDescriptor(d->c, (int)q->ph, (int)q->pw, (int)q->sh, (int)q->sw,
                                                       (int)q->dh, (int)q->dw, CUDNN_CROSS_CORRELATION,
                                                       CUDNN_DATA_FLOAT),
                       "cudnnSetConvolution2dDescriptor");
    if (!st)
        st = dnn_check(a, cudnnSetConvolutionGroupCount(d->c, (int)q->G), "cudnnSetConvolutionGroupCount");
    /* FP32 exact: no tensor cores (cuDNN's default math would use TF32 on sm_80+) */
    if (!st)
        st = dnn_check(a,
                       cudnnSetConvolutionMathType(d->c, ctx->math == KN_CUDA_MATH_FP32 ? CUDNN_FMA_MATH
                                                                                        : CUDNN_DEFAULT_MATH),
                       "cudnnSetConvolutionMathType");
    if (!st)
        st = dnn_check(a, cudnnSetStream((cudnnHandle_t)ctx->dnn, ctx->stream), "cudnnSetStream");
    return st;
}

/* First algorithm of cuDNN's ranking that succeeded, fits the workspace and (when asked) is
 * deterministic; -1 when none does (the caller falls back to the direct kernels). */
template <typename Perf> static int dnn_pick(const Perf *perf, int count, size_t ws, bool deterministic)
{
    for (int i = 0; i < count; i++)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= ws &&
            (!deterministic || perf[i].determinism == CUDNN_DETERMINISTIC))
            return i;
    return -1;
}

/* The algorithm of direction KIND for node a->node: the plan's cached choice, else cuDNN's
 * ranking (get(perf, count, &got)) through dnn_pick, cached for the next calls. -1: none fits. */
template <typename Perf, int COUNT, class Get>
static kn_status dnn_algo(const kn__kargs *a, const kn__cuda_ctx *ctx, int kind, size_t ws, const char *what, Get get,
                          int *algo)
{
    bool hit;
    kn__cuda_algo *slot = kn__cu_algo_slot(ctx, a->node, kind, 0, &hit); /* the node fixes the shapes */
    if (hit) {
        *algo = slot->algo;
        return KN_OK;
    }
    Perf perf[COUNT];
    int got = 0;
    kn_status st = dnn_check(a, get(perf, COUNT, &got), what);
    if (st)
        return st;
    int i = dnn_pick(perf, got, ws, ctx->deterministic);
    *algo = i >= 0 ? (int)perf[i].algo : -1;
    if (slot) {
        slot->node = a->node;
        slot->kind = kind;
        slot->geometry = 0;
        slot->algo = *algo;
    }
    return KN_OK;
}

/* Runs the node through cuDNN; *done false when no algorithm fits (nothing was enqueued). */
static kn_status conv_dnn(const kn__kargs *a, const kn__cuda_ctx *ctx, const kn__conv_geom *q, bool *done)
{
    *done = false;
    if (!dnn_fits(q))
        return KN_OK;
    cudnnHandle_t h = (cudnnHandle_t)ctx->dnn;
    dnn_descs d;
    kn_status st = dnn_setup(a, ctx, q, &d);
    const float one = 1.0f, zero = 0.0f;
    size_t ws = ctx->gemm_workspace ? ctx->gemm_workspace_bytes : 0;
    int algo = -1;
    const kn_node *n = a->node;
    if (!st && n->op == KN_OP_CONV2D) {
        st = dnn_algo<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT>(
            a, ctx, KN_CUDA_ALGO_CONV_FWD, ws, "cudnnGetConvolutionForwardAlgorithm_v7",
            [&](cudnnConvolutionFwdAlgoPerf_t *perf, int count, int *got) {
                return cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.c, d.y, count, got, perf);
            },
            &algo);
        if (!st && algo >= 0) {
            st = dnn_check(a,
                           cudnnConvolutionForward(h, &one, d.x, a->src[0], d.w, a->src[1], d.c,
                                                   (cudnnConvolutionFwdAlgo_t)algo, ctx->gemm_workspace, ws, &zero,
                                                   d.y, a->dst),
                           "cudnnConvolutionForward");
            if (!st && n->nsrc == 3)
                st = dnn_check(a, cudnnAddTensor(h, &one, d.b, a->src[2], &one, d.y, a->dst), "cudnnAddTensor (bias)");
            *done = true;
        }
    } else if (!st && n->op == KN_OP_CONV2D_BWD_DATA) {
        st = dnn_algo<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT>(
            a, ctx, KN_CUDA_ALGO_CONV_BWD_DATA, ws, "cudnnGetConvolutionBackwardDataAlgorithm_v7",
            [&](cudnnConvolutionBwdDataAlgoPerf_t *perf, int count, int *got) {
                return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w, d.y, d.c, d.x, count, got, perf);
            },
            &algo);
        if (!st && algo >= 0) {
            st = dnn_check(a,
                           cudnnConvolutionBackwardData(h, &one, d.w, a->src[1], d.y, a->src[0], d.c,
                                                        (cudnnConvolutionBwdDataAlgo_t)algo, ctx->gemm_workspace, ws,
                                                        &zero, d.x, a->dst),
                           "cudnnConvolutionBackwardData");
            *done = true;
        }
    } else if (!st) {
        st = dnn_algo<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT>(
            a, ctx, KN_CUDA_ALGO_CONV_BWD_FILTER, ws, "cudnnGetConvolutionBackwardFilterAlgorithm_v7",
            [&](cudnnConvolutionBwdFilterAlgoPerf_t *perf, int count, int *got) {
                return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x, d.y, d.c, d.w, count, got, perf);
            },
            &algo);
        if (!st && algo >= 0) {
            st = dnn_check(a,
                           cudnnConvolutionBackwardFilter(h, &one, d.x, a->src[0], d.y, a->src[1], d.c,
                                                          (cudnnConvolutionBwdFilterAlgo_t)algo, ctx->gemm_workspace,
                                                          ws, &zero, d.w, a->dst),
                           "cudnnConvolutionBackwardFilter");
            *done = true;
        }
    }
    dnn_destroy(&d);
    return st;
}
#endif

static kn_status conv_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    kn__conv_geom q = kn__conv_geom_of(n);
    int64_t total = kn__numel(n);
    if (total == 0)
        return KN_OK;
#ifdef KN_HAVE_CUDNN
    if (ctx->dnn) {
        bool done = false;
        kn_status st = conv_dnn(a, ctx, &q, &done);
        if (st || done)
            return st;
    }
#endif
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
