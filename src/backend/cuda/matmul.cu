/* matmul.cu — matmul (batched, broadcast batch dims, optional transposes) and linear
 * (x·wᵀ + b, the bias fused as a cuBLASLt epilogue) through cuBLASLt, for f32, bf16 and f16
 * tensors. Row-major C = op(A)·op(B) is computed as the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ,
 * which reads the row-major buffers as they are. f32 tensors: FP32 exact by default
 * (CUBLAS_COMPUTE_32F), TF32 or BF16 tensor cores when ctx->math says so; bf16/f16 tensors
 * accumulate in f32. Batch dims that broadcast linearly (an operand shared by every batch or
 * strided evenly) become one strided-batched call; any other broadcast pattern one call per
 * batch. With ctx->deterministic the split-K reductions are turned off.
 * The heuristic's algorithm is picked once per node and geometry and kept in the plan's
 * kn__cuda_algo_cache (reused by later runs and by the CUDA-graph capture).
 * A linear whose ReLU the fusion pass fused (kn__kargs.epi, act = relu, no batch norm) gets
 * cuBLASLt's RELU_BIAS (or RELU) epilogue: one launch, and the pre-activation is never
 * stored. Not here: other activations (cuBLASLt's GELU is the tanh form, not kiln's), the
 * backward's DRELU epilogues. */
#include <cublasLt.h>

#include "cuda_kern_util.cuh"

extern "C" {
#include "ops/activation_math.h"
#include "ops/matmul_internal.h"
}

static kn_status lt_check(const kn__kargs *a, cublasStatus_t st, const char *what)
{
    if (st == CUBLAS_STATUS_SUCCESS)
        return KN_OK;
    char buf[384];
    snprintf(buf, sizeof buf, "%s failed: %s (%s)", what, cublasLtGetStatusName(st), cublasLtGetStatusString(st));
    return kn__cu_fail(a,
                       st == CUBLAS_STATUS_ALLOC_FAILED     ? KN_ERR_OOM
                       : st == CUBLAS_STATUS_NOT_SUPPORTED ? KN_ERR_UNSUPPORTED
                                                           : KN_ERR_DEVICE,
                       buf);
}

/* A column-major problem D[m×n] = op(X)[m×k] · op(Y)[k×n] (+ bias[m] per row of D),
 * `batch` times with element strides sx, sy, sd between the matrices. */
struct gemm {
    int64_t m, n, k;
    bool tx, ty;
    const char *X, *Y;
    char *D;
    int64_t ldx, ldy, ldd;
    int64_t sx, sy, sd;
    int64_t batch;
    const void *bias;
    bool relu; /* ReLU after the bias, in the epilogue */
};

static cudaDataType_t lt_dtype(kn_dtype dt)
{
    return dt == KN_BF16 ? CUDA_R_16BF : dt == KN_F16 ? CUDA_R_16F : CUDA_R_32F;
}

static cublasComputeType_t lt_compute(const kn__cuda_ctx *ctx, kn_dtype dt)
{
    if (dt != KN_F32)
        return CUBLAS_COMPUTE_32F;
    switch (ctx->math) {
    case KN_CUDA_MATH_TF32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case KN_CUDA_MATH_BF16: return CUBLAS_COMPUTE_32F_FAST_16BF;
    default: return CUBLAS_COMPUTE_32F;
    }
}

static kn_status layout(const kn__kargs *a, cublasLtMatrixLayout_t *l, cudaDataType_t t, int64_t rows, int64_t cols,
                        int64_t ld, int64_t batch, int64_t stride)
{
    kn_status st = lt_check(a, cublasLtMatrixLayoutCreate(l, t, (uint64_t)rows, (uint64_t)cols, ld),
                            "cublasLtMatrixLayoutCreate");
    if (st || batch == 1)
        return st;
    int32_t b = (int32_t)batch;
    st = lt_check(a, cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &b, sizeof b),
                  "cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)");
    if (!st)
        st = lt_check(a,
                      cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                       sizeof stride),
                      "cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)");
    return st;
}

/* Largest power of two (≤ 256) dividing the address of every matrix: p, p + stride, ... */
static uint32_t align_of(const void *p, size_t stride_bytes, int64_t batch)
{
    uintptr_t bits = (uintptr_t)p | (batch > 1 ? (uintptr_t)stride_bytes : 0) | 256;
    return (uint32_t)(bits & (~bits + 1));
}

static kn_status run_gemm(const kn__kargs *a, const kn__cuda_ctx *ctx, kn_dtype dt, const gemm *g)
{
    if (g->batch > INT32_MAX)
        return kn__cu_fail(a, KN_ERR_UNSUPPORTED, "more than 2^31 batches");
    cudaDataType_t t = lt_dtype(dt);
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t lx = NULL, ly = NULL, ld = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    kn_status st = lt_check(a, cublasLtMatmulDescCreate(&op, lt_compute(ctx, dt), CUDA_R_32F),
                            "cublasLtMatmulDescCreate");
    cublasOperation_t ox = g->tx ? CUBLAS_OP_T : CUBLAS_OP_N, oy = g->ty ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (!st)
        st = lt_check(a, cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ox, sizeof ox),
                      "cublasLtMatmulDescSetAttribute(TRANSA)");
    if (!st)
        st = lt_check(a, cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &oy, sizeof oy),
                      "cublasLtMatmulDescSetAttribute(TRANSB)");
    if (!st && (g->bias || g->relu)) {
        cublasLtEpilogue_t epi = g->relu ? (g->bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU)
                                         : CUBLASLT_EPILOGUE_BIAS;
        st = lt_check(a, cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
                      "cublasLtMatmulDescSetAttribute(EPILOGUE)");
        if (!st && g->bias)
            st = lt_check(a,
                          cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias,
                                                         sizeof g->bias),
                          "cublasLtMatmulDescSetAttribute(BIAS_POINTER)");
    }
    if (!st)
        st = layout(a, &lx, t, g->tx ? g->k : g->m, g->tx ? g->m : g->k, g->ldx, g->batch, g->sx);
    if (!st)
        st = layout(a, &ly, t, g->ty ? g->n : g->k, g->ty ? g->k : g->n, g->ldy, g->batch, g->sy);
    if (!st)
        st = layout(a, &ld, t, g->m, g->n, g->ldd, g->batch, g->sd);
    /* the heuristic assumes 256-byte aligned matrices unless told otherwise: give it the real
     * alignment of each operand (and of every matrix of a strided batch) */
    size_t es = kn_dtype_size(dt);
    uint32_t al[3] = {align_of(g->X, g->sx * es, g->batch), align_of(g->Y, g->sy * es, g->batch),
                      align_of(g->D, g->sd * es, g->batch)};
    /* the node's algorithm for this geometry: asked once, then from the plan's cache */
    const int64_t geom[16] = {g->m, g->n, g->k, g->tx, g->ty, g->ldx, g->ldy, g->ldd, g->sx, g->sy, g->sd, g->batch,
                              (g->bias != NULL) | g->relu << 1, dt, (int64_t)al[0] | (int64_t)al[1] << 16, al[2]};
    const uint64_t key = kn__cu_geometry(geom, 16);
    bool hit = false;
    kn__cuda_algo *slot = st ? NULL : kn__cu_algo_slot(ctx, a->node, KN_CUDA_ALGO_GEMM, key, &hit);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    static_assert(sizeof res.algo <= sizeof slot->blob, "cublasLtMatmulAlgo_t fits the cache slot");
    uint64_t wsb = ctx->gemm_workspace ? (uint64_t)ctx->gemm_workspace_bytes : 0;
    if (hit) {
        memcpy(&res.algo, slot->blob, sizeof res.algo);
        found = 1;
    } else if (!st) {
        st = lt_check(a, cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
        if (!st)
            st = lt_check(a,
                          cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb,
                                                               sizeof wsb),
                          "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
        static const cublasLtMatmulPreferenceAttributes_t al_attr[4] = {
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
        for (int i = 0; i < 4 && !st; i++)
            st = lt_check(a,
                          cublasLtMatmulPreferenceSetAttribute(pref, al_attr[i], &al[i < 3 ? i : 2], sizeof al[0]),
                          "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)");
        if (!st && ctx->deterministic) {
            uint32_t mask = CUBLASLT_REDUCTION_SCHEME_NONE;
            st = lt_check(a,
                          cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                                               &mask, sizeof mask),
                          "cublasLtMatmulPreferenceSetAttribute(REDUCTION_SCHEME_MASK)");
        }
        if (!st)
            st = lt_check(a, cublasLtMatmulAlgoGetHeuristic(ctx->lt, op, lx, ly, ld, ld, pref, 1, &res, &found),
                          "cublasLtMatmulAlgoGetHeuristic");
        if (!st && found >= 1 && slot) {
            slot->node = a->node;
            slot->kind = KN_CUDA_ALGO_GEMM;
            slot->geometry = key;
            memcpy(slot->blob, &res.algo, sizeof res.algo);
        }
    }
    if (!st && found < 1) {
        char buf[256];
        snprintf(buf, sizeof buf, "cuBLASLt has no algorithm for %s m=%lld n=%lld k=%lld batch=%lld%s%s",
                 kn_dtype_name(dt), (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch,
                 g->bias ? " with bias" : "", g->relu ? " and relu" : "");
        st = kn__cu_fail(a, KN_ERR_UNSUPPORTED, buf);
    }
    if (!st) {
        const float alpha = 1.0f, beta = 0.0f;
        st = lt_check(a,
                      cublasLtMatmul(ctx->lt, op, &alpha, g->X, lx, g->Y, ly, &beta, g->D, ld, g->D, ld, &res.algo,
                                     ctx->gemm_workspace, wsb, ctx->stream),
                      "cublasLtMatmul");
    }
    /* destroy whatever was created, keeping the first error */
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    if (ld)
        cublasLtMatrixLayoutDestroy(ld);
    if (ly)
        cublasLtMatrixLayoutDestroy(ly);
    if (lx)
        cublasLtMatrixLayoutDestroy(lx);
    if (op)
        cublasLtMatmulDescDestroy(op);
    return st;
}

/* D = 0 (+ bias per row of the column-major D, i.e. per output feature): the K = 0 case. */
template <typename T>
__global__ void fill_bias_kernel(int64_t total, int64_t m, const T *__restrict__ bias, T *__restrict__ d)
{
    KN_CU_GRID_LOOP(i, total)
    d[i] = bias ? bias[i % m] : T(0);
}

/* f32 with a fused ReLU: relu(bias), the activation kernel's kn__relu_f32. */
__global__ void fill_bias_relu_kernel(int64_t total, int64_t m, const float *__restrict__ bias, float *__restrict__ d)
{
    KN_CU_GRID_LOOP(i, total)
    d[i] = kn__relu_f32(bias[i % m], 0.0f, 0.0f);
}

static kn_status zero_or_bias(const kn__kargs *a, const kn__cuda_ctx *ctx, kn_dtype dt, int64_t total, int64_t m,
                              const void *bias, bool relu)
{
    if (total == 0)
        return KN_OK;
    if (bias && relu) {
        fill_bias_relu_kernel<<<kn__cu_blocks(ctx, total, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
            total, m, (const float *)bias, (float *)a->dst);
        return KN_CU_LAUNCHED(a, "fill_bias_relu_kernel");
    }
    if (!bias)
        return kn__cu_check(a, cudaMemsetAsync(a->dst, 0, (size_t)total * kn_dtype_size(dt), ctx->stream),
                            "cudaMemsetAsync (K = 0)");
    unsigned blocks = kn__cu_blocks(ctx, total, KN_CU_THREADS);
    if (dt == KN_F32)
        fill_bias_kernel<float><<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(total, m, (const float *)bias,
                                                                           (float *)a->dst);
    else /* bf16/f16: copy the 16-bit patterns */
        fill_bias_kernel<uint16_t><<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(total, m, (const uint16_t *)bias,
                                                                              (uint16_t *)a->dst);
    return KN_CU_LAUNCHED(a, "fill_bias_kernel");
}

static kn_status matmul_lt(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node, *A = n->src[0], *B = n->src[1];
    bool ta = n->ai[0], tb = n->ai[1];
    int64_t M = n->shape[n->ndim - 2], N = n->shape[n->ndim - 1];
    int64_t K = ta ? A->shape[A->ndim - 2] : A->shape[A->ndim - 1];
    int64_t batch = (M > 0 && N > 0) ? kn__numel(n) / (M * N) : 0;
    kn_dtype dt = n->dtype;
    size_t es = kn_dtype_size(dt);
    if (batch == 0)
        return KN_OK;
    if (K == 0)
        return zero_or_bias(a, ctx, dt, kn__numel(n), N, NULL, false);
    /* linear batch offsets? off(bi) = bi·off(1) for every bi */
    int64_t sa = batch > 1 ? kn__matmul_batch_offset(n, A, 1) : 0;
    int64_t sb = batch > 1 ? kn__matmul_batch_offset(n, B, 1) : 0;
    bool linear = true;
    for (int64_t bi = 2; bi < batch && linear; bi++)
        linear = kn__matmul_batch_offset(n, A, bi) == bi * sa && kn__matmul_batch_offset(n, B, bi) == bi * sb;
    gemm g;
    g.m = N;
    g.n = M;
    g.k = K;
    g.tx = tb;
    g.ty = ta;
    g.ldx = tb ? K : N;
    g.ldy = ta ? M : K;
    g.ldd = N;
    g.sx = sb;
    g.sy = sa;
    g.sd = M * N;
    g.bias = NULL;
    g.relu = false;
    if (linear) {
        g.X = (const char *)a->src[1];
        g.Y = (const char *)a->src[0];
        g.D = (char *)a->dst;
        g.batch = batch;
        return run_gemm(a, ctx, dt, &g);
    }
    g.batch = 1;
    for (int64_t bi = 0; bi < batch; bi++) {
        g.X = (const char *)a->src[1] + (size_t)kn__matmul_batch_offset(n, B, bi) * es;
        g.Y = (const char *)a->src[0] + (size_t)kn__matmul_batch_offset(n, A, bi) * es;
        g.D = (char *)a->dst + (size_t)(bi * M * N) * es;
        kn_status st = run_gemm(a, ctx, dt, &g);
        if (st)
            return st;
    }
    return KN_OK;
}

/* y [rows, out] = x [rows, in] · w [out, in]ᵀ + b [out] */
static kn_status linear_lt(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t out = n->src[1]->shape[0], in = n->src[1]->shape[1];
    int64_t rows = out ? kn__numel(n) / out : 0;
    const void *bias = n->nsrc == 3 ? a->src[2] : NULL;
    const kn__epilogue *e = a->epi;
    if (e && (e->bn_gamma || (e->act != KN_OP_RELU && e->act >= 0) || n->dtype != KN_F32))
        return kn__cu_fail(a, KN_ERR_UNSUPPORTED, "the only epilogue on the GPU is an f32 relu (a fusion-pass bug)");
    const bool relu = e && e->act == KN_OP_RELU;
    if (rows == 0 || out == 0)
        return KN_OK;
    if (in == 0)
        return zero_or_bias(a, ctx, n->dtype, rows * out, out, bias, relu);
    gemm g;
    g.m = out;
    g.n = rows;
    g.k = in;
    g.tx = true; /* w [out, in] row-major is wᵀ column-major: transpose back */
    g.ty = false;
    g.X = (const char *)a->src[1];
    g.Y = (const char *)a->src[0];
    g.D = (char *)a->dst;
    g.ldx = in;
    g.ldy = in;
    g.ldd = out;
    g.sx = g.sy = g.sd = 0;
    g.batch = 1;
    g.bias = bias;
    g.relu = relu;
    return run_gemm(a, ctx, n->dtype, &g);
}

/* f32, bf16 or f16, every input and the output alike. */
static bool gemm_supports(const kn_node *n)
{
    if (n->dtype != KN_F32 && n->dtype != KN_BF16 && n->dtype != KN_F16)
        return false;
    for (int i = 0; i < n->nsrc; i++)
        if (n->src[i]->dtype != n->dtype)
            return false;
    return true;
}

extern "C" void kn__cuda_register_matmul(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.supports = gemm_supports;
    k.fn = matmul_lt;
    t[KN_OP_MATMUL] = k;
    k.fn = linear_lt;
    t[KN_OP_LINEAR] = k;
}
