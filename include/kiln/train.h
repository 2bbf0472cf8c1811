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
#include "plan.h"

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
    kn_precision precision;   /* conv/dense compute precision; the weights stay FP32 masters.
                                 Evaluation (per epoch and at the end) runs in FP32. */
    double loss_scale;        /* FP16: initial dynamic loss scale (0 = 65536); a step with non-finite
                                 gradients is skipped and halves it (ignored for FP32/BF16) */
    int loss_scale_window;    /* FP16: clean steps before the scale doubles (0 = 2000) */
    const char *init_from;    /* checkpoint (file or directory) whose weights (and batch-norm running
                                 statistics, and input normalisation) start the run with a fresh
                                 optimizer and schedule: fine-tuning; NULL = initialise. Its
                                 parameters must match the model's (names, shapes). Ignored with
                                 resume. With 0 epochs the initialised model is saved as is. */
    const char *teacher;      /* distillation: the teacher's checkpoint (file or run directory) whose
                                 model and weights are built frozen into the training graph; its
                                 inputs and classes must match the student's; NULL = plain training.
                                 The student's checkpoints leave the teacher out. */
    double temperature;       /* distillation: softening temperature T (> 0; default 4) */
    double alpha;             /* distillation: weight of T²·KL(teacher‖student); CE gets 1 − alpha
                                 (in [0, 1]; default 0.9). See kn_distill_loss. */
    bool qat;                 /* quantisation-aware training (fake int8 quantisation, STE) */
    /* unstructured magnitude pruning with masks kept through training (kiln/prune.h); NULL = none.
     * Borrowed: must outlive the kn_train call. */
    const struct kn_prune_opts *prune;

    /* ---- device (docs/cuda.md) ---- */
    kn_backend_kind backend;  /* KN_BACKEND_CPU (the default, 0), KN_BACKEND_CUDA or KN_BACKEND_AUTO */
    int device;               /* CUDA ordinal (kn_device_parse("cuda:1", ...) gives 1) */
    bool deterministic;       /* CUDA: same bits run to run (kn_plan_opts.deterministic) */
    bool resident_data;       /* keep the training set in the plans (on the GPU) and gather, normalise
                                 and augment each batch there (kn_graph_load_batch), when it fits in
                                 half the GPU's free memory (else said on stderr and staged as usual);
                                 same results as staging batches from the host */
} kn_train_opts;

void kn_train_opts_defaults(kn_train_opts *o); /* recipe defaults, seed 42, temperature 4, alpha 0.9 */

typedef struct kn_epoch_log {
    int epoch;                /* 1-based */
    double train_loss, train_acc;
    double val_loss, val_acc; /* on the validation split; NAN without one */
    double test_loss, test_acc; /* on the test set after this epoch; NAN without one */
    double images_per_s, seconds, lr;
    int64_t skipped_steps;    /* steps whose loss or gradients were not finite: no update made */
    double loss_scale;        /* FP16: the dynamic loss scale at the end of the epoch; 0 without scaling */
    int64_t scale_halvings, scale_doublings; /* FP16: loss-scale changes in this epoch */
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
    double loss_scale;        /* FP16: the final dynamic loss scale; 0 without scaling */
    int64_t scale_halvings, scale_doublings; /* FP16: loss-scale changes (all epochs) */
    kn_eval_result test;      /* on the test set, when one was given and training finished */
    int n_logs;
    kn_epoch_log *logs;       /* one per finished epoch (resumed runs include earlier ones) */
} kn_train_result;

void kn_train_result_free(kn_train_result *r);

/* Trains m on train (optionally evaluating on test at the end). res may be NULL. */
kn_status kn_train(const kn_model *m, const kn_dataset *train, const kn_dataset *test, const kn_train_opts *opts,
                   kn_train_result *res, kn_error *err);

/* The knowledge-distillation loss (Hinton et al. 2015) of student and teacher logits [N, C]
 * and labels [N]: (1 − alpha)·CE(student, labels) + alpha·T²·KL(softmax(teacher/T) ‖
 * softmax(student/T)), the KL summed over classes and averaged over N (kn_graph_kl_div); T²
 * keeps the soft targets' gradients on the scale of the hard ones'. A 0-d node, or NULL with
 * the error recorded in g: KN_ERR_ARG for temperature ≤ 0 or alpha outside [0, 1],
 * KN_ERR_SHAPE when the logits are not both [N, C]. The teacher logits get gradients only if
 * they depend on trainable parameters (build the teacher frozen). */
kn_node *kn_distill_loss(kn_graph *g, kn_node *student_logits, kn_node *teacher_logits, kn_node *labels,
                         double temperature, double alpha);

/* ---- inference on a saved model ------------------------------------------------------------ */
typedef struct kn_infer kn_infer;

/* Loads a checkpoint written by kn_train (model text and normalisation come from its metadata). */
kn_status kn_infer_load(kn_infer **out, const char *checkpoint, int batch, int threads, kn_error *err);
/* The same on a chosen backend (KN_BACKEND_CPU, CUDA with `device`, or AUTO); a CUDA request
 * without a usable GPU fails with the reason (kn_device_resolve). */
kn_status kn_infer_load_on(kn_infer **out, const char *checkpoint, int batch, int threads, kn_backend_kind backend,
                           int device, kn_error *err);
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
