/* kiln/plan.h — compile a graph once into an execution plan, then run it many times.
 *
 * Compiling orders the nodes the requested outputs depend on (list optimizer update nodes
 * among the outputs to have a plan run them), picks a kernel for each on the chosen backend (an op the backend lacks runs the
 * float64 reference kernel through converted copies, logged once), and lays out every
 * intermediate buffer and kernel workspace in one arena allocated at compile time. Running
 * allocates nothing. The graph must outlive its plans; parameters are read from and updated
 * in the graph's parameter buffer. */
#ifndef KILN_PLAN_H
#define KILN_PLAN_H

#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_plan kn_plan;

typedef enum kn_backend_kind {
    KN_BACKEND_CPU = 0, /* optimised f32 kernels, reference kernels for the rest */
    KN_BACKEND_REF,     /* reference kernels only (float64 oracles), for tests */
    KN_BACKEND_CUDA,    /* reserved: needs the CUDA backend (not yet wired into plans) */
} kn_backend_kind;

typedef struct kn_plan_opts {
    kn_backend_kind backend;
    bool training; /* batch norm uses batch statistics (and updates running ones), dropout drops */
    int threads;   /* 0 = all cores (OpenMP default) */
} kn_plan_opts;

/* Fails with the graph's own status if it has a build error, KN_ERR_ARG for a NULL/foreign
 * output, KN_ERR_OOM, KN_ERR_UNSUPPORTED for a backend that is not available. On failure
 * *out is NULL and the reason is in kn_plan_last_error(). opts NULL = CPU, inference. */
kn_status kn_plan_compile(kn_plan **out, kn_graph *g, kn_node *const *outputs, int n_outputs,
                          const kn_plan_opts *opts);
void kn_plan_free(kn_plan *p); /* NULL is a no-op */

/* Copies `bytes` (must equal the input's size) of the input's dtype into its buffer. */
kn_status kn_plan_set_input(kn_plan *p, const kn_node *input, const void *data, size_t bytes);
/* Writable address of an input's buffer, to fill in place (NULL if not an input of p). */
void *kn_plan_input_data(kn_plan *p, const kn_node *input);
/* Runs every step. Fails with KN_ERR_RANGE when data is out of range (a label ≥ classes,
 * an embedding index out of bounds), the message naming the op and the value. */
kn_status kn_plan_run(kn_plan *p);
/* Address of a node's value after a run (outputs always; other nodes until the memory planner
 * reuses their space). NULL if the node is not in the plan. Borrowed. */
const void *kn_plan_data(kn_plan *p, const kn_node *n);
/* A borrowed kn_tensor view of a node's value (free the struct with kn_tensor_free). */
kn_status kn_plan_tensor(kn_plan *p, const kn_node *n, kn_tensor **out);
double kn_plan_scalar(kn_plan *p, const kn_node *n); /* value of a 1-element node as double */

const char *kn_plan_error(const kn_plan *p); /* message of the last failed run ("" if none) */
/* Message of the last failed kn_plan_compile on this thread. */
const char *kn_plan_last_error(void);
size_t kn_plan_arena_bytes(const kn_plan *p);
int kn_plan_num_steps(const kn_plan *p);
int kn_plan_num_fallbacks(const kn_plan *p);  /* steps running reference kernels on copies */
uint64_t kn_plan_step_count(const kn_plan *p); /* completed runs (drives dropout masks) */
void kn_plan_set_step_count(kn_plan *p, uint64_t step); /* e.g. when resuming */
double kn_plan_flops(const kn_plan *p);        /* FLOPs of one run, from the op table */

#ifdef __cplusplus
}
#endif
#endif
