/* softmax.cu — CUDA kernels of softmax, log_softmax and their backward ops (y, dy) → dx,
 * f32, over one axis viewed as [outer, len, inner]. inner == 1 (the last axis, the usual
 * case): one block per row, coalesced, deterministic block reductions; inner > 1: one thread
 * per (outer, inner) column, walking the axis (coalesced across the inner index). The max is
 * subtracted before exponentiating, as in the reference (fmaxf ignores NaN like fmax).
 * Not here: the fused softmax + cross-entropy (loss.cu). */
#include "cuda_kern_util.cuh"

static void split_axis(const kn_node *x, int axis, int64_t *outer, int64_t *len, int64_t *inner)
{
    *outer = *inner = 1;
    for (int i = 0; i < axis; i++)
        *outer *= x->shape[i];
    for (int i = axis + 1; i < x->ndim; i++)
        *inner *= x->shape[i];
    *len = x->shape[axis];
}

/* ---- forward ----------------------------------------------------------------------------- */

template <bool LOG>
__global__ void softmax_rows_f32_kernel(int64_t rows, int64_t len, const float *__restrict__ x,
                                        float *__restrict__ y)
{
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * len;
        float *yr = y + r * len;
        float m = -INFINITY;
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
            m = fmaxf(m, xr[j]);
        m = kn__cu_block_max(m, scratch);
        float s = 0;
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
            s += expf(xr[j] - m);
        s = kn__cu_block_sum(s, scratch);
        float ls = logf(s);
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
            float v = xr[j] - m;
            yr[j] = LOG ? v - ls : expf(v) / s;
        }
    }
}

template <bool LOG>
__global__ void softmax_cols_f32_kernel(int64_t outer, int64_t len, int64_t inner, const float *__restrict__ x,
                                        float *__restrict__ y)
{
    KN_CU_GRID_LOOP(t, outer * inner)
    {
        int64_t base = (t / inner) * len * inner + t % inner;
        float m = -INFINITY, s = 0;
        for (int64_t j = 0; j < len; j++)
            m = fmaxf(m, x[base + j * inner]);
        for (int64_t j = 0; j < len; j++)
            s += expf(x[base + j * inner] - m);
        float ls = logf(s);
        for (int64_t j = 0; j < len; j++) {
            float v = x[base + j * inner] - m;
            y[base + j * inner] = LOG ? v - ls : expf(v) / s;
        }
    }
}

template <bool LOG> static kn_status softmax_launch(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    int64_t outer, len, inner;
    split_axis(a->node, (int)a->node->ai[0], &outer, &len, &inner);
    if (outer * len * inner == 0)
        return KN_OK;
    const float *x = (const float *)a->src[0];
    float *y = (float *)a->dst;
    if (inner == 1) {
        softmax_rows_f32_kernel<LOG><<<kn__cu_blocks(ctx, outer, 1), KN_CU_THREADS, 0, ctx->stream>>>(outer, len, x, y);
        return KN_CU_LAUNCHED(a, "softmax_rows_f32_kernel");
    }
    softmax_cols_f32_kernel<LOG><<<kn__cu_blocks(ctx, outer * inner, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        outer, len, inner, x, y);
    return KN_CU_LAUNCHED(a, "softmax_cols_f32_kernel");
}

static kn_status softmax_f32(const kn__kargs *a)
{
    return a->node->op == KN_OP_LOG_SOFTMAX ? softmax_launch<true>(a) : softmax_launch<false>(a);
}

/* ---- backward: softmax dx = y·(dy − Σ dy·y); log_softmax dx = dy − exp(y)·Σ dy ------------ */

template <bool LOG>
__global__ void softmax_bwd_rows_f32_kernel(int64_t rows, int64_t len, const float *__restrict__ y,
                                            const float *__restrict__ dy, float *__restrict__ dx)
{
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *yr = y + r * len, *gr = dy + r * len;
        float *dr = dx + r * len;
        float s = 0;
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
            s += LOG ? gr[j] : gr[j] * yr[j];
        s = kn__cu_block_sum(s, scratch);
        for (int64_t j = threadIdx.x; j < len; j += blockDim.x)
            dr[j] = LOG ? gr[j] - expf(yr[j]) * s : yr[j] * (gr[j] - s);
    }
}

template <bool LOG>
__global__ void softmax_bwd_cols_f32_kernel(int64_t outer, int64_t len, int64_t inner, const float *__restrict__ y,
                                            const float *__restrict__ dy, float *__restrict__ dx)
{
    KN_CU_GRID_LOOP(t, outer * inner)
    {
        int64_t base = (t / inner) * len * inner + t % inner;
        float s = 0;
        for (int64_t j = 0; j < len; j++) {
            int64_t k = base + j * inner;
            s += LOG ? dy[k] : dy[k] * y[k];
        }
        for (int64_t j = 0; j < len; j++) {
            int64_t k = base + j * inner;
            dx[k] = LOG ? dy[k] - expf(y[k]) * s : y[k] * (dy[k] - s);
        }
    }
}

template <bool LOG> static kn_status softmax_bwd_launch(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    int64_t outer, len, inner;
    split_axis(a->node, (int)a->node->ai[0], &outer, &len, &inner);
    if (outer * len * inner == 0)
        return KN_OK;
    const float *y = (const float *)a->src[0], *dy = (const float *)a->src[1];
    float *dx = (float *)a->dst;
    if (inner == 1) {
        softmax_bwd_rows_f32_kernel<LOG><<<kn__cu_blocks(ctx, outer, 1), KN_CU_THREADS, 0, ctx->stream>>>(
            outer, len, y, dy, dx);
        return KN_CU_LAUNCHED(a, "softmax_bwd_rows_f32_kernel");
    }
    softmax_bwd_cols_f32_kernel<LOG>
        <<<kn__cu_blocks(ctx, outer * inner, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(outer, len, inner, y,
                                                                                             dy, dx);
    return KN_CU_LAUNCHED(a, "softmax_bwd_cols_f32_kernel");
}

static kn_status softmax_bwd_f32(const kn__kargs *a)
{
    return a->node->op == KN_OP_LOG_SOFTMAX_BWD ? softmax_bwd_launch<true>(a) : softmax_bwd_launch<false>(a);
}

extern "C" void kn__cuda_register_softmax(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.supports = kn__cu_f32_only;
    k.fn = softmax_f32;
    t[KN_OP_SOFTMAX] = t[KN_OP_LOG_SOFTMAX] = k;
    k.fn = softmax_bwd_f32;
    t[KN_OP_SOFTMAX_BWD] = t[KN_OP_LOG_SOFTMAX_BWD] = k;
}
