/* fuse.c — the fusion pass: an activation (relu, leaky_relu, sigmoid, tanh, gelu, silu) or,
 * in an inference plan, a batch norm that directly follows a conv2d or linear becomes that
 * kernel's epilogue (kn__epilogue, applied to each block of the output right after the GEMM
 * wrote it, see backend/cpu/epilogue.h): one step and one buffer less, and the activation's
 * read and write of the whole tensor disappear. The fused node is marked merged into the
 * conv (like a CSE merge), so its readers and kn_plan_data read the conv's buffer, which now
 * holds the activation's value. Fires only when
 *  - the conv/linear value has no other reader (not an output, no view, no second op),
 *  - the plan runs the conv on a kernel that takes an epilogue (CPU, f32, .epilogue),
 *  - batch norm: inference plan (a training batch norm uses batch statistics), conv2d only,
 *    nothing that writes parameters between the two, and before any activation (conv → bn
 *    → act fuses both; conv → act → bn only the act).
 * Training: relu's backward is unary_bwd(x, dy), a second reader of the pre-activation x.
 * relu'(x) = [x > 0] = [relu(x) > 0], and likewise for leaky_relu with slope ≥ 0, so the pass
 * first rewires those backward ops to read the activation's output — identical bits — and x
 * keeps one reader. Activations whose derivative needs x itself (sigmoid, tanh, gelu, silu
 * would need a from-output backward op) fuse in inference plans only.
 * Every fused value is bit-identical to the unfused plan's: the epilogue runs the same scalar
 * code as the batch_norm and activation kernels.
 * Not here: elementwise chains, folding batch norm into the weights (the epilogue does the
 * same per-channel affine on data already in cache, and needs no recomputation when the
 * parameters change between runs). */
#include "../core/alloc.h"
#include "passes.h"

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

/* A conv2d/linear that can still take an activation in its epilogue. */
static bool head_ok(const kn__ir *ir, int h)
{
    const kn__ir_node *v = &ir->nodes[h];
    int op = v->node->op;
    return (op == KN_OP_CONV2D || op == KN_OP_LINEAR) && (v->flags & KN__IR_LIVE) &&
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

/* Training: unary_bwd(x, dy) of relu → unary_bwd(relu(x), dy) where x is a fusable conv whose
 * readers are then just that relu. */
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
            if (a < 0 || a > i || !head_ok(ir, x))
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

int kn__pass_fuse(kn__ir *ir)
{
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
    if (ir->training)
        rewire_backward(ir, readers, act_of, rewirable);
    for (int i = 0; i < n; i++) {
        const kn__ir_node *v = &ir->nodes[i];
        const kn_node *nd = v->node;
        if (!(v->flags & KN__IR_LIVE) || (v->flags & KN__IR_FOLDED) || v->nsrc < 1 || nd->dtype != KN_F32)
            continue;
        int h = v->src[0];
        if (!head_ok(ir, h) || readers[h] != 1 || ir->nodes[h].node->dtype != KN_F32)
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
    kn__free(readers);
    kn__free(act_of);
    kn__free(rewirable);
    ir->n_fused += fused;
    return fused;
}
