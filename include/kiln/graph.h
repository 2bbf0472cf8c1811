/* kiln/graph.h — the graph builder, reverse-mode autodiff and optimizer-update nodes.
 *
 * Define, then run: every kn_graph_* builder call only records a node, after checking the
 * shapes, dtypes and attributes of its inputs. On a bad call it returns NULL and the graph
 * keeps the first error (kn_graph_status / kn_graph_error) with a message naming the op,
 * the shapes and the rule broken. A NULL input makes a builder return NULL silently, so a
 * whole model can be built and checked once at the end. Nothing here aborts.
 *
 * The graph owns its nodes (freed with the graph; node pointers are borrowed) and the
 * storage of its parameters: all parameters live in one contiguous 64-byte-aligned buffer.
 * Run a graph by compiling it into a plan (kiln/plan.h). */
#ifndef KILN_GRAPH_H
#define KILN_GRAPH_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kn_graph kn_graph;
typedef struct kn_node kn_node;

/* NULL when out of memory. */
kn_graph *kn_graph_new(void);
void kn_graph_free(kn_graph *g); /* NULL is a no-op */

/* First error recorded while building (KN_OK if none) and its message ("" if none). */
kn_status kn_graph_status(const kn_graph *g);
const char *kn_graph_error(const kn_graph *g);
void kn_graph_clear_error(kn_graph *g);

/* ---- node queries ------------------------------------------------------------------- */
kn_dtype kn_node_dtype(const kn_node *n);
int kn_node_ndim(const kn_node *n);
int64_t kn_node_dim(const kn_node *n, int i); /* negative i counts from the end */
int64_t kn_node_numel(const kn_node *n);
const char *kn_node_name(const kn_node *n);   /* "" when unnamed */
const char *kn_node_op_name(const kn_node *n);
int kn_node_id(const kn_node *n);
/* Formats "[64,3,32,32]" into buf (always NUL-terminated); returns buf. */
char *kn_node_shape_str(const kn_node *n, char *buf, size_t size);

/* ---- leaves ------------------------------------------------------------------------- */
/* Input: data supplied to the plan before each run. */
kn_node *kn_graph_input(kn_graph *g, const char *name, kn_dtype dt, int ndim, const int64_t *shape);
/* Parameter: stored in the graph (zero-initialised). Trainable ones are what backward()
 * differentiates by default; frozen ones (trainable = false) hold state such as batch-norm
 * running statistics and optimizer moments. */
kn_node *kn_graph_param(kn_graph *g, const char *name, kn_dtype dt, int ndim, const int64_t *shape,
                        bool trainable);
/* Constant: data copied into the graph now (NULL data: zeros). */
kn_node *kn_graph_const(kn_graph *g, kn_dtype dt, int ndim, const int64_t *shape, const void *data);
kn_node *kn_graph_scalar(kn_graph *g, kn_dtype dt, double value); /* 0-d constant */

/* Parameter storage: valid until the next parameter is added. NULL if n is not a param.
 * When a plan on a GPU holds newer parameter values (a CUDA plan ran since), they are first
 * copied back to the host, and that plan uploads them again before its next run, so values
 * read or written here are always current; NULL if that copy fails (kn_graph_sync_params
 * says why). */
void *kn_graph_param_data(kn_graph *g, const kn_node *n);
/* Brings every parameter back to the host now (see kn_graph_param_data); KN_OK when no
 * device holds newer values. KN_ERR_DEVICE with the reason in msg (size bytes; may be NULL). */
kn_status kn_graph_sync_params(kn_graph *g, char *msg, size_t size);
/* A kn_tensor view of a parameter (borrowed data; free the struct with kn_tensor_free). */
kn_status kn_graph_param_tensor(kn_graph *g, const kn_node *n, kn_tensor **out);
/* Number of parameters (trainable only, or all); fills up to max of them into out (may be NULL). */
int kn_graph_params(kn_graph *g, bool trainable_only, kn_node **out, int max);
size_t kn_graph_param_bytes(const kn_graph *g);
kn_node *kn_graph_find(kn_graph *g, const char *name); /* first node with that name, or NULL */

typedef enum kn_init {
    KN_INIT_ZEROS, KN_INIT_ONES, KN_INIT_CONST,  /* a = value */
    KN_INIT_UNIFORM,                             /* U(a, b) */
    KN_INIT_NORMAL,                              /* N(a, b²) */
    KN_INIT_KAIMING_UNIFORM,                     /* PyTorch's default for linear/conv:
                                                    U(±1/sqrt(fan_in)), fan_in = numel/dim0 */
} kn_init;
/* Initialises a parameter from the graph's seed (kn_graph_set_seed) and the parameter's name
 * (its node id when unnamed), so the same model gets the same values in any graph. */
kn_status kn_graph_param_init(kn_graph *g, kn_node *param, kn_init how, double a, double b);
void kn_graph_set_seed(kn_graph *g, uint64_t seed);
uint64_t kn_graph_seed(const kn_graph *g);

/* ---- elementwise (NumPy broadcasting) ------------------------------------------------- */
kn_node *kn_graph_add(kn_graph *g, kn_node *a, kn_node *b);
kn_node *kn_graph_sub(kn_graph *g, kn_node *a, kn_node *b);
kn_node *kn_graph_mul(kn_graph *g, kn_node *a, kn_node *b);
kn_node *kn_graph_div(kn_graph *g, kn_node *a, kn_node *b);
kn_node *kn_graph_pow(kn_graph *g, kn_node *a, kn_node *b);  /* a > 0 where b is not an integer */
kn_node *kn_graph_neg(kn_graph *g, kn_node *x);
kn_node *kn_graph_exp(kn_graph *g, kn_node *x);
kn_node *kn_graph_log(kn_graph *g, kn_node *x);
kn_node *kn_graph_sqrt(kn_graph *g, kn_node *x);
kn_node *kn_graph_abs(kn_graph *g, kn_node *x);
kn_node *kn_graph_clamp(kn_graph *g, kn_node *x, double lo, double hi);
kn_node *kn_graph_scale(kn_graph *g, kn_node *x, double alpha, double beta); /* alpha·x + beta */
kn_node *kn_graph_cast(kn_graph *g, kn_node *x, kn_dtype dt);
kn_node *kn_graph_relu(kn_graph *g, kn_node *x);
kn_node *kn_graph_leaky_relu(kn_graph *g, kn_node *x, double slope);
kn_node *kn_graph_sigmoid(kn_graph *g, kn_node *x);
kn_node *kn_graph_tanh(kn_graph *g, kn_node *x);
kn_node *kn_graph_gelu(kn_graph *g, kn_node *x); /* exact (erf) form, as PyTorch's default */
kn_node *kn_graph_silu(kn_graph *g, kn_node *x);

/* ---- softmax and reductions ------------------------------------------------------------ */
kn_node *kn_graph_softmax(kn_graph *g, kn_node *x, int axis);     /* negative axis from the end */
kn_node *kn_graph_log_softmax(kn_graph *g, kn_node *x, int axis);
/* axes: a bitmask of dimensions to reduce (bit i = dim i); 0 means all. */
kn_node *kn_graph_sum(kn_graph *g, kn_node *x, uint32_t axes, bool keepdims);
kn_node *kn_graph_mean(kn_graph *g, kn_node *x, uint32_t axes, bool keepdims);
kn_node *kn_graph_max(kn_graph *g, kn_node *x, uint32_t axes, bool keepdims);
kn_node *kn_graph_min(kn_graph *g, kn_node *x, uint32_t axes, bool keepdims);
kn_node *kn_graph_argmax(kn_graph *g, kn_node *x, int axis, bool keepdims); /* i64, no gradient */

/* ---- linear algebra, convolution, pooling ------------------------------------------------ */
/* a [.., M, K] · b [.., K, N] → [.., M, N]; batch dims broadcast; trans_a/b transpose the
 * last two dims first. Both inputs need ≥ 2 dims. */
kn_node *kn_graph_matmul(kn_graph *g, kn_node *a, kn_node *b, bool trans_a, bool trans_b);
/* x [.., in] · w [out, in]ᵀ + b [out] → [.., out]; b may be NULL. */
kn_node *kn_graph_linear(kn_graph *g, kn_node *x, kn_node *w, kn_node *b);
typedef struct kn_conv2d_opts {
    int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups; /* 0 means default */
} kn_conv2d_opts;
/* x [N, C, H, W], w [O, C/groups, KH, KW], b [O] or NULL → [N, O, OH, OW]; opts NULL means
 * stride 1, pad 0, dilation 1, groups 1. */
kn_node *kn_graph_conv2d(kn_graph *g, kn_node *x, kn_node *w, kn_node *b, const kn_conv2d_opts *opts);
/* stride 0 means stride = kernel (PyTorch's default). avg_pool counts padding zeros. */
kn_node *kn_graph_max_pool2d(kn_graph *g, kn_node *x, int kernel, int stride, int pad);
kn_node *kn_graph_avg_pool2d(kn_graph *g, kn_node *x, int kernel, int stride, int pad);
kn_node *kn_graph_global_avg_pool(kn_graph *g, kn_node *x); /* [N,C,H,W] → [N,C,1,1] */

/* ---- normalisation, dropout, embedding, batches ------------------------------------------- */
/* x [N, C, ...]; gamma, beta, running_mean, running_var [C] (the last two frozen params).
 * A training plan normalises with batch statistics and updates the running ones
 * (r = (1-momentum)·r + momentum·batch, unbiased variance, as PyTorch); an inference plan uses
 * the running statistics. */
kn_node *kn_graph_batch_norm(kn_graph *g, kn_node *x, kn_node *gamma, kn_node *beta,
                             kn_node *running_mean, kn_node *running_var, double momentum, double eps);
/* Normalises over the last `norm_dims` dims; gamma/beta have those dims' shape (or NULL). */
kn_node *kn_graph_layer_norm(kn_graph *g, kn_node *x, int norm_dims, kn_node *gamma, kn_node *beta,
                             double eps);
/* Zeroes each element with probability p and scales the rest by 1/(1-p) in training plans;
 * identity in inference plans. The mask comes from (graph seed, this node, step, index). */
kn_node *kn_graph_dropout(kn_graph *g, kn_node *x, double p);
/* weight [V, D], indices (i32/i64) [...] → [..., D]. */
kn_node *kn_graph_embedding(kn_graph *g, kn_node *weight, kn_node *indices);
/* The batch kn_loader makes, gathered inside the plan from a table of examples kept on the
 * device (the plan gets only rows): table u8 or f32 [N, ...] ([N, F], [N, H, W] or
 * [N, C, H, W]; normally a constant), examples i64 [B, 3] (per example: its row in the table,
 * its epoch, its position in the epoch: kn_batch.rows, .epoch, .first + i), lut f32 [256] (the
 * normalised value of each byte) for a u8 table, NULL for an f32 one (already normalised)
 * → f32 [B, ...]. crop_pad > 0 (up to 65536) and hflip augment as the loader does with the
 * same seed, bit for bit; pad is the value where the crop leaves the image (the normalised 0).
 * Crop and flip need image tables (KN_ERR_ARG for [N, F]). A row outside [0, N) fails the
 * run with KN_ERR_RANGE. No gradient. */
kn_node *kn_graph_load_batch(kn_graph *g, kn_node *table, kn_node *examples, kn_node *lut, int crop_pad, bool hflip,
                             uint64_t seed, float pad);

/* ---- shape ----------------------------------------------------------------------------- */
kn_node *kn_graph_reshape(kn_graph *g, kn_node *x, int ndim, const int64_t *shape); /* one -1 allowed */
kn_node *kn_graph_flatten(kn_graph *g, kn_node *x); /* [N, ...] → [N, rest] */
kn_node *kn_graph_permute(kn_graph *g, kn_node *x, const int *perm);
kn_node *kn_graph_transpose(kn_graph *g, kn_node *x, int dim0, int dim1);
kn_node *kn_graph_concat(kn_graph *g, kn_node *const *xs, int n, int axis); /* n ≤ 8 */
/* Elements start..stop-1 along axis (negative values count from the end). */
kn_node *kn_graph_slice(kn_graph *g, kn_node *x, int axis, int64_t start, int64_t stop);
/* Splits along axis into pieces of the given sizes (summing to the dim); fills out[n]. */
kn_status kn_graph_split(kn_graph *g, kn_node *x, int axis, const int64_t *sizes, int n, kn_node **out);
/* pads[2*i], pads[2*i+1]: elements added before/after dim i (≥ 0), filled with value. */
kn_node *kn_graph_pad(kn_graph *g, kn_node *x, const int64_t *pads, double value);
kn_node *kn_graph_expand(kn_graph *g, kn_node *x, int ndim, const int64_t *shape); /* broadcast */

/* ---- losses (all return a 0-d scalar) ---------------------------------------------------- */
/* logits [N, C], labels [N] (i32/i64 in [0, C)): mean over N of −log softmax(logits)[label]. */
kn_node *kn_graph_softmax_cross_entropy(kn_graph *g, kn_node *logits, kn_node *labels);
kn_node *kn_graph_nll_loss(kn_graph *g, kn_node *log_probs, kn_node *labels);       /* mean */
kn_node *kn_graph_mse_loss(kn_graph *g, kn_node *pred, kn_node *target);            /* mean */
kn_node *kn_graph_bce_with_logits(kn_graph *g, kn_node *logits, kn_node *target);   /* mean */
/* Σ target·(log target − log_q) / N, N = dim 0 (PyTorch's reduction='batchmean'). */
kn_node *kn_graph_kl_div(kn_graph *g, kn_node *log_q, kn_node *target);

/* ---- autodiff -------------------------------------------------------------------------- */
/* Appends the gradient graph of scalar `loss` with respect to params[0..n-1] (n = 0: every
 * trainable parameter the loss depends on) and stores the gradient nodes in grads_out[i]
 * (NULL where the loss does not depend on params[i]). Contributions of a value feeding
 * several consumers are summed. Errors: KN_ERR_SHAPE if loss is not a scalar. */
kn_status kn_graph_backward(kn_graph *g, kn_node *loss, kn_node *const *params, int n, kn_node **grads_out);
/* The gradient node recorded for n by the last backward call, or NULL. */
kn_node *kn_graph_grad(kn_graph *g, const kn_node *n);

/* ---- optimizer updates as nodes ------------------------------------------------------------
 * Each update writes the parameter (and its state buffers) in place when the plan runs.
 * lr (and t for Adam: the 1-based step count) are 0-d inputs so schedules can change them per
 * step without recompiling. State buffers are frozen params created by the caller (same
 * shape as the parameter). */
kn_node *kn_graph_sgd_update(kn_graph *g, kn_node *param, kn_node *grad, kn_node *lr,
                             kn_node *momentum_buf, double momentum, double weight_decay,
                             bool nesterov); /* momentum_buf may be NULL when momentum = 0 */
/* adamw = true applies decoupled weight decay (AdamW); false adds wd·param to the gradient. */
kn_node *kn_graph_adam_update(kn_graph *g, kn_node *param, kn_node *grad, kn_node *lr, kn_node *t,
                              kn_node *m, kn_node *v, double beta1, double beta2, double eps,
                              double weight_decay, bool adamw);

#ifdef __cplusplus
}
#endif
#endif
