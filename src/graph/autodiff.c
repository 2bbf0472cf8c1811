/* autodiff.c — reverse-mode differentiation. backward() walks the graph from a scalar loss
 * in reverse creation order (creation order is topological: inputs exist before their
 * users), asks each op's gradient rule for its inputs' gradients (built from ordinary ops,
 * appended to the same graph) and sums contributions where a value feeds several consumers.
 * It does not run anything: the gradient nodes are compiled and run like any others. */
#include <string.h>

#include "../core/alloc.h"
#include "../core/core_internal.h"
#include "../ops/op_table.h"
#include "graph_internal.h"

kn_node *kn__sum_to(kn_graph *g, kn_node *x, const kn_node *like)
{
    if (!x || kn__same_shape(x, like))
        return x;
    int lead = x->ndim - like->ndim;
    uint32_t axes = 0;
    for (int i = 0; i < x->ndim; i++)
        if (i < lead || (like->shape[i - lead] == 1 && x->shape[i] != 1))
            axes |= 1u << i;
    kn_node *s = axes ? kn_graph_sum(g, x, axes, true) : x;
    return kn_graph_reshape(g, s, like->ndim, like->shape);
}

static kn_node *ones_like(kn_graph *g, const kn_node *like)
{
    kn_node *n = kn_graph_const(g, like->dtype, like->ndim, like->shape, NULL);
    if (n) {
        int64_t k = kn__numel(n);
        for (int64_t i = 0; i < k; i++)
            kn__store_f64(n->const_data, n->dtype, i, 1.0);
    }
    return n;
}

kn_status kn_graph_backward(kn_graph *g, kn_node *loss, kn_node *const *params, int n, kn_node **grads_out)
{
    if (!g)
        return KN_ERR_ARG;
    if (g->status)
        return g->status;
    if (!loss || loss->graph != g || n < 0 || (n > 0 && (!params || !grads_out)))
        return kn__fail(g, KN_ERR_ARG, "backward: a NULL or foreign loss, or a bad parameter list");
    if (kn__numel(loss) != 1)
        return kn__fail(g, KN_ERR_SHAPE, "backward: loss has shape %s, expected a single element",
                        kn__shp(loss));
    if (!kn_dtype_is_float(loss->dtype))
        return kn__fail(g, KN_ERR_DTYPE, "backward: loss has dtype %s, expected a floating type",
                        kn_dtype_name(loss->dtype));
    for (int i = 0; i < n; i++)
        if (!params[i] || params[i]->graph != g)
            return kn__fail(g, KN_ERR_ARG, "backward: parameter %d is NULL or from another graph", i);

    int count = loss->id + 1;
    bool *requires = kn__calloc((size_t)count, sizeof(bool));
    kn_node **grads = kn__calloc((size_t)g->n_nodes, sizeof(kn_node *));
    if (!requires || !grads) {
        kn__free(requires);
        kn__free(grads);
        return kn__fail(g, KN_ERR_OOM, "backward: out of memory");
    }
    for (int i = 0; i < n; i++)
        if (params[i]->id < count)
            requires[params[i]->id] = true;
    for (int id = 0; id < count; id++) {
        kn_node *x = g->nodes[id];
        if (x->op == KN_OP_PARAM && n == 0 && (x->flags & KN_NODE_TRAINABLE))
            requires[id] = true;
        if ((kn__op_flags[x->op] & KN_OPF_NONDIFF) || !kn_dtype_is_float(x->dtype))
            continue;
        for (int s = 0; s < x->nsrc && !requires[id]; s++)
            requires[id] = requires[x->src[s]->id];
    }

    kn_status st = KN_OK;
    int grads_len = g->n_nodes;
    grads[loss->id] = ones_like(g, loss);
    for (int id = loss->id; id >= 0 && g->status == KN_OK; id--) {
        kn_node *x = g->nodes[id];
        kn_node *dy = grads[id];
        const kn__op_info *info = kn__op_table[x->op];
        if (!dy || !requires[id] || (kn__op_flags[x->op] & (KN_OPF_LEAF | KN_OPF_NONDIFF)))
            continue;
        bool need[KN_MAX_SRC] = {0};
        kn_node *dx[KN_MAX_SRC] = {0};
        for (int s = 0; s < x->nsrc; s++)
            need[s] = requires[x->src[s]->id];
        st = info->grad(g, x, dy, dx, need);
        if (st)
            break;
        for (int s = 0; s < x->nsrc; s++) {
            if (!need[s] || !dx[s])
                continue;
            int sid = x->src[s]->id;
            grads[sid] = grads[sid] ? kn_graph_add(g, grads[sid], dx[s]) : dx[s];
        }
    }
    if (g->status)
        st = g->status;
    if (st == KN_OK)
        for (int i = 0; i < n; i++)
            grads_out[i] = grads[params[i]->id];
    kn__free(requires);
    kn__free(g->grads);
    g->grads = st == KN_OK ? grads : NULL;
    g->grads_cap = st == KN_OK ? grads_len : 0;
    if (st)
        kn__free(grads);
    return st;
}

kn_node *kn_graph_grad(kn_graph *g, const kn_node *n)
{
    if (!g || !n || n->graph != g || !g->grads || n->id >= g->grads_cap)
        return NULL;
    return g->grads[n->id];
}
