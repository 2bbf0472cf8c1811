/* fuse.c — the fusion pass: an activation (relu, leaky_relu, sigmoid, tanh, gelu, silu) or,
 * in an inference plan, a batch norm that directly follows a conv2d or linear becomes that
 * kernel's epilogue (kn__epilogue, applied to each block of the output right after the GEMM
 * wrote it, see backend/cpu/epilogue.h): one step and one buffer less, and the activation's
 * read and write of the whole tensor disappear. The fused node is marked merged into the
 * conv (like a CSE merge), so its readers and kn_plan_data read the conv's buffer, which now
 * holds the activation's value. Fires only when
 *  - the conv/linear value has no other reader (not an output, no view, no second op),
 *  - the plan runs the conv on a kernel that takes an epilogue (CPU, f32, .epilogue; on a
 *    CUDA plan only linear → relu, which cuBLASLt's RELU_BIAS epilogue computes),
 *  - batch norm: inference plan (a training batch norm uses batch statistics), conv2d only,
 *    nothing that writes parameters between the two, and before any activation (conv → bn
 *    → act fuses both; conv → act → bn only the act).
 * Training: relu's backward is unary_bwd(x, dy), a second reader of the pre-activation x.
 * relu'(x) = [x > 0] = [relu(x) > 0], and likewise for leaky_relu with slope ≥ 0, so the pass
 * first rewires those backward ops to read the activation's output — identical bits — and x
 * keeps one reader (for any x that is a computed intermediate: a conv, or a residual add that
 * then chains with the relu). Activations whose derivative needs x itself (sigmoid, tanh, gelu, silu
 * would need a from-output backward op) fuse in inference plans only.
 * softmax + cross-entropy: the models' loss is already one op each way (SOFTMAX_CE, whose
 * backward SOFTMAX_CE_BWD is one pass over the logits); a graph that spells it as
 * nll_loss(log_softmax(x, last axis), labels) is rewritten into it: the nll step runs the
 * softmax_cross_entropy kernel on x (kn__ir_node.exec), and each log_softmax_bwd(y,
 * nll_loss_bwd(labels, dy)) runs softmax_cross_entropy_bwd(x, labels, dy); log_softmax and
 * nll_loss_bwd disappear. Equal up to rounding (≤ 1e-6 relative in the tests), not bit for
 * bit: the fused kernel computes log-sum-exp once instead of materialising log-probabilities.
 * Then chains of elementwise ops (add, sub, mul, div, pow, neg, exp, log, sqrt, abs, clamp,
 * scale and the activations) become one step run block by block (backend/cpu/chain.c; on a
 * CUDA plan one launch of backend/cuda/chain.cu; there only the rewiring, linear → relu
 * and the chains run): each
 * op after the first is the only reader of the one before, has its shape, and its other input
 * is full-size or one element; a chain may end in a sum or mean over every element (the
 * trainer's Σ g² guard: mul → sum per gradient, then the adds of the partial sums). The last
 * op keeps the step and takes the chain's external inputs as its inputs; the others are
 * no longer live. A chain does not span a node that writes parameters (its inputs are read
 * at the last op's position).
 * Every fused value is bit-identical to the unfused plan's: the epilogue and the chain kernel
 * run the same scalar code as the batch_norm, activation, unary and binary kernels, and sum
 * in reduce.c's order.
 * Not here: folding batch norm into the weights (the epilogue does the same per-channel
 * affine on data already in cache, and needs no recomputation when the parameters change
 * between runs), chains through broadcasts of more than one element. */
#include <string.h>

#include "../core/alloc.h"
#include "passes.h"

static bool live_value(const kn__ir_node *v)
{
    return (v->flags & KN__IR_LIVE) && !(v->flags & KN__IR_FOLDED) && v->merged_into < 0;
}

static bool is_act(int op)
{
    return op == KN_OP_RELU || op == KN_OP_LEAKY_RELU || op == KN_OP_SIGMOID || op == KN_OP_TANH ||
           op == KN_OP_GELU || op == KN_OP_SILU;
}

bool kn__ir_epilogue_ok(const kn__ir *ir, const kn_node *n)
{
    if (ir->backend != KN_BACKEND_CPU || !kn__cpu_supports(n))
        return false;
    const kn__backend_kernel *k = kn__cpu_kernel(n->op);
    return k && k->epilogue;
}

/* A conv2d/linear that can still take an activation in its epilogue. On a CUDA plan (device)
 * only a linear: cuBLASLt applies a ReLU in its epilogue (matmul.cu); cuDNN's convolutions
 * take none of kiln's epilogues. */
static bool head_ok(const kn__ir *ir, int h, bool device)
{
    const kn__ir_node *v = &ir->nodes[h];
    int op = v->node->op;
    return (op == KN_OP_LINEAR || (op == KN_OP_CONV2D && !device)) && (v->flags & KN__IR_LIVE) &&
           !(v->flags & (KN__IR_FOLDED | KN__IR_OUTPUT)) && v->merged_into < 0 && v->fused_act < 0 &&
           kn__ir_epilogue_ok(ir, v->node);
}

/* The backward of act node a may read a's output instead of its input (same bits). */
static bool bwd_from_output(int op, double slope)
{
    return op == KN_OP_RELU || (op == KN_OP_LEAKY_RELU && slope >= 0);
}

/* Whether a live node strictly between positions lo and hi (IR order) writes parameters. */
static bool writes_between(const kn__ir *ir, int lo, int hi)
{
    for (int j = lo + 1; j < hi; j++)
        if ((ir->nodes[j].flags & KN__IR_LIVE) && (kn__op_flags[ir->nodes[j].node->op] & KN_OPF_MUTATES))
            return true;
    return false;
}

/* Training: unary_bwd(x, dy) of relu → unary_bwd(relu(x), dy) when x's readers are then just
 * that relu (so x — a conv, or the last op of an elementwise chain such as a residual add —
 * can fuse with the relu, and dies right after it; relu's output lives on instead, as large). */
static void rewire_backward(kn__ir *ir, int *readers, int *act_of, int *rewirable)
{
    int n = ir->n;
    for (int i = 0; i < n; i++)
        act_of[i] = -1, rewirable[i] = 0;
    for (int i = 0; i < n; i++) {
        const kn__ir_node *v = &ir->nodes[i];
        if (!(v->flags & KN__IR_LIVE) || (v->flags & KN__IR_FOLDED))
            continue;
        const kn_node *nd = v->node;
        if (is_act(nd->op) && bwd_from_output(nd->op, nd->af[0]) && act_of[v->src[0]] < 0)
            act_of[v->src[0]] = i;
    }
    for (int pass = 0; pass < 2; pass++) /* count, then rewire where all of x's other readers go */
        for (int i = 0; i < n; i++) {
            kn__ir_node *v = &ir->nodes[i];
            const kn_node *nd = v->node;
            if (!(v->flags & KN__IR_LIVE) || (v->flags & KN__IR_FOLDED) || nd->op != KN_OP_UNARY_BWD)
                continue;
            int x = v->src[0], a = act_of[x];
            if (a < 0 || a > i || !live_value(&ir->nodes[x]) || (ir->nodes[x].flags & KN__IR_OUTPUT) ||
                ir->nodes[x].node->op == KN_OP_INPUT || ir->nodes[x].node->op == KN_OP_PARAM)
                continue;
            const kn_node *an = ir->nodes[a].node;
            if (nd->ai[0] != an->op || (an->op == KN_OP_LEAKY_RELU && nd->af[0] != an->af[0]))
                continue;
            if (pass == 0) {
                rewirable[x]++;
            } else if (readers[x] - rewirable[x] == 1) {
                v->src[0] = a;
                readers[a]++;
                ir->n_rewired++;
            }
        }
    for (int x = 0; x < n; x++)
        if (rewirable[x] && readers[x] - rewirable[x] == 1)
            readers[x] = 1;
}

/* Makes node i part of head h's kernel: i's readers and outputs read h. */
static void absorb(kn__ir *ir, int *readers, int h, int i)
{
    kn__ir_node *v = &ir->nodes[i], *hv = &ir->nodes[h];
    v->merged_into = h;
    v->flags &= ~(uint32_t)KN__IR_LIVE;
    hv->flags |= KN__IR_FUSED;
    for (int j = i + 1; j < ir->n; j++)
        for (int s = 0; s < ir->nodes[j].nsrc; s++)
            if (ir->nodes[j].src[s] == i)
                ir->nodes[j].src[s] = h;
    for (int o = 0; o < ir->n_outputs; o++)
        if (ir->outputs[o] == i)
            ir->outputs[o] = h;
    if (v->flags & KN__IR_OUTPUT)
        hv->flags |= KN__IR_OUTPUT;
    readers[h] = readers[i];
}

/* ---- log_softmax + nll_loss → softmax_cross_entropy ---- */
/* A plan-owned copy of graph node n running op on srcs (no attributes: neither CE op has any). */
static kn_node *exec_node(const kn_node *n, int op, int nsrc, kn_node *const *src)
{
    kn_node *e = kn__alloc(sizeof *e);
    if (!e)
        return NULL;
    *e = *n;
    e->op = op;
    e->nsrc = nsrc;
    memset(e->src, 0, sizeof e->src);
    for (int s = 0; s < nsrc; s++)
        e->src[s] = src[s];
    memset(e->ai, 0, sizeof e->ai);
    memset(e->af, 0, sizeof e->af);
    return e;
}

static int rewrite_ce(kn__ir *ir, const int *readers)
{
    int done = 0;
    for (int i = 0; i < ir->n; i++) {
        kn__ir_node *v = &ir->nodes[i];
        if (!live_value(v) || v->node->op != KN_OP_NLL || v->exec)
            continue;
        int S = v->src[0], lab = v->src[1];
        kn__ir_node *sv = &ir->nodes[S];
        const kn_node *sn = sv->node;
        if (!live_value(sv) || sn->op != KN_OP_LOG_SOFTMAX || sn->ndim != 2 || sn->ai[0] != 1 ||
            (sv->flags & KN__IR_OUTPUT))
            continue;
        int X = sv->src[0];
        /* every reader of S: this nll, or a log_softmax_bwd(S, nll_loss_bwd(lab, dy)) that is
         * the nll_bwd's only reader */
        int bwd[16], dnll[16], nb = 0, seen = 0;
        bool ok = true;
        for (int j = S + 1; j < ir->n && ok; j++) {
            kn__ir_node *w = &ir->nodes[j];
            int reads = 0;
            for (int t = 0; live_value(w) && t < w->nsrc; t++)
                reads += w->src[t] == S;
            seen += reads;
            if (!reads || j == i)
                continue;
            int d = w->nsrc == 2 ? w->src[1] : -1;
            const kn__ir_node *dv = d >= 0 ? &ir->nodes[d] : NULL;
            ok = w->node->op == KN_OP_LOG_SOFTMAX_BWD && reads == 1 && w->src[0] == S && dv && live_value(dv) &&
                 dv->node->op == KN_OP_NLL_BWD && dv->src[0] == lab && readers[d] == 1 &&
                 !(dv->flags & KN__IR_OUTPUT) && !w->exec && nb < 16;
            if (ok)
                bwd[nb] = j, dnll[nb++] = d;
        }
        if (!ok || seen != readers[S])
            continue;
        kn_node *fsrc[3] = {ir->nodes[X].node, ir->nodes[lab].node, NULL};
        v->exec = exec_node(v->node, KN_OP_SOFTMAX_CE, 2, fsrc);
        if (!v->exec)
            return -KN_ERR_OOM;
        v->src[0] = X;
        for (int k = 0; k < nb; k++) {
            kn__ir_node *w = &ir->nodes[bwd[k]], *dv = &ir->nodes[dnll[k]];
            fsrc[2] = ir->nodes[dv->src[1]].node;
            w->exec = exec_node(w->node, KN_OP_SOFTMAX_CE_BWD, 3, fsrc);
            if (!w->exec)
                return -KN_ERR_OOM;
            w->nsrc = 3;
            w->src[0] = X, w->src[1] = lab, w->src[2] = dv->src[1];
            dv->flags &= ~(uint32_t)KN__IR_LIVE;
        }
        sv->flags &= ~(uint32_t)KN__IR_LIVE;
        done += 1 + nb;
    }
    return done;
}

/* ---- elementwise chains ---- */
static bool ew_ok(const kn__ir *ir, int i)
{
    const kn__ir_node *v = &ir->nodes[i];
    return live_value(v) && !v->chain && !(v->flags & KN__IR_FUSED) && v->node->dtype == KN_F32 &&
           kn__cpu_chain_op_ok(v->node->op);
}

/* Slot of external input x in the chain's inputs (added when new); -1 when full. */
static int slot_of(int *ext, int *n_ext, int x)
{
    for (int k = 0; k < *n_ext; k++)
        if (ext[k] == x)
            return k;
    if (*n_ext == KN_MAX_SRC)
        return -1;
    ext[*n_ext] = x;
    return (*n_ext)++;
}

/* Whether op node r (reading the running value `cur`, or starting a chain when cur < 0) can
 * join: its other inputs f32, of its shape or one element, and slots for them. Fills in[]. */
static bool join(const kn__ir *ir, int r, int cur, int *ext, int *n_ext, signed char *in)
{
    const kn__ir_node *v = &ir->nodes[r];
    int saved = *n_ext;
    for (int s = 0; s < v->nsrc; s++) {
        int x = v->src[s];
        if (x == cur) {
            in[s] = -1;
            continue;
        }
        const kn_node *xn = ir->nodes[x].node;
        int k = -1;
        if (xn->dtype == KN_F32 && (kn__same_shape(xn, v->node) || kn__numel(xn) == 1))
            k = slot_of(ext, n_ext, x);
        if (k < 0) {
            *n_ext = saved;
            return false;
        }
        in[s] = (signed char)k;
    }
    return true;
}

/* The only node reading cur (all of cur's reads), or -1. */
static int sole_reader(const kn__ir *ir, const int *readers, int cur)
{
    if (readers[cur] < 1 || (ir->nodes[cur].flags & KN__IR_OUTPUT))
        return -1;
    for (int j = cur + 1; j < ir->n; j++) {
        const kn__ir_node *v = &ir->nodes[j];
        if (!live_value(v))
            continue;
        int reads = 0;
        for (int s = 0; s < v->nsrc; s++)
            reads += v->src[s] == cur;
        if (reads)
            return reads == readers[cur] ? j : -1;
    }
    return -1;
}

static int form_chains(kn__ir *ir, int *readers)
{
    int fused = 0;
    for (int i = 0; i < ir->n; i++)
        readers[i] = 0;
    for (int i = 0; i < ir->n; i++)
        for (int s = 0; live_value(&ir->nodes[i]) && s < ir->nodes[i].nsrc; s++)
            readers[ir->nodes[i].src[s]]++;
    for (int i = 0; i < ir->n; i++) {
        kn__ir_node *v = &ir->nodes[i];
        if (!ew_ok(ir, i))
            continue;
        int ext[KN_MAX_SRC], n_ext = 0, members[KN__CHAIN_MAX], n = 0;
        signed char in[KN__CHAIN_MAX][2];
        memset(in, -1, sizeof in);
        if (!join(ir, i, -1, ext, &n_ext, in[0]))
            continue;
        members[n++] = i;
        int cur = i;
        while (n < KN__CHAIN_MAX) {
            int r = sole_reader(ir, readers, cur);
            if (r < 0 || writes_between(ir, cur, r))
                break;
            const kn_node *rn = ir->nodes[r].node;
            bool reduce = (rn->op == KN_OP_SUM || rn->op == KN_OP_MEAN) && rn->dtype == KN_F32 &&
                          kn__numel(rn) == 1 && live_value(&ir->nodes[r]);
            if (!reduce && (!ew_ok(ir, r) || !kn__same_shape(rn, ir->nodes[cur].node)))
                break;
            if (!join(ir, r, cur, ext, &n_ext, in[n]))
                break;
            members[n++] = r;
            cur = r;
            if (reduce)
                break;
        }
        if (n < 2)
            continue;
        kn__chain *c = kn__calloc(1, sizeof *c);
        if (!c)
            return -KN_ERR_OOM;
        c->n_ops = n;
        c->numel = kn__numel(v->node);
        for (int k = 0; k < n; k++) {
            c->ops[k].node = ir->nodes[members[k]].node;
            c->ops[k].in[0] = in[k][0];
            c->ops[k].in[1] = in[k][1];
        }
        kn__ir_node *t = &ir->nodes[cur];
        t->chain = c;
        t->nsrc = n_ext;
        for (int k = 0; k < n_ext; k++)
            t->src[k] = ext[k];
        for (int k = 0; k < n - 1; k++)
            ir->nodes[members[k]].flags &= ~(uint32_t)KN__IR_LIVE;
        fused += n - 1;
    }
    return fused;
}

int kn__pass_fuse(kn__ir *ir, bool chains, bool (*device_runs)(const kn_node *n))
{
    const bool device = device_runs != NULL;
    int n = ir->n, fused = 0;
    int *readers = kn__calloc((size_t)n + 1, sizeof(int));
    int *act_of = kn__alloc(sizeof(int) * ((size_t)n + 1));
    int *rewirable = kn__alloc(sizeof(int) * ((size_t)n + 1));
    if (!readers || !act_of || !rewirable) {
        kn__free(readers);
        kn__free(act_of);
        kn__free(rewirable);
        return -KN_ERR_OOM;
    }
    for (int i = 0; i < n; i++) {
        const kn__ir_node *v = &ir->nodes[i];
        if ((v->flags & KN__IR_LIVE) && !(v->flags & KN__IR_FOLDED))
            for (int s = 0; s < v->nsrc; s++)
                readers[v->src[s]]++;
    }
    int rewritten = device ? 0 : rewrite_ce(ir, readers);
    if (rewritten < 0) {
        kn__free(readers);
        kn__free(act_of);
        kn__free(rewirable);
        return rewritten;
    }
    fused += rewritten;
    if (rewritten) { /* readers changed: recount */
        for (int i = 0; i < n; i++)
            readers[i] = 0;
        for (int i = 0; i < n; i++)
            for (int s = 0; live_value(&ir->nodes[i]) && s < ir->nodes[i].nsrc; s++)
                readers[ir->nodes[i].src[s]]++;
    }
    if (ir->training)
        rewire_backward(ir, readers, act_of, rewirable);
    for (int i = 0; i < n; i++) { /* epilogues; on a CUDA plan only linear → relu */
        const kn__ir_node *v = &ir->nodes[i];
        const kn_node *nd = v->node;
        if (!(v->flags & KN__IR_LIVE) || (v->flags & KN__IR_FOLDED) || v->nsrc < 1 || nd->dtype != KN_F32 ||
            (device && nd->op != KN_OP_RELU))
            continue;
        int h = v->src[0];
        if (!head_ok(ir, h, device) || readers[h] != 1 || ir->nodes[h].node->dtype != KN_F32 ||
            (device && (!device_runs(nd) || !device_runs(ir->nodes[h].node))))
            continue;
        kn__ir_node *hv = &ir->nodes[h];
        if (is_act(nd->op)) {
            hv->fused_act = i;
        } else if (nd->op == KN_OP_BATCH_NORM && !ir->training && hv->node->op == KN_OP_CONV2D && hv->fused_bn < 0 &&
                   !writes_between(ir, h, i)) {
            bool f32 = true;
            for (int s = 1; s < v->nsrc; s++)
                f32 = f32 && ir->nodes[v->src[s]].node->dtype == KN_F32;
            if (!f32)
                continue;
            hv->fused_bn = i;
        } else {
            continue;
        }
        absorb(ir, readers, h, i);
        fused++;
    }
    int chained = chains && ir->backend == KN_BACKEND_CPU ? form_chains(ir, readers) : 0;
    if (chained < 0) {
        kn__free(readers);
        kn__free(act_of);
        kn__free(rewirable);
        return chained;
    }
    fused += chained;
    kn__free(readers);
    kn__free(act_of);
    kn__free(rewirable);
    ir->n_fused += fused;
    return fused;
}
