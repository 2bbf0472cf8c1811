/* quant_internal.h — the int8 arithmetic shared by the quant op family (src/ops/quant.c: its
 * float64 reference kernels), the CPU kernels (src/backend/cpu/qgemm.c) and the quantiser
 * (src/train/quantize.c), so all of them round exactly alike. Not a place for kernels.
 *
 * Activations: asymmetric u8, q = clamp(rne(x · (1/s)) + zp, 0, 255), with 1/s and x·(1/s)
 * computed in float32 (the reference emulates that, so the integer products agree exactly).
 * Weights: symmetric s8 per output channel, w ≈ q_w · s_w[o], q_w in [-127, 127].
 * Output: y[o] = (Σ q·q_w − zp·Σ q_w) · (s · s_w[o]) + b[o]. */
#ifndef KN_OPS_QUANT_INTERNAL_H
#define KN_OPS_QUANT_INTERNAL_H

#include <math.h>

#include "../core/hd.h"
#include "op_table.h"

/* Input slots of QLINEAR and QCONV2D. */
enum { KN_Q_X, KN_Q_W, KN_Q_WSCALE, KN_Q_XQ, KN_Q_BIAS };

/* QLINEAR/QCONV2D ai[KN_Q_RELU] (after the conv slots ai[0..6]): 1 = ReLU fused on the output.
 * QCONV2D ai[KN_Q_POOL]: 2 = a 2×2, stride-2 max pool fused on the output (after the ReLU). */
#define KN_Q_RELU 8
#define KN_Q_POOL 9

/* Fuses a 2×2 stride-2 max pool into a checked QCONV2D node nobody reads yet (the model
 * builder, for conv [relu] maxpool 2): sets the attribute and halves the output's H and W.
 * KN_ERR_SHAPE when the output is smaller than 2×2 (n unchanged). */
kn_status kn__qconv2d_fuse_pool(kn_graph *g, kn_node *n);

/* The activation quantiser of one tensor: scale s (finite, > 0) and zero point (0..255). */
KN_HD float kn__q_inv(float s) { return 1.0f / s; }

KN_HD int kn__q_u8(float x, float inv, int zp)
{
    float v = x * inv;
    v = v > -256.0f ? v : -256.0f; /* NaN → −256 → 0 (the vector kernel's max/min do the same) */
    v = v < 256.0f ? v : 256.0f;
    int q = (int)nearbyintf(v) + zp;
    return q < 0 ? 0 : q > 255 ? 255 : q;
}

/* FAKE_QUANT's float32 arithmetic for one channel (the reference, the CPU kernel and the CUDA
 * kernel share it, so they round alike): its scale and zero point from its range [lo, hi], then
 * each value's quantise-dequantise. */
KN_HD void kn__fq_params(bool asym, float lo, float hi, float *scale, int *zp)
{
    if (asym) {
        lo = lo < 0 ? lo : 0;
        hi = hi > 0 ? hi : 0;
        *scale = hi > lo ? (hi - lo) / 255.0f : 1.0f;
        int z = (int)nearbyintf(-lo / *scale);
        *zp = z < 0 ? 0 : z > 255 ? 255 : z;
    } else {
        float m = fmaxf(-lo, hi);
        *scale = m > 0 ? m / 127.0f : 1.0f;
        *zp = 0;
    }
}

KN_HD float kn__fq_value(float x, bool asym, float scale, float inv, int zp)
{
    if (asym)
        return (float)(kn__q_u8(x, inv, zp) - zp) * scale;
    float v = nearbyintf(x * inv);
    v = v < -127.0f ? -127.0f : v > 127.0f ? 127.0f : v;
    return v * scale;
}

/* True when (scale, zero point) read from a tensor are usable; a weight scale must be finite
 * and > 0. */
KN_HD bool kn__q_params_ok(double s, double zp)
{
    return isfinite(s) && s > 0 && s < 1e30 && zp >= 0 && zp <= 255 && zp == floor(zp);
}
KN_HD bool kn__q_wscale_ok(double ws) { return isfinite(ws) && ws > 0; }

/* The KN_ERR_RANGE messages for unusable quantisation parameters of a QLINEAR/QCONV2D call
 * (a->err), the same from the reference, the CPU kernel and the CUDA data check: the input's
 * (scale s, zero point zp), or weight scale number o. */
kn_status kn__q_bad_input_params(const kn__kargs *a, double s, double zp);
kn_status kn__q_bad_weight_scale(const kn__kargs *a, int64_t o, double ws);

/* The int8 kernels' supports(): f32 activations, scales and bias, i8 weights, a reduction
 * that fits int32 (KN_Q_MAX_K). */
bool kn__q_supported(const kn_node *n);

/* The weight quantiser of one output channel: scale max|w| / 127 (1 for an all-zero channel). */
static inline double kn__q_wscale(double maxabs) { return maxabs > 0 && isfinite(maxabs) ? maxabs / 127.0 : 1.0; }
static inline int kn__q_s8(double w, double scale)
{
    double v = nearbyint(w / scale);
    return v < -127 ? -127 : v > 127 ? 127 : (int)v;
}

/* FAKE_QUANT on float32 buffers, the same rounding as its reference (src/ops/quant.c); the
 * CPU kernel calls it. */
void kn__fake_quant_f32(const kn_node *n, const float *x, float *y);
/* A FAKE_QUANT input seen as [pre, C, post]: C channels along the axis (per tensor: 1). */
void kn__fq_dims(const kn_node *n, int64_t *pre, int64_t *C, int64_t *post);

/* Largest reduction length of the int8 kernels: 2·255·127·K (the sum and its zero-point
 * correction) must fit an int32. */
#define KN_Q_MAX_K 32768

#endif
