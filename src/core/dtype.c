/* dtype.c — status names, dtype properties, f16/bf16 conversion and bulk dtype conversion. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kiln/core.h"

const char *kn_status_name(kn_status s)
{
    static const char *names[KN_STATUS_COUNT] = {
        "KN_OK", "KN_ERR_SHAPE", "KN_ERR_DTYPE", "KN_ERR_ARG", "KN_ERR_OOM", "KN_ERR_DEVICE",
        "KN_ERR_IO", "KN_ERR_FORMAT", "KN_ERR_UNSUPPORTED", "KN_ERR_MISUSE", "KN_ERR_RANGE"};
    return (s >= 0 && s < KN_STATUS_COUNT) ? names[s] : "KN_ERR_?";
}

kn_status kn_error_set(kn_error *err, kn_status status, const char *fmt, ...)
{
    if (err) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

size_t kn_dtype_size(kn_dtype dt)
{
    static const size_t sizes[KN_DTYPE_COUNT] = {4, 8, 2, 2, 1, 4, 8, 1};
    return ((unsigned)dt < KN_DTYPE_COUNT) ? sizes[dt] : 0;
}

const char *kn_dtype_name(kn_dtype dt)
{
    static const char *names[KN_DTYPE_COUNT] = {"f32", "f64", "f16", "bf16", "i8", "i32", "i64", "u8"};
    return ((unsigned)dt < KN_DTYPE_COUNT) ? names[dt] : "?";
}

bool kn_dtype_is_float(kn_dtype dt)
{
    return dt == KN_F32 || dt == KN_F64 || dt == KN_F16 || dt == KN_BF16;
}

bool kn_dtype_is_int(kn_dtype dt)
{
    return dt == KN_I8 || dt == KN_I32 || dt == KN_I64 || dt == KN_U8;
}

static uint32_t f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

uint16_t kn_f32_to_f16(float x)
{
    uint32_t u = f32_bits(x);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t exp = (u >> 23) & 0xFFu;
    uint32_t man = u & 0x7FFFFFu;
    if (exp == 0xFF) /* inf or NaN (keep NaN quiet) */
        return (uint16_t)(sign | 0x7C00u | (man ? 0x200u : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7C00u);
    if (e <= 0) { /* subnormal or zero */
        if (e < -10)
            return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1)))
        half++; /* may carry into the exponent, which is the correct rounding */
    return (uint16_t)half;
}

float kn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t man = h & 0x3FFu;
    if (exp == 0) {
        if (man == 0)
            return bits_f32(sign);
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    if (exp == 31)
        return bits_f32(sign | 0x7F800000u | (man << 13));
    return bits_f32(sign | ((exp - 15 + 127) << 23) | (man << 13));
}

uint16_t kn_f32_to_bf16(float x)
{
    uint32_t u = f32_bits(x);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x7FFFFFu))
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float kn_bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

static double load(const void *p, kn_dtype dt, int64_t i)
{
    switch (dt) {
    case KN_F32: return ((const float *)p)[i];
    case KN_F64: return ((const double *)p)[i];
    case KN_F16: return kn_f16_to_f32(((const uint16_t *)p)[i]);
    case KN_BF16: return kn_bf16_to_f32(((const uint16_t *)p)[i]);
    case KN_I8: return ((const int8_t *)p)[i];
    case KN_I32: return ((const int32_t *)p)[i];
    case KN_I64: return (double)((const int64_t *)p)[i];
    case KN_U8: return ((const uint8_t *)p)[i];
    default: return 0;
    }
}

static double sat(double v, double lo, double hi)
{
    if (isnan(v))
        return 0;
    return v < lo ? lo : v > hi ? hi : v;
}

static void store(void *p, kn_dtype dt, int64_t i, double v)
{
    switch (dt) {
    case KN_F32: ((float *)p)[i] = (float)v; break;
    case KN_F64: ((double *)p)[i] = v; break;
    case KN_F16: ((uint16_t *)p)[i] = kn_f32_to_f16((float)v); break;
    case KN_BF16: ((uint16_t *)p)[i] = kn_f32_to_bf16((float)v); break;
    case KN_I8: ((int8_t *)p)[i] = (int8_t)sat(trunc(v), -128, 127); break;
    case KN_I32: ((int32_t *)p)[i] = (int32_t)sat(trunc(v), -2147483648.0, 2147483647.0); break;
    case KN_I64: ((int64_t *)p)[i] = (int64_t)sat(trunc(v), -9223372036854775808.0, 9223372036854774784.0); break;
    case KN_U8: ((uint8_t *)p)[i] = (uint8_t)sat(trunc(v), 0, 255); break;
    default: break;
    }
}

/* Generic element access used by tensors and the reference fallback. */
double kn__load_f64(const void *p, kn_dtype dt, int64_t i) { return load(p, dt, i); }
void kn__store_f64(void *p, kn_dtype dt, int64_t i, double v) { store(p, dt, i, v); }

kn_status kn_convert(void *dst, kn_dtype dd, const void *src, kn_dtype sd, int64_t n)
{
    if (kn_dtype_size(dd) == 0 || kn_dtype_size(sd) == 0 || n < 0 || (n > 0 && (!dst || !src)))
        return KN_ERR_ARG;
    if (dd == sd) {
        if (dst != src)
            memmove(dst, src, (size_t)n * kn_dtype_size(dd));
        return KN_OK;
    }
    if (dd == KN_F64 && sd == KN_F32) {
        for (int64_t i = 0; i < n; i++)
            ((double *)dst)[i] = ((const float *)src)[i];
    } else if (dd == KN_F32 && sd == KN_F64) {
        for (int64_t i = 0; i < n; i++)
            ((float *)dst)[i] = (float)((const double *)src)[i];
    } else if (kn_dtype_size(dd) > kn_dtype_size(sd)) {
        for (int64_t i = n - 1; i >= 0; i--) /* widening in place must go backwards */
            store(dst, dd, i, load(src, sd, i));
    } else {
        for (int64_t i = 0; i < n; i++)
            store(dst, dd, i, load(src, sd, i));
    }
    return KN_OK;
}
