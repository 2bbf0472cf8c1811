/* view.c — reshape (a zero-copy alias of its input's buffer in plans) and expand
 * (broadcast to a larger shape, materialised). Both are the building blocks of gradient
 * rules for broadcasting ops. Attributes: none beyond the output shape in the node. */
#include <string.h>

#include "broadcast.h"
#include "op_table.h"

static kn_status reshape_check(kn_graph *g, kn_node *n)
{
    kn_node *x = n->src[0];
    /* the builder stored the requested shape in n->shape/ndim; -1 resolved here */
    int64_t known = 1, numel = kn__numel(x);
    int infer = -1;
    for (int i = 0; i < n->ndim; i++) {
        if (n->shape[i] == -1) {
            if (infer >= 0)
                return kn__fail(g, KN_ERR_ARG, "reshape: more than one -1 in the new shape for input %s", kn__shp(x));
            infer = i;
        } else if (n->shape[i] < 0) {
            return kn__fail(g, KN_ERR_ARG, "reshape: negative size %lld in the new shape", (long long)n->shape[i]);
        } else {
            known *= n->shape[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || numel % known)
            return kn__fail(g, KN_ERR_SHAPE, "reshape: input %s (%lld elements) cannot be split by %s",
                            kn__shp(x), (long long)numel, kn__shp(n));
        n->shape[infer] = numel / known;
        known = numel;
    }
    if (known != numel)
        return kn__fail(g, KN_ERR_SHAPE, "reshape: input %s has %lld elements, new shape %s has %lld",
                        kn__shp(x), (long long)numel, kn__shp(n), (long long)known);
    n->dtype = x->dtype;
    return KN_OK;
}

kn_node *kn_graph_reshape(kn_graph *g, kn_node *x, int ndim, const int64_t *shape)
{
    kn_node *n = kn__node_new(g, KN_OP_RESHAPE, 1, &x);
    if (!n)
        return NULL;
    if (ndim < 0 || ndim > KN_MAX_DIMS || (ndim > 0 && !shape)) {
        kn__fail(g, KN_ERR_ARG, "reshape: %d dimensions requested, expected 0 to %d", ndim, KN_MAX_DIMS);
        g->n_nodes--;
        return NULL;
    }
    kn__set_shape(n, ndim, shape);
    return kn__node_finish(g, n);
}

static kn_status reshape_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0])
        dx[0] = kn_graph_reshape(g, dy, n->src[0]->ndim, n->src[0]->shape);
    return kn_graph_status(g);
}

static double zero_flops(const kn_node *n)
{
    (void)n;
    return 0;
}

/* Plans alias a reshape to its input, so this only runs when called directly. */
static kn_status reshape_ref(const kn__kargs *k)
{
    if (k->dst != k->src[0])
        memmove(k->dst, k->src[0], (size_t)kn__numel(k->node) * sizeof(double));
    return KN_OK;
}

const kn__op_info kn__opdef_RESHAPE = {.check = reshape_check, .grad = reshape_grad, .flops = zero_flops, .ref = reshape_ref};

/* ---- expand ---- */
static kn_status expand_check(kn_graph *g, kn_node *n)
{
    kn_node *x = n->src[0];
    bool ok = n->ndim >= x->ndim;
    for (int i = 0; ok && i < x->ndim; i++) {
        int64_t from = x->shape[i], to = n->shape[i + n->ndim - x->ndim];
        ok = from == to || from == 1;
    }
    for (int i = 0; ok && i < n->ndim; i++)
        ok = n->shape[i] >= 0;
    if (!ok)
        return kn__fail(g, KN_ERR_SHAPE, "expand: input %s cannot broadcast to %s (each input dim, aligned "
                        "from the last, must equal the target or be 1)", kn__shp(x), kn__shp(n));
    n->dtype = x->dtype;
    return KN_OK;
}

kn_node *kn_graph_expand(kn_graph *g, kn_node *x, int ndim, const int64_t *shape)
{
    kn_node *n = kn__node_new(g, KN_OP_EXPAND, 1, &x);
    if (!n)
        return NULL;
    if (ndim < 0 || ndim > KN_MAX_DIMS || (ndim > 0 && !shape)) {
        kn__fail(g, KN_ERR_ARG, "expand: %d dimensions requested, expected 0 to %d", ndim, KN_MAX_DIMS);
        g->n_nodes--;
        return NULL;
    }
    kn__set_shape(n, ndim, shape);
    return kn__node_finish(g, n);
}

static kn_status expand_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0])
        dx[0] = kn__sum_to(g, dy, n->src[0]);
    return kn_graph_status(g);
}

static kn_status expand_ref(const kn__kargs *k)
{
    const kn_node *n = k->node, *x = n->src[0];
    int64_t st[KN_MAX_DIMS];
    kn__broadcast_strides(n->ndim, n->shape, x->ndim, x->shape, st);
    const double *in = k->src[0];
    double *out = k->dst;
    int64_t total = kn__numel(n);
    for (int64_t i = 0; i < total; i++)
        out[i] = in[kn__offset_of(n->ndim, n->shape, st, i)];
    return KN_OK;
}

const kn__op_info kn__opdef_EXPAND = {.check = expand_check, .grad = expand_grad, .flops = zero_flops, .ref = expand_ref};
