/* kiln/plan.h — compile a graph once into an execution plan, then run it many times.
 *
 * Compiling takes the nodes the requested outputs depend on (list optimizer update nodes
 * among the outputs to have a plan run them), runs the graph passes on them (docs/passes.md:
 * dead-node removal, common-subexpression elimination, constant folding, fusion, in-place
 * reuse, memory planning), picks a kernel for each on the chosen backend (an op the backend lacks
 * runs the float64 reference kernel through converted copies), and lays out every
 * intermediate buffer and kernel workspace in one arena allocated at compile time, reusing
 * the space of buffers no longer needed. Running allocates nothing. The graph must outlive
 * its plans and is never modified by compiling; parameters are read from and updated in the
 * graph's parameter buffer. */
#ifndef KILN_PLAN_H
#define KILN_PLAN_H

#include <stdio.h>

#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_plan kn_plan;

typedef enum kn_backend_kind {
    KN_BACKEND_CPU = 0, /* optimised f32 kernels, reference kernels for the rest */
    KN_BACKEND_REF,     /* reference kernels only (float64 oracles), for tests */
    KN_BACKEND_CUDA,    /* an NVIDIA GPU (kn_plan_opts.device); docs/cuda.md */
    KN_BACKEND_AUTO,    /* CUDA when kiln was built with it and a device is present, else CPU */
} kn_backend_kind;

/* Parses a device name: "cpu", "cuda" (= cuda:0), "cuda:N" or "auto" into *backend and
 * *device (the CUDA ordinal; 0 otherwise). KN_ERR_ARG with a message in err (err_size bytes;
 * err may be NULL) for anything else. Checks the syntax only: whether the device exists is
 * checked when a plan is compiled (kn_device_resolve). */
kn_status kn_device_parse(const char *s, kn_backend_kind *backend, int *device, char *err, size_t err_size);
/* Resolves KN_BACKEND_AUTO (CUDA device `*device` if usable, else the CPU) and checks a CUDA
 * request: KN_ERR_UNSUPPORTED when kiln was built without CUDA, KN_ERR_DEVICE when there is
 * no usable device, KN_ERR_ARG for an ordinal out of range; the message (what is wrong, what
 * to do) goes to err. Other backends are returned unchanged. */
kn_status kn_device_resolve(kn_backend_kind *backend, int *device, char *err, size_t err_size);
/* "cpu", "cuda:0", ... for messages and reports (into buf, size bytes); returns buf. */
const char *kn_device_name(kn_backend_kind backend, int device, char *buf, size_t size);

/* Graph passes (kn_plan_opts.passes); they run as dce, cse, fold, fuse, inplace, memplan
 * (docs/passes.md). */
#define KN_PASS_DCE 0x01u      /* drop nodes the other passes left unused */
#define KN_PASS_CSE 0x02u      /* merge identical nodes */
#define KN_PASS_FOLD 0x04u     /* compute constant subgraphs at compile time */
#define KN_PASS_INPLACE 0x08u  /* elementwise ops overwrite a dead input */
#define KN_PASS_MEMPLAN 0x10u  /* reuse the space of dead buffers (liveness, best fit) */
#define KN_PASS_FUSE 0x20u     /* activation / inference batch norm into the conv or linear kernel (CPU);
                                  elementwise chains as one kernel; CUDA: the optimizer updates as
                                  one multi-tensor launch */
#define KN_PASS_ALL 0x3fu
#define KN_PASS_NONE 0x80000000u /* explicitly none: every node its own buffer */

typedef struct kn_plan_opts {
    kn_backend_kind backend;
    bool training; /* batch norm uses batch statistics (and updates running ones), dropout drops */
    int threads;   /* 0 = all cores (OpenMP default) */
    /* KN_PASS_* bits; 0 = the default: the environment variable KILN_PASSES if set (none, all,
     * or a comma list of dce, cse, fold, fuse, inplace, memplan), else all. Results are
     * bit-identical with any set of passes, except that fuse turns nll_loss(log_softmax(x))
     * into softmax cross-entropy (equal up to rounding; docs/passes.md). */
    unsigned passes;
    /* Check every float output after its kernel; the first non-finite value stops the run
     * with KN_ERR_RANGE and a message naming the op, the node, the element and whether an
     * input already held one (slow: for finding where a NaN starts). */
    bool debug_numerics;
    /* Time every step of every run (a monotonic clock around each kernel call; on CUDA, events
     * around each kernel, and no CUDA graph); read with kn_plan_write_profile. Costs two clock
     * reads (events) per step. */
    bool profile;
    /* KN_BACKEND_CUDA: the device ordinal (0 = the first GPU). */
    int device;
    /* KN_BACKEND_CUDA: fixed algorithms and no order-varying atomics, so a run gives the same
     * bits every time on the same GPU (docs/cuda.md); also set by KILN_DETERMINISTIC=1. */
    bool deterministic;
} kn_plan_opts;

/* Fails with the graph's own status if it has a build error, KN_ERR_ARG for a NULL/foreign
 * output, KN_ERR_OOM, KN_ERR_UNSUPPORTED for a backend that is not available (CUDA in a build
 * without it), KN_ERR_DEVICE when the GPU is missing or fails. On failure *out is NULL and the
 * reason is in kn_plan_last_error(). opts NULL = CPU, inference.
 *
 * On CUDA (docs/cuda.md) the arena lives in device memory (kiln's caching allocator), the
 * parameters are mirrored on the device, and the rules below still hold with one addition:
 * the graph's parameter buffer is brought back to the host by kn_graph_param_data (and by
 * checkpoint save/load) and by CPU plans before they run, so reading parameters through the
 * API always sees the newest values. kn_plan_input_data returns a pinned host staging
 * buffer that kn_plan_run uploads; kn_plan_data downloads a value into a host mirror. */
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
/* Starts a run without waiting for its end (CUDA plans; elsewhere it is kn_plan_run). When
 * it returns, the inputs are on the device: their buffers (kn_plan_input_data) may be
 * refilled for the next run while this one computes. kn_plan_wait ends the run and returns
 * its status (bad data, a kernel failure); kn_plan_data and the next run wait first. One run
 * in flight per plan; kn_plan_wait returns KN_OK when none is. */
kn_status kn_plan_run_async(kn_plan *p);
kn_status kn_plan_wait(kn_plan *p);
/* Starts copying an input's buffer to the device now (CUDA plans: on the copy stream, into a
 * second device buffer), even while a run of p is in flight: the next run takes this copy
 * instead of uploading the input at its start, so the upload overlaps the current run. Do
 * not change the buffer again until the next kn_plan_run_async has returned (after that it
 * may be refilled); kn_plan_set_input cancels a prefetch. A no-op elsewhere. KN_ERR_ARG when
 * input is not an input of p; a CUDA error fails with its message in kn_plan_error. */
kn_status kn_plan_prefetch_input(kn_plan *p, const kn_node *input);
/* Address of a node's value after a run. NULL if the node is not in the plan. Borrowed. Only
 * outputs (and parameters and constants) are guaranteed to hold their value after a run: the
 * memory planner reuses the space of other nodes (compile with KN_PASS_NONE to keep all). */
const void *kn_plan_data(kn_plan *p, const kn_node *n);
/* A borrowed kn_tensor view of a node's value (free the struct with kn_tensor_free). */
kn_status kn_plan_tensor(kn_plan *p, const kn_node *n, kn_tensor **out);
double kn_plan_scalar(kn_plan *p, const kn_node *n); /* value of a 1-element node as double */

const char *kn_plan_error(const kn_plan *p); /* message of the last failed run ("" if none) */
/* Message of the last failed kn_plan_compile on this thread. */
const char *kn_plan_last_error(void);
size_t kn_plan_arena_bytes(const kn_plan *p); /* the one allocation holding every buffer */
size_t kn_plan_peak_bytes(const kn_plan *p);  /* most bytes live at one step (≤ arena) */
int kn_plan_num_steps(const kn_plan *p);
int kn_plan_num_fallbacks(const kn_plan *p);  /* steps running reference kernels on copies;
                                                 on CUDA: steps running on the CPU with copies */
kn_backend_kind kn_plan_backend(const kn_plan *p); /* CPU, REF or CUDA (AUTO resolved) */
int kn_plan_device(const kn_plan *p);             /* CUDA ordinal, -1 off CUDA */
bool kn_plan_uses_cuda_graph(const kn_plan *p);   /* CUDA: runs replay one captured CUDA graph */
uint64_t kn_plan_step_count(const kn_plan *p); /* completed runs (drives dropout masks) */
void kn_plan_set_step_count(kn_plan *p, uint64_t step); /* e.g. when resuming */
double kn_plan_flops(const kn_plan *p);        /* FLOPs of one run, from the op table */

/* With opts.profile: one line per op kind (total ms per run, share, calls per run) and the
 * `top` slowest steps (op, node, shape, ms per run, GFLOP/s) over the runs since compiling or
 * the last reset; KN_ERR_ARG if the plan was not compiled with profile, KN_ERR_IO on a write
 * error. kn_plan_reset_profile zeroes the counters (e.g. after warm-up runs). */
kn_status kn_plan_write_profile(const kn_plan *p, FILE *f, int top);
void kn_plan_reset_profile(kn_plan *p);

/* What the passes did and where the memory goes. */
typedef struct kn_plan_stats {
    unsigned passes;       /* KN_PASS_* bits that ran */
    int nodes;             /* graph nodes the outputs need (before the passes) */
    int steps;             /* kernel calls per run */
    int dead, merged, folded, inplace; /* nodes removed / merged by CSE / computed at compile
                                          time / writing into an input's buffer */
    int fused;             /* nodes computed inside an earlier node's kernel (KN_PASS_FUSE) */
    int grouped;           /* steps run by an earlier step's launch (CUDA, KN_PASS_FUSE: the
                              optimizer updates as one multi-tensor launch); 0 on the CPU */
    int buffers;           /* arena buffers (intermediates, inputs, outputs) */
    size_t arena_bytes;    /* kn_plan_arena_bytes */
    size_t peak_bytes;     /* kn_plan_peak_bytes: a lower bound for any layout */
    size_t naive_bytes;    /* the arena with every buffer its own space and one shared scratch */
    size_t input_bytes;    /* inputs (live for the whole plan) */
    size_t output_bytes;   /* outputs in the arena (live for the whole plan) */
    size_t scratch_bytes;  /* largest per-step scratch: kernel workspace + float64 copies */
    size_t folded_bytes;   /* folded constants, held by the plan outside the arena */
} kn_plan_stats;
/* KN_ERR_ARG for NULL. */
kn_status kn_plan_get_stats(const kn_plan *p, kn_plan_stats *out);

/* Writes the plan as a Graphviz DOT graph, one line per node and per edge: op, shape and
 * dtype, coloured by kind (input, parameter, constant, forward, backward, update; forward =
 * what the `forward` nodes need, e.g. logits and loss; NULL/0: every computed node is
 * forward). memory = also each node's arena offset and size, or "in place", "view", "folded".
 * Compile with KN_PASS_NONE for the graph before the passes. KN_ERR_IO if writing fails. */
kn_status kn_plan_write_dot(const kn_plan *p, FILE *f, bool memory, kn_node *const *forward, int n_forward);

#ifdef __cplusplus
}
#endif
#endif
