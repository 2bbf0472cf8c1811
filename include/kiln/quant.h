/* kiln/quant.h — int8 post-training quantisation (docs/quantization.md).
 *
 * Scheme: weights symmetric s8 per output channel (w ≈ q·s_w[o], q in [-127, 127]);
 * activations (the input of every conv and dense layer) asymmetric u8 per tensor with a scale
 * and zero point calibrated on sample data (q = clamp(round(x/s) + zp, 0, 255)); int32
 * accumulation; float output y = s·s_w[o]·Σ(q_x − zp)·q_w + b. Everything between the
 * quantised layers (ReLU, pooling, normalisation, softmax) stays float32.
 *
 * A quantised checkpoint is an ordinary kiln checkpoint (safetensors) whose metadata has
 * kiln.quantized = "int8" and whose conv/dense layers hold "<layer>.weight" as i8, plus
 * "<layer>.weight_scale" f32 [out] and "<layer>.input_qparams" f32 [2] (scale, zero point);
 * biases and other parameters stay f32. kn_infer_load (kiln/train.h) and kiln eval, predict
 * and bench load it like any checkpoint and run the int8 graph (kn_build_opts.int8). */
#ifndef KILN_QUANT_H
#define KILN_QUANT_H

#include "data.h"
#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- graph builders (inference-only ops, no gradient) ---------------------------------- */
/* x [.., in] f32, w [out, in] i8, w_scale [out], x_qparams [2] = {scale, zero point}, b [out]
 * or NULL → [.., out] f32; relu fuses max(·, 0) on the output. Bad scales are found at run
 * time (KN_ERR_RANGE from the plan, naming the op and the value). */
kn_node *kn_graph_qlinear(kn_graph *g, kn_node *x, kn_node *w, kn_node *w_scale, kn_node *x_qparams, kn_node *b,
                          bool relu);
/* x [N, C, H, W] f32, w [O, C/groups, KH, KW] i8, the rest as qlinear → [N, O, OH, OW]. */
kn_node *kn_graph_qconv2d(kn_graph *g, kn_node *x, kn_node *w, kn_node *w_scale, kn_node *x_qparams, kn_node *b,
                          const kn_conv2d_opts *opts, bool relu);
/* Quantisation-aware training: x rounded to the int8 grid and back, per tensor (axis -1) or
 * per slice along axis; symmetric s8 (scale max|x|/127) or asymmetric u8 over
 * [min(x,0), max(x,0)]. Gradient: straight-through (dy). */
kn_node *kn_graph_fake_quant(kn_graph *g, kn_node *x, int axis, bool asymmetric);

/* ---- post-training quantisation -------------------------------------------------------- */
typedef enum kn_calib_method {
    KN_CALIB_MINMAX = 0,  /* the observed range of each layer input */
    KN_CALIB_PERCENTILE,  /* the [100 − p, p] percentile range (outliers clipped) */
} kn_calib_method;

typedef struct kn_quant_opts {
    int64_t calib;          /* calibration examples (0 = 1000), spread evenly over the data set */
    kn_calib_method method;
    double percentile;      /* KN_CALIB_PERCENTILE: p in (50, 100] (0 = 99.99) */
    int batch;              /* calibration batch (0 = 250) */
    int threads;            /* 0 = all cores */
} kn_quant_opts;

void kn_quant_opts_defaults(kn_quant_opts *o);

/* Quantises the FP32 checkpoint `checkpoint` (a file or a directory holding model.safetensors)
 * with activation ranges calibrated on `calib` (examples must fit the model's input) and
 * writes the int8 checkpoint to out_path atomically. Errors: KN_ERR_ARG (bad options, an
 * already quantised checkpoint), KN_ERR_SHAPE (data does not fit the model), the loader's
 * errors for the checkpoint, KN_ERR_UNSUPPORTED (a model without conv/dense layers), KN_ERR_IO,
 * KN_ERR_OOM. out_path is untouched on error. */
kn_status kn_quantize(const char *checkpoint, const kn_dataset *calib, const kn_quant_opts *o, const char *out_path,
                      kn_error *err);

/* True when the checkpoint's metadata marks it quantised (kiln.quantized = int8); false for an
 * FP32 checkpoint. KN_ERR_UNSUPPORTED for another kiln.quantized value, the loader's errors. */
kn_status kn_checkpoint_is_quantized(const char *path, bool *quantized, kn_error *err);

#ifdef __cplusplus
}
#endif
#endif
