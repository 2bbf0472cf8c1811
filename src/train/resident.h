/* resident.h — the training set kept on the device (kn_train_opts.resident_data), for the
 * trainer: the examples become one graph constant and every batch passes only its rows,
 * epoch and positions; load_batch gathers, normalises and augments them inside the plan,
 * bit for bit as the loader would on the host (src/data/augment.h). */
#ifndef KN_TRAIN_RESIDENT_H
#define KN_TRAIN_RESIDENT_H

#include "session.h"

typedef struct kn__resident {
    kn_node *table;   /* the training set: raw bytes, or normalised floats; NULL = off */
    kn_node *lut;     /* byte tables: the loader's normalisation of each byte ([256] f32) */
    float pad;        /* a zero pixel, normalised (the crop's padding) */
    int crop_pad;
    bool hflip;
    uint64_t seed;
} kn__resident;

/* Puts the training set into g when opts->resident_data asks and it fits: on CUDA, `plans`
 * copies (one per training plan) within half the device's free memory; otherwise r stays
 * off and the reason is logged once on stderr (the run goes on with batches staged from the
 * host). Fails only on KN_ERR_OOM (host) or a graph error. */
kn_status kn__resident_init(kn__resident *r, kn_graph *g, const kn_dataset *train, const kn__norm *nm,
                            const kn_train_opts *opts, int plans, kn_error *err);
/* A branch's batch of `batch` examples: the input "<tag>.examples" ([batch, 3] i64: row,
 * epoch, position) in *examples, and the gathered batch reshaped to the model's input
 * ([batch, shape...]) as the result; NULL on a graph error (in g). */
kn_node *kn__resident_batch(const kn__resident *r, kn_graph *g, const kn_model *m, const char *tag, int64_t batch,
                            kn_node **examples);
/* A loader batch's (row, epoch, position) triples, into an examples input's buffer. */
void kn__resident_stage(int64_t *dst, const kn_batch *bt);

#endif
