/* cse.c — common-subexpression elimination. Walking the live nodes in order, each node's
 * inputs are first redirected to their kept copies; a node then equal to an earlier live
 * one — same op, dtype, shape, integer and float attributes, and the same inputs — is merged
 * into it (its readers and the outputs use the earlier node). Equal small constants (same
 * dtype, shape and bytes) merge too, which lets expressions built on separate copies of a
 * scalar merge. Never merged: inputs, parameters, MUTATES/UPDATE ops (side effects) and
 * dropout (random). Parameters change when an update or a training batch norm writes them,
 * so an input is compared together with the number of writes its parameter has seen:
 * conv(x, w) before w's update and conv(x, w) after it stay two nodes.
 * Not here: algebraic rewrites (x·1, x+0) or commutativity (a+b vs b+a). */
#include <string.h>

#include "../core/alloc.h"
#include "passes.h"

#define CONST_MAX_BYTES 4096 /* larger constants are compared by node, not by content */

typedef struct cse_state {
    kn__ir *ir;
    int *param_root; /* per node: the parameter whose storage it is or views, else -1 */
    int *writes;     /* per parameter: writes seen so far */
    int *version;    /* per node and input slot: writes of that input's parameter when read */
} cse_state;

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static bool eligible(const kn__ir_node *v)
{
    if (v->node->op == KN_OP_CONST)
        return kn__nbytes(v->node) <= CONST_MAX_BYTES;
    return !kn__ir_has_effects(v) && !(v->flags & KN__IR_FOLDED);
}

static uint64_t hash_node(const cse_state *c, int i)
{
    const kn__ir_node *v = &c->ir->nodes[i];
    const kn_node *n = v->node;
    uint64_t h = 1469598103934665603ull;
    h = mix(h, &n->op, sizeof n->op);
    h = mix(h, &n->dtype, sizeof n->dtype);
    h = mix(h, &n->ndim, sizeof n->ndim);
    h = mix(h, n->shape, sizeof(int64_t) * (size_t)n->ndim);
    h = mix(h, v->src, sizeof(int) * (size_t)v->nsrc);
    h = mix(h, c->version + (size_t)i * KN_MAX_SRC, sizeof(int) * (size_t)v->nsrc);
    h = mix(h, n->ai, sizeof n->ai);
    h = mix(h, n->af, sizeof n->af);
    if (n->op == KN_OP_CONST)
        h = mix(h, n->const_data, kn__nbytes(n));
    return h;
}

static bool same_node(const cse_state *c, int i, int j)
{
    const kn__ir_node *a = &c->ir->nodes[i], *b = &c->ir->nodes[j];
    const kn_node *x = a->node, *y = b->node;
    if (x->op != y->op || x->dtype != y->dtype || x->ndim != y->ndim || a->nsrc != b->nsrc || x->flags != y->flags)
        return false;
    if (memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim) ||
        memcmp(a->src, b->src, sizeof(int) * (size_t)a->nsrc) ||
        memcmp(c->version + (size_t)i * KN_MAX_SRC, c->version + (size_t)j * KN_MAX_SRC,
               sizeof(int) * (size_t)a->nsrc) ||
        memcmp(x->ai, y->ai, sizeof x->ai) || memcmp(x->af, y->af, sizeof x->af))
        return false;
    return x->op != KN_OP_CONST || !memcmp(x->const_data, y->const_data, kn__nbytes(x));
}

int kn__pass_cse(kn__ir *ir)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)ir->n + 1)
        cap *= 2;
    cse_state c = {.ir = ir};
    c.param_root = kn__alloc(sizeof(int) * (size_t)(ir->n + 1));
    c.writes = kn__calloc((size_t)ir->n + 1, sizeof(int));
    c.version = kn__calloc(((size_t)ir->n + 1) * KN_MAX_SRC, sizeof(int));
    int *table = kn__alloc(sizeof(int) * cap);
    if (!c.param_root || !c.writes || !c.version || !table) {
        kn__free(c.param_root);
        kn__free(c.writes);
        kn__free(c.version);
        kn__free(table);
        return -KN_ERR_OOM;
    }
    for (size_t k = 0; k < cap; k++)
        table[k] = -1;
    int merged = 0;
    for (int i = 0; i < ir->n; i++) {
        kn__ir_node *v = &ir->nodes[i];
        c.param_root[i] = -1;
        if (!(v->flags & KN__IR_LIVE))
            continue;
        for (int s = 0; s < v->nsrc; s++) {
            v->src[s] = kn__ir_rep(ir, v->src[s]);
            int r = c.param_root[v->src[s]];
            c.version[(size_t)i * KN_MAX_SRC + s] = r >= 0 ? c.writes[r] : 0;
        }
        unsigned fl = kn__op_flags[v->node->op];
        if (v->node->op == KN_OP_PARAM)
            c.param_root[i] = i;
        else if (fl & KN_OPF_ALIAS)
            c.param_root[i] = c.param_root[v->src[0]];
        if (fl & KN_OPF_MUTATES)
            for (int s = 0; s < v->nsrc; s++)
                if (c.param_root[v->src[s]] >= 0)
                    c.writes[c.param_root[v->src[s]]]++;
        if (!eligible(v))
            continue;
        size_t k = (size_t)hash_node(&c, i) & (cap - 1);
        while (table[k] >= 0 && !same_node(&c, i, table[k]))
            k = (k + 1) & (cap - 1);
        if (table[k] < 0) {
            table[k] = i;
            continue;
        }
        v->merged_into = table[k];
        ir->nodes[table[k]].flags |= v->flags & KN__IR_OUTPUT;
        v->flags &= ~(uint32_t)(KN__IR_LIVE | KN__IR_OUTPUT);
        merged++;
    }
    for (int o = 0; o < ir->n_outputs; o++)
        ir->outputs[o] = kn__ir_rep(ir, ir->outputs[o]);
    kn__free(c.param_root);
    kn__free(c.writes);
    kn__free(c.version);
    kn__free(table);
    ir->n_merged += merged;
    return merged;
}
