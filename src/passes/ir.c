/* ir.c — the plan-level IR every pass works on: built from a graph and its outputs, one entry
 * per graph node in creation (= topological) order; execution positions, last uses, and the
 * kernel choice shared by constant folding and the plan compiler.
 * Not here: the passes themselves (one file each) or the executor (runtime/plan.c). */
#include <stdio.h>
#include <string.h>

#include "../core/alloc.h"
#include "passes.h"

kn_status kn__ir_build(kn__ir *ir, kn_graph *g, kn_node *const *outputs, int n_outputs,
                       kn_backend_kind backend, bool training, char *msg, size_t msg_size)
{
    memset(ir, 0, sizeof *ir);
    ir->graph = g;
    ir->backend = backend;
    ir->training = training;
    int n = ir->n = g->n_nodes;
    ir->nodes = kn__calloc((size_t)(n ? n : 1), sizeof(kn__ir_node));
    ir->outputs = kn__calloc((size_t)(n_outputs ? n_outputs : 1), sizeof(int));
    if (!ir->nodes || !ir->outputs) {
        kn__ir_free(ir);
        snprintf(msg, msg_size, "plan: out of memory for %d nodes", n);
        return KN_ERR_OOM;
    }
    for (int i = 0; i < n; i++) {
        kn__ir_node *v = &ir->nodes[i];
        kn_node *node = g->nodes[i];
        v->node = node;
        v->nsrc = node->nsrc;
        for (int s = 0; s < node->nsrc; s++)
            v->src[s] = node->src[s]->id;
        v->flags = KN__IR_LIVE;
        v->merged_into = -1;
        v->inplace_src = -1;
        v->fused_bn = v->fused_act = -1;
        v->pos = -1;
        v->storage = -1;
    }
    for (int i = 0; i < n_outputs; i++) {
        if (!outputs[i] || outputs[i]->graph != g || outputs[i]->id >= n) {
            kn__ir_free(ir);
            snprintf(msg, msg_size, "plan: output %d is NULL or from another graph", i);
            return KN_ERR_ARG;
        }
        ir->outputs[i] = outputs[i]->id;
        ir->nodes[outputs[i]->id].flags |= KN__IR_OUTPUT;
    }
    ir->n_outputs = n_outputs;
    return KN_OK;
}

void kn__ir_free(kn__ir *ir)
{
    if (!ir)
        return;
    for (int i = 0; ir->nodes && i < ir->n; i++) {
        kn__free(ir->nodes[i].value);
        kn__free(ir->nodes[i].chain);
        kn__free(ir->nodes[i].exec);
    }
    kn__free(ir->nodes);
    kn__free(ir->outputs);
    ir->nodes = NULL;
    ir->outputs = NULL;
    ir->n = ir->n_outputs = 0;
}

int kn__ir_rep(const kn__ir *ir, int i)
{
    while (i >= 0 && ir->nodes[i].merged_into >= 0)
        i = ir->nodes[i].merged_into;
    return i;
}

bool kn__ir_is_view(const kn__ir_node *v)
{
    unsigned fl = kn__op_flags[v->node->op];
    return (fl & KN_OPF_ALIAS) && !(fl & KN_OPF_MUTATES);
}

bool kn__ir_has_effects(const kn__ir_node *v)
{
    int op = v->node->op;
    unsigned fl = kn__op_flags[op];
    return op == KN_OP_INPUT || op == KN_OP_PARAM || op == KN_OP_DROPOUT ||
           (fl & (KN_OPF_MUTATES | KN_OPF_UPDATE));
}

void kn__ir_schedule(kn__ir *ir)
{
    int pos = 0;
    for (int i = 0; i < ir->n; i++)
        ir->nodes[i].pos = (ir->nodes[i].flags & KN__IR_LIVE) ? pos++ : -1;
    ir->n_live = pos;
}

void kn__ir_last_use(const kn__ir *ir, int *last)
{
    for (int i = 0; i < ir->n; i++) {
        const kn__ir_node *v = &ir->nodes[i];
        bool pinned = (v->flags & KN__IR_LIVE) && ((v->flags & KN__IR_OUTPUT) || v->node->op == KN_OP_INPUT);
        last[i] = pinned ? ir->n_live : -1;
    }
    /* readers come later in creation order, so a reverse sweep sees a view's last use final */
    for (int i = ir->n - 1; i >= 0; i--) {
        const kn__ir_node *v = &ir->nodes[i];
        if (!(v->flags & KN__IR_LIVE) || (v->flags & KN__IR_FOLDED))
            continue;
        int r = kn__ir_is_view(v) && last[i] > v->pos ? last[i] : v->pos;
        for (int s = 0; s < v->nsrc; s++)
            if (last[v->src[s]] < r)
                last[v->src[s]] = r;
    }
}

static bool is_f64_ready(const kn_node *n)
{
    if (kn_dtype_is_float(n->dtype) && n->dtype != KN_F64)
        return false;
    for (int i = 0; i < n->nsrc; i++)
        if (kn_dtype_is_float(n->src[i]->dtype) && n->src[i]->dtype != KN_F64)
            return false;
    return true;
}

kn_status kn__pick_kernel(const kn_node *n, kn_backend_kind backend, kn__kernel_fn *fn, size_t *workspace,
                          bool *fallback)
{
    const kn__backend_kernel *k = NULL;
    if (backend == KN_BACKEND_CPU && kn__cpu_supports(n))
        k = kn__cpu_kernel(n->op);
    if (k) {
        *fn = k->fn;
        *workspace = k->workspace ? k->workspace(n) : 0;
        *fallback = false;
    } else {
        const kn__op_info *info = kn__op_table[n->op];
        *fn = info->ref;
        *workspace = info->ref_workspace ? info->ref_workspace(n) : 0;
        *fallback = !is_f64_ready(n);
    }
    return *fn ? KN_OK : KN_ERR_UNSUPPORTED;
}

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

size_t kn__fallback_copy_bytes(const kn_node *n)
{
    size_t b = 0;
    for (int i = 0; i < n->nsrc; i++)
        if (kn_dtype_is_float(n->src[i]->dtype))
            b += align64((size_t)kn__numel(n->src[i]) * 8 + 1);
    if (kn_dtype_is_float(n->dtype))
        b += align64((size_t)kn__numel(n) * 8 + 1);
    return b;
}
