/* precision.c — names of the mixed-precision modes (kn_precision, kiln/nn.h) for the CLI,
 * checkpoint metadata and reports. What a mode does is in build.c (casts around conv/dense)
 * and the trainer (loss scaling). */
#include <string.h>

#include "kiln/nn.h"

const char *kn_precision_name(kn_precision p)
{
    switch (p) {
    case KN_PRECISION_FP32: return "fp32";
    case KN_PRECISION_BF16: return "bf16";
    case KN_PRECISION_FP16: return "fp16";
    }
    return "?";
}

kn_status kn_precision_parse(const char *s, kn_precision *out, kn_error *err)
{
    if (s && (!strcmp(s, "fp32") || !strcmp(s, "f32")))
        *out = KN_PRECISION_FP32;
    else if (s && !strcmp(s, "bf16"))
        *out = KN_PRECISION_BF16;
    else if (s && (!strcmp(s, "fp16") || !strcmp(s, "f16")))
        *out = KN_PRECISION_FP16;
    else
        return kn_error_set(err, KN_ERR_ARG, "unknown precision '%s' (use fp32, bf16 or fp16)", s ? s : "(null)");
    return KN_OK;
}
