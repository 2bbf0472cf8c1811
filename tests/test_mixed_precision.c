/* test_mixed_precision.c — BF16/FP16 mixed precision (docs/compression.md, "Mixed precision"):
 *  - the CPU kernels for bf16/f16 operands (conv2d and its two backward passes on every
 *    method the f32 kernels choose, matmul, linear) against the float64 reference on the same
 *    (rounded) values, within the dtype's rounding, and without reference fallbacks;
 *  - the vectorised casts f32↔bf16/f16 bit for bit against kn_f32_to_bf16/kn_f32_to_f16
 *    (ties, subnormals, overflow, inf, NaN; vector body, tail and threaded sizes);
 *  - the mixed graph of a model: casts around conv/dense, FP32 elsewhere, no fallbacks;
 *  - the dynamic loss scaler's rules and its checkpoint metadata;
 *  - kn_train in FP16 with a forced overflow (a huge loss scale): every step skipped, the
 *    weights bit-identical to the initial ones, the scale halved once per skip; doubling after
 *    N clean steps; resuming restores the scaler and continues bit for bit;
 *  - BF16 training of a tiny CNN lowers the loss;
 *  - the CLI's --precision / --loss-scale checks. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "kiln/train.h"
#include "ops/conv_internal.h"
#include "train/loss_scale.h"
#include "util.h"

/* ---- kernels vs the float64 reference ------------------------------------------------------ */

static float round_to(kn_dtype dt, float v)
{
    if (dt == KN_BF16)
        return kn_bf16_to_f32(kn_f32_to_bf16(v));
    if (dt == KN_F16)
        return kn_f16_to_f32(kn_f32_to_f16(v));
    return v;
}

/* A frozen parameter of dtype dt holding uniform values in [-1, 1) rounded to `values`' dtype
 * (so the bf16/f16 graph and the f64 reference graph see the same numbers). */
static kn_node *rparam(kn_graph *g, kn_dtype dt, kn_dtype values, uint64_t stream, int ndim, const int64_t *shape)
{
    char name[32];
    snprintf(name, sizeof name, "p%llu", (unsigned long long)stream);
    kn_node *p = kn_graph_param(g, name, dt, ndim, shape, false);
    if (!p)
        return NULL;
    void *d = kn_graph_param_data(g, p);
    for (int64_t i = 0; i < kn_node_numel(p); i++) {
        float v = round_to(values, (float)(2 * kn_rng_uniform(7, stream, (uint64_t)i) - 1));
        switch (dt) {
        case KN_BF16: ((uint16_t *)d)[i] = kn_f32_to_bf16(v); break;
        case KN_F16: ((uint16_t *)d)[i] = kn_f32_to_f16(v); break;
        case KN_F64: ((double *)d)[i] = v; break;
        default: ((float *)d)[i] = v; break;
        }
    }
    return p;
}

typedef struct kcase {
    const char *label;
    int kind; /* 0 conv2d, 1 conv2d_bwd_data, 2 conv2d_bwd_weight, 3 matmul, 4 linear */
    int64_t x[4], w[4];
    int stride, pad;
    bool ta, tb;
} kcase;

/* The op of c in g with operands of dtype dt (values rounded to `values`). */
static kn_node *kbuild(kn_graph *g, const kcase *c, kn_dtype dt, kn_dtype values)
{
    if (c->kind <= 2) {
        kn_node *x = rparam(g, dt, values, 1, 4, c->x), *w = rparam(g, dt, values, 2, 4, c->w);
        kn_conv2d_opts o = {.stride_h = c->stride, .stride_w = c->stride, .pad_h = c->pad, .pad_w = c->pad};
        kn_node *y = kn_graph_conv2d(g, x, w, NULL, &o);
        if (!y || c->kind == 0)
            return y;
        int64_t ys[4] = {kn_node_dim(y, 0), kn_node_dim(y, 1), kn_node_dim(y, 2), kn_node_dim(y, 3)};
        kn_node *dy = rparam(g, dt, values, 3, 4, ys);
        return c->kind == 1 ? kn__conv2d_bwd_data(g, dy, w, y->ai, c->x) : kn__conv2d_bwd_weight(g, x, dy, y->ai, c->w);
    }
    if (c->kind == 3) {
        kn_node *a = rparam(g, dt, values, 4, (int)c->x[0], c->x + 1), *b = rparam(g, dt, values, 5, (int)c->w[0], c->w + 1);
        return kn_graph_matmul(g, a, b, c->ta, c->tb);
    }
    kn_node *x = rparam(g, dt, values, 6, 2, c->x), *w = rparam(g, dt, values, 7, 2, c->w);
    kn_node *b = rparam(g, dt, values, 8, 1, c->w);
    return kn_graph_linear(g, x, w, b);
}

/* Runs a graph's single output; returns its values as doubles (caller frees). */
static double *run_values(kn_graph *g, kn_node *y, int *fallbacks)
{
    kn_plan *p = NULL;
    kn_plan_opts o = {.threads = 2};
    if (kn_plan_compile(&p, g, &y, 1, &o) || kn_plan_run(p)) {
        CHECK(0, "compile/run: %s", kn_plan_last_error());
        kn_plan_free(p);
        return NULL;
    }
    *fallbacks = kn_plan_num_fallbacks(p);
    int64_t n = kn_node_numel(y);
    double *v = malloc(sizeof(double) * (size_t)n);
    const void *d = kn_plan_data(p, y);
    for (int64_t i = 0; i < n; i++) {
        switch (kn_node_dtype(y)) {
        case KN_BF16: v[i] = kn_bf16_to_f32(((const uint16_t *)d)[i]); break;
        case KN_F16: v[i] = kn_f16_to_f32(((const uint16_t *)d)[i]); break;
        case KN_F64: v[i] = ((const double *)d)[i]; break;
        default: v[i] = ((const float *)d)[i]; break;
        }
    }
    kn_plan_free(p);
    return v;
}

static void kernels_vs_reference(void)
{
    static const kcase cases[] = {
        {"conv2d grid 3x3 pad 1", 0, {2, 3, 9, 9}, {5, 3, 3, 3}, 1, 1},
        {"conv2d im2col stride 2", 0, {2, 3, 9, 9}, {4, 3, 3, 3}, 2, 0},
        {"conv2d winograd 16ch", 0, {2, 16, 8, 8}, {16, 16, 3, 3}, 1, 1},
        {"conv2d pointwise", 0, {2, 7, 5, 5}, {13, 7, 1, 1}, 1, 0},
        {"conv2d_bwd_data grid", 1, {2, 8, 9, 9}, {5, 8, 3, 3}, 1, 1},
        {"conv2d_bwd_data stride 2", 1, {2, 3, 9, 9}, {4, 3, 3, 3}, 2, 0},
        {"conv2d_bwd_data winograd", 1, {2, 16, 8, 8}, {16, 16, 3, 3}, 1, 1},
        {"conv2d_bwd_weight grid", 2, {2, 3, 9, 9}, {5, 3, 3, 3}, 1, 1},
        {"conv2d_bwd_weight stride 2", 2, {2, 3, 9, 9}, {4, 3, 3, 3}, 2, 0},
        {"conv2d_bwd_weight winograd", 2, {2, 16, 8, 8}, {16, 16, 3, 3}, 1, 1},
        {"matmul batched", 3, {3, 3, 7, 13}, {2, 13, 5}, 0, 0},
        {"matmul a^T b^T", 3, {2, 13, 7}, {2, 5, 13}, 0, 0, true, true},
        {"linear", 4, {65, 33}, {17, 33}},
    };
    const kn_dtype dts[2] = {KN_BF16, KN_F16};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int d = 0; d < 2; d++) {
            kn_dtype dt = dts[d];
            kn_graph *gl = kn_graph_new(), *gr = kn_graph_new();
            kn_node *yl = kbuild(gl, &cases[c], dt, dt), *yr = kbuild(gr, &cases[c], KN_F64, dt);
            CHECK(yl && yr, "%s %s: build: %s %s", cases[c].label, kn_dtype_name(dt), kn_graph_error(gl),
                  kn_graph_error(gr));
            int fb = -1, fb_ref = 0;
            double *vl = yl ? run_values(gl, yl, &fb) : NULL, *vr = yr ? run_values(gr, yr, &fb_ref) : NULL;
            if (vl && vr) {
                CHECK(kn_node_dtype(yl) == dt, "%s: output dtype %s", cases[c].label, kn_dtype_name(kn_node_dtype(yl)));
                CHECK(fb == 0, "%s %s: %d reference fallbacks", cases[c].label, kn_dtype_name(dt), fb);
                int64_t n = kn_node_numel(yl);
                double amax = 0;
                for (int64_t i = 0; i < n; i++)
                    amax = fmax(amax, fabs(vr[i]));
                /* one rounding of the output to the dtype (2^-8 bf16, 2^-11 f16, relative) plus FP32
                 * accumulation error (negligible at these sizes) */
                double rel = dt == KN_BF16 ? 0x1p-8 : 0x1p-11;
                int64_t bad = 0, first = -1;
                for (int64_t i = 0; i < n; i++)
                    if (fabs(vl[i] - vr[i]) > rel * fabs(vr[i]) + 1e-5 * amax) {
                        bad++;
                        first = first < 0 ? i : first;
                    }
                CHECK(bad == 0, "%s %s: %lld of %lld outside tolerance, first [%lld] %.9g vs reference %.9g",
                      cases[c].label, kn_dtype_name(dt), (long long)bad, (long long)n, (long long)first,
                      first >= 0 ? vl[first] : 0, first >= 0 ? vr[first] : 0);
                CHECK(amax > 0.1, "%s: the reference is not all zeros", cases[c].label);
            }
            free(vl);
            free(vr);
            kn_graph_free(gl);
            kn_graph_free(gr);
        }
    }
}

/* ---- casts ------------------------------------------------------------------------------------ */

static float bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void casts(void)
{
    const int64_t sizes[] = {37, 16, 70001};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        float *x = malloc(sizeof(float) * (size_t)n);
        const float special[] = {INFINITY, -INFINITY, NAN, 65504.0f, 65520.0f, 70000.0f, -1e30f, 1e-8f, 6e-5f,
                                 bits(0x3F808000u) /* bf16 tie, even */, bits(0x3F818000u) /* tie, odd */,
                                 bits(0x00000001u), bits(0x80400000u), 1.0f + 0x1p-11f /* f16 tie */, 0.0f, -0.0f};
        for (int64_t i = 0; i < n; i++)
            x[i] = i % 5 == 0 ? special[(i / 5) % (sizeof special / sizeof special[0])]
                              : (float)((kn_rng_uniform(3, 9, (uint64_t)i) - 0.5) * pow(2, (double)(i % 40) - 20));
        const kn_dtype dts[2] = {KN_BF16, KN_F16};
        for (int d = 0; d < 2; d++) {
            kn_dtype dt = dts[d];
            kn_graph *g = kn_graph_new();
            kn_node *in = kn_graph_input(g, "x", KN_F32, 1, &n);
            kn_node *lo = kn_graph_cast(g, in, dt), *back = kn_graph_cast(g, lo, KN_F32);
            kn_node *outs[2] = {lo, back};
            kn_plan *p = NULL;
            kn_plan_opts o = {.threads = 2};
            CHECK_OK(kn_plan_compile(&p, g, outs, 2, &o));
            if (!p) {
                kn_graph_free(g);
                continue;
            }
            CHECK(kn_plan_num_fallbacks(p) == 0, "casts: %d fallbacks", kn_plan_num_fallbacks(p));
            kn_plan_set_input(p, in, x, sizeof(float) * (size_t)n);
            CHECK_OK(kn_plan_run(p));
            const uint16_t *h = kn_plan_data(p, lo);
            const float *b = kn_plan_data(p, back);
            int64_t bad = 0, first = -1;
            for (int64_t i = 0; i < n; i++) {
                uint16_t want = dt == KN_BF16 ? kn_f32_to_bf16(x[i]) : kn_f32_to_f16(x[i]);
                float wb = dt == KN_BF16 ? kn_bf16_to_f32(want) : kn_f16_to_f32(want);
                bool ok = h[i] == want && (memcmp(&b[i], &wb, 4) == 0 || (isnan(wb) && isnan(b[i])));
                if (!ok) {
                    bad++;
                    first = first < 0 ? i : first;
                }
            }
            CHECK(bad == 0, "cast f32→%s→f32, %lld elements: %lld differ from the scalar conversion, first [%lld] %a → 0x%04x",
                  kn_dtype_name(dt), (long long)n, (long long)bad, (long long)first, first >= 0 ? x[first] : 0,
                  first >= 0 ? h[first] : 0);
            kn_plan_free(p);
            kn_graph_free(g);
        }
        free(x);
    }
    CHECK(kn_f32_to_f16(70000.0f) == 0x7C00u, "f16 overflow gives inf");
}

/* ---- the mixed graph of a model --------------------------------------------------------------- */

static void model_graph(void)
{
    kn_error err = {0};
    kn_model *m = NULL;
    CHECK_OK(kn_model_parse(&m, "input 1 8 8\nconv2d 4 3 pad=1\nrelu\nmaxpool 2\nflatten\ndense 3\n", "mixed", &err));
    if (!m)
        return;
    for (int prec = KN_PRECISION_BF16; prec <= KN_PRECISION_FP16; prec++) {
        kn_dtype low = prec == KN_PRECISION_BF16 ? KN_BF16 : KN_F16;
        kn_graph *g = kn_graph_new(), *g32 = kn_graph_new();
        kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (int64_t[]){5, 1, 8, 8});
        kn_node *x32 = kn_graph_input(g32, "x", KN_F32, 4, (int64_t[]){5, 1, 8, 8});
        kn_build_opts o = {.precision = (kn_precision)prec};
        kn_node *y = kn_model_build_ex(m, g, x, &o, &err), *y32 = kn_model_build(m, g32, x32, &err);
        CHECK(y && y32, "build: %s", err.msg);
        if (!y || !y32)
            continue;
        CHECK(kn_node_dtype(y) == KN_F32, "logits stay f32");
        int casts_to_low = 0, low_products = 0;
        kn_node *params[8];
        int np = kn_graph_params(g, false, params, 8);
        for (int i = 0; i < np; i++)
            CHECK(kn_node_dtype(params[i]) == KN_F32, "parameter %s is f32 (master weights)", kn_node_name(params[i]));
        for (int i = 0; i < g->n_nodes; i++) {
            const kn_node *n = g->nodes[i];
            casts_to_low += n->op == KN_OP_CAST && n->dtype == low;
            low_products += (n->op == KN_OP_CONV2D || n->op == KN_OP_LINEAR) && n->dtype == low;
            if (n->op == KN_OP_RELU || n->op == KN_OP_MAX_POOL2D)
                CHECK(n->dtype == KN_F32, "%s runs in f32", kn_node_op_name(n));
        }
        CHECK(casts_to_low == 4 && low_products == 2, "%d casts to %s (want 4), %d low-precision products (want 2)",
              casts_to_low, kn_dtype_name(low), low_products);
        /* same parameters (same names and seed): the logits agree with FP32 to low precision */
        float xv[5 * 64];
        for (int i = 0; i < 5 * 64; i++)
            xv[i] = (float)(kn_rng_uniform(1, 2, (uint64_t)i) * 2 - 1);
        kn_plan *p = NULL, *p32 = NULL;
        kn_plan_opts po = {.threads = 2};
        CHECK_OK(kn_plan_compile(&p, g, &y, 1, &po));
        CHECK_OK(kn_plan_compile(&p32, g32, &y32, 1, &po));
        if (p && p32) {
            CHECK(kn_plan_num_fallbacks(p) == 0, "mixed plan: %d fallbacks", kn_plan_num_fallbacks(p));
            kn_plan_set_input(p, x, xv, sizeof xv);
            kn_plan_set_input(p32, x32, xv, sizeof xv);
            CHECK_OK(kn_plan_run(p));
            CHECK_OK(kn_plan_run(p32));
            const float *a = kn_plan_data(p, y), *b = kn_plan_data(p32, y32);
            double diff = 0, amax = 0;
            for (int i = 0; i < 15; i++) {
                diff = fmax(diff, fabs(a[i] - b[i]));
                amax = fmax(amax, fabs(b[i]));
            }
            CHECK(diff > 0 && diff < (prec == KN_PRECISION_BF16 ? 0.03 : 0.005) * amax,
                  "%s logits differ from fp32 by %g (max |logit| %g)", kn_precision_name((kn_precision)prec), diff,
                  amax);
        }
        kn_plan_free(p);
        kn_plan_free(p32);
        kn_graph_free(g);
        kn_graph_free(g32);
    }
    kn_model_free(m);
}

/* ---- the loss scaler -------------------------------------------------------------------------- */

static void scaler_rules(void)
{
    kn_train_opts o;
    kn_train_opts_defaults(&o);
    kn__loss_scaler s;
    kn_error err = {0};
    CHECK_OK(kn__loss_scaler_init(&s, &o, &err));
    CHECK(!s.on && s.scale == 1 && kn__loss_scaler_update(&s, false) == 0 && s.scale == 1, "fp32: no scaling");
    o.precision = KN_PRECISION_FP16;
    CHECK_OK(kn__loss_scaler_init(&s, &o, &err));
    CHECK(s.on && s.scale == 65536 && s.window == 2000, "fp16 defaults: scale %g window %d", s.scale, s.window);
    o.loss_scale = 1024;
    o.loss_scale_window = 3;
    CHECK_OK(kn__loss_scaler_init(&s, &o, &err));
    CHECK(kn__loss_scaler_update(&s, true) == 0 && kn__loss_scaler_update(&s, true) == 0, "no change before the window");
    CHECK(kn__loss_scaler_update(&s, false) == -1 && s.scale == 512 && s.clean == 0, "overflow halves: %g", s.scale);
    int changes = 0;
    for (int i = 0; i < 3; i++)
        changes += kn__loss_scaler_update(&s, true);
    CHECK(changes == 1 && s.scale == 1024 && s.doublings == 1 && s.halvings == 1, "3 clean steps double: %g", s.scale);
    for (int i = 0; i < 100; i++)
        kn__loss_scaler_update(&s, false);
    CHECK(s.scale == KN_LOSS_SCALE_MIN, "floor at 2^-24: %g", s.scale);

    /* metadata round trip */
    s.scale = 2048;
    s.clean = 2;
    s.halvings = 7;
    s.doublings = 3;
    kn_meta meta = {0};
    CHECK_OK(kn__loss_scaler_save(&s, &meta));
    kn__loss_scaler r;
    CHECK_OK(kn__loss_scaler_init(&r, &o, &err));
    CHECK_OK(kn__loss_scaler_load(&r, &meta, "ckpt", &err));
    CHECK(r.scale == 2048 && r.clean == 2 && r.halvings == 7 && r.doublings == 3, "round trip: %g %lld %lld %lld",
          r.scale, (long long)r.clean, (long long)r.halvings, (long long)r.doublings);
    kn_meta_set(&meta, "kiln.loss_scale", "inf");
    CHECK(kn__loss_scaler_load(&r, &meta, "ckpt", &err) == KN_ERR_FORMAT && strstr(err.msg, "kiln.loss_scale"),
          "bad scale: %s", err.msg);
    kn_meta_set(&meta, "kiln.loss_scale", "8");
    kn_meta_set(&meta, "kiln.loss_scale_clean", "-3");
    CHECK(kn__loss_scaler_load(&r, &meta, "ckpt", &err) == KN_ERR_FORMAT && strstr(err.msg, "loss_scale_clean"),
          "bad counter: %s", err.msg);
    kn_meta_clear(&meta);

    o.loss_scale = -1;
    CHECK(kn__loss_scaler_init(&s, &o, &err) == KN_ERR_ARG && strstr(err.msg, "loss scale"), "bad scale: %s", err.msg);
    o.loss_scale = 0;
    o.loss_scale_window = -2;
    CHECK(kn__loss_scaler_init(&s, &o, &err) == KN_ERR_ARG && strstr(err.msg, "window"), "bad window: %s", err.msg);
    o.loss_scale_window = 0;
    o.precision = (kn_precision)7;
    CHECK(kn__loss_scaler_init(&s, &o, &err) == KN_ERR_ARG && strstr(err.msg, "precision"), "bad precision: %s",
          err.msg);
}

/* ---- training ----------------------------------------------------------------------------------- */

#define TINY "input 1 6 6\nconv2d 3 3\nrelu\nflatten\ndense 2\n"

/* 40 images 6×6: class 1 has a bright left half. */
static void tiny_data(kn_dataset *ds, float *x, int32_t *y)
{
    memset(ds, 0, sizeof *ds);
    ds->n = 40;
    ds->ndim = 3;
    ds->shape[0] = 1;
    ds->shape[1] = ds->shape[2] = 6;
    ds->dtype = KN_F32;
    ds->classes = 2;
    for (int i = 0; i < 40; i++) {
        y[i] = i % 2;
        for (int j = 0; j < 36; j++)
            x[i * 36 + j] = (float)kn_rng_uniform(5, 6, (uint64_t)(i * 36 + j)) + (y[i] && j % 6 < 3 ? 1.0f : 0.0f);
    }
    ds->x = x;
    ds->y = y;
    snprintf(ds->name, sizeof ds->name, "tiny");
}

/* The model's parameters as the trainer initialises them (same names, seed 42), as raw bytes. */
static size_t initial_params(const kn_model *m, unsigned char *buf, size_t cap)
{
    kn_graph *g = kn_graph_new();
    kn_graph_set_seed(g, 42);
    kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (int64_t[]){1, 1, 6, 6});
    kn_error err = {0};
    kn_model_build(m, g, x, &err);
    kn_node *p[8];
    int np = kn_graph_params(g, true, p, 8);
    size_t used = 0;
    for (int i = 0; i < np; i++) {
        size_t b = (size_t)kn_node_numel(p[i]) * 4;
        if (used + b <= cap)
            memcpy(buf + used, kn_graph_param_data(g, p[i]), b);
        used += b;
    }
    kn_graph_free(g);
    return used;
}

/* The trained parameters of a checkpoint, in the same order. */
static size_t checkpoint_params(const kn_model *m, const char *path, unsigned char *buf, size_t cap, kn_meta *meta)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (int64_t[]){1, 1, 6, 6});
    kn_error err = {0};
    kn_model_build(m, g, x, &err);
    kn_status st = kn_checkpoint_load(g, path, true, meta, &err);
    CHECK(st == KN_OK, "loading %s: %s", path, err.msg);
    kn_node *p[8];
    int np = kn_graph_params(g, true, p, 8);
    size_t used = 0;
    for (int i = 0; i < np; i++) {
        size_t b = (size_t)kn_node_numel(p[i]) * 4;
        if (used + b <= cap)
            memcpy(buf + used, kn_graph_param_data(g, p[i]), b);
        used += b;
    }
    kn_graph_free(g);
    return st ? 0 : used;
}

static void train_fp16(const char *dir)
{
    float x[40 * 36];
    int32_t y[40];
    kn_dataset ds;
    tiny_data(&ds, x, y);
    kn_error err = {0};
    kn_model *m = NULL;
    CHECK_OK(kn_model_parse(&m, TINY, "tiny", &err));
    if (!m)
        return;
    kn_train_opts o;
    kn_train_opts_defaults(&o);
    o.recipe = *kn_model_recipe(m);
    o.recipe.batch = 10;
    o.recipe.epochs = 1;
    o.threads = 1;
    o.precision = KN_PRECISION_FP16;
    char out[512], path[600];
    snprintf(out, sizeof out, "%s/overflow", dir);
    o.out_dir = out;

    /* forced overflow: S = 2^40 makes every FP16 gradient inf; 4 steps, all skipped */
    o.loss_scale = 0x1p40;
    kn_train_result res;
    kn_status st = kn_train(m, &ds, NULL, &o, &res, &err);
    CHECK(st == KN_OK, "fp16 overflow run: %s", err.msg);
    if (st == KN_OK) {
        CHECK(res.steps == 0 && res.skipped_steps == 4, "steps %lld skipped %lld (want 0, 4)", (long long)res.steps,
              (long long)res.skipped_steps);
        CHECK(res.scale_halvings == 4 && res.loss_scale == 0x1p36, "halved %lld times to %g (want 4, 2^36)",
              (long long)res.scale_halvings, res.loss_scale);
        CHECK(res.n_logs == 1 && res.logs[0].skipped_steps == 4 && res.logs[0].scale_halvings == 4 &&
                  res.logs[0].loss_scale == 0x1p36,
              "epoch log: skipped %lld halvings %lld scale %g", (long long)res.logs[0].skipped_steps,
              (long long)res.logs[0].scale_halvings, res.logs[0].loss_scale);
        kn_train_result_free(&res);
        static unsigned char a[65536], b[65536];
        snprintf(path, sizeof path, "%s/model.safetensors", out);
        kn_meta meta = {0};
        size_t na = initial_params(m, a, sizeof a), nb = checkpoint_params(m, path, b, sizeof b, &meta);
        CHECK(na == nb && na > 0 && na <= sizeof a && memcmp(a, b, na) == 0,
              "weights after only skipped steps are bit-identical to the initial ones (%zu, %zu bytes)", na, nb);
        const char *ls = kn_meta_get(&meta, "kiln.loss_scale"), *pr = kn_meta_get(&meta, "kiln.precision");
        CHECK(ls && strtod(ls, NULL) == 0x1p36, "checkpoint kiln.loss_scale %s", ls ? ls : "(none)");
        CHECK(pr && !strcmp(pr, "fp16"), "checkpoint kiln.precision %s", pr ? pr : "(none)");
        kn_meta_clear(&meta);
        snprintf(path, sizeof path, "%s/metrics.csv", out);
        FILE *f = fopen(path, "r");
        char line[2][512] = {{0}};
        for (int i = 0; f && i < 2 && fgets(line[i], sizeof line[i], f); i++)
            ;
        if (f)
            fclose(f);
        CHECK(strstr(line[0], "skipped_steps,loss_scale,scale_halvings,scale_doublings") &&
                  strstr(line[1], ",4,68719476736,4,0"),
              "metrics.csv: %s%s", line[0], line[1]);
    }

    /* doubling: S = 1024, window 3, 8 clean steps → doubled after steps 3 and 6 */
    o.loss_scale = 1024;
    o.loss_scale_window = 3;
    o.recipe.epochs = 2;
    snprintf(out, sizeof out, "%s/full", dir);
    st = kn_train(m, &ds, NULL, &o, &res, &err);
    CHECK(st == KN_OK, "fp16 run: %s", err.msg);
    if (st == KN_OK) {
        CHECK(res.steps == 8 && res.skipped_steps == 0 && res.scale_doublings == 2 && res.loss_scale == 4096,
              "steps %lld skipped %lld doublings %lld scale %g (want 8, 0, 2, 4096)", (long long)res.steps,
              (long long)res.skipped_steps, (long long)res.scale_doublings, res.loss_scale);
        kn_train_result_free(&res);
    }

    /* stop after 5 steps (S doubled once, 2 clean steps counted), resume: bit-identical weights */
    snprintf(out, sizeof out, "%s/part", dir);
    o.stop_after_steps = 5;
    st = kn_train(m, &ds, NULL, &o, &res, &err);
    CHECK(st == KN_OK && res.stopped, "fp16 stopped run: %s", err.msg);
    if (st == KN_OK)
        kn_train_result_free(&res);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    kn_meta meta = {0};
    CHECK_OK(kn_checkpoint_read_meta(path, &meta, &err));
    const char *ls = kn_meta_get(&meta, "kiln.loss_scale"), *cl = kn_meta_get(&meta, "kiln.loss_scale_clean");
    CHECK(ls && cl && strtod(ls, NULL) == 2048 && !strcmp(cl, "2"), "scaler state in the checkpoint: %s, %s",
          ls ? ls : "-", cl ? cl : "-");
    kn_meta_clear(&meta);
    o.stop_after_steps = 0;
    o.resume = out;
    o.loss_scale = 64; /* ignored on resume: the checkpoint's state wins */
    st = kn_train(m, &ds, NULL, &o, &res, &err);
    CHECK(st == KN_OK, "fp16 resume: %s", err.msg);
    if (st == KN_OK) {
        CHECK(res.steps == 8 && res.loss_scale == 4096 && res.scale_doublings == 2,
              "resumed: steps %lld scale %g doublings %lld", (long long)res.steps, res.loss_scale,
              (long long)res.scale_doublings);
        kn_train_result_free(&res);
        static unsigned char a[65536], b[65536];
        char p1[600], p2[600];
        snprintf(p1, sizeof p1, "%s/full/model.safetensors", dir);
        snprintf(p2, sizeof p2, "%s/part/model.safetensors", dir);
        size_t na = checkpoint_params(m, p1, a, sizeof a, NULL), nb = checkpoint_params(m, p2, b, sizeof b, NULL);
        CHECK(na == nb && na > 0 && memcmp(a, b, na) == 0, "resumed fp16 run is bit-identical to the uninterrupted one");
    }
    /* resuming with another precision is refused */
    o.precision = KN_PRECISION_BF16;
    o.loss_scale = 0;
    st = kn_train(m, &ds, NULL, &o, &res, &err);
    CHECK(st == KN_ERR_ARG && strstr(err.msg, "--precision fp16"), "resume as bf16: %s", err.msg);
    kn_model_free(m);
}

static void train_bf16(void)
{
    float x[40 * 36];
    int32_t y[40];
    kn_dataset ds;
    tiny_data(&ds, x, y);
    kn_error err = {0};
    kn_model *m = NULL;
    CHECK_OK(kn_model_parse(&m, TINY, "tiny", &err));
    if (!m)
        return;
    kn_train_opts o;
    kn_train_opts_defaults(&o);
    o.recipe = *kn_model_recipe(m);
    o.recipe.batch = 10;
    o.recipe.epochs = 6;
    o.recipe.lr = 0.01;
    o.threads = 1;
    o.precision = KN_PRECISION_BF16;
    kn_train_result res;
    kn_status st = kn_train(m, &ds, &ds, &o, &res, &err);
    CHECK(st == KN_OK, "bf16 run: %s", err.msg);
    if (st == KN_OK) {
        CHECK(res.n_logs == 6 && res.logs[5].train_loss < 0.5 * res.logs[0].train_loss,
              "bf16 training lowers the loss: %g → %g", res.logs[0].train_loss, res.logs[5].train_loss);
        CHECK(res.test.accuracy >= 0.9, "bf16 accuracy %g", res.test.accuracy);
        CHECK(res.skipped_steps == 0 && res.loss_scale == 0, "bf16: no loss scaling (%g)", res.loss_scale);
        kn_train_result_free(&res);
    }
    kn_model_free(m);
}

/* Out of memory anywhere in an FP16 training run (mixed graph, loss scaling, kernels): a clean
 * KN_ERR_OOM and no leak, for every allocation site. */
static kn_status oom_train(void *arg)
{
    (void)arg;
    static float x[40 * 36];
    static int32_t y[40];
    kn_dataset ds;
    tiny_data(&ds, x, y);
    kn_error err = {0};
    kn_model *m = NULL;
    kn_status st = kn_model_parse(&m, TINY, "tiny", &err);
    if (st)
        return st;
    kn_train_opts o;
    kn_train_opts_defaults(&o);
    o.recipe = *kn_model_recipe(m);
    o.recipe.batch = 16;
    o.recipe.epochs = 1;
    o.threads = 1;
    o.precision = KN_PRECISION_FP16;
    o.loss_scale = 1024;
    kn_train_result res;
    st = kn_train(m, &ds, NULL, &o, &res, &err);
    if (!st)
        kn_train_result_free(&res);
    kn_model_free(m);
    return st;
}

static void cli(void)
{
    CHECK(kt_run("%s train --precision fp8 --epochs 1", KILN_BIN) == 2 && strstr(kt_out, "unknown precision 'fp8'"),
          "bad precision: %s", kt_out);
    CHECK(kt_run("%s train --precision bf16 --loss-scale 128", KILN_BIN) == 2 && strstr(kt_out, "fp16 only"),
          "loss scale with bf16: %s", kt_out);
    CHECK(kt_run("%s train --precision fp16 --loss-scale 0", KILN_BIN) == 2, "loss scale 0: %s", kt_out);
    CHECK(kt_run("%s train --help", KILN_BIN) == 0 && strstr(kt_out, "--precision") && strstr(kt_out, "--loss-scale"),
          "train help: %s", kt_out);
    CHECK(kt_run("%s bench --help", KILN_BIN) == 0 && strstr(kt_out, "--precision"), "bench help");
}

int main(void)
{
    kernels_vs_reference();
    casts();
    model_graph();
    scaler_rules();
    char dir[] = "/tmp/kiln_mp_XXXXXX";
    if (mkdtemp(dir)) {
        train_fp16(dir);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CHECK(system(cmd) == 0, "cleanup");
    }
    train_bf16();
    /* every allocation site (some, like the loader's prefetch buffer, degrade gracefully, so
     * kt_oom_loop's stop-at-first-success would end early) */
    kt_oom_install(0);
    CHECK_OK(oom_train(NULL));
    long total = kt_oom_count(), oom = 0;
    kt_oom_remove();
    for (long n = 1; n <= total; n++) {
        kt_oom_install(n);
        kn_status st = oom_train(NULL);
        long live = kt_oom_live();
        kt_oom_remove();
        CHECK(st == KN_OK || st == KN_ERR_OOM, "fp16 training, allocation %ld failing: %s", n, kn_status_name(st));
        CHECK(live == 0, "fp16 training, allocation %ld failing: %ld allocations leaked", n, live);
        oom += st == KN_ERR_OOM;
    }
    CHECK(total > 50 && oom > total / 2, "fp16 training: %ld of %ld allocation failures reported as OOM", oom, total);
    cli();
    return kt_finish("test_mixed_precision");
}
