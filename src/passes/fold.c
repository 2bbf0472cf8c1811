/* fold.c — constant folding. A node whose inputs are all constants (graph constants, folded
 * nodes, or views of those) and whose value is at most KN__FOLD_MAX_BYTES is computed once
 * here and becomes a constant: no step, no arena buffer. It runs the kernel the plan would
 * run for it (the backend's, else the float64 reference through converted copies), so a
 * folded value is bit-identical to the one a run would compute. Never folded: nodes with side
 * effects or randomness (updates, batch norm, dropout), views (they cost nothing), and nodes
 * whose kernel fails here (a bad index in a constant): the run reports those as usual.
 * Not here: dropping the inputs folding made unused (the DCE that follows does). */
#include <string.h>

#include "../core/alloc.h"
#include "passes.h"

static const void *const_addr(const kn__ir *ir, int i)
{
    const kn__ir_node *v = &ir->nodes[i];
    if (v->node->op == KN_OP_CONST)
        return v->node->const_data;
    if (v->flags & KN__IR_FOLDED)
        return v->value;
    if (kn__ir_is_view(v))
        return const_addr(ir, v->src[0]);
    return NULL;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* Runs v's kernel on constant inputs into dst. KN_ERR_OOM, or the kernel's status. */
static kn_status evaluate(kn__ir *ir, const kn__ir_node *v, kn__kernel_fn fn, size_t ws, bool fallback, void *dst)
{
    const kn_node *n = v->node;
    char err[256] = "";
    kn__kargs a = {.node = n, .seed = ir->graph->seed, .training = ir->training, .err = err, .err_size = sizeof err};
    void *copies[KN_MAX_SRC + 1] = {0};
    kn_status st = KN_OK;
    a.work = ws ? kn__alloc(ws) : NULL;
    if (ws && !a.work)
        st = KN_ERR_OOM;
    for (int s = 0; s < v->nsrc && !st; s++) {
        const kn_node *x = n->src[s];
        a.src[s] = (void *)const_addr(ir, v->src[s]);
        if (!fallback || !kn_dtype_is_float(x->dtype))
            continue;
        copies[s] = kn__alloc(max_size((size_t)kn__numel(x) * 8, 1));
        if (!copies[s])
            st = KN_ERR_OOM;
        else
            st = kn_convert(copies[s], KN_F64, a.src[s], x->dtype, kn__numel(x));
        a.src[s] = copies[s];
    }
    a.dst = dst;
    if (!st && fallback && kn_dtype_is_float(n->dtype)) {
        a.dst = copies[KN_MAX_SRC] = kn__alloc(max_size((size_t)kn__numel(n) * 8, 1));
        if (!a.dst)
            st = KN_ERR_OOM;
    }
    if (!st)
        st = fn(&a);
    if (!st && a.dst != dst)
        st = kn_convert(dst, n->dtype, a.dst, KN_F64, kn__numel(n));
    for (int s = 0; s <= KN_MAX_SRC; s++)
        kn__free(copies[s]);
    kn__free(a.work);
    return st;
}

int kn__pass_fold(kn__ir *ir)
{
    int folded = 0;
    for (int i = 0; i < ir->n; i++) {
        kn__ir_node *v = &ir->nodes[i];
        const kn_node *n = v->node;
        if (!(v->flags & KN__IR_LIVE) || (v->flags & KN__IR_FOLDED) || (kn__op_flags[n->op] & KN_OPF_LEAF) ||
            kn__ir_has_effects(v) || kn__ir_is_view(v) || kn__nbytes(n) > KN__FOLD_MAX_BYTES)
            continue;
        bool constant = true;
        for (int s = 0; s < v->nsrc && constant; s++)
            constant = const_addr(ir, v->src[s]) != NULL;
        kn__kernel_fn fn;
        size_t ws;
        bool fallback;
        if (!constant || kn__pick_kernel(n, ir->backend, &fn, &ws, &fallback))
            continue;
        void *value = kn__alloc(max_size(kn__nbytes(n), 1));
        if (!value)
            return -KN_ERR_OOM;
        kn_status st = evaluate(ir, v, fn, ws, fallback, value);
        if (st) {
            kn__free(value);
            if (st == KN_ERR_OOM)
                return -KN_ERR_OOM;
            continue; /* left to run time, which reports the error */
        }
        v->value = value;
        v->flags |= KN__IR_FOLDED;
        folded++;
    }
    ir->n_folded += folded;
    return folded;
}

void kn__ir_drop_dead_values(kn__ir *ir)
{
    for (int i = 0; i < ir->n; i++) {
        kn__ir_node *v = &ir->nodes[i];
        if (v->value && !(v->flags & KN__IR_LIVE)) {
            kn__free(v->value);
            v->value = NULL;
        }
    }
    ir->folded_bytes = 0;
    for (int i = 0; i < ir->n; i++)
        if (ir->nodes[i].value)
            ir->folded_bytes += kn__nbytes(ir->nodes[i].node);
}
