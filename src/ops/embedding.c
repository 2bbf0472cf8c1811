/* embedding.c — table lookup: EMBEDDING(weight [V, D], indices int [...]) → [..., D], and
 * its backward EMBEDDING_BWD(indices, dy [..., D]) → dweight [V, D], a scatter-add of dy's
 * rows into the rows the indices name (repeated indices accumulate). Indices are any integer
 * dtype (i32/i64 usual) and must lie in [0, V): an index outside fails the run with
 * KN_ERR_RANGE naming the index and its position (no negative-index wrap-around).
 * Not here: padding_idx, max_norm renormalisation, sparse gradients, embedding bags.
 *
 * Attributes: EMBEDDING none; EMBEDDING_BWD ai[0] = V (rows of the weight). */
#include "op_table.h"

static kn_status emb_check(kn_graph *g, kn_node *n)
{
    kn_node *w = n->src[0], *idx = n->src[1];
    kn_status st = kn__check_float(g, n, 0);
    if (!st)
        st = kn__check_index(g, n, 1);
    if (st)
        return st;
    if (w->ndim != 2)
        return kn__fail(g, KN_ERR_SHAPE, "embedding: weight has shape %s, expected 2 dimensions [V, D]", kn__shp(w));
    if (idx->ndim + 1 > KN_MAX_DIMS)
        return kn__fail(g, KN_ERR_SHAPE, "embedding: indices %s have %d dimensions, at most %d allowed",
                        kn__shp(idx), idx->ndim, KN_MAX_DIMS - 1);
    n->dtype = w->dtype;
    n->ndim = idx->ndim + 1;
    for (int i = 0; i < idx->ndim; i++)
        n->shape[i] = idx->shape[i];
    n->shape[idx->ndim] = w->shape[1];
    return KN_OK;
}

static kn_status emb_bwd_check(kn_graph *g, kn_node *n)
{
    kn_node *idx = n->src[0], *dy = n->src[1];
    kn_status st = kn__check_index(g, n, 0);
    if (!st)
        st = kn__check_float(g, n, 1);
    if (st)
        return st;
    bool ok = dy->ndim == idx->ndim + 1;
    for (int i = 0; ok && i < idx->ndim; i++)
        ok = dy->shape[i] == idx->shape[i];
    if (!ok)
        return kn__fail(g, KN_ERR_SHAPE,
                        "embedding_bwd: dy has shape %s, expected the indices' shape %s plus a last dim D",
                        kn__shp(dy), kn__shp(idx));
    if (n->ai[0] < 0)
        return kn__fail(g, KN_ERR_ARG, "embedding_bwd: vocabulary size %lld must be >= 0", (long long)n->ai[0]);
    n->dtype = dy->dtype;
    kn__set_shape(n, 2, (const int64_t[]){n->ai[0], dy->shape[dy->ndim - 1]});
    return KN_OK;
}

kn_node *kn_graph_embedding(kn_graph *g, kn_node *weight, kn_node *indices)
{
    kn_node *s[2] = {weight, indices};
    return kn__node_finish(g, kn__node_new(g, KN_OP_EMBEDDING, 2, s));
}

static kn_status emb_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0]) {
        kn_node *s[2] = {n->src[1], dy};
        kn_node *b = kn__node_new(g, KN_OP_EMBEDDING_BWD, 2, s);
        if (b)
            b->ai[0] = n->src[0]->shape[0];
        dx[0] = kn__node_finish(g, b);
    }
    return kn_graph_status(g); /* indices are integers: no gradient */
}

static double emb_flops(const kn_node *n) { (void)n; return 0; } /* a gather: memory only */
static double emb_bwd_flops(const kn_node *n) { return (double)kn__numel(n->src[1]); }

/* ---- reference kernels (float64) ---- */
static kn_status emb_ref(const kn__kargs *a)
{
    const kn_node *n = a->node, *w = n->src[0], *idx = n->src[1];
    int64_t V = w->shape[0], D = w->shape[1], count = kn__numel(idx);
    const double *W = a->src[0];
    double *y = a->dst;
    for (int64_t i = 0; i < count; i++) {
        int64_t r = kn__index_at(a->src[1], idx->dtype, i);
        if (r < 0 || r >= V)
            return kn__kerr(a, "embedding: index %lld at position %lld is outside [0, %lld)", (long long)r,
                            (long long)i, (long long)V);
        for (int64_t j = 0; j < D; j++)
            y[i * D + j] = W[r * D + j];
    }
    return KN_OK;
}

static kn_status emb_bwd_ref(const kn__kargs *a)
{
    const kn_node *n = a->node, *idx = n->src[0];
    int64_t V = n->shape[0], D = n->shape[1], count = kn__numel(idx);
    const double *dy = a->src[1];
    double *dw = a->dst;
    for (int64_t i = 0; i < V * D; i++)
        dw[i] = 0;
    for (int64_t i = 0; i < count; i++) {
        int64_t r = kn__index_at(a->src[0], idx->dtype, i);
        if (r < 0 || r >= V)
            return kn__kerr(a, "embedding_bwd: index %lld at position %lld is outside [0, %lld)", (long long)r,
                            (long long)i, (long long)V);
        for (int64_t j = 0; j < D; j++)
            dw[r * D + j] += dy[i * D + j];
    }
    return KN_OK;
}

const kn__op_info kn__opdef_EMBEDDING = {.check = emb_check, .grad = emb_grad, .flops = emb_flops, .ref = emb_ref};
const kn__op_info kn__opdef_EMBEDDING_BWD = {.check = emb_bwd_check, .flops = emb_bwd_flops, .ref = emb_bwd_ref};
