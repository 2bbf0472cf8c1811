/* passes.h — the plan-level IR and the graph passes the plan compiler runs on it
 * (docs/passes.md): dead-node removal, common-subexpression elimination, constant folding,
 * in-place reuse and the liveness-based memory planner, plus the DOT writer.
 *
 * The IR is one entry per graph node, in creation (= topological) order, pointing at the
 * graph node for op, attributes, shape and dtype. Passes never modify the graph (one graph
 * serves several plans): they rewrite the IR — redirect inputs, mark nodes dead, merged,
 * folded or in place — and the compiler turns what is live into steps and an arena layout.
 * Fusion (fuse.c) merges an activation / inference batch norm into the conv2d or linear
 * before it (the kernel applies them as an epilogue). Not here: partitioning. Private to
 * the library; tests include it to check each pass on its own. */
#ifndef KN_PASSES_H
#define KN_PASSES_H

#include "../backend/backend.h"
#include "kiln/plan.h"

/* kn__ir_node.flags */
enum {
    KN__IR_LIVE = 1u << 0,    /* in the plan */
    KN__IR_OUTPUT = 1u << 1,  /* a requested output: its value stays readable after a run */
    KN__IR_FOLDED = 1u << 2,  /* value computed at compile time (in .value) */
    KN__IR_INPLACE = 1u << 3, /* writes into the buffer of its input .inplace_src */
    KN__IR_FUSED = 1u << 4,   /* conv2d/linear whose kernel also applies .fused_bn, .fused_act */
};

typedef struct kn__ir_node {
    kn_node *node;        /* the graph node: op, attributes, shape, dtype (never modified) */
    int nsrc;
    int src[KN_MAX_SRC];  /* IR indices of the inputs; CSE redirects them to the kept copy */
    uint32_t flags;
    int merged_into;      /* CSE: the IR node that now computes this value, or -1 */
    void *value;          /* FOLDED: the value in the node's dtype (kn__alloc, owned) */
    int inplace_src;      /* INPLACE: the input slot whose buffer is overwritten, else -1 */
    int fused_bn;         /* FUSED: the inference batch_norm applied in the epilogue, else -1 */
    int fused_act;        /* FUSED: the activation applied in the epilogue (after bn), else -1 */
    kn__chain *chain;     /* the last op of a fused elementwise chain: the chain (kn__alloc, owned);
                             .nsrc/.src are then the chain's external inputs */
    kn_node *exec;        /* rewritten: the node the kernel runs instead (kn__alloc, owned; same
                             shape and dtype; its src are graph nodes matching .src), else NULL */
    /* set by kn__ir_schedule and the memory planner */
    int pos;              /* position in execution order among live nodes, -1 if not live */
    int storage;          /* IR index owning the arena buffer that holds this value; -1 = none
                             (parameter, constant, folded, or a view of one of those) */
    size_t offset;        /* arena offset of that buffer (valid when storage >= 0) */
} kn__ir_node;

typedef struct kn__ir {
    kn_graph *graph;
    kn__ir_node *nodes;   /* nodes[i].node == graph->nodes[i] */
    int n;
    int *outputs;         /* IR indices of the requested outputs (after CSE: the kept copies) */
    int n_outputs;
    kn_backend_kind backend;
    bool training;
    int n_live;           /* live nodes after the last kn__ir_schedule */
    int cone;             /* nodes the outputs needed before any rewrite */
    /* statistics of the passes */
    int n_dead, n_merged, n_folded, n_inplace;
    int n_fused;          /* nodes fused into the kernel of an earlier one */
    int n_rewired;        /* relu backward ops made to read the activation's output */
    size_t folded_bytes;
} kn__ir;

/* Builds the IR of every node of g with outputs marked (every node live until the first
 * kn__pass_dce). KN_ERR_OOM, or KN_ERR_ARG for a NULL or foreign output (message in msg). */
kn_status kn__ir_build(kn__ir *ir, kn_graph *g, kn_node *const *outputs, int n_outputs,
                       kn_backend_kind backend, bool training, char *msg, size_t msg_size);
void kn__ir_free(kn__ir *ir);
/* The node that computes i's value (follows CSE merges). */
int kn__ir_rep(const kn__ir *ir, int i);
/* Pure views (reshape): ALIAS ops that are not updates; they run no kernel. */
bool kn__ir_is_view(const kn__ir_node *v);
/* Numbers the live nodes in execution order (sets .pos, .n_live). */
void kn__ir_schedule(kn__ir *ir);
/* last[i] = the last position at which live node i's value is read (through views: a read
 * of a reshape is a read of its source); outputs and inputs get n_live (read after the
 * run / written before it); -1 when never read. Needs kn__ir_schedule. */
void kn__ir_last_use(const kn__ir *ir, int *last);
/* The node whose op, attributes and input shapes the kernel sees: .exec when rewritten. */
static inline const kn_node *kn__ir_exec(const kn__ir_node *v) { return v->exec ? v->exec : v->node; }
/* Whether the node has a side effect or randomness that forbids merging or folding it. */
bool kn__ir_has_effects(const kn__ir_node *v);

/* The kernel a plan on `backend` runs for n: the backend's when it supports the node, else
 * the float64 reference (*fallback when some floating buffer is not f64 and needs copies).
 * *workspace gets the kernel's scratch bytes. KN_ERR_UNSUPPORTED when there is none. */
kn_status kn__pick_kernel(const kn_node *n, kn_backend_kind backend, kn__kernel_fn *fn, size_t *workspace,
                          bool *fallback);
/* Bytes of float64 copies a fallback step needs (inputs and output), 64-byte granules. */
size_t kn__fallback_copy_bytes(const kn_node *n);

/* ---- the passes (each returns what it changed, or a negative kn_status on OOM) ---- */
/* Dead-node removal: marks live exactly what the outputs need through the IR's current
 * inputs (folded nodes need nothing); returns how many live nodes it dropped. */
int kn__pass_dce(kn__ir *ir);
/* Common-subexpression elimination: a node with the same op, attributes, dtype, shape and
 * inputs as an earlier live one is merged into it (never leaves other than equal small
 * constants, MUTATES/UPDATE ops or dropout; inputs read across a parameter update differ).
 * Returns the number of merged nodes. */
int kn__pass_cse(kn__ir *ir);
/* Constant folding: nodes whose inputs are all constant (transitively) and whose value is
 * at most KN__FOLD_MAX_BYTES are computed now with the kernel the plan would run, and become
 * constants. Returns the number folded, or -KN_ERR_OOM. */
#define KN__FOLD_MAX_BYTES ((size_t)1 << 20)
int kn__pass_fold(kn__ir *ir);
/* Frees the folded values of nodes no longer live (after the DCE that follows folding). */
void kn__ir_drop_dead_values(kn__ir *ir);
/* Fusion: an activation (relu, leaky_relu, sigmoid, tanh, gelu, silu), and in inference plans
 * a batch norm, whose input is a conv2d/linear with no other reader and whose kernel takes an
 * epilogue becomes part of that kernel (marked merged into it; its readers read the conv).
 * In training plans first rewires each relu/leaky_relu backward (unary_bwd(x, dy)) to read
 * relu's output y instead of x (y > 0 ⇔ x > 0: same bits) so x keeps a single reader.
 * First, log_softmax → nll_loss (and in training log_softmax_bwd(·, nll_loss_bwd)) become
 * softmax_cross_entropy (and its _bwd) on the logits (.exec; equal up to rounding).
 * Then (chains = true) chains of elementwise ops, each the only reader of the one before,
 * of one shape, other inputs full-size or one element, optionally ending in a full sum or
 * mean, become one step (the last op's .chain; the others are no longer live). Runs before
 * kernel choice and scheduling. device_runs != NULL: a CUDA plan, whose steps run the node
 * itself, not .exec, and whose only epilogue is cuBLASLt's ReLU after a linear; device_runs(n)
 * tells whether node n runs on the device (not forced to the CPU). Then only the backward
 * rewiring, linear → relu (both on the device), and the chains, which the CUDA backend runs
 * with its own chain kernel (chain.cu). Returns the number of nodes fused, or -KN_ERR_OOM. */
int kn__pass_fuse(kn__ir *ir, bool chains, bool (*device_runs)(const kn_node *n));
/* Whether the kernel a plan runs for n applies kn__kargs.epi (CPU f32 conv2d, linear). */
bool kn__ir_epilogue_ok(const kn__ir *ir, const kn_node *n);

/* In-place reuse: an elementwise op whose kernel allows dst == src writes into an input of
 * its shape and dtype when that buffer is an intermediate nobody reads afterwards.
 * Needs kn__ir_schedule. Returns the number of nodes made in place, or -KN_ERR_OOM. */
int kn__pass_inplace(kn__ir *ir);
/* Whether op's CPU and reference kernels read element i of every input before writing
 * element i of the output (so dst may be an input of the output's shape). */
bool kn__op_inplace_ok(int op);

/* ---- memory planner ---- */
typedef struct kn__buffer {
    int owner;          /* IR index of the storage root, or -1 for a step's scratch */
    int first, last;    /* live positions, inclusive */
    size_t bytes;       /* multiple of 64 */
    size_t offset;      /* arena offset, multiple of 64 */
} kn__buffer;

typedef struct kn__memplan {
    kn__buffer *bufs;
    int n_bufs;
    int *scratch;           /* per position: index into bufs of that step's scratch, or -1 */
    size_t arena_bytes;     /* max offset + bytes */
    size_t peak_bytes;      /* most bytes live at one position */
    size_t naive_bytes;     /* every buffer its own space, one shared scratch */
    size_t scratch_bytes;   /* largest scratch */
    size_t input_bytes, output_bytes;
} kn__memplan;

/* Sets .storage of every live node (views and in-place nodes share their input's), builds
 * one buffer per storage root with its liveness interval and one scratch buffer per position
 * with scratch[pos] > 0 bytes, and lays them out: reuse = greedy best-fit by size over the
 * intervals (buffers live at the same time never overlap); no reuse = every buffer its own
 * space and one scratch region shared by all steps (the layout without planning). Sets the
 * roots' and members' .offset. KN_ERR_OOM. Needs kn__ir_schedule. */
kn_status kn__memplan_build(kn__ir *ir, const size_t *scratch, bool reuse, kn__memplan *mp);
void kn__memplan_free(kn__memplan *mp);
/* Checks a layout: alignment, inside the arena, and no two buffers whose intervals meet
 * share a byte. Returns the number of violations (0 = valid); describes the first in msg. */
int kn__memplan_check(const kn__memplan *mp, char *msg, size_t msg_size);

/* ---- what tests and tools read back from a compiled plan ---- */
const kn__ir *kn__plan_ir(const kn_plan *p);
const kn__memplan *kn__plan_memplan(const kn_plan *p);
const unsigned char *kn__plan_arena(const kn_plan *p);
/* Address of IR node i's value in plan p (NULL when it has none). */
const void *kn__plan_addr(const kn_plan *p, int i);

/* ---- DOT ---- */
/* Writes the live IR of p as Graphviz DOT; nodes that `forward` (and their ancestors) need
 * are coloured as forward, other computed nodes as backward. memory = label each node with
 * its arena offset and size, or "in place", "view", "folded". KN_ERR_IO if writing fails. */
kn_status kn__dot_write(const kn_plan *p, FILE *f, bool memory, kn_node *const *forward, int n_forward);

#endif
