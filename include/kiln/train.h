/* kiln/train.h — training and inference for classification models described by kiln/nn.h.
 *
 * kn_train builds ONE graph holding the whole training step (forward, softmax
 * cross-entropy, backward, optional gradient clipping and accumulation, and the optimizer
 * updates as nodes), compiles it once per batch size and runs it for every batch; an
 * evaluation branch in the same graph shares the parameters. Everything a run depends on
 * (weights, optimizer state, batch-norm statistics, epoch, step, RNG positions, the model
 * text, the normalisation) goes into the checkpoint, so a resumed run continues bit for
 * bit like an uninterrupted one on the CPU with the same thread count.
 *
 * The last partial batch of an epoch is trained as a batch of its own size (a second plan on
 * the same graph), except with gradient accumulation, where it is dropped. Evaluation pads
 * the last batch and ignores the padding. */
#ifndef KILN_TRAIN_H
#define KILN_TRAIN_H

#include "data.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

struct kn_prune_opts; /* kiln/prune.h */

typedef struct kn_train_opts {
    kn_recipe recipe;         /* optimizer, schedule, batch, epochs, augmentation, val split */
    uint64_t seed;            /* parameter init, shuffling, augmentation, dropout */
    int threads;              /* 0 = all cores */
    const char *out_dir;      /* model.safetensors, metrics.csv, curves.png, summary.json; NULL = none */
    const char *resume;       /* a checkpoint file or a directory holding model.safetensors; NULL = fresh */
    bool progress;            /* progress on stderr (redrawn in place when stderr is a terminal) */
    int64_t stop_after_steps; /* > 0: save a checkpoint and stop after this many optimizer steps */
    int eval_batch;           /* 0 = 1000 */
    bool skip_epoch_test;     /* evaluate the test set only at the end, not after every epoch */
    /* Stop at the first non-finite value any op produces, naming the op (slow). Without it, a
     * step whose loss or gradients are not finite is skipped (no weight changes) and counted. */
    bool debug_numerics;

    /* ---- mixed precision and compression (docs/compression.md) ---- */
    kn_precision precision;   /* conv/dense compute precision; the weights stay FP32 masters */
    double loss_scale;        /* FP16: initial dynamic loss scale (0 = 65536) */
    int loss_scale_window;    /* FP16: clean steps before the scale doubles (0 = 2000) */
    const char *init_from;    /* checkpoint (file or directory) whose weights (and batch-norm running
                                 statistics, and input normalisation) start the run with a fresh
                                 optimizer and schedule: fine-tuning; NULL = initialise. Its
                                 parameters must match the model's (names, shapes). Ignored with
                                 resume. With 0 epochs the initialised model is saved as is. */
    const char *teacher;      /* distillation: the teacher's checkpoint; NULL = plain training */
    double temperature;       /* distillation: softening temperature T (> 0) */
    double alpha;             /* distillation: weight of T²·KL(teacher‖student); CE gets 1 − alpha */
    bool qat;                 /* quantisation-aware training (fake int8 quantisation, STE) */
    /* unstructured magnitude pruning with masks kept through training (kiln/prune.h); NULL = none.
     * Borrowed: must outlive the kn_train call. */
    const struct kn_prune_opts *prune;
} kn_train_opts;

void kn_train_opts_defaults(kn_train_opts *o); /* recipe defaults, seed 42 */

typedef struct kn_epoch_log {
    int epoch;                /* 1-based */
    double train_loss, train_acc;
    double val_loss, val_acc; /* on the validation split; NAN without one */
    double test_loss, test_acc; /* on the test set after this epoch; NAN without one */
    double images_per_s, seconds, lr;
    int64_t skipped_steps;    /* steps whose loss or gradients were not finite: no update made */
} kn_epoch_log;

typedef struct kn_eval_result {
    int64_t n;
    double loss, accuracy;
    int classes;
    int64_t *confusion;       /* classes × classes, [true][predicted]; free with kn_eval_result_free */
} kn_eval_result;

void kn_eval_result_free(kn_eval_result *r);

typedef struct kn_train_result {
    int epochs_done;
    int64_t steps;            /* optimizer steps done (including resumed ones) */
    double seconds;           /* training time of this run (excluding evaluation) */
    double train_images_per_s;
    bool stopped;             /* stop_after_steps ended the run early */
    int64_t skipped_steps;    /* steps skipped by the numerical guard (all epochs) */
    kn_eval_result test;      /* on the test set, when one was given and training finished */
    int n_logs;
    kn_epoch_log *logs;       /* one per finished epoch (resumed runs include earlier ones) */
} kn_train_result;

void kn_train_result_free(kn_train_result *r);

/* Trains m on train (optionally evaluating on test at the end). res may be NULL. */
kn_status kn_train(const kn_model *m, const kn_dataset *train, const kn_dataset *test, const kn_train_opts *opts,
                   kn_train_result *res, kn_error *err);

/* ---- inference on a saved model ------------------------------------------------------------ */
typedef struct kn_infer kn_infer;

/* Loads a checkpoint written by kn_train (model text and normalisation come from its metadata). */
kn_status kn_infer_load(kn_infer **out, const char *checkpoint, int batch, int threads, kn_error *err);
void kn_infer_free(kn_infer *inf);
const kn_model *kn_infer_model(const kn_infer *inf);
/* Accuracy, mean loss and confusion matrix over a data set (labels must be < classes). */
kn_status kn_infer_evaluate(kn_infer *inf, const kn_dataset *ds, kn_eval_result *res, kn_error *err);
/* Class probabilities [n, classes] for n raw examples (u8 or f32 as in the data set, normalised
 * here like in training). */
kn_status kn_infer_probs(kn_infer *inf, const void *x, kn_dtype dtype, int64_t n, float *probs, kn_error *err);

#ifdef __cplusplus
}
#endif
#endif
