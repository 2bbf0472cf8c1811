/* matmul.c — the matmul family: MATMUL (batched, NumPy-broadcast batch dims, optional
 * transposes) and LINEAR (x·wᵀ + b, PyTorch orientation). Builders, shape checks, gradient
 * rules, FLOP counts and float64 reference kernels. The fast float32 kernels (OpenBLAS) live in
 * src/backend/cpu/matmul.c. Deliberately not here: 1-D (vector) operands — both matmul inputs
 * need ≥ 2 dims; reshape a vector to [1, K] / [K, 1] first — and integer matmul.
 *
 * Attributes:
 *   MATMUL  ai[0] = trans_a (0/1), ai[1] = trans_b (0/1). Inputs (a, b).
 *           op(a) [.., M, K] · op(b) [.., K, N] → [.., M, N], where op() swaps the last two
 *           dims when the flag is set; batch dims (all but the last two) broadcast.
 *   LINEAR  no attributes. Inputs (x [.., in], w [out, in], optional b [out]) → [.., out]. */
#include "matmul_internal.h"

/* ---- shapes --------------------------------------------------------------------------- */

/* M, K of op(a) and K, N of op(b). */
static void mm_dims(const kn_node *n, int64_t *M, int64_t *Ka, int64_t *Kb, int64_t *N)
{
    const kn_node *a = n->src[0], *b = n->src[1];
    int64_t a0 = a->shape[a->ndim - 2], a1 = a->shape[a->ndim - 1];
    int64_t b0 = b->shape[b->ndim - 2], b1 = b->shape[b->ndim - 1];
    *M = n->ai[0] ? a1 : a0;
    *Ka = n->ai[0] ? a0 : a1;
    *Kb = n->ai[1] ? b1 : b0;
    *N = n->ai[1] ? b0 : b1;
}

static kn_status check_matmul(kn_graph *g, kn_node *n)
{
    const kn_node *a = n->src[0], *b = n->src[1];
    kn_status st;
    if ((st = kn__check_float(g, n, 0)) || (st = kn__check_float(g, n, 1)) || (st = kn__check_same_dtype(g, n)))
        return st;
    if (a->ndim < 2 || b->ndim < 2)
        return kn__fail(g, KN_ERR_SHAPE, "matmul: inputs %s and %s, both need at least 2 dimensions (reshape a vector to [1,K] or [K,1])",
                        kn__shp(a), kn__shp(b));
    if ((n->ai[0] != 0 && n->ai[0] != 1) || (n->ai[1] != 0 && n->ai[1] != 1))
        return kn__fail(g, KN_ERR_ARG, "matmul: trans_a %lld, trans_b %lld, each must be 0 or 1",
                        (long long)n->ai[0], (long long)n->ai[1]);
    int64_t M, Ka, Kb, N;
    mm_dims(n, &M, &Ka, &Kb, &N);
    if (Ka != Kb)
        return kn__fail(g, KN_ERR_SHAPE, "matmul: a %s%s and b %s%s: inner dimensions %lld and %lld differ, [..,M,K]·[..,K,N] needs them equal",
                        kn__shp(a), n->ai[0] ? " (transposed)" : "", kn__shp(b), n->ai[1] ? " (transposed)" : "",
                        (long long)Ka, (long long)Kb);
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    int64_t shape[KN_MAX_DIMS];
    for (int i = 0; i < nd - 2; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return kn__fail(g, KN_ERR_SHAPE, "matmul: batch dimensions of a %s and b %s do not broadcast (dim %d: %lld vs %lld)",
                            kn__shp(a), kn__shp(b), i, (long long)da, (long long)db);
        shape[i] = da == 1 ? db : da;
    }
    shape[nd - 2] = M;
    shape[nd - 1] = N;
    n->dtype = a->dtype;
    kn__set_shape(n, nd, shape);
    return KN_OK;
}

static kn_status check_linear(kn_graph *g, kn_node *n)
{
    const kn_node *x = n->src[0], *w = n->src[1];
    kn_status st;
    for (int i = 0; i < n->nsrc; i++)
        if ((st = kn__check_float(g, n, i)))
            return st;
    if ((st = kn__check_same_dtype(g, n)))
        return st;
    if (x->ndim < 1)
        return kn__fail(g, KN_ERR_SHAPE, "linear: input %s needs at least 1 dimension [.., in]", kn__shp(x));
    if (w->ndim != 2)
        return kn__fail(g, KN_ERR_SHAPE, "linear: weight %s must be 2-D [out, in]", kn__shp(w));
    if (w->shape[1] != x->shape[x->ndim - 1])
        return kn__fail(g, KN_ERR_SHAPE, "linear: input %s has %lld features, weight %s expects %lld (weight is [out, in])",
                        kn__shp(x), (long long)x->shape[x->ndim - 1], kn__shp(w), (long long)w->shape[1]);
    if (n->nsrc == 3) {
        const kn_node *b = n->src[2];
        if (b->ndim != 1 || b->shape[0] != w->shape[0])
            return kn__fail(g, KN_ERR_SHAPE, "linear: bias %s does not fit weight %s, expected [%lld]", kn__shp(b),
                            kn__shp(w), (long long)w->shape[0]);
    }
    n->dtype = x->dtype;
    kn__set_shape(n, x->ndim, x->shape);
    n->shape[n->ndim - 1] = w->shape[0];
    return KN_OK;
}

/* ---- builders ------------------------------------------------------------------------- */

kn_node *kn_graph_matmul(kn_graph *g, kn_node *a, kn_node *b, bool trans_a, bool trans_b)
{
    kn_node *src[2] = {a, b};
    kn_node *n = kn__node_new(g, KN_OP_MATMUL, 2, src);
    if (!n)
        return NULL;
    n->ai[0] = trans_a;
    n->ai[1] = trans_b;
    return kn__node_finish(g, n);
}

kn_node *kn_graph_linear(kn_graph *g, kn_node *x, kn_node *w, kn_node *b)
{
    kn_node *src[3] = {x, w, b};
    kn_node *n = kn__node_new(g, KN_OP_LINEAR, b ? 3 : 2, src);
    if (!n)
        return NULL;
    return kn__node_finish(g, n);
}

/* ---- gradients ------------------------------------------------------------------------ */

/* C = op(A)·op(B). With G = dC:
 *   ta tb | dA               | dB
 *   0  0  | G·Bᵀ             | Aᵀ·G
 *   0  1  | G·B              | Gᵀ·A
 *   1  0  | B·Gᵀ             | A·G
 *   1  1  | Bᵀ·Gᵀ            | Gᵀ·Aᵀ
 * each then summed over the batch dims that broadcasting stretched. */
static kn_status grad_matmul(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    kn_node *a = n->src[0], *b = n->src[1];
    bool ta = n->ai[0], tb = n->ai[1];
    if (need[0]) {
        kn_node *d = !ta ? kn_graph_matmul(g, dy, b, false, !tb) : kn_graph_matmul(g, b, dy, tb, true);
        dx[0] = kn__sum_to(g, d, a);
    }
    if (need[1]) {
        kn_node *d = !tb ? kn_graph_matmul(g, a, dy, !ta, false) : kn_graph_matmul(g, dy, a, true, ta);
        dx[1] = kn__sum_to(g, d, b);
    }
    return kn_graph_status(g);
}

/* dx = dy·w, dw = dyᵀ·x and db = Σ dy, with the leading dims flattened into rows. */
static kn_status grad_linear(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    kn_node *x = n->src[0], *w = n->src[1];
    int64_t out = w->shape[0], in = w->shape[1], rows = 1;
    for (int i = 0; i < x->ndim - 1; i++)
        rows *= x->shape[i];
    kn_node *dy2 = kn_graph_reshape(g, dy, 2, (const int64_t[]){rows, out});
    if (need[0]) {
        kn_node *d = kn_graph_matmul(g, dy2, w, false, false);
        dx[0] = kn_graph_reshape(g, d, x->ndim, x->shape);
    }
    if (need[1]) {
        kn_node *x2 = kn_graph_reshape(g, x, 2, (const int64_t[]){rows, in});
        dx[1] = kn_graph_matmul(g, dy2, x2, true, false);
    }
    if (n->nsrc == 3 && need[2])
        dx[2] = kn_graph_sum(g, dy2, 1u, false);
    return kn_graph_status(g);
}

/* ---- FLOPs ---------------------------------------------------------------------------- */

static double flops_matmul(const kn_node *n)
{
    int64_t M, K, Kb, N;
    mm_dims(n, &M, &K, &Kb, &N);
    return 2.0 * (double)kn__numel(n) * (double)K;
}

static double flops_linear(const kn_node *n)
{
    double in = (double)n->src[1]->shape[1];
    return (double)kn__numel(n) * (2.0 * in + (n->nsrc == 3 ? 1.0 : 0.0));
}

/* ---- float64 reference kernels --------------------------------------------------------- */

static kn_status ref_matmul(const kn__kargs *a)
{
    const kn_node *n = a->node;
    const double *A = a->src[0], *B = a->src[1];
    double *C = a->dst;
    int64_t M, K, Kb, N;
    mm_dims(n, &M, &K, &Kb, &N);
    int64_t batch = (M > 0 && N > 0) ? kn__numel(n) / (M * N) : 0;
    bool ta = n->ai[0], tb = n->ai[1];
    for (int64_t bi = 0; bi < batch; bi++) {
        const double *Ab = A + kn__matmul_batch_offset(n, n->src[0], bi);
        const double *Bb = B + kn__matmul_batch_offset(n, n->src[1], bi);
        double *Cb = C + bi * M * N;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (ta ? Ab[k * M + i] : Ab[i * K + k]) * (tb ? Bb[j * K + k] : Bb[k * N + j]);
                Cb[i * N + j] = s;
            }
    }
    return KN_OK;
}

static kn_status ref_linear(const kn__kargs *a)
{
    const kn_node *n = a->node;
    const double *x = a->src[0], *w = a->src[1], *b = n->nsrc == 3 ? a->src[2] : NULL;
    double *y = a->dst;
    int64_t out = n->src[1]->shape[0], in = n->src[1]->shape[1];
    int64_t rows = out ? kn__numel(n) / out : 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int64_t k = 0; k < in; k++)
                s += x[r * in + k] * w[o * in + k];
            y[r * out + o] = s;
        }
    return KN_OK;
}

const kn__op_info kn__opdef_MATMUL = {
    .check = check_matmul, .grad = grad_matmul, .flops = flops_matmul, .ref = ref_matmul};
const kn__op_info kn__opdef_LINEAR = {
    .check = check_linear, .grad = grad_linear, .flops = flops_linear, .ref = ref_linear};
