/* finetune.h — starting a training run from the weights of a checkpoint (kn_train_opts.init_from). */
#ifndef KN_TRAIN_FINETUNE_H
#define KN_TRAIN_FINETUNE_H

#include "session.h"

/* Copies the parameters of model m (weights and batch-norm running statistics) from the
 * checkpoint `spec` (a file, or a run directory holding model.safetensors) into g, where m has
 * been built already; optimizer state in the file is ignored. When the file records its input
 * normalisation (kiln.norm_*), *norm gets it (the weights were trained with it); its kiln.pruning
 * note (what pruning made the model, "" if none) goes into pruning[pruning_size]. Errors:
 * KN_ERR_SHAPE/KN_ERR_DTYPE naming the tensor when a parameter of m is missing from the file
 * or has another shape, or when the file's model (kiln.model) has parameters m lacks; those
 * of kn_checkpoint_load; KN_ERR_OOM. g is unchanged on error. */
kn_status kn__init_from(kn_graph *g, const kn_model *m, const char *spec, kn__norm *norm, char *pruning,
                        size_t pruning_size, kn_error *err);

#endif
