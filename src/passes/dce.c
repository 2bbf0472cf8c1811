/* dce.c — dead-node removal: a node is live exactly when a requested output needs it through
 * the IR's current inputs. The compiler runs it first (that sweep defines which graph nodes a
 * plan contains: the outputs' cone; update nodes run only when listed as outputs) and again
 * after each rewriting pass, which leaves merged duplicates and the insides of folded
 * constant subgraphs unreferenced. Folded nodes are leaves: they need nothing at run time. */
#include "passes.h"

enum { MARK = 1u << 30 }; /* scratch bit, cleared before returning */

int kn__pass_dce(kn__ir *ir)
{
    for (int o = 0; o < ir->n_outputs; o++) {
        int r = kn__ir_rep(ir, ir->outputs[o]);
        if (r >= 0)
            ir->nodes[r].flags |= MARK;
    }
    /* inputs come before their readers, so one backward sweep reaches everything needed */
    for (int i = ir->n - 1; i >= 0; i--) {
        kn__ir_node *v = &ir->nodes[i];
        if (!(v->flags & MARK) || (v->flags & KN__IR_FOLDED))
            continue;
        for (int s = 0; s < v->nsrc; s++)
            ir->nodes[v->src[s]].flags |= MARK;
    }
    int dropped = 0;
    for (int i = 0; i < ir->n; i++) {
        kn__ir_node *v = &ir->nodes[i];
        bool keep = (v->flags & MARK) && v->merged_into < 0;
        if ((v->flags & KN__IR_LIVE) && !keep)
            dropped++;
        v->flags = keep ? (v->flags | KN__IR_LIVE) : (v->flags & ~(uint32_t)KN__IR_LIVE);
        v->flags &= ~(uint32_t)MARK;
    }
    return dropped;
}
