/* kiln/nn.h — models described in a small text format, and the training recipe they carry.
 *
 * The format (full reference: docs/model-format.md): one layer per line, Keras-like;
 * '#' starts a comment; blank lines are ignored; keywords are lowercase; `key=value` options
 * follow the positional arguments. The first layer line is `input C H W` (images) or
 * `input F` (features). Each layer takes the previous layer's output, or `from=NAME` a named
 * earlier output; `name=NAME` names a layer's output; `add NAME` adds a named output of the
 * same shape (residual connection). Lines starting with `train` set the recipe the model
 * was tuned with, e.g.
 *   train optimizer=adam lr=0.001 batch=64 epochs=5 schedule=cosine warmup=1 crop=4 flip=1
 *
 *   input 1 28 28
 *   conv2d 32 3 pad=1      # 32 filters 3×3 (also: stride= dilation= groups= bias=0 pad=same)
 *   relu
 *   maxpool 2              # (also: stride= pad=)
 *   flatten
 *   dense 10               # logits; the loss is softmax cross-entropy
 *
 * Layers: input, conv2d, dense (alias linear), relu, leaky_relu [slope], sigmoid, tanh,
 * gelu, silu, maxpool, avgpool, globalavgpool (→ [N, C], no flatten needed), batchnorm
 * [momentum= eps=], layernorm [eps=] (over all dims but the batch), dropout P, flatten,
 * add NAME. The last layer must give [N, classes].
 * Parameters are named "<layer name>.<weight|bias|gamma|beta|running_mean|running_var>",
 * where an unnamed layer is called <kind><k> (conv1, conv2, dense1, bn1, ...; k counts the
 * layers of that kind, named ones included) and the input layer is called "input".
 * Limits: 256 layer lines, 1024 characters per line, 64 characters per name. */
#ifndef KILN_NN_H
#define KILN_NN_H

#include <stdio.h>

#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_recipe {
    char optimizer[16];   /* "sgd", "adam", "adamw" */
    double lr;
    double momentum;      /* sgd */
    bool nesterov;        /* sgd */
    double weight_decay;
    double beta1, beta2, eps; /* adam/adamw */
    int batch;
    int epochs;
    char schedule[16];    /* "constant", "step", "cosine" */
    double warmup_epochs; /* linear warm-up from 0 over this many epochs (may be fractional) */
    int step_size;        /* step schedule: epochs between decays */
    double gamma;         /* step schedule: decay factor */
    double clip_norm;     /* > 0: clip the global gradient norm */
    int accum;            /* gradient accumulation steps (≥ 1) */
    int crop_pad;         /* augmentation: random crop with this padding (0 = off) */
    bool hflip;           /* augmentation: random horizontal flip */
    double val_split;     /* fraction of training data held out for validation */
    double label_smoothing; /* reserved; 0 */
} kn_recipe;

/* The defaults used when neither the model file nor the command line says otherwise:
 * adam, lr 1e-3, momentum 0.9, betas 0.9/0.999, eps 1e-8, batch 64, epochs 5, constant
 * schedule, step_size 30, gamma 0.1, accum 1, val_split 0. */
void kn_recipe_defaults(kn_recipe *r);

/* Sets one recipe field from a key=value pair (same keys as the `train` line): optimizer
 * (sgd|adam|adamw), lr (> 0), momentum, nesterov (0/1), weight_decay (alias wd), beta1, beta2,
 * eps, batch (≥ 1), epochs (≥ 1), schedule (constant|step|cosine), warmup (epochs, may be
 * fractional), step_size, gamma, clip (alias clip_norm; 0 = off), accum, crop (alias crop_pad),
 * flip (alias hflip; 0/1), val_split (0..0.9). KN_ERR_ARG with a message naming the key and
 * the rule for an unknown key or a bad value; r is unchanged then. */
kn_status kn_recipe_set(kn_recipe *r, const char *key, const char *value, kn_error *err);

typedef struct kn_model kn_model;

/* Parses a model description; *out is the new model (free with kn_model_free) or NULL on
 * failure. source names it in messages (NULL: "<model>"), and every message names the line:
 * "examples/model_b.kiln:7: unknown layer 'conv3d' (known: ...)". Errors: KN_ERR_FORMAT
 * (syntax, unknown layer or option, bad number, unknown name in from=/add, a bad `train`
 * setting, a line over 1024 characters, no layers), KN_ERR_SHAPE (layers that do not fit:
 * checked by building the model once on a batch of 1), KN_ERR_OOM, KN_ERR_ARG (NULL text).
 * kn_model_load reads a file (KN_ERR_IO if it cannot) and uses its path as source. */
kn_status kn_model_parse(kn_model **out, const char *text, const char *source, kn_error *err);
kn_status kn_model_load(kn_model **out, const char *path, kn_error *err);
void kn_model_free(kn_model *m); /* NULL is a no-op */

const char *kn_model_text(const kn_model *m);       /* the description as given (borrowed) */
const kn_recipe *kn_model_recipe(const kn_model *m); /* defaults overridden by `train` lines */
/* Example shape from the `input` line: returns its number of dims (1 or 3), fills shape. */
int kn_model_input_shape(const kn_model *m, int64_t shape[3]);
int kn_model_num_classes(const kn_model *m);         /* width of the last layer's output */
int kn_model_num_layers(const kn_model *m);          /* layer lines, the input line included */

/* One layer as the parse-time check on a batch of 1 found it (for tools and tests). */
typedef struct kn_model_layer {
    const char *name;      /* "conv1" or the name= given (borrowed from the model) */
    const char *kind;      /* the keyword: "conv2d", "dense", ... (aliases resolved) */
    int line;              /* 1-based line in the source */
    int ndim;              /* of the output per example (without the batch dim) */
    int64_t shape[KN_MAX_DIMS];
    int64_t params;        /* trainable parameter elements of this layer */
    int64_t frozen;        /* non-trained state elements (batch-norm running statistics) */
    double flops;          /* forward FLOPs per example */
} kn_model_layer;
/* Layer i in 0 .. kn_model_num_layers()-1; KN_ERR_ARG when out of range. */
kn_status kn_model_layer_info(const kn_model *m, int i, kn_model_layer *out);

/* Builds the model on x [N, input shape...] (any float dtype; the parameters get x's dtype)
 * in g and returns the logits [N, classes] (borrowed, owned by g). NULL on error, recorded
 * in err and in g: KN_ERR_SHAPE when x does not fit the input line or a parameter of that
 * name already in g has another shape or dtype, the graph's status if g already has an error. Parameters are created by the first build in a graph
 * (initialised like PyTorch's defaults from the graph seed: kaiming-uniform weights, biases
 * U(±1/sqrt(fan_in)), batch-norm gamma 1, beta 0, running var 1) and found by name by later
 * builds, so a training branch and an evaluation branch of one graph share them. */
kn_node *kn_model_build(const kn_model *m, kn_graph *g, kn_node *x, kn_error *err);

/* Compute precision of a model's conv and dense layers. FP32 everywhere by default; BF16/FP16
 * cast the operands of convolutions and matrix products (mixed precision: the parameters stay
 * FP32 master weights; reductions, softmax, losses and normalisation stay FP32). */
typedef enum kn_precision { KN_PRECISION_FP32 = 0, KN_PRECISION_BF16, KN_PRECISION_FP16 } kn_precision;
/* "fp32", "bf16", "fp16" ("?" for a value out of range). */
const char *kn_precision_name(kn_precision p);
/* Parses "fp32" | "bf16" | "fp16" (also "f32", "f16"); KN_ERR_ARG listing the choices otherwise. */
kn_status kn_precision_parse(const char *s, kn_precision *out, kn_error *err);

/* How kn_model_build_ex builds a model (zero-initialised = kn_model_build). */
typedef struct kn_build_opts {
    const char *prefix;     /* prepended to every parameter name, e.g. "teacher." (NULL: none) */
    bool frozen;            /* create the parameters frozen (not trained), e.g. a distillation teacher,
                               and build the model in inference form in any plan: batch norm uses
                               (and never updates) the running statistics, dropout is the identity */
    kn_precision precision; /* see kn_precision */
    bool fake_quant;        /* quantisation-aware training: int8 fake quantisation of conv/dense
                               weights and inputs (straight-through estimator in backward) */
    bool int8;              /* the int8 inference graph of a quantised checkpoint (kiln/quant.h):
                               conv/dense as qconv2d/qlinear with i8 weights, their scales and input
                               quantisation as frozen parameters; a following ReLU, and a 2x2
                               stride-2 max pool after a conv, are fused into the layer when nothing
                               else reads the intermediate output */
} kn_build_opts;

/* kn_model_build with options (o NULL = defaults). Two builds with different prefixes put two
 * models (e.g. a teacher and a student) into one graph. */
kn_node *kn_model_build_ex(const kn_model *m, kn_graph *g, kn_node *x, const kn_build_opts *o, kn_error *err);

/* A new graph holding m built on an input "x" of one example (parameters created and
 * initialised from the graph's default seed): for reading or writing a model's parameters by
 * name. NULL on failure, with the reason in err prefixed by `what` (e.g. a file name; NULL:
 * the model's source). Free with kn_graph_free. */
kn_graph *kn_model_new_graph(const kn_model *m, const char *what, kn_error *err);

/* Prints one line per layer (line, name, kind, output shape, parameters, FLOPs per example)
 * and the totals, as `kiln info` shows them. KN_ERR_IO if writing fails. */
kn_status kn_model_summary(const kn_model *m, FILE *out, kn_error *err);
/* Totals without printing: trainable parameter elements and forward FLOPs per example
 * (either pointer may be NULL). */
kn_status kn_model_stats(const kn_model *m, int64_t *params, double *flops, kn_error *err);

#ifdef __cplusplus
}
#endif
#endif
