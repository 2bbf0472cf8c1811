/* random.c — dropout, the op whose output depends on a random stream.
 *
 * Attributes:
 *   DROPOUT  af[0] = p in [0, 1), the probability of zeroing an element
 *            ai[0] = RNG key (g->next_key when built), so each dropout node has its own stream
 * In a training plan element i is kept iff kn__u32_to_unit(philox_word(seed, stream, i)) >= p
 * with stream = (key << 32) + step, and kept values are scaled by 1/(1-p); in an inference
 * plan dropout is the identity. The mask is a pure function of (graph seed, key, plan step,
 * index), so every backend and thread count draw the same one and nothing is stored: the
 * gradient is a second dropout node with the same key and p, applied to dy.
 * Not here: other random ops (noise, random crops live in data/), storing masks. */
#include <math.h>
#include <string.h>

#include "../core/philox.h"
#include "op_table.h"

static kn_status dropout_check(kn_graph *g, kn_node *n)
{
    kn_status st = kn__check_float(g, n, 0);
    if (st)
        return st;
    double p = n->af[0];
    if (!(p >= 0.0 && p < 1.0))
        return kn__fail(g, KN_ERR_ARG, "dropout: p = %g on input %s, p must be in [0, 1)", p, kn__shp(n->src[0]));
    n->dtype = n->src[0]->dtype;
    kn__set_shape(n, n->src[0]->ndim, n->src[0]->shape);
    return KN_OK;
}

static kn_node *dropout(kn_graph *g, kn_node *x, double p, int64_t key)
{
    kn_node *n = kn__node_new(g, KN_OP_DROPOUT, 1, &x);
    if (!n)
        return NULL;
    n->af[0] = p;
    n->ai[0] = key;
    return kn__node_finish(g, n);
}

kn_node *kn_graph_dropout(kn_graph *g, kn_node *x, double p)
{
    if (!g)
        return NULL;
    return dropout(g, x, p, (int64_t)(g->next_key++));
}

/* Same key and p: the gradient sees exactly the forward mask (zero where dropped, 1/(1-p)
 * where kept), and is the identity in inference plans like the forward. */
static kn_status dropout_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0])
        dx[0] = dropout(g, dy, n->af[0], n->ai[0]);
    return kn_graph_status(g);
}

static double dropout_flops(const kn_node *n) { return kn__flops_per_elem(n, 1); }

static kn_status dropout_ref(const kn__kargs *k)
{
    const kn_node *n = k->node;
    const double *x = k->src[0];
    double *y = k->dst, p = n->af[0];
    int64_t m = kn__numel(n);
    if (!k->training) {
        memcpy(y, x, (size_t)m * sizeof(double));
        return KN_OK;
    }
    uint64_t stream = ((uint64_t)n->ai[0] << 32) + k->step;
    double scale = 1.0 / (1.0 - p);
    for (int64_t i = 0; i < m; i++) {
        bool keep = kn__u32_to_unit(kn__philox_word(k->seed, stream, (uint64_t)i)) >= p;
        y[i] = keep ? x[i] * scale : 0.0;
    }
    return KN_OK;
}

const kn__op_info kn__opdef_DROPOUT = {
    .check = dropout_check, .grad = dropout_grad, .flops = dropout_flops, .ref = dropout_ref};
