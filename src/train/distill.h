/* distill.h — knowledge distillation inside kn_train (private to src/train): the teacher read
 * from its checkpoint, built frozen and in inference form under the "teacher." prefix on the
 * student's input in the same training graph, and the distillation loss (kn_distill_loss). */
#ifndef KN_TRAIN_DISTILL_H
#define KN_TRAIN_DISTILL_H

#include "session.h"

/* Parameter-name prefix of the teacher in the training graph; checkpoints leave it out. */
#define KN__TEACHER_PREFIX "teacher."

typedef struct kn__distill {
    kn_model *teacher;  /* parsed from the checkpoint's kiln.model */
    kn_graph *weights;  /* the teacher's parameters as loaded; freed once copied into the graph */
    kn__norm norm;      /* the normalisation the teacher was trained with */
    double temperature, alpha;
    char path[4096];    /* the checkpoint file */
} kn__distill;

/* Checks the options (temperature > 0, alpha in [0, 1]), reads the teacher's checkpoint (a
 * file or a directory holding model.safetensors) and checks that it fits the student: same
 * example shape, same number of classes, no student layer named "teacher". Errors name the
 * file and the mismatch; on error d holds nothing (kn__distill_close is still safe). */
kn_status kn__distill_open(kn__distill *d, const kn_model *student, const kn_train_opts *o, kn_error *err);
void kn__distill_close(kn__distill *d);

/* The training loss of a branch: the teacher built on x (renormalised when the teacher was
 * trained with another normalisation than the student's `norm`), its weights copied in on the
 * first call, and kn_distill_loss(logits, teacher logits, y). NULL on error (in err). */
kn_node *kn__distill_loss(kn__distill *d, kn_graph *g, kn_node *x, kn_node *logits, kn_node *y, const kn__norm *norm,
                          kn_error *err);

#endif
