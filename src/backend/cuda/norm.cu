/* norm.cu — CUDA kernels of batch_norm (training: batch statistics and the running-statistics
 * update in place; inference: running statistics), batch_norm_bwd (dx, dgamma or dbeta),
 * layer_norm and layer_norm_bwd (dx, dgamma or dbeta), f32. The reference's arithmetic:
 * two-pass statistics (mean, then the mean squared deviation), biased variance for
 * normalising, unbiased for the running variance. Batch norm: one block per channel walks
 * its N·S values. Layer norm: one block (a warp when the row has ≤ 256 values) per row;
 * dgamma/dbeta sum over rows with one thread per column in row order, using per-row
 * statistics kept in the workspace. All reductions are fixed-order tree sums (no atomics).
 * Not here: fused normalisation + activation, Welford single-pass statistics. */
#include "cuda_kern_util.cuh"

/* ---- batch norm ----------------------------------------------------------------------------- */

/* Mean and biased variance of channel c over N × S (every thread gets them). */
__device__ static inline void bn_stats(const float *x, int64_t N, int64_t C, int64_t S, int64_t c, float *scratch,
                                       float *mean, float *var)
{
    int64_t M = N * S;
    float s = 0;
    for (int64_t t = threadIdx.x; t < M; t += blockDim.x)
        s += x[((t / S) * C + c) * S + t % S];
    s = kn__cu_block_sum(s, scratch);
    float mu = M > 0 ? s / (float)M : 0.0f;
    float q = 0;
    for (int64_t t = threadIdx.x; t < M; t += blockDim.x) {
        float d = x[((t / S) * C + c) * S + t % S] - mu;
        q += d * d;
    }
    q = kn__cu_block_sum(q, scratch);
    *mean = mu;
    *var = M > 0 ? q / (float)M : 0.0f;
}

__global__ void bn_train_f32_kernel(int64_t N, int64_t C, int64_t S, const float *__restrict__ x,
                                    const float *__restrict__ gamma, const float *__restrict__ beta,
                                    float *__restrict__ rmean, float *__restrict__ rvar, float *__restrict__ y,
                                    double momentum, float eps)
{
    __shared__ float scratch[32];
    const int64_t M = N * S;
    for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
        float mean, var;
        bn_stats(x, N, C, S, c, scratch, &mean, &var);
        if (threadIdx.x == 0) {
            rmean[c] = (float)((1 - momentum) * rmean[c] + momentum * mean);
            rvar[c] = (float)((1 - momentum) * rvar[c] + momentum * var * (double)M / (double)(M - 1));
        }
        float istd = 1.0f / sqrtf(var + eps), g = gamma[c], b = beta[c];
        for (int64_t t = threadIdx.x; t < M; t += blockDim.x) {
            int64_t k = ((t / S) * C + c) * S + t % S;
            y[k] = g * (x[k] - mean) * istd + b;
        }
    }
}

__global__ void bn_infer_f32_kernel(int64_t total, int64_t C, int64_t S, const float *__restrict__ x,
                                    const float *__restrict__ gamma, const float *__restrict__ beta,
                                    const float *__restrict__ rmean, const float *__restrict__ rvar,
                                    float *__restrict__ y, float eps)
{
    KN_CU_GRID_LOOP(k, total)
    {
        int64_t c = (k / S) % C;
        float istd = 1.0f / sqrtf(rvar[c] + eps);
        y[k] = gamma[c] * (x[k] - rmean[c]) * istd + beta[c];
    }
}

static void bn_dims(const kn_node *x, int64_t *N, int64_t *C, int64_t *S)
{
    *N = x->shape[0];
    *C = x->shape[1];
    int64_t nc = *N * *C;
    *S = nc > 0 ? kn__numel(x) / nc : 0;
}

static kn_status bn_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t N, C, S;
    bn_dims(n->src[0], &N, &C, &S);
    if (a->training && N * S < 2) /* a shape error found at run time, as the reference reports it */
        return kn__kerr(a, "batch_norm: a training plan needs more than 1 value per channel, input %s has %lld",
                        kn__shp(n->src[0]), (long long)(N * S));
    if (N * C * S == 0)
        return KN_OK;
    const float *x = (const float *)a->src[0], *gamma = (const float *)a->src[1], *beta = (const float *)a->src[2];
    float *rmean = (float *)a->src[3], *rvar = (float *)a->src[4], *y = (float *)a->dst;
    float eps = (float)n->af[1];
    if (a->training) {
        bn_train_f32_kernel<<<kn__cu_blocks(ctx, C, 1), KN_CU_THREADS, 0, ctx->stream>>>(N, C, S, x, gamma, beta,
                                                                                         rmean, rvar, y, n->af[0], eps);
        return KN_CU_LAUNCHED(a, "bn_train_f32_kernel");
    }
    bn_infer_f32_kernel<<<kn__cu_blocks(ctx, N * C * S, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        N * C * S, C, S, x, gamma, beta, rmean, rvar, y, eps);
    return KN_CU_LAUNCHED(a, "bn_infer_f32_kernel");
}

/* dβ = Σ dy, dγ = Σ dy·x̂, dx = γ/(σM)·(M·dy − dβ − x̂·dγ), per channel. */
__global__ void bn_bwd_f32_kernel(int64_t N, int64_t C, int64_t S, const float *__restrict__ x,
                                  const float *__restrict__ gamma, const float *__restrict__ dy,
                                  float *__restrict__ out, float eps, int which)
{
    __shared__ float scratch[32];
    const int64_t M = N * S;
    for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
        float mean, var;
        bn_stats(x, N, C, S, c, scratch, &mean, &var);
        float istd = 1.0f / sqrtf(var + eps), sdy = 0, sdyx = 0;
        for (int64_t t = threadIdx.x; t < M; t += blockDim.x) {
            int64_t k = ((t / S) * C + c) * S + t % S;
            sdy += dy[k];
            sdyx += dy[k] * (x[k] - mean) * istd;
        }
        sdy = kn__cu_block_sum(sdy, scratch);
        sdyx = kn__cu_block_sum(sdyx, scratch);
        if (which == 1 || which == 2) {
            if (threadIdx.x == 0)
                out[c] = which == 1 ? sdyx : sdy;
            continue;
        }
        float f = gamma[c] * istd / (float)M;
        for (int64_t t = threadIdx.x; t < M; t += blockDim.x) {
            int64_t k = ((t / S) * C + c) * S + t % S;
            float xh = (x[k] - mean) * istd;
            out[k] = f * ((float)M * dy[k] - sdy - xh * sdyx);
        }
    }
}

static kn_status bn_bwd_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t N, C, S;
    bn_dims(n->src[0], &N, &C, &S);
    if (C == 0)
        return KN_OK;
    bn_bwd_f32_kernel<<<kn__cu_blocks(ctx, C, 1), KN_CU_THREADS, 0, ctx->stream>>>(
        N, C, S, (const float *)a->src[0], (const float *)a->src[1], (const float *)a->src[2], (float *)a->dst,
        (float)n->af[1], (int)n->ai[0]);
    return KN_CU_LAUNCHED(a, "bn_bwd_f32_kernel");
}

/* ---- layer norm --------------------------------------------------------------------------------- */

template <int G> __device__ __forceinline__ float group_sum(float v, float *scratch)
{
    if (G == 32)
        return kn__cu_warp_sum(v);
    return kn__cu_block_sum(v, scratch);
}

/* Rows handled group by group; every thread of a block runs the same number of rounds. */
#define LN_ROWS(r, R)                                                                           \
    const int lane = threadIdx.x % G;                                                           \
    const int64_t per_round = (int64_t)gridDim.x * (KN_CU_THREADS / G);                         \
    const int64_t rounds = ((R) + per_round - 1) / per_round;                                   \
    for (int64_t it_ = 0, r = (int64_t)blockIdx.x * (KN_CU_THREADS / G) + threadIdx.x / G; it_ < rounds; \
         it_++, r += per_round)

/* mean and 1/σ of a row of D values, by a group */
template <int G>
__device__ __forceinline__ void ln_stats(const float *row, int64_t D, float eps, int lane, float *scratch, float *mean,
                                         float *istd)
{
    float s = 0;
    for (int64_t j = lane; j < D; j += G)
        s += row[j];
    float mu = group_sum<G>(s, scratch) / (float)D;
    float q = 0;
    for (int64_t j = lane; j < D; j += G)
        q += (row[j] - mu) * (row[j] - mu);
    q = group_sum<G>(q, scratch);
    *mean = mu;
    *istd = 1.0f / sqrtf(q / (float)D + eps);
}

template <int G>
__global__ void ln_f32_kernel(int64_t R, int64_t D, const float *__restrict__ x, const float *__restrict__ gamma,
                              const float *__restrict__ beta, float *__restrict__ y, float eps)
{
    __shared__ float scratch[32];
    LN_ROWS(r, R)
    {
        bool live = r < R;
        const float *xr = x + (live ? r : 0) * D;
        float mean, istd;
        ln_stats<G>(xr, D, eps, lane, scratch, &mean, &istd);
        if (live)
            for (int64_t j = lane; j < D; j += G) {
                float v = (xr[j] - mean) * istd;
                y[r * D + j] = v * (gamma ? gamma[j] : 1.0f) + (beta ? beta[j] : 0.0f);
            }
    }
}

static void ln_dims(const kn_node *n, int64_t *R, int64_t *D)
{
    const kn_node *x = n->src[0];
    *D = 1;
    for (int i = x->ndim - (int)n->ai[0]; i < x->ndim; i++)
        *D *= x->shape[i];
    *R = *D ? kn__numel(x) / *D : 0;
}

static kn_status ln_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t R, D;
    ln_dims(n, &R, &D);
    if (R * D == 0)
        return KN_OK;
    const float *gamma = n->ai[1] ? (const float *)a->src[1] : NULL;
    const float *beta = n->ai[2] ? (const float *)a->src[n->ai[1] ? 2 : 1] : NULL;
    const float *x = (const float *)a->src[0];
    float *y = (float *)a->dst, eps = (float)n->af[0];
    if (D <= 256)
        ln_f32_kernel<32><<<kn__cu_blocks(ctx, R, KN_CU_THREADS / 32), KN_CU_THREADS, 0, ctx->stream>>>(
            R, D, x, gamma, beta, y, eps);
    else
        ln_f32_kernel<KN_CU_THREADS><<<kn__cu_blocks(ctx, R, 1), KN_CU_THREADS, 0, ctx->stream>>>(R, D, x, gamma,
                                                                                                 beta, y, eps);
    return KN_CU_LAUNCHED(a, "ln_f32_kernel");
}

/* dx per row, with g = dy·γ: (g − mean(g) − x̂·mean(g·x̂))/σ; also leaves the row's mean and
 * 1/σ in stats[2r], stats[2r+1] (for dgamma). */
template <int G>
__global__ void ln_bwd_rows_f32_kernel(int64_t R, int64_t D, const float *__restrict__ x, const float *__restrict__ dy,
                                       const float *__restrict__ gamma, float *__restrict__ dx,
                                       float *__restrict__ stats, float eps)
{
    __shared__ float scratch[32];
    LN_ROWS(r, R)
    {
        bool live = r < R;
        int64_t rr = live ? r : 0;
        const float *xr = x + rr * D, *dyr = dy + rr * D;
        float mean, istd;
        ln_stats<G>(xr, D, eps, lane, scratch, &mean, &istd);
        if (stats && live && lane == 0) {
            stats[2 * r] = mean;
            stats[2 * r + 1] = istd;
        }
        if (!dx) /* uniform across the block: no barrier is skipped by some threads only */
            continue;
        float mg = 0, mgx = 0;
        for (int64_t j = lane; j < D; j += G) {
            float xh = (xr[j] - mean) * istd, gj = dyr[j] * (gamma ? gamma[j] : 1.0f);
            mg += gj;
            mgx += gj * xh;
        }
        mg = group_sum<G>(mg, scratch) / (float)D;
        mgx = group_sum<G>(mgx, scratch) / (float)D;
        if (live)
            for (int64_t j = lane; j < D; j += G) {
                float xh = (xr[j] - mean) * istd, gj = dyr[j] * (gamma ? gamma[j] : 1.0f);
                dx[r * D + j] = (gj - mg - xh * mgx) * istd;
            }
    }
}

/* dgamma[j] = Σ_r dy·x̂ (which 1) or dbeta[j] = Σ_r dy (which 2), rows in order. */
__global__ void ln_bwd_cols_f32_kernel(int64_t R, int64_t D, const float *__restrict__ x, const float *__restrict__ dy,
                                       const float *__restrict__ stats, float *__restrict__ out, int which)
{
    KN_CU_GRID_LOOP(j, D)
    {
        float s = 0;
        for (int64_t r = 0; r < R; r++) {
            float d = dy[r * D + j];
            s += which == 1 ? d * (x[r * D + j] - stats[2 * r]) * stats[2 * r + 1] : d;
        }
        out[j] = s;
    }
}

static size_t ln_bwd_ws(const kn_node *n)
{
    int64_t R, D;
    ln_dims(n, &R, &D);
    return n->ai[1] == 1 ? (size_t)R * 2 * sizeof(float) : 0;
}

static kn_status ln_bwd_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t R, D;
    ln_dims(n, &R, &D);
    int which = (int)n->ai[1];
    const float *x = (const float *)a->src[0], *dy = (const float *)a->src[1];
    const float *gamma = n->nsrc == 3 ? (const float *)a->src[2] : NULL;
    float eps = (float)n->af[0];
    if (which == 0 || which == 1) {
        if (R * D == 0 && which == 0)
            return KN_OK;
        float *dx = which == 0 ? (float *)a->dst : NULL, *stats = which == 1 ? (float *)a->work : NULL;
        if (which == 1 && R > 0 && !stats)
            return kn__cu_fail(a, KN_ERR_DEVICE, "no workspace for the row statistics");
        if (R > 0) {
            if (D <= 256)
                ln_bwd_rows_f32_kernel<32><<<kn__cu_blocks(ctx, R, KN_CU_THREADS / 32), KN_CU_THREADS, 0,
                                             ctx->stream>>>(R, D, x, dy, gamma, dx, stats, eps);
            else
                ln_bwd_rows_f32_kernel<KN_CU_THREADS><<<kn__cu_blocks(ctx, R, 1), KN_CU_THREADS, 0, ctx->stream>>>(
                    R, D, x, dy, gamma, dx, stats, eps);
            kn_status st = KN_CU_LAUNCHED(a, "ln_bwd_rows_f32_kernel");
            if (st || which == 0)
                return st;
        }
    }
    if (D == 0)
        return KN_OK;
    ln_bwd_cols_f32_kernel<<<kn__cu_blocks(ctx, D, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        R, D, x, dy, (const float *)a->work, (float *)a->dst, which);
    return KN_CU_LAUNCHED(a, "ln_bwd_cols_f32_kernel");
}

extern "C" void kn__cuda_register_norm(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.supports = kn__cu_f32_only;
    k.fn = bn_f32;
    t[KN_OP_BATCH_NORM] = k;
    k.fn = bn_bwd_f32;
    t[KN_OP_BATCH_NORM_BWD] = k;
    k.fn = ln_f32;
    t[KN_OP_LAYER_NORM] = k;
    k.fn = ln_bwd_f32;
    k.workspace = ln_bwd_ws;
    t[KN_OP_LAYER_NORM_BWD] = k;
}
