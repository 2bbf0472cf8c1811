/* inplace.c — in-place reuse: an elementwise op may write its output into the buffer of one
 * of its inputs instead of a fresh one (relu after conv, the adds that sum gradients) when
 *  - its kernels read element i of every input before writing element i (kn__op_inplace_ok:
 *    the CPU kernels in backend/cpu/{binary,unary,activation}.c and the reference kernels
 *    are plain per-element loops; cast and dropout are excluded — their inference/same-dtype
 *    paths are memcpy/kn_convert, which must not overlap),
 *  - that input has the output's shape and dtype (no broadcast read of the overwritten
 *    buffer; another input that broadcasts must live in a different buffer),
 *  - the buffer is an intermediate of this plan (not an input, output, parameter, constant or
 *    folded value), and nobody reads it after this step — through any view of it or any
 *    earlier in-place writer sharing it.
 * The memory planner then gives the node its input's storage. Not here: in-place for ops
 * whose output is smaller than the input (a later pass could place reductions). */
#include "../core/alloc.h"
#include "passes.h"

bool kn__op_inplace_ok(int op)
{
    switch (op) {
    case KN_OP_ADD: case KN_OP_SUB: case KN_OP_MUL: case KN_OP_DIV: case KN_OP_POW:
    case KN_OP_NEG: case KN_OP_EXP: case KN_OP_LOG: case KN_OP_SQRT: case KN_OP_ABS: case KN_OP_CLAMP:
    case KN_OP_SCALE:
    case KN_OP_RELU: case KN_OP_LEAKY_RELU: case KN_OP_SIGMOID: case KN_OP_TANH: case KN_OP_GELU:
    case KN_OP_SILU: case KN_OP_UNARY_BWD:
        return true;
    default:
        return false;
    }
}

int kn__pass_inplace(kn__ir *ir)
{
    int n = ir->n, made = 0;
    int *last = kn__alloc(sizeof(int) * (size_t)(n + 1));
    int *root = kn__alloc(sizeof(int) * (size_t)(n + 1));
    int *rlast = kn__alloc(sizeof(int) * (size_t)(n + 1)); /* per root: last read of anything in it */
    if (!last || !root || !rlast) {
        kn__free(last);
        kn__free(root);
        kn__free(rlast);
        return -KN_ERR_OOM;
    }
    kn__ir_last_use(ir, last);
    for (int i = 0; i < n; i++) {
        kn__ir_node *v = &ir->nodes[i];
        const kn_node *node = v->node;
        int op = node->op;
        root[i] = -1;
        if (!(v->flags & KN__IR_LIVE) || (v->flags & KN__IR_FOLDED) || op == KN_OP_PARAM || op == KN_OP_CONST)
            continue;
        int mine = last[i] > v->pos ? last[i] : v->pos;
        if (kn__op_flags[op] & KN_OPF_ALIAS) { /* views and updates share input 0's storage */
            int r = root[v->src[0]];
            root[i] = r;
            if (r >= 0 && rlast[r] < mine)
                rlast[r] = mine;
            continue;
        }
        int pick = -1;
        bool eligible = op != KN_OP_INPUT && kn__op_inplace_ok(op) && !v->chain; /* a chain step: its own kernel */
        for (int s = 0; s < v->nsrc && pick < 0 && eligible; s++) {
            int j = v->src[s], r = root[j];
            const kn_node *x = ir->nodes[j].node;
            if (r < 0 || ir->nodes[r].node->op == KN_OP_INPUT || rlast[r] > v->pos || x->dtype != node->dtype ||
                !kn__same_shape(x, node))
                continue;
            bool ok = true;
            for (int t = 0; t < v->nsrc && ok; t++)
                ok = t == s || root[v->src[t]] != r || kn__same_shape(ir->nodes[v->src[t]].node, node);
            if (ok)
                pick = s;
        }
        if (pick < 0) {
            root[i] = i;
            rlast[i] = mine;
            continue;
        }
        int r = root[v->src[pick]];
        root[i] = r;
        if (rlast[r] < mine)
            rlast[r] = mine;
        v->flags |= KN__IR_INPLACE;
        v->inplace_src = pick;
        made++;
    }
    kn__free(last);
    kn__free(root);
    kn__free(rlast);
    ir->n_inplace += made;
    return made;
}
