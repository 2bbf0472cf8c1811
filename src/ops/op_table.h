/* op_table.h — the op enum (from ops.def) and the per-op contract every family implements:
 * check (shape/dtype/attribute validation and inference), grad (gradient rule built from
 * other ops), flops, and a float64 reference kernel that is the oracle for faster kernels.
 *
 * Kernel contract: every input and the output are contiguous row-major buffers. A backend
 * kernel sees the nodes' own dtypes. A reference kernel sees EVERY floating buffer (inputs
 * and output) as float64 whatever the node's dtype says (the plan converts around it);
 * integer buffers keep their dtype (use kn__index_at). A kernel gets the node (attributes,
 * shapes) and the pointers in kn__kargs, never allocates, and returns KN_OK or KN_ERR_RANGE
 * for bad data values (message via kn__kerr). */
#ifndef KN_OPS_OP_TABLE_H
#define KN_OPS_OP_TABLE_H

#include "../graph/graph_internal.h"

typedef enum kn_op {
#define KN_OP(e, name, lo, hi, fl) KN_OP_##e,
#include "ops.def"
#undef KN_OP
    KN_OP_COUNT
} kn_op;

enum {
    KN_OPF_LEAF = 1u << 0,
    KN_OPF_ELEMENTWISE = 1u << 1,
    KN_OPF_REDUCE = 1u << 2,
    KN_OPF_ALIAS = 1u << 3,
    KN_OPF_NONDIFF = 1u << 4,
    KN_OPF_MUTATES = 1u << 5,
    KN_OPF_UPDATE = 1u << 6,
};

/* What a conv2d/linear kernel applies to its output while it is still in cache, set by the
 * fusion pass (src/passes/fuse.c) for kernels registered with .epilogue: first (bn_gamma
 * != NULL) batch norm in inference form over dim 1 (conv's channels), computed exactly as
 * the batch_norm kernel does, then (act ≥ 0) the activation op act with attributes a, b. */
typedef struct kn__epilogue {
    const float *bn_gamma, *bn_beta, *bn_mean, *bn_var; /* [C]; NULL: no batch norm */
    double bn_eps;
    int act;                 /* KN_OP_RELU, LEAKY_RELU, SIGMOID, TANH, GELU, SILU; -1 = none */
    float a, b;              /* the activation's af[0], af[1] */
} kn__epilogue;

/* A chain of elementwise ops run as one step (the fusion pass, src/passes/fuse.c), block by
 * block of a cache-sized buffer: op j reads the running value (in = -1) and/or external
 * inputs (kn__kargs.src[in]: same shape as the running value, or one element), writes the
 * new running value; the last op writes dst — or is a sum/mean over every element. */
#define KN__CHAIN_MAX 16
typedef struct kn__chain {
    int n_ops;
    struct {
        const kn_node *node; /* op and attributes */
        signed char in[2];   /* per operand: -1 running value, else kn__kargs.src slot */
    } ops[KN__CHAIN_MAX];
    int64_t numel;           /* elements of the running value */
} kn__chain;

/* Several nodes of one op run as one step: the CUDA plan's multi-tensor optimizer update
 * (src/backend/cuda/update_group.c). The step's kn__kargs are its first member's, with group
 * set; members are every member's own arguments; table is what the backend precomputed for
 * the launch (CUDA: the device chunk table). */
struct kn__kargs;
typedef struct kn__group {
    int n;
    const struct kn__kargs *members;
    const void *table;
    int64_t n_chunks;
} kn__group;

typedef struct kn__kargs {
    const kn_node *node;
    const kn__epilogue *epi; /* NULL, or fused ops to apply to dst (kernels with .epilogue) */
    const kn__chain *chain;  /* the chain a chain step runs (node = its last op), else NULL */
    const kn__group *group;  /* the group a grouped step runs (node = its first member), else NULL */
    void *dst;               /* output, node->dtype, contiguous */
    void *src[KN_MAX_SRC];   /* inputs (writable for MUTATES ops) */
    void *work;              /* workspace of the size the kernel's workspace() asked for */
    uint64_t seed;           /* graph seed */
    uint64_t step;           /* completed runs of the plan before this one */
    bool training;
    int threads;
    char *err;               /* message buffer for KN_ERR_RANGE */
    size_t err_size;
    void *device;            /* device backends: their per-plan context (the CUDA backend's
                                kn__cuda_ctx: stream, library handles); NULL on the CPU */
} kn__kargs;

typedef kn_status (*kn__kernel_fn)(const kn__kargs *a);
typedef size_t (*kn__workspace_fn)(const kn_node *n);

typedef struct kn__op_info {
    /* Validates inputs/attributes of n and fills n->dtype, n->ndim, n->shape. On a bad
     * call returns kn__fail(g, code, "<op>: <what> <shapes>, <rule>"). */
    kn_status (*check)(kn_graph *g, kn_node *n);
    /* Builds dx[i] (same shape and dtype as n->src[i]) for every i with need[i], from dy
     * (n's shape). Leaves dx[i] NULL for inputs without a gradient. Errors recorded in g. */
    kn_status (*grad)(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need);
    double (*flops)(const kn_node *n);   /* floating-point operations of one run */
    kn__kernel_fn ref;                   /* float64 reference kernel */
    kn__workspace_fn ref_workspace;      /* bytes of scratch ref needs (NULL = none) */
} kn__op_info;

extern const kn__op_info *const kn__op_table[KN_OP_COUNT];
extern const char *const kn__op_names[KN_OP_COUNT];
extern const int kn__op_min_src[KN_OP_COUNT];
extern const int kn__op_max_src[KN_OP_COUNT];
extern const unsigned kn__op_flags[KN_OP_COUNT];

/* Writes a run-time error message into a->err and returns KN_ERR_RANGE. */
kn_status kn__kerr(const kn__kargs *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads element i of an integer buffer (labels, indices) as int64. */
static inline int64_t kn__index_at(const void *p, kn_dtype dt, int64_t i)
{
    switch (dt) {
    case KN_I32: return ((const int32_t *)p)[i];
    case KN_I64: return ((const int64_t *)p)[i];
    case KN_I8: return ((const int8_t *)p)[i];
    case KN_U8: return ((const uint8_t *)p)[i];
    default: return -1;
    }
}

/* Common checks for family files. */
kn_status kn__check_float(kn_graph *g, const kn_node *n, int i);   /* src[i] is a float */
kn_status kn__check_index(kn_graph *g, const kn_node *n, int i);   /* src[i] is an int */
kn_status kn__check_same_dtype(kn_graph *g, const kn_node *n);     /* all float srcs alike */
kn_status kn__check_ndim(kn_graph *g, const kn_node *n, int i, int ndim); /* exact rank */
double kn__flops_per_elem(const kn_node *n, double per); /* numel(n) · per */

#endif
