/* loss_scale.c — the dynamic loss scaler of FP16 mixed-precision training (loss_scale.h):
 * its rules, its counters and its checkpoint metadata. The graph side (loss·S, gradients·1/S)
 * is in trainer.c; skipping a non-finite step is the trainer's numerical guard. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "loss_scale.h"

kn_status kn__loss_scaler_init(kn__loss_scaler *s, const kn_train_opts *o, kn_error *err)
{
    *s = (kn__loss_scaler){.scale = 1, .window = KN_LOSS_SCALE_WINDOW_DEFAULT};
    if (!(o->loss_scale >= 0) || !isfinite(o->loss_scale) || (o->loss_scale > 0 && o->loss_scale < KN_LOSS_SCALE_MIN) ||
        o->loss_scale > KN_LOSS_SCALE_MAX)
        return kn_error_set(err, KN_ERR_ARG, "loss scale %g is out of range: give a value in [2^-24, 2^40] (0 = 65536)",
                            o->loss_scale);
    if (o->loss_scale_window < 0)
        return kn_error_set(err, KN_ERR_ARG, "loss scale window %d is negative: give the number of clean steps (0 = 2000)",
                            o->loss_scale_window);
    if (o->precision < KN_PRECISION_FP32 || o->precision > KN_PRECISION_FP16)
        return kn_error_set(err, KN_ERR_ARG, "precision %d is not a kn_precision (fp32, bf16 or fp16)", (int)o->precision);
    if (o->precision != KN_PRECISION_FP16)
        return KN_OK;
    s->on = true;
    s->scale = o->loss_scale > 0 ? o->loss_scale : KN_LOSS_SCALE_DEFAULT;
    if (o->loss_scale_window > 0)
        s->window = o->loss_scale_window;
    return KN_OK;
}

int kn__loss_scaler_update(kn__loss_scaler *s, bool finite)
{
    if (!s->on)
        return 0;
    if (!finite) {
        s->clean = 0;
        if (s->scale / 2 < KN_LOSS_SCALE_MIN)
            return 0;
        s->scale /= 2;
        s->halvings++;
        return -1;
    }
    if (++s->clean < s->window)
        return 0;
    s->clean = 0;
    if (s->scale * 2 > KN_LOSS_SCALE_MAX)
        return 0;
    s->scale *= 2;
    s->doublings++;
    return 1;
}

kn_status kn__loss_scaler_save(const kn__loss_scaler *s, kn_meta *meta)
{
    if (!s->on)
        return KN_OK;
    char v[64];
    snprintf(v, sizeof v, "%.17g", s->scale);
    kn_status st = kn_meta_set(meta, "kiln.loss_scale", v);
    snprintf(v, sizeof v, "%lld", (long long)s->clean);
    if (!st)
        st = kn_meta_set(meta, "kiln.loss_scale_clean", v);
    snprintf(v, sizeof v, "%lld", (long long)s->halvings);
    if (!st)
        st = kn_meta_set(meta, "kiln.loss_scale_halvings", v);
    snprintf(v, sizeof v, "%lld", (long long)s->doublings);
    if (!st)
        st = kn_meta_set(meta, "kiln.loss_scale_doublings", v);
    return st;
}

static kn_status get_i64(const kn_meta *meta, const char *key, int64_t *out, const char *path, kn_error *err)
{
    const char *v = kn_meta_get(meta, key);
    if (!v)
        return KN_OK;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || x < 0)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: metadata %s = '%s' is not a count", path, key, v);
    *out = x;
    return KN_OK;
}

kn_status kn__loss_scaler_load(kn__loss_scaler *s, const kn_meta *meta, const char *path, kn_error *err)
{
    const char *v = kn_meta_get(meta, "kiln.loss_scale");
    if (v) {
        char *end;
        double x = strtod(v, &end);
        if (end == v || *end || !(x >= KN_LOSS_SCALE_MIN && x <= KN_LOSS_SCALE_MAX))
            return kn_error_set(err, KN_ERR_FORMAT, "%s: metadata kiln.loss_scale = '%s' is not a loss scale in [2^-24, 2^40]",
                                path, v);
        s->scale = x;
    }
    kn_status st = get_i64(meta, "kiln.loss_scale_clean", &s->clean, path, err);
    if (!st)
        st = get_i64(meta, "kiln.loss_scale_halvings", &s->halvings, path, err);
    if (!st)
        st = get_i64(meta, "kiln.loss_scale_doublings", &s->doublings, path, err);
    return st;
}
