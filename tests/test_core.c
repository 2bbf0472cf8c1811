/* test_core.c — core layer: status/dtype tables, f16/bf16 conversion, bulk conversion,
 * tensors (creation, views, copies, bad arguments), the Philox RNG against the published
 * known-answer vectors, and out-of-memory injection for tensor creation. */
#include <math.h>
#include <stdlib.h>

#include "util.h"

static void test_dtypes(void)
{
    CHECK(kn_dtype_size(KN_F32) == 4 && kn_dtype_size(KN_BF16) == 2 && kn_dtype_size(KN_I64) == 8, "sizes");
    CHECK(kn_dtype_size((kn_dtype)99) == 0, "invalid dtype has size 0");
    CHECK(!strcmp(kn_dtype_name(KN_BF16), "bf16") && !strcmp(kn_dtype_name((kn_dtype)-1), "?"), "names");
    CHECK(!strcmp(kn_status_name(KN_ERR_SHAPE), "KN_ERR_SHAPE"), "status name");
    CHECK(kn_dtype_is_float(KN_F16) && !kn_dtype_is_float(KN_U8) && kn_dtype_is_int(KN_I8), "classes");
}

static void test_half(void)
{
    /* exact values */
    const float exact[] = {0.0f, 1.0f, -2.0f, 0.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        CHECK(kn_f16_to_f32(kn_f32_to_f16(exact[i])) == exact[i], "f16 round trip of %g", exact[i]);
    CHECK(kn_f32_to_f16(1.0f) == 0x3C00, "f16(1) = 0x3C00");
    CHECK(kn_f32_to_f16(65520.0f) == 0x7C00, "f16 overflow to inf");
    CHECK(kn_f32_to_f16(1.0f + 1.0f / 2048) == 0x3C00, "f16 ties to even (down)");
    CHECK(kn_f32_to_f16(1.0f + 3.0f / 2048) == 0x3C02, "f16 ties to even (up)");
    CHECK(isnan(kn_f16_to_f32(kn_f32_to_f16(NAN))), "f16 NaN");
    CHECK(kn_bf16_to_f32(kn_f32_to_bf16(3.140625f)) == 3.140625f, "bf16 exact");
    CHECK(kn_f32_to_bf16(1.0f) == 0x3F80, "bf16(1)");
    CHECK(kn_f32_to_bf16(1.00390625f) == 0x3F80, "bf16 ties to even");
    CHECK(isnan(kn_bf16_to_f32(kn_f32_to_bf16(NAN))), "bf16 NaN");
    /* every f16 value survives f16 -> f32 -> f16 */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = kn_f16_to_f32((uint16_t)h);
        if (!isnan(f) && kn_f32_to_f16(f) != h)
            bad++;
    }
    CHECK(bad == 0, "%d f16 values do not round-trip", bad);
}

static void test_convert(void)
{
    float f[5] = {1.5f, -2.7f, 300.0f, -1e10f, NAN};
    int8_t i8[5];
    CHECK_OK(kn_convert(i8, KN_I8, f, KN_F32, 5));
    CHECK(i8[0] == 1 && i8[1] == -2 && i8[2] == 127 && i8[3] == -128 && i8[4] == 0, "saturating f32->i8");
    double d[5];
    CHECK_OK(kn_convert(d, KN_F64, f, KN_F32, 3));
    CHECK(d[1] == (double)-2.7f, "f32->f64");
    CHECK(kn_convert(d, (kn_dtype)42, f, KN_F32, 1) == KN_ERR_ARG, "bad dtype");
}

static void test_tensor_views(void)
{
    kn_tensor *t = NULL, *p = NULL, *s = NULL, *r = NULL, *c = NULL;
    CHECK_OK(kn_tensor_new(&t, KN_F32, 3, (int64_t[]){2, 3, 4}));
    for (int64_t i = 0; i < 24; i++)
        ((float *)t->data)[i] = (float)i;
    CHECK(kn_tensor_is_contiguous(t) && kn_tensor_nbytes(t) == 96, "new tensor contiguous");
    CHECK_OK(kn_tensor_permute(&p, t, (int[]){2, 0, 1}));
    CHECK(p->shape[0] == 4 && p->shape[1] == 2 && !kn_tensor_is_contiguous(p), "permute shape");
    CHECK(kn_tensor_get(p, (int64_t[]){3, 1, 2}) == 1 * 12 + 2 * 4 + 3, "permute element");
    CHECK(kn_tensor_reshape(&r, p, 1, (int64_t[]){24}) == KN_ERR_UNSUPPORTED, "reshape of a permuted view");
    CHECK_OK(kn_tensor_contiguous(&c, p));
    CHECK(((float *)c->data)[1] == 4.0f, "contiguous copy order");
    CHECK_OK(kn_tensor_slice(&s, t, 2, 1, -1, 2));
    CHECK(s->shape[2] == 1 && kn_tensor_get(s, (int64_t[]){1, 2, 0}) == 12 + 8 + 1, "slice");
    kn_tensor_free(t); /* views keep the buffer alive */
    CHECK(kn_tensor_get(s, (int64_t[]){0, 0, 0}) == 1, "view outlives its parent");
    CHECK_OK(kn_tensor_reshape(&r, c, 2, (int64_t[]){-1, 6}));
    CHECK(r->shape[0] == 4, "reshape -1");
    kn_tensor *bad = NULL;
    CHECK(kn_tensor_reshape(&bad, c, 1, (int64_t[]){25}) == KN_ERR_SHAPE && !bad, "reshape size mismatch");
    CHECK(kn_tensor_new(&bad, KN_F32, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}) == KN_ERR_ARG, "too many dims");
    CHECK(kn_tensor_new(&bad, KN_F32, 2, (int64_t[]){-1, 2}) == KN_ERR_ARG, "negative dim");
    CHECK(kn_tensor_new(&bad, KN_F64, 2, (int64_t[]){INT64_MAX / 2, 4}) == KN_ERR_RANGE, "overflowing size");
    CHECK(kn_tensor_permute(&bad, c, (int[]){0, 0, 1}) == KN_ERR_ARG, "repeated permutation axis");
    kn_tensor *h = NULL, *back = NULL;
    CHECK_OK(kn_tensor_to(&h, c, KN_BF16));
    CHECK_OK(kn_tensor_to(&back, h, KN_F32));
    CHECK(kn_tensor_get(back, (int64_t[]){3, 1, 2}) == 23, "bf16 holds small integers exactly");
    kn_tensor_free(h);
    kn_tensor_free(back);
    kn_tensor_free(p);
    kn_tensor_free(s);
    kn_tensor_free(r);
    kn_tensor_free(c);
    kn_tensor_free(NULL);
}

static void test_philox(void)
{
    /* Known-answer vectors of Philox4x32-10 (Random123, kat_vectors). */
    uint32_t o[4];
    kn_philox4x32(0, 0, 0, o);
    CHECK(o[0] == 0x6627e8d5u && o[1] == 0xe169c58du && o[2] == 0xbc57ac4cu && o[3] == 0x9b00dbd8u,
          "philox zero vector: %08x %08x %08x %08x", o[0], o[1], o[2], o[3]);
    kn_philox4x32(0xffffffffffffffffull, 0xffffffffffffffffull, 0xffffffffffffffffull, o);
    CHECK(o[0] == 0x408f276du && o[1] == 0x41c83b0eu && o[2] == 0xa20bc7c6u && o[3] == 0x6d5451fdu,
          "philox ones vector: %08x %08x %08x %08x", o[0], o[1], o[2], o[3]);
    /* counter (0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), key (0xa4093822, 0x299f31d0) */
    kn_philox4x32(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, o);
    CHECK(o[0] == 0xd16cfe09u && o[1] == 0x94fdccebu && o[2] == 0x5001e420u && o[3] == 0x24126ea1u,
          "philox pi vector: %08x %08x %08x %08x", o[0], o[1], o[2], o[3]);
    double sum = 0, sq = 0;
    for (int i = 0; i < 100000; i++) {
        double u = kn_rng_uniform(7, 1, (uint64_t)i);
        CHECK(u > 0 && u < 1, "uniform in (0,1)");
        double z = kn_rng_normal(7, 2, (uint64_t)i);
        sum += z;
        sq += z * z;
    }
    CHECK(fabs(sum / 1e5) < 0.02 && fabs(sq / 1e5 - 1) < 0.02, "normal moments: mean %g, var %g", sum / 1e5, sq / 1e5);
    CHECK(kn_rng_uniform(1, 2, 3) == kn_rng_uniform(1, 2, 3) && kn_rng_uniform(1, 2, 3) != kn_rng_uniform(2, 2, 3),
          "pure function of (seed, stream, index)");
}

static void test_tensor_oom(void)
{
    /* Fail the n-th allocation for n = 1, 2, ... until creation succeeds: clean status, no leak. */
    for (long n = 1; n < 10; n++) {
        kt_oom_install(n);
        kn_tensor *t = NULL, *v = NULL;
        kn_status st = kn_tensor_new(&t, KN_F32, 2, (int64_t[]){3, 4});
        if (st == KN_OK)
            st = kn_tensor_transpose(&v, t, 0, 1);
        kn_tensor_free(v);
        kn_tensor_free(t);
        long live = kt_oom_live();
        kt_oom_remove();
        CHECK(st == KN_OK || st == KN_ERR_OOM, "n=%ld: status %s", n, kn_status_name(st));
        CHECK(live == 0, "n=%ld: %ld allocations leaked", n, live);
        if (st == KN_OK)
            break;
    }
}

int main(void)
{
    test_dtypes();
    test_half();
    test_convert();
    test_tensor_views();
    test_philox();
    test_tensor_oom();
    return kt_finish("test_core");
}
