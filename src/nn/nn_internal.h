/* nn_internal.h — the parsed form of a model description, shared by the parser (model.c)
 * and the graph builder (build.c). Private to src/nn. It holds only what the text says plus
 * the per-layer statistics that the parse-time probe build records; it is not a general
 * layer library (layers exist only as lines of the model format). */
#ifndef KN_NN_INTERNAL_H
#define KN_NN_INTERNAL_H

#include "kiln/nn.h"

#define KN_NN_MAX_LAYERS 256  /* layer lines per model, input included */
#define KN_NN_MAX_LINE 1024   /* characters per line, newline excluded */
#define KN_NN_MAX_NAME 64     /* characters of a layer name */
#define KN_NN_MAX_TOKENS 64   /* words per line */

typedef enum kn__layer_kind {
    KN_L_INPUT,
    KN_L_CONV2D,
    KN_L_DENSE,
    KN_L_RELU,
    KN_L_LEAKY_RELU,
    KN_L_SIGMOID,
    KN_L_TANH,
    KN_L_GELU,
    KN_L_SILU,
    KN_L_MAXPOOL,
    KN_L_AVGPOOL,
    KN_L_GLOBALAVGPOOL,
    KN_L_BATCHNORM,
    KN_L_LAYERNORM,
    KN_L_DROPOUT,
    KN_L_FLATTEN,
    KN_L_ADD,
    KN_L_COUNT
} kn__layer_kind;

typedef struct kn__layer {
    kn__layer_kind kind;
    int line;                       /* 1-based line in the source */
    char name[KN_NN_MAX_NAME + 1];  /* given with name=, or <prefix><k> */
    bool named;                     /* name came from name= */
    int from;                       /* index of the layer feeding this one */
    bool explicit_from;             /* from= was given */
    int other;                      /* add: index of the layer added; -1 otherwise */
    /* attributes (meaning per kind; unused ones stay 0) */
    int64_t units;                  /* conv2d filters, dense units */
    int kh, kw;                     /* conv2d / pool kernel */
    int stride;                     /* conv2d (default 1), pools (0 = kernel) */
    int pad;                        /* conv2d / pools */
    bool pad_same;                  /* conv2d pad=same: pad = dilation·(k−1)/2 */
    int dilation, groups;           /* conv2d */
    bool bias;                      /* conv2d, dense */
    double f;                       /* leaky_relu slope, dropout p, batchnorm momentum */
    double eps;                     /* batchnorm, layernorm */
    /* filled by the probe build at parse time (per example, i.e. batch 1) */
    int out_ndim;
    int64_t out_shape[KN_MAX_DIMS];  /* without the batch dim */
    int64_t params;                 /* trainable parameter elements this layer owns */
    int64_t frozen;                 /* frozen (batch-norm running statistics) elements */
    double flops;                   /* forward FLOPs per example */
} kn__layer;

struct kn_model {
    char *text;        /* the description as given */
    char *source;      /* name used in messages */
    kn_recipe recipe;
    int n_layers;
    kn__layer *layers; /* [n_layers]; layers[0] is the input */
    int in_ndim;       /* 1 (features) or 3 (C, H, W) */
    int64_t in_shape[3];
    int classes;
    int64_t params, frozen;
    double flops;
};

/* Layer keyword of a kind ("conv2d"). */
const char *kn__layer_keyword(kn__layer_kind kind);

/* Builds m on x in g (see kn_model_build). probe = true is the parse-time check: weights
 * become graph inputs (no storage, no initialisation) and the per-layer output shapes,
 * parameter counts and FLOPs are recorded into stats (which may be NULL otherwise). */
kn_node *kn__model_build(const kn_model *m, kn_graph *g, kn_node *x, bool probe, kn_model *stats,
                         const kn_build_opts *o, kn_error *err);

#endif
