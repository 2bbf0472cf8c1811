/* session.h — pieces shared by the trainer and inference: the evaluation branch of a graph
 * (model on an input of a fixed batch, compiled in inference mode) and input normalisation. */
#ifndef KN_TRAIN_SESSION_H
#define KN_TRAIN_SESSION_H

#include "kiln/io.h"
#include "kiln/plan.h"
#include "kiln/train.h"

typedef struct kn__norm {
    float scale, mean, std; /* x = (raw·scale − mean)/std */
} kn__norm;

typedef struct kn__eval_branch {
    kn_node *x, *logits;
    kn_plan *plan;
    int64_t batch;
    int classes;
    float *probs; /* batch × classes scratch */
} kn__eval_branch;

/* Builds the model on an input [batch, example shape] in g and compiles an inference plan. */
kn_status kn__eval_build(kn_graph *g, const kn_model *m, int64_t batch, int threads, kn__eval_branch *b, kn_error *err);
/* The same with the plan options given (backend, device, threads; po->training is ignored) and
 * build options (o NULL = defaults; e.g. the int8 graph of a quantised checkpoint). */
kn_status kn__eval_build_on(kn_graph *g, const kn_model *m, int64_t batch, const kn_plan_opts *po,
                            const kn_build_opts *o, kn__eval_branch *b, kn_error *err);
void kn__eval_free(kn__eval_branch *b);
/* Evaluates examples idx[0..n) of ds (idx NULL: all). */
kn_status kn__evaluate(kn__eval_branch *b, const kn_dataset *ds, const int64_t *idx, int64_t n, const kn__norm *nm,
                       kn_eval_result *res, kn_error *err);
/* Normalises one raw example (u8 or f32) into dst exactly as the loader does for training
 * (kn__normalise, through its byte table for u8). */
void kn__norm_example(const void *raw, kn_dtype dt, int64_t size, const kn__norm *nm, float *dst);
/* Mean and standard deviation of the (scaled) training inputs. */
void kn__norm_fit(const kn_dataset *ds, kn__norm *nm);
/* Checks that a data set's example shape matches the model's input. */
kn_status kn__check_data(const kn_model *m, const kn_dataset *ds, kn_error *err);
double kn__now(void); /* monotonic seconds */

/* Quantised checkpoints (quantize.c): *int8 = whether meta (a checkpoint's metadata) says
 * kiln.quantized = int8 (KN_ERR_UNSUPPORTED for another value); after loading one into g,
 * kn__quant_validate checks every scale and zero point (KN_ERR_FORMAT naming the tensor). */
kn_status kn__quant_meta(const char *path, const struct kn_meta *meta, bool *int8, kn_error *err);
kn_status kn__quant_validate(kn_graph *g, const char *path, kn_error *err);

#endif
