/* prune_internal.h — the unstructured pruner the trainer holds (kiln/prune.h says what it
 * does): masks as frozen u8 graph parameters "<weight>.mask", recomputed by magnitude at the
 * steps of the schedule and applied to the weights (and their optimizer state) after every
 * optimizer step. Private to src/compress and src/train. */
#ifndef KN_COMPRESS_PRUNE_INTERNAL_H
#define KN_COMPRESS_PRUNE_INTERNAL_H

#include "kiln/prune.h"

typedef struct kn__pruner kn__pruner;

/* Whether a parameter is prunable: a trainable conv/dense weight ("<layer>.weight", ≥ 2 dims,
 * f32). */
bool kn__prunable(const kn_node *p);

/* Creates the masks (all ones) for the prunable ones of params[0..n) in g. Call it before any
 * plan is compiled on g (it adds parameters). KN_ERR_ARG when no parameter is prunable or o
 * is out of range; KN_ERR_OOM. */
kn_status kn__pruner_new(kn__pruner **out, kn_graph *g, kn_node *const *params, int n, const kn_prune_opts *o,
                         kn_error *err);
void kn__pruner_free(kn__pruner *p); /* NULL is a no-op */

/* Before optimizer step `step` of a run of `total` steps: recomputes the masks when the
 * schedule has an update at this step (at most once per step), then applies them. */
kn_status kn__pruner_before_step(kn__pruner *p, kn_graph *g, int64_t step, int64_t total, kn_error *err);
/* After an optimizer step: weights and their optimizer state are zeroed where masks are 0. */
void kn__pruner_apply(kn__pruner *p, kn_graph *g);
/* "unstructured sparsity=0.8 scope=global schedule=gradual ..." for the kiln.pruning metadata. */
const char *kn__pruner_describe(const kn__pruner *p);

#endif
