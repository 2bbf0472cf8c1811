/* loss.cu — CUDA kernels of the losses, f32 (labels any integer dtype): softmax_cross_entropy
 * (one pass per row: log-sum-exp and the label's logit), its backward (one pass per row:
 * softmax − one-hot, times dy/N), nll_loss and its backward, mse_loss, bce_with_logits and
 * kl_div (batchmean). Scalars are means reduced deterministically: per-row (or per-block)
 * partial sums in double in the workspace, then one block adds them in a fixed order. Labels
 * outside [0, C) give NaN and a data-error record (cuda_kern_check.h) that the plan turns
 * into the CPU's KN_ERR_RANGE message. A row is handled by a warp when C ≤ 256, by a block
 * otherwise.
 * Not here: class weights, label smoothing, ignore_index (not in the op table). */
#include "cuda_kern_util.cuh"

#define PAIR_BLOCKS 1024 /* most stage-1 blocks of the elementwise losses (fixed: deterministic) */

/* Sum over a group of G threads (a warp, or the whole block); every thread of the group gets it. */
template <int G> __device__ __forceinline__ float group_sum(float v, float *scratch)
{
    if (G == 32)
        return kn__cu_warp_sum(v);
    return kn__cu_block_sum(v, scratch);
}

template <int G> __device__ __forceinline__ float group_max(float v, float *scratch)
{
    if (G == 32)
        return kn__cu_warp_max(v);
    return kn__cu_block_max(v, scratch);
}

/* log-sum-exp of one row of c logits, by the G threads of a group (lane = index in group). */
template <int G> __device__ __forceinline__ float row_lse(const float *xr, int64_t c, int lane, float *scratch)
{
    float m = -INFINITY;
    for (int64_t j = lane; j < c; j += G)
        m = fmaxf(m, xr[j]);
    m = group_max<G>(m, scratch);
    float s = 0;
    for (int64_t j = lane; j < c; j += G)
        s += expf(xr[j] - m);
    s = group_sum<G>(s, scratch);
    return m + logf(s);
}

/* Rows handled group by group: every thread of a block runs the same number of rounds (the
 * block barriers of G = KN_CU_THREADS need it). */
#define ROW_LOOP(r, rows)                                                                       \
    const int lane = threadIdx.x % G;                                                           \
    const int64_t per_round = (int64_t)gridDim.x * (KN_CU_THREADS / G);                         \
    const int64_t rounds = ((rows) + per_round - 1) / per_round;                                \
    for (int64_t it_ = 0, r = (int64_t)blockIdx.x * (KN_CU_THREADS / G) + threadIdx.x / G; it_ < rounds; \
         it_++, r += per_round)

/* loss[r] = lse(row r) − x[r, label r]; NaN (and a record) for a bad label. */
template <int G>
__global__ void ce_rows_f32_kernel(int64_t rows, int64_t c, const float *__restrict__ x, const void *labels,
                                   int ldt, double *__restrict__ part, kn__cuda_derr *err)
{
    __shared__ float scratch[32];
    ROW_LOOP(r, rows)
    {
        bool live = r < rows; /* a dead group still joins the block barriers */
        const float *xr = x + (live ? r : 0) * c;
        float lse = row_lse<G>(xr, c, lane, scratch);
        if (live && lane == 0) {
            int64_t l = kn__cu_index(labels, ldt, r);
            if (l < 0 || l >= c) {
                kn__cu_derr_set(err, KN_CUDA_DERR_LABEL, r);
                part[r] = NAN;
            } else {
                part[r] = (double)lse - (double)xr[l];
            }
        }
    }
}

/* out[0] = Σ part / div, one block, fixed order. */
__global__ void sum_partials_kernel(int64_t n, const double *__restrict__ part, double div, float *__restrict__ out)
{
    __shared__ double scratch[32];
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        s += part[i];
    s = kn__cu_block_sum_f64(s, scratch);
    if (threadIdx.x == 0)
        out[0] = (float)(s / div);
}

static double *partials(const kn__kargs *a) { return (double *)((char *)a->work + KN_CUDA_DERR_BYTES); }
static kn__cuda_derr *derr(const kn__kargs *a) { return (kn__cuda_derr *)a->work; }

static size_t rows_ws(const kn_node *n)
{
    return KN_CUDA_DERR_BYTES + (size_t)n->src[0]->shape[0] * sizeof(double);
}

/* loss[r] = −x[r, label r] */
__global__ void nll_rows_f32_kernel(int64_t rows, int64_t c, const float *x, const void *labels, int ldt,
                                    double *part, kn__cuda_derr *err)
{
    KN_CU_GRID_LOOP(r, rows)
    {
        int64_t l = kn__cu_index(labels, ldt, r);
        if (l < 0 || l >= c) {
            kn__cu_derr_set(err, KN_CUDA_DERR_LABEL, r);
            part[r] = NAN;
        } else {
            part[r] = -(double)x[r * c + l];
        }
    }
}

/* SOFTMAX_CE and NLL: per-row losses, then their mean. */
static kn_status class_loss_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t rows = n->src[0]->shape[0], c = n->src[0]->shape[1];
    kn_status st = kn__cu_derr_reset(a, ctx);
    if (st)
        return st;
    const float *x = (const float *)a->src[0];
    int ldt = n->src[1]->dtype;
    if (n->op == KN_OP_SOFTMAX_CE) {
        if (c <= 256)
            ce_rows_f32_kernel<32><<<kn__cu_blocks(ctx, rows, KN_CU_THREADS / 32), KN_CU_THREADS, 0, ctx->stream>>>(
                rows, c, x, a->src[1], ldt, partials(a), derr(a));
        else
            ce_rows_f32_kernel<KN_CU_THREADS><<<kn__cu_blocks(ctx, rows, 1), KN_CU_THREADS, 0, ctx->stream>>>(
                rows, c, x, a->src[1], ldt, partials(a), derr(a));
        if ((st = KN_CU_LAUNCHED(a, "ce_rows_f32_kernel")))
            return st;
    } else {
        nll_rows_f32_kernel<<<kn__cu_blocks(ctx, rows, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
            rows, c, x, a->src[1], ldt, partials(a), derr(a));
        if ((st = KN_CU_LAUNCHED(a, "nll_rows_f32_kernel")))
            return st;
    }
    sum_partials_kernel<<<1, KN_CU_THREADS, 0, ctx->stream>>>(rows, partials(a), (double)rows, (float *)a->dst);
    return KN_CU_LAUNCHED(a, "sum_partials_kernel");
}

/* ---- softmax_cross_entropy_bwd(logits, labels, dy): (softmax − onehot)·dy/N, one pass ------ */

template <int G>
__global__ void ce_bwd_f32_kernel(int64_t rows, int64_t c, const float *__restrict__ x, const void *labels, int ldt,
                                  const float *__restrict__ dy, float *__restrict__ dx, kn__cuda_derr *err)
{
    __shared__ float scratch[32];
    const float gs = (float)((double)dy[0] / (double)rows);
    ROW_LOOP(r, rows)
    {
        bool live = r < rows;
        const float *xr = x + (live ? r : 0) * c;
        float lse = row_lse<G>(xr, c, lane, scratch);
        if (live) {
            int64_t l = kn__cu_index(labels, ldt, r);
            bool bad = l < 0 || l >= c;
            if (bad && lane == 0)
                kn__cu_derr_set(err, KN_CUDA_DERR_LABEL, r);
            float *dr = dx + r * c;
            for (int64_t j = lane; j < c; j += G)
                dr[j] = bad ? NAN : (expf(xr[j] - lse) - (j == l ? 1.0f : 0.0f)) * gs;
        }
    }
}

static kn_status ce_bwd_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t rows = n->shape[0], c = n->shape[1];
    kn_status st = kn__cu_derr_reset(a, ctx);
    if (st)
        return st;
    const float *x = (const float *)a->src[0], *dy = (const float *)a->src[2];
    int ldt = n->src[1]->dtype;
    if (c <= 256)
        ce_bwd_f32_kernel<32><<<kn__cu_blocks(ctx, rows, KN_CU_THREADS / 32), KN_CU_THREADS, 0, ctx->stream>>>(
            rows, c, x, a->src[1], ldt, dy, (float *)a->dst, derr(a));
    else
        ce_bwd_f32_kernel<KN_CU_THREADS><<<kn__cu_blocks(ctx, rows, 1), KN_CU_THREADS, 0, ctx->stream>>>(
            rows, c, x, a->src[1], ldt, dy, (float *)a->dst, derr(a));
    return KN_CU_LAUNCHED(a, "ce_bwd_f32_kernel");
}

/* ---- nll_loss_bwd(labels, dy): −dy/N at each row's label, 0 elsewhere --------------------- */

__global__ void nll_bwd_f32_kernel(int64_t rows, int64_t c, const void *labels, int ldt, const float *__restrict__ dy,
                                   float *__restrict__ dx, kn__cuda_derr *err)
{
    const float gs = (float)((double)dy[0] / (double)rows);
    KN_CU_GRID_LOOP(i, rows * c)
    {
        int64_t r = i / c, j = i % c, l = kn__cu_index(labels, ldt, r);
        bool bad = l < 0 || l >= c;
        if (bad && j == 0)
            kn__cu_derr_set(err, KN_CUDA_DERR_LABEL, r);
        dx[i] = bad ? NAN : (j == l ? -gs : 0.0f);
    }
}

static kn_status nll_bwd_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t rows = n->shape[0], c = n->shape[1];
    kn_status st = kn__cu_derr_reset(a, ctx);
    if (st)
        return st;
    nll_bwd_f32_kernel<<<kn__cu_blocks(ctx, rows * c, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        rows, c, a->src[0], n->src[0]->dtype, (const float *)a->src[1], (float *)a->dst, derr(a));
    return KN_CU_LAUNCHED(a, "nll_bwd_f32_kernel");
}

/* ---- mse, bce_with_logits, kl_div: mean of an elementwise term ---------------------------- */

template <int OP> __device__ __forceinline__ float pair_term(float x, float y)
{
    if (OP == KN_OP_MSE)
        return (x - y) * (x - y);
    if (OP == KN_OP_BCE_LOGITS)
        return fmaxf(x, 0.0f) - x * y + log1pf(expf(-fabsf(x)));
    return y == 0.0f ? 0.0f : y * (logf(y) - x); /* KL: x = log q, y = target */
}

template <int OP>
__global__ void pair_partial_f32_kernel(int64_t n, const float *__restrict__ p, const float *__restrict__ t,
                                        double *__restrict__ part)
{
    __shared__ double scratch[32];
    double s = 0;
    KN_CU_GRID_LOOP(i, n)
    s += (double)pair_term<OP>(p[i], t[i]);
    s = kn__cu_block_sum_f64(s, scratch);
    if (threadIdx.x == 0)
        part[blockIdx.x] = s;
}

static unsigned pair_blocks(int64_t m)
{
    int64_t b = (m + KN_CU_THREADS - 1) / KN_CU_THREADS;
    return (unsigned)(b < 1 ? 1 : b > PAIR_BLOCKS ? PAIR_BLOCKS : b);
}

static size_t pair_ws(const kn_node *n)
{
    (void)n;
    return (size_t)PAIR_BLOCKS * sizeof(double);
}

template <int OP> static kn_status pair_launch(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node, *x = n->src[0];
    int64_t m = kn__numel(x);
    unsigned blocks = pair_blocks(m);
    double *part = (double *)a->work;
    if (!part)
        return kn__cu_fail(a, KN_ERR_DEVICE, "no workspace for the partial sums");
    pair_partial_f32_kernel<OP><<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(m, (const float *)a->src[0],
                                                                          (const float *)a->src[1], part);
    kn_status st = KN_CU_LAUNCHED(a, "pair_partial_f32_kernel");
    if (st)
        return st;
    double div = OP == KN_OP_KL_DIV ? (x->ndim ? (double)x->shape[0] : 1.0) : (double)m;
    sum_partials_kernel<<<1, KN_CU_THREADS, 0, ctx->stream>>>(blocks, part, div, (float *)a->dst);
    return KN_CU_LAUNCHED(a, "sum_partials_kernel");
}

static kn_status pair_f32(const kn__kargs *a)
{
    switch (a->node->op) {
    case KN_OP_MSE: return pair_launch<KN_OP_MSE>(a);
    case KN_OP_BCE_LOGITS: return pair_launch<KN_OP_BCE_LOGITS>(a);
    case KN_OP_KL_DIV: return pair_launch<KN_OP_KL_DIV>(a);
    default: return kn__cu_fail(a, KN_ERR_UNSUPPORTED, "not an elementwise loss");
    }
}

extern "C" void kn__cuda_register_loss(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.supports = kn__cu_f32_only;
    k.fn = class_loss_f32;
    k.workspace = rows_ws;
    t[KN_OP_SOFTMAX_CE] = t[KN_OP_NLL] = k;
    k.fn = ce_bwd_f32;
    k.workspace = kn__cu_derr_workspace;
    t[KN_OP_SOFTMAX_CE_BWD] = k;
    k.fn = nll_bwd_f32;
    t[KN_OP_NLL_BWD] = k;
    k.fn = pair_f32;
    k.workspace = pair_ws;
    t[KN_OP_MSE] = t[KN_OP_BCE_LOGITS] = t[KN_OP_KL_DIV] = k;
}
