/* kiln/prune.h — pruning (docs/compression.md): unstructured magnitude pruning with masks kept
 * through fine-tuning, and structured pruning that removes whole conv filters / dense units.
 *
 * Unstructured pruning happens inside kn_train: give kn_train_opts.prune (and usually
 * init_from, the trained checkpoint). The prunable tensors are the weights of conv2d and dense
 * layers ("<layer>.weight", never biases, batch-norm or layer-norm parameters). Each gets a
 * mask, a frozen u8 parameter "<layer>.weight.mask" (1 = kept) saved in the checkpoint, so a
 * resumed run keeps it. After every optimizer step the trainer multiplies the weights by their
 * masks and zeroes the optimizer state (moments, momentum, accumulated gradients) of pruned
 * weights. The masks are recomputed by magnitude (|w| smallest first; weights pruned before
 * stay pruned) at the steps the schedule says:
 *   oneshot: once, before the first step, at the target sparsity;
 *   gradual: the cubic schedule of Zhu & Gupta (2017), s(t) = S·(1 − (1 − t/R)³) for the
 *            optimizer step t ≤ R = ramp · (all fine-tuning steps), updated `updates` times at
 *            equal intervals up to R; the remaining steps fine-tune at S.
 * Per layer (default) every prunable tensor gets the sparsity S; global ranks all prunable
 * weights together with one threshold (layers end up with different sparsities).
 *
 * Structured pruning (kn_prune_structured) works on a checkpoint: it ranks the filters of each
 * conv2d (and, if asked, the units of each hidden dense layer) by the L1 norm of their weights,
 * removes the lowest fraction, slices the layer's weight and bias, and rewires what consumes
 * its output: batch-norm channels, the next conv's input channels, and a dense layer after
 * `flatten` (whose input features come in groups of H·W per channel) or after globalavgpool.
 * A layer is left whole (and reported as skipped, with the reason) when its output reaches an
 * `add` (residual: both sides must keep equal channels), a layernorm, the model's output, or a
 * grouped convolution, or when it is the last layer. The result is a new, physically smaller
 * model: its text (with the new FILTERS/UNITS) goes into the checkpoint's kiln.model, so
 * eval/predict/info/bench read it like any other checkpoint; fine-tune it with init_from. */
#ifndef KILN_PRUNE_H
#define KILN_PRUNE_H

#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kn_prune_schedule { KN_PRUNE_ONESHOT = 0, KN_PRUNE_GRADUAL } kn_prune_schedule;

typedef struct kn_prune_opts {
    double sparsity;            /* target fraction of zero weights in [0, 1) */
    bool global;                /* one magnitude ranking over all prunable tensors */
    kn_prune_schedule schedule;
    double ramp;                /* gradual: fraction of the run's steps over which the sparsity
                                   rises, in (0, 1] (0 = 0.5) */
    int updates;                /* gradual: mask updates during the ramp (0 = 16) */
} kn_prune_opts;

void kn_prune_opts_defaults(kn_prune_opts *o); /* oneshot, per layer, sparsity 0.5 */
/* KN_ERR_ARG with a message naming the field when an option is out of range. */
kn_status kn_prune_opts_check(const kn_prune_opts *o, kn_error *err);

/* Sparsity of the gradual schedule at optimizer step `step` of a run of `total` steps. */
double kn_prune_sparsity_at(const kn_prune_opts *o, int64_t step, int64_t total);

/* One prunable tensor of a checkpoint (kn_prune_stats). */
typedef struct kn_prune_layer_stat {
    char name[96];      /* parameter name, e.g. "conv1.weight" */
    int64_t numel, zeros;
} kn_prune_layer_stat;

/* Counts the zeros of every conv/dense weight of a checkpoint (file or run directory).
 * *stats (free with kn_free) gets *n entries in model order; *params (may be NULL) the
 * model's trainable parameter elements. Errors: those of kn_checkpoint_load, KN_ERR_FORMAT
 * for a file without kiln.model, KN_ERR_OOM. */
kn_status kn_prune_stats(const char *checkpoint, kn_prune_layer_stat **stats, int *n, int64_t *params,
                         kn_error *err);

/* ---- structured pruning ---------------------------------------------------------------------- */
typedef struct kn_struct_prune_opts {
    double fraction;    /* of the filters/units of each pruned layer to remove, in [0, 1) */
    bool conv;          /* prune conv2d filters (default true) */
    bool dense;         /* prune hidden dense units too (default false) */
} kn_struct_prune_opts;

void kn_struct_prune_opts_defaults(kn_struct_prune_opts *o); /* fraction 0.5, conv only */

#define KN_PRUNE_MAX_REPORT 64
typedef struct kn_struct_prune_layer {
    char name[72];      /* layer name, e.g. "conv2" */
    int64_t before, after; /* filters/units */
    const char *skipped;   /* NULL when pruned, else why it was left whole (static text) */
} kn_struct_prune_layer;

typedef struct kn_struct_prune_report {
    int n;                 /* layers considered (at most KN_PRUNE_MAX_REPORT reported) */
    kn_struct_prune_layer layers[KN_PRUNE_MAX_REPORT];
    int64_t params_before, params_after;
    double flops_before, flops_after; /* forward FLOPs per example */
} kn_struct_prune_report;

/* Reads the kiln checkpoint `in` (file or run directory), removes filters/units as o says and
 * writes the smaller model and its weights to `out` (atomically; metadata: the new kiln.model,
 * the input normalisation, seed and recipe of `in`, kiln.pruning describing what was removed;
 * no optimizer state). *pruned (may be NULL) gets the new model (free with kn_model_free);
 * rep (may be NULL) what happened per layer. Errors: KN_ERR_ARG (bad options, or nothing can
 * be pruned), those of loading and saving checkpoints, KN_ERR_OOM. */
kn_status kn_prune_structured(const char *in, const char *out, const kn_struct_prune_opts *o, kn_model **pruned,
                              kn_struct_prune_report *rep, kn_error *err);

#ifdef __cplusplus
}
#endif
#endif
