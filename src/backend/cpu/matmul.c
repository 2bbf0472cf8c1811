/* matmul.c (CPU) — float32 MATMUL and LINEAR on kn__sgemm (sgemm.c: oneDNN, BLIS or OpenBLAS per
 * shape, threaded by splitting C). Batched matmul loops over the output's batch (broadcast
 * inputs are re-read, never copied); a matmul whose b has no batch and whose a is not
 * transposed folds a's batch into M for one big GEMM. Deliberately not here:
 * own GEMM micro-kernels, other dtypes (f64/f16 fall back to the reference). */
#include <limits.h>
#include <string.h>

#include "../../ops/matmul_internal.h"
#include "../backend.h"
#include "sgemm.h"
#include "epilogue.h"

static int64_t batch_numel(const kn_node *t)
{
    int64_t k = 1;
    for (int i = 0; i < t->ndim - 2; i++)
        k *= t->shape[i];
    return k;
}

static kn_status matmul_f32(const kn__kargs *a)
{
    const kn_node *n = a->node, *na = n->src[0], *nb = n->src[1];
    const float *A = a->src[0], *B = a->src[1];
    float *C = a->dst;
    bool ta = n->ai[0], tb = n->ai[1];
    int64_t M = n->shape[n->ndim - 2], N = n->shape[n->ndim - 1];
    int64_t K = ta ? na->shape[na->ndim - 2] : na->shape[na->ndim - 1];
    int64_t total = kn__numel(n);
    if (total == 0)
        return KN_OK;
    if (K == 0) {
        memset(C, 0, (size_t)total * sizeof(float));
        return KN_OK;
    }
    int64_t batch = total / (M * N);
    int64_t lda = ta ? M : K, ldb = tb ? K : N;
    if (!ta && batch_numel(nb) == 1 && batch_numel(na) == batch) {
        /* a [batch·M, K] · b [K, N]: one GEMM */
        kn__sgemm(ta, tb, batch * M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
        return KN_OK;
    }
    for (int64_t bi = 0; bi < batch; bi++)
        kn__sgemm(ta, tb, M, N, K, 1.0f, A + kn__matmul_batch_offset(n, na, bi), lda,
                  B + kn__matmul_batch_offset(n, nb, bi), ldb, 0.0f, C + bi * M * N, N);
    return KN_OK;
}

/* The fused activation (kn__kargs.epi, no batch norm: the fusion pass folds batch norm into
 * convolutions only) over y [rows, out], row blocks over threads. */
static void epilogue(const kn__epilogue *e, float *y, int64_t rows, int64_t out)
{
    if (!e)
        return;
#pragma omp parallel for schedule(static) if (rows * out > 65536)
    for (int64_t r = 0; r < rows; r++)
        kn__epi_apply(e, y + r * out, -1, out);
}

/* y [rows, out] = x [rows, in] · w [out, in]ᵀ + b: the bias is written first, GEMM adds. */
static kn_status linear_f32(const kn__kargs *a)
{
    const kn_node *n = a->node;
    const float *x = a->src[0], *w = a->src[1], *b = n->nsrc == 3 ? a->src[2] : NULL;
    float *y = a->dst;
    int64_t out = n->src[1]->shape[0], in = n->src[1]->shape[1];
    int64_t total = kn__numel(n);
    if (total == 0)
        return KN_OK;
    int64_t rows = total / out;
    if (b) {
#pragma omp parallel for if (total > 65536)
        for (int64_t r = 0; r < rows; r++)
            memcpy(y + r * out, b, (size_t)out * sizeof(float));
    }
    if (in == 0) {
        if (!b)
            memset(y, 0, (size_t)total * sizeof(float));
        epilogue(a->epi, y, rows, out);
        return KN_OK;
    }
    kn__sgemm(false, true, rows, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, out);
    epilogue(a->epi, y, rows, out);
    return KN_OK;
}

static bool all_f32(const kn_node *n)
{
    if (n->dtype != KN_F32)
        return false;
    for (int i = 0; i < n->nsrc; i++)
        if (n->src[i]->dtype != KN_F32)
            return false;
    return true;
}

/* f32, and every GEMM dimension (including a folded batch·M) fits BLAS's int. */
static bool matmul_supports(const kn_node *n)
{
    if (!all_f32(n))
        return false;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < n->src[s]->ndim; i++)
            if (n->src[s]->shape[i] > INT_MAX)
                return false;
    int64_t rows = batch_numel(n) * n->shape[n->ndim - 2];
    return rows <= INT_MAX;
}

static bool linear_supports(const kn_node *n)
{
    if (!all_f32(n))
        return false;
    int64_t out = n->shape[n->ndim - 1];
    return out <= INT_MAX && n->src[1]->shape[1] <= INT_MAX && (out == 0 || kn__numel(n) / out <= INT_MAX);
}

void kn__cpu_register_matmul(kn__backend_kernel *t)
{
    t[KN_OP_MATMUL] = (kn__backend_kernel){.fn = matmul_f32, .supports = matmul_supports};
    t[KN_OP_LINEAR] = (kn__backend_kernel){.fn = linear_f32, .supports = linear_supports, .epilogue = true};
}
