/* dot.c — writes a compiled plan as Graphviz DOT (`kiln graph`): one line per live node and
 * one per edge, labelled with op, name, shape and dtype and, with memory, where the value
 * lives (arena offset and size, "in place", "view", "folded"); a fused conv/linear is labelled
 * with what it absorbed ("conv2d + batch_norm + relu"), a fused elementwise chain with its ops
 * ("chain mul → sum"); coloured by kind: input,
 * parameter, constant, forward, backward (computed but not needed by the forward nodes),
 * update. A plan compiled with KN_PASS_NONE shows the graph before the passes.
 * Not here: layout or rendering (Graphviz does that: dot -Tsvg). */
#include <stdio.h>
#include <string.h>

#include "../core/alloc.h"
#include "passes.h"

static const char *const colour[] = {"#b3e2cd", "#cbd5e8", "#eeeeee", "#fdcdac", "#f4cae4", "#fff2ae"};
enum { K_INPUT, K_PARAM, K_CONST, K_FORWARD, K_BACKWARD, K_UPDATE };

/* name with quotes and backslashes escaped, cut to fit */
static void escape(char *out, size_t size, const char *s)
{
    size_t k = 0;
    for (; *s && k + 3 < size; s++) {
        if (*s == '"' || *s == '\\')
            out[k++] = '\\';
        out[k++] = (*s == '\n' || *s == '\r') ? ' ' : *s;
    }
    out[k] = 0;
}

static void where(const kn_plan *p, const kn__ir_node *v, char *buf, size_t size)
{
    const kn__ir *ir = kn__plan_ir(p);
    int op = v->node->op;
    if (v->flags & KN__IR_FOLDED)
        snprintf(buf, size, "folded (%zu B)", kn__nbytes(v->node));
    else if (op == KN_OP_PARAM || op == KN_OP_CONST)
        snprintf(buf, size, "%s storage", op == KN_OP_PARAM ? "graph" : "constant");
    else if ((kn__op_flags[op] & KN_OPF_MUTATES) && (kn__op_flags[op] & KN_OPF_ALIAS))
        snprintf(buf, size, "in place (n%d)", ir->nodes[v->src[0]].node->id);
    else if (kn__ir_is_view(v))
        snprintf(buf, size, "view of n%d", ir->nodes[v->src[0]].node->id);
    else if (v->flags & KN__IR_INPLACE)
        snprintf(buf, size, "in place (n%d) @%zu", ir->nodes[v->src[v->inplace_src]].node->id, v->offset);
    else if (v->storage >= 0)
        snprintf(buf, size, "@%zu +%zu B", v->offset, (kn__nbytes(v->node) + 63) & ~(size_t)63);
    else
        buf[0] = 0;
}

kn_status kn__dot_write(const kn_plan *p, FILE *f, bool memory, kn_node *const *forward, int n_forward)
{
    const kn__ir *ir = kn__plan_ir(p);
    const kn__memplan *mp = kn__plan_memplan(p);
    bool *fwd = kn__calloc((size_t)ir->n + 1, sizeof(bool));
    if (!fwd)
        return KN_ERR_OOM;
    for (int k = 0; k < n_forward; k++)
        if (forward[k] && forward[k]->graph == ir->graph && forward[k]->id < ir->n)
            fwd[kn__ir_rep(ir, forward[k]->id)] = true;
    for (int i = ir->n - 1; i >= 0; i--)
        if (fwd[i] && (ir->nodes[i].flags & KN__IR_LIVE) && !(ir->nodes[i].flags & KN__IR_FOLDED))
            for (int s = 0; s < ir->nodes[i].nsrc; s++)
                fwd[ir->nodes[i].src[s]] = true;
    fprintf(f, "digraph kiln {\n");
    fprintf(f, "  // %d nodes live, arena %zu bytes (peak live %zu, without planning %zu)\n", ir->n_live,
            mp->arena_bytes, mp->peak_bytes, mp->naive_bytes);
    fprintf(f, "  // colours: input %s, parameter %s, constant %s, forward %s, backward %s, update %s\n", colour[0],
            colour[1], colour[2], colour[3], colour[4], colour[5]);
    fprintf(f, "  node [shape=box, style=filled, fontname=\"Helvetica\", fontsize=10];\n");
    for (int i = 0; i < ir->n; i++) {
        const kn__ir_node *v = &ir->nodes[i];
        if (!(v->flags & KN__IR_LIVE))
            continue;
        const kn_node *n = v->node;
        int op = n->op, kind;
        if (op == KN_OP_INPUT)
            kind = K_INPUT;
        else if (op == KN_OP_PARAM)
            kind = K_PARAM;
        else if (op == KN_OP_CONST || (v->flags & KN__IR_FOLDED))
            kind = K_CONST;
        else if (kn__op_flags[op] & KN_OPF_UPDATE)
            kind = K_UPDATE;
        else
            kind = fwd[i] || !n_forward ? K_FORWARD : K_BACKWARD;
        char name[160], shape[96], mem[96] = "", opname[320];
        escape(name, sizeof name, n->name);
        if (v->chain)
            opname[0] = 0;
        else if (v->exec) /* "softmax_cross_entropy (was nll_loss)" */
            snprintf(opname, sizeof opname, "%s (was %s)", kn__op_names[v->exec->op], kn__op_names[op]);
        else
            snprintf(opname, sizeof opname, "%s%s%s%s%s", kn__op_names[op], v->fused_bn >= 0 ? " + " : "",
                     v->fused_bn >= 0 ? kn__op_names[ir->nodes[v->fused_bn].node->op] : "",
                     v->fused_act >= 0 ? " + " : "",
                     v->fused_act >= 0 ? kn__op_names[ir->nodes[v->fused_act].node->op] : "");
        for (int k = 0; v->chain && k < v->chain->n_ops; k++) { /* "chain mul → sum" */
            size_t len = strlen(opname);
            snprintf(opname + len, sizeof opname - len, "%s%s", k ? " → " : "chain ",
                     kn__op_names[v->chain->ops[k].node->op]);
        }
        kn__shape_str(n->ndim, n->shape, shape, sizeof shape);
        if (memory)
            where(p, v, mem, sizeof mem);
        fprintf(f, "  n%d [label=\"%s%s%s\\n%s %s%s%s\", fillcolor=\"%s\"%s];\n", n->id, opname,
                name[0] ? " " : "", name, shape, kn_dtype_name(n->dtype), mem[0] ? "\\n" : "", mem, colour[kind],
                (v->flags & KN__IR_OUTPUT) ? ", penwidth=2" : "");
    }
    for (int i = 0; i < ir->n; i++) {
        const kn__ir_node *v = &ir->nodes[i];
        if (!(v->flags & KN__IR_LIVE) || (v->flags & KN__IR_FOLDED))
            continue;
        for (int s = 0; s < v->nsrc; s++)
            fprintf(f, "  n%d -> n%d%s;\n", ir->nodes[v->src[s]].node->id, v->node->id,
                    (v->flags & KN__IR_INPLACE) && s == v->inplace_src ? " [style=bold, color=\"#d95f02\"]" : "");
    }
    fprintf(f, "}\n");
    kn__free(fwd);
    return fflush(f) || ferror(f) ? KN_ERR_IO : KN_OK;
}
