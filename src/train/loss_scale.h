/* loss_scale.h — dynamic loss scaling for FP16 mixed-precision training (the trainer's
 * helper; docs/compression.md "Mixed precision"). The backward pass starts from loss·S and the
 * gradients are multiplied by 1/S before the numerical guard; a step whose gradients are not
 * finite is skipped (by the guard) and halves S; `window` clean steps in a row double it. The
 * state (S, the clean-step counter, the counts of halvings and doublings) goes into the
 * checkpoint metadata (kiln.loss_scale*), so a resumed run continues bit for bit. */
#ifndef KN_TRAIN_LOSS_SCALE_H
#define KN_TRAIN_LOSS_SCALE_H

#include "kiln/io.h"
#include "kiln/train.h"

#define KN_LOSS_SCALE_DEFAULT 65536.0
#define KN_LOSS_SCALE_WINDOW_DEFAULT 2000
#define KN_LOSS_SCALE_MIN 0x1p-24 /* never halved below this (every FP16 gradient would be 0) */
#define KN_LOSS_SCALE_MAX 0x1p40  /* never doubled above this (loss·S stays far from FP32's range) */

typedef struct kn__loss_scaler {
    bool on;          /* FP16 training; off: S is 1 and never changes */
    double scale;     /* S, a power of two times the initial scale */
    int window;       /* clean steps before S doubles */
    int64_t clean;    /* clean steps since the last change */
    int64_t halvings, doublings;
} kn__loss_scaler;

/* From the train options: on for KN_PRECISION_FP16 (loss_scale 0 = 65536, window 0 = 2000).
 * KN_ERR_ARG naming the option when loss_scale or loss_scale_window is out of range. */
kn_status kn__loss_scaler_init(kn__loss_scaler *s, const kn_train_opts *o, kn_error *err);
/* After an optimizer step (finite: its gradients were finite and the update was made):
 * returns -1 when S was halved, +1 when doubled, 0 otherwise. */
int kn__loss_scaler_update(kn__loss_scaler *s, bool finite);
/* The state as kiln.loss_scale, kiln.loss_scale_clean, kiln.loss_scale_halvings and
 * kiln.loss_scale_doublings (nothing when off). */
kn_status kn__loss_scaler_save(const kn__loss_scaler *s, kn_meta *meta);
/* Restores the state saved by kn__loss_scaler_save (absent keys keep the current values);
 * KN_ERR_FORMAT naming path for an unreadable or out-of-range value. */
kn_status kn__loss_scaler_load(kn__loss_scaler *s, const kn_meta *meta, const char *path, kn_error *err);

#endif
