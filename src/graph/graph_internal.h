/* graph_internal.h — the node and graph structs and the helpers every op family uses to
 * record nodes and report errors. Private to the library. */
#ifndef KN_GRAPH_INTERNAL_H
#define KN_GRAPH_INTERNAL_H

#include <stdarg.h>

#include "kiln/graph.h"

#define KN_MAX_SRC 8
#define KN_NATTR_I 16
#define KN_NATTR_F 6

/* node flags */
enum {
    KN_NODE_TRAINABLE = 1u << 0, /* a param backward() differentiates by default */
};

struct kn_node {
    int id;          /* index in graph->nodes, in creation (= a topological) order */
    int op;          /* kn_op */
    kn_dtype dtype;
    int ndim;
    int64_t shape[KN_MAX_DIMS];
    int nsrc;
    kn_node *src[KN_MAX_SRC];
    int64_t ai[KN_NATTR_I]; /* integer attributes; meaning per op (see the family file) */
    double af[KN_NATTR_F];  /* float attributes */
    uint32_t flags;
    const char *name;       /* arena string, "" when unnamed */
    size_t param_offset;    /* PARAM: byte offset in graph->param_data */
    void *const_data;       /* CONST: arena copy of the value */
    kn_graph *graph;
};

typedef struct kn__arena_chunk kn__arena_chunk;

struct kn_graph {
    kn__arena_chunk *arena;
    kn_node **nodes;
    int n_nodes, cap_nodes;
    kn_status status;
    char msg[1024];
    void *param_data;       /* all parameters, contiguous, 64-byte aligned each */
    size_t param_bytes, param_cap;
    uint64_t seed;
    uint64_t next_key;      /* per-node RNG streams (dropout) */
    kn_node **grads;        /* grads[id] from the last backward(), size grads_cap */
    int grads_cap;
    /* Set while a device plan (src/backend/cuda/plan_cuda.c) holds parameter values newer
     * than param_data: pull(holder) copies them back. kn__graph_params_to_host does that and
     * clears it; the holder uploads param_data again before its next run. */
    void *param_holder;
    kn_status (*param_pull)(void *holder, char *msg, size_t size);
};

/* Brings the parameters back from a device holder (no-op without one); msg may be NULL. */
kn_status kn__graph_params_to_host(kn_graph *g, char *msg, size_t size);

/* Arena allocation owned by the graph (zeroed, 16-byte aligned); NULL on OOM. */
void *kn__graph_arena(kn_graph *g, size_t bytes);

/* Records the first error of g (later ones are dropped) and returns code. */
kn_status kn__fail(kn_graph *g, kn_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Starts a node of op with the given inputs. Returns NULL (silently) if g is NULL or an input
 * is NULL; records KN_ERR_ARG if an input belongs to another graph or there are too many.
 * Attributes are then set on the node, and kn__node_finish runs the op's check. */
kn_node *kn__node_new(kn_graph *g, int op, int nsrc, kn_node *const *src);
/* Runs the op's check (which fills dtype/ndim/shape or fails via kn__fail); on failure the
 * node is dropped and NULL returned. */
kn_node *kn__node_finish(kn_graph *g, kn_node *n);

int64_t kn__numel(const kn_node *n);
size_t kn__nbytes(const kn_node *n);
/* "[2,3,4]" into buf; returns buf. */
char *kn__shape_str(int ndim, const int64_t *shape, char *buf, size_t size);
/* Formats a node's shape into one of a few rotating static buffers (for error messages,
 * which build several shapes in one printf). Not thread-safe; only for messages. */
const char *kn__shp(const kn_node *n);
/* Normalises a possibly negative axis for ndim dims; -1 when out of range. */
int kn__axis(int axis, int ndim);
void kn__set_shape(kn_node *n, int ndim, const int64_t *shape);
bool kn__same_shape(const kn_node *a, const kn_node *b);

/* ---- helpers for gradient rules ---- */
/* Sums x over the dims that broadcasting added or stretched so it gets `like`'s shape. */
kn_node *kn__sum_to(kn_graph *g, kn_node *x, const kn_node *like);
/* A 0-d constant of like's dtype. */
kn_node *kn__scalar_like(kn_graph *g, const kn_node *like, double v);

#endif
