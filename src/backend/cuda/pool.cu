/* pool.cu — CUDA kernels of 2-D pooling over NCHW, f32: max_pool2d, avg_pool2d (padded zeros
 * counted in the divisor), global_avg_pool, and the backward ops of the first two. The
 * reference's rules exactly: square kernel, stride, symmetric padding, floor output size; a
 * window's maximum is the first in row-major order and a NaN replaces the running maximum.
 * The backward ops gather (one thread per input element sums the windows that cover it, in
 * the reference's window order), so they need no atomics and are deterministic.
 * Not here: ceil_mode, dilation, non-square kernels (not in the op table). */
#include "cuda_kern_util.cuh"

struct pgeom {
    int64_t planes, H, W, OH, OW, k, s, p;
};

static pgeom geom_of(const kn_node *n, const int64_t *xshape, const int64_t *yshape)
{
    pgeom q;
    q.planes = xshape[0] * xshape[1];
    q.H = xshape[2];
    q.W = xshape[3];
    q.OH = yshape[2];
    q.OW = yshape[3];
    q.k = n->ai[0];
    q.s = n->ai[1];
    q.p = n->ai[2];
    return q;
}

/* Index in the plane of window (oh, ow)'s maximum, as the reference's window_argmax. */
__device__ static inline int64_t window_argmax(const float *plane, const pgeom &q, int64_t oh, int64_t ow)
{
    int64_t h0 = oh * q.s - q.p, w0 = ow * q.s - q.p, best = -1;
    float m = -INFINITY;
    for (int64_t ih = h0 < 0 ? 0 : h0; ih < h0 + q.k && ih < q.H; ih++)
        for (int64_t iw = w0 < 0 ? 0 : w0; iw < w0 + q.k && iw < q.W; iw++) {
            float v = plane[ih * q.W + iw];
            if (best < 0 || v > m || isnan(v)) {
                best = ih * q.W + iw;
                m = v;
            }
        }
    return best;
}

__global__ void max_pool_f32_kernel(pgeom q, const float *__restrict__ x, float *__restrict__ y)
{
    KN_CU_GRID_LOOP(i, q.planes * q.OH * q.OW)
    {
        int64_t ow = i % q.OW, oh = (i / q.OW) % q.OH, pl = i / (q.OW * q.OH);
        const float *plane = x + pl * q.H * q.W;
        y[i] = plane[window_argmax(plane, q, oh, ow)];
    }
}

/* First and last window index (inclusive) along one dim that cover input position i. */
__device__ static inline void covering(int64_t i, int64_t k, int64_t s, int64_t p, int64_t out, int64_t *lo,
                                       int64_t *hi)
{
    int64_t a = i + p - k + 1; /* o·s ≥ a */
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    int64_t b = (i + p) / s; /* o·s ≤ i + p */
    *hi = b < out - 1 ? b : out - 1;
}

__global__ void max_pool_bwd_f32_kernel(pgeom q, const float *__restrict__ x, const float *__restrict__ dy,
                                        float *__restrict__ dx)
{
    KN_CU_GRID_LOOP(i, q.planes * q.H * q.W)
    {
        int64_t iw = i % q.W, ih = (i / q.W) % q.H, pl = i / (q.W * q.H);
        const float *plane = x + pl * q.H * q.W;
        const float *dyp = dy + pl * q.OH * q.OW;
        int64_t oh0, oh1, ow0, ow1, self = ih * q.W + iw;
        covering(ih, q.k, q.s, q.p, q.OH, &oh0, &oh1);
        covering(iw, q.k, q.s, q.p, q.OW, &ow0, &ow1);
        float acc = 0;
        for (int64_t oh = oh0; oh <= oh1; oh++)
            for (int64_t ow = ow0; ow <= ow1; ow++)
                if (window_argmax(plane, q, oh, ow) == self)
                    acc += dyp[oh * q.OW + ow];
        dx[i] = acc;
    }
}

__global__ void avg_pool_f32_kernel(pgeom q, const float *__restrict__ x, float *__restrict__ y)
{
    const float inv = 1.0f / (float)(q.k * q.k);
    KN_CU_GRID_LOOP(i, q.planes * q.OH * q.OW)
    {
        int64_t ow = i % q.OW, oh = (i / q.OW) % q.OH, pl = i / (q.OW * q.OH);
        const float *plane = x + pl * q.H * q.W;
        float s = 0;
        for (int64_t kh = 0; kh < q.k; kh++)
            for (int64_t kw = 0; kw < q.k; kw++) {
                int64_t ih = oh * q.s - q.p + kh, iw = ow * q.s - q.p + kw;
                if (ih >= 0 && ih < q.H && iw >= 0 && iw < q.W)
                    s += plane[ih * q.W + iw];
            }
        y[i] = s * inv;
    }
}

__global__ void avg_pool_bwd_f32_kernel(pgeom q, const float *__restrict__ dy, float *__restrict__ dx)
{
    const float inv = 1.0f / (float)(q.k * q.k);
    KN_CU_GRID_LOOP(i, q.planes * q.H * q.W)
    {
        int64_t iw = i % q.W, ih = (i / q.W) % q.H, pl = i / (q.W * q.H);
        const float *dyp = dy + pl * q.OH * q.OW;
        int64_t oh0, oh1, ow0, ow1;
        covering(ih, q.k, q.s, q.p, q.OH, &oh0, &oh1);
        covering(iw, q.k, q.s, q.p, q.OW, &ow0, &ow1);
        float acc = 0;
        for (int64_t oh = oh0; oh <= oh1; oh++)
            for (int64_t ow = ow0; ow <= ow1; ow++)
                acc += dyp[oh * q.OW + ow] * inv;
        dx[i] = acc;
    }
}

/* One block per plane (N·C), a deterministic block sum over H·W. */
__global__ void global_avg_pool_f32_kernel(int64_t planes, int64_t hw, const float *__restrict__ x,
                                           float *__restrict__ y)
{
    __shared__ float scratch[32];
    for (int64_t pl = blockIdx.x; pl < planes; pl += gridDim.x) {
        float s = 0;
        for (int64_t i = threadIdx.x; i < hw; i += blockDim.x)
            s += x[pl * hw + i];
        s = kn__cu_block_sum(s, scratch);
        if (threadIdx.x == 0)
            y[pl] = hw ? s / (float)hw : 0.0f;
    }
}

static kn_status pool_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t total = kn__numel(n);
    if (total == 0)
        return KN_OK;
    unsigned blocks = kn__cu_blocks(ctx, total, KN_CU_THREADS);
    switch (n->op) {
    case KN_OP_MAX_POOL2D: {
        pgeom q = geom_of(n, n->src[0]->shape, n->shape);
        max_pool_f32_kernel<<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(q, (const float *)a->src[0], (float *)a->dst);
        return KN_CU_LAUNCHED(a, "max_pool_f32_kernel");
    }
    case KN_OP_MAX_POOL2D_BWD: {
        pgeom q = geom_of(n, n->src[0]->shape, n->src[1]->shape);
        max_pool_bwd_f32_kernel<<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(q, (const float *)a->src[0],
                                                                            (const float *)a->src[1], (float *)a->dst);
        return KN_CU_LAUNCHED(a, "max_pool_bwd_f32_kernel");
    }
    case KN_OP_AVG_POOL2D: {
        pgeom q = geom_of(n, n->src[0]->shape, n->shape);
        avg_pool_f32_kernel<<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(q, (const float *)a->src[0], (float *)a->dst);
        return KN_CU_LAUNCHED(a, "avg_pool_f32_kernel");
    }
    case KN_OP_AVG_POOL2D_BWD: {
        pgeom q = geom_of(n, n->shape, n->src[0]->shape);
        avg_pool_bwd_f32_kernel<<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(q, (const float *)a->src[0],
                                                                            (float *)a->dst);
        return KN_CU_LAUNCHED(a, "avg_pool_bwd_f32_kernel");
    }
    default: { /* global_avg_pool */
        const kn_node *x = n->src[0];
        int64_t planes = x->shape[0] * x->shape[1], hw = x->shape[2] * x->shape[3];
        global_avg_pool_f32_kernel<<<kn__cu_blocks(ctx, planes, 1), KN_CU_THREADS, 0, ctx->stream>>>(
            planes, hw, (const float *)a->src[0], (float *)a->dst);
        return KN_CU_LAUNCHED(a, "global_avg_pool_f32_kernel");
    }
    }
}

extern "C" void kn__cuda_register_pool(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.supports = kn__cu_f32_only;
    k.fn = pool_f32;
    t[KN_OP_MAX_POOL2D] = t[KN_OP_MAX_POOL2D_BWD] = t[KN_OP_AVG_POOL2D] = t[KN_OP_AVG_POOL2D_BWD] =
        t[KN_OP_GLOBAL_AVG_POOL] = k;
}
