/* test_fuse.c — the fusion pass (src/passes/fuse.c) on its own: conv2d/linear + activation
 * (every activation, inference and training with gradients), conv + inference batch norm
 * (+ activation) through each CPU convolution method (Winograd, implicit GEMM, im2col,
 * pointwise), parameters changed between runs, the cases where it must not fire (a second
 * reader of the pre-activation, an output pre-activation, a view in between, a training batch
 * norm, a backward that needs x), statistics, DOT labels, the KILN_PASSES name and
 * out-of-memory injection. Every fused result is compared bit for bit with the same plan
 * compiled without fusion. (tests/test_passes.c compares every example model with all passes
 * on and off, fusion included.) */
#include <math.h>
#include <stdlib.h>

#include "kiln/nn.h"
#include "passes/passes.h"
#include "util.h"

#define FUSE KN_PASS_ALL
#define NOFUSE (KN_PASS_ALL & ~KN_PASS_FUSE)

static kn_plan *compile(kn_graph *g, kn_node *const *outs, int n, bool training, unsigned passes)
{
    kn_plan *p = NULL;
    kn_plan_opts o = {.backend = KN_BACKEND_CPU, .training = training, .passes = passes};
    kn_status st = kn_plan_compile(&p, g, outs, n, &o);
    CHECK(st == KN_OK, "compile: %s: %s", kn_status_name(st), kn_plan_last_error());
    return p;
}

static void fill(float *d, int64_t n, uint32_t seed, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        d[i] = lo + (hi - lo) * (float)((seed >> 8) & 0xffff) / 65536.0f;
    }
}

static void fill_param(kn_graph *g, kn_node *p, uint32_t seed, float lo, float hi)
{
    fill(kn_graph_param_data(g, p), kn_node_numel(p), seed, lo, hi);
}

static kn_node *param(kn_graph *g, const char *name, int ndim, const int64_t *shape, uint32_t seed, float lo, float hi)
{
    kn_node *p = kn_graph_param(g, name, KN_F32, ndim, shape, true);
    if (p)
        fill_param(g, p, seed, lo, hi);
    return p;
}

static bool same(kn_plan *a, kn_plan *b, const kn_node *n)
{
    const void *x = kn_plan_data(a, n), *y = kn_plan_data(b, n);
    return x && y && !memcmp(x, y, (size_t)kn_node_numel(n) * kn_dtype_size(kn_node_dtype(n)));
}

static int fused_of(const kn_plan *p)
{
    kn_plan_stats s;
    return kn_plan_get_stats(p, &s) == KN_OK ? s.fused : -1;
}

static bool is_live(const kn_plan *p, const kn_node *n)
{
    return (kn__plan_ir(p)->nodes[kn_node_id(n)].flags & KN__IR_LIVE) != 0;
}

/* Compiles outs with and without fusion, runs both on the same input, checks every output
 * bit-identical; returns the fused plan's `fused` count (the plans are freed). */
static int compare(kn_graph *g, kn_node *x, kn_node *const *outs, int n, bool training, const char *what)
{
    kn_plan *on = compile(g, outs, n, training, FUSE), *off = compile(g, outs, n, training, NOFUSE);
    int fused = -1;
    if (on && off) {
        fill(kn_plan_input_data(on, x), kn_node_numel(x), 7, -2, 2);
        fill(kn_plan_input_data(off, x), kn_node_numel(x), 7, -2, 2);
        CHECK_OK(kn_plan_run(on));
        CHECK_OK(kn_plan_run(off));
        for (int i = 0; i < n; i++)
            CHECK(same(on, off, outs[i]), "%s: output %d bit-identical with and without fusion", what, i);
        fused = fused_of(on);
        CHECK(fused_of(off) == 0, "%s: nothing fused with the pass off", what);
        CHECK(kn_plan_num_steps(on) == kn_plan_num_steps(off) - fused, "%s: %d steps fused, %d vs %d", what, fused,
              kn_plan_num_steps(on), kn_plan_num_steps(off));
        CHECK(fabs(kn_plan_flops(on) - kn_plan_flops(off)) <= 1e-9 * kn_plan_flops(off), "%s: same FLOP count",
              what);
    }
    kn_plan_free(on);
    kn_plan_free(off);
    return fused;
}

/* ---- linear + each activation, inference ---- */
static void test_linear_acts(void)
{
    static const char *const names[] = {"relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu"};
    for (int k = 0; k < 6; k++) {
        kn_graph *g = kn_graph_new();
        kn_node *x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){37, 19});
        kn_node *w = param(g, "w", 2, (int64_t[]){23, 19}, 1, -0.5f, 0.5f);
        kn_node *b = param(g, "b", 1, (int64_t[]){23}, 2, -0.5f, 0.5f);
        kn_node *h = kn_graph_linear(g, x, w, b), *y;
        switch (k) {
        case 0: y = kn_graph_relu(g, h); break;
        case 1: y = kn_graph_leaky_relu(g, h, 0.1); break;
        case 2: y = kn_graph_sigmoid(g, h); break;
        case 3: y = kn_graph_tanh(g, h); break;
        case 4: y = kn_graph_gelu(g, h); break;
        default: y = kn_graph_silu(g, h); break;
        }
        CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
        int f = compare(g, x, &y, 1, false, names[k]);
        CHECK(f == 1, "linear + %s: %d fused", names[k], f);
        kn_plan *p = compile(g, &y, 1, false, FUSE);
        const kn__ir *ir = kn__plan_ir(p);
        CHECK(!is_live(p, y) && kn__ir_rep(ir, kn_node_id(y)) == kn_node_id(h) &&
                  ir->nodes[kn_node_id(h)].fused_act == kn_node_id(y),
              "%s merged into the linear", names[k]);
        CHECK(kn_plan_data(p, y) == kn__plan_addr(p, kn_node_id(h)), "the output reads the linear's buffer");
        kn_plan_free(p);
        kn_graph_free(g);
    }
}

/* ---- conv + batch norm + activation through each convolution method, inference ---- */
typedef struct conv_case {
    const char *what;
    int64_t C, O, H, K;
    int stride, pad;
} conv_case;

static void test_conv_bn(void)
{
    const conv_case cases[] = {
        {"winograd 3x3", 16, 16, 10, 3, 1, 1},
        {"implicit gemm 3x3", 4, 12, 9, 3, 1, 1},
        {"im2col stride 2", 3, 10, 11, 3, 2, 1},
        {"pointwise 1x1", 8, 20, 7, 1, 1, 0},
        {"5x5 pad 2", 2, 9, 8, 5, 1, 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const conv_case *q = &cases[c];
        kn_graph *g = kn_graph_new();
        kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (int64_t[]){3, q->C, q->H, q->H});
        kn_node *w = param(g, "w", 4, (int64_t[]){q->O, q->C, q->K, q->K}, 3, -0.4f, 0.4f);
        kn_node *b = param(g, "b", 1, (int64_t[]){q->O}, 4, -0.3f, 0.3f);
        kn_node *ga = param(g, "gamma", 1, (int64_t[]){q->O}, 5, 0.5f, 1.5f);
        kn_node *be = param(g, "beta", 1, (int64_t[]){q->O}, 6, -0.5f, 0.5f);
        kn_node *rm = kn_graph_param(g, "rmean", KN_F32, 1, (int64_t[]){q->O}, false);
        kn_node *rv = kn_graph_param(g, "rvar", KN_F32, 1, (int64_t[]){q->O}, false);
        fill_param(g, rm, 7, -0.3f, 0.3f);
        fill_param(g, rv, 8, 0.2f, 2.0f);
        kn_conv2d_opts o = {.stride_h = q->stride, .stride_w = q->stride, .pad_h = q->pad, .pad_w = q->pad};
        kn_node *conv = kn_graph_conv2d(g, x, w, b, &o);
        kn_node *bn = kn_graph_batch_norm(g, conv, ga, be, rm, rv, 0.1, 1e-5);
        kn_node *y = kn_graph_relu(g, bn);
        CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
        int f = compare(g, x, &y, 1, false, q->what);
        CHECK(f == 2, "%s: conv + batch_norm + relu: %d fused", q->what, f);

        /* parameters changed between runs: the fused plan reads them at run time */
        kn_plan *on = compile(g, &y, 1, false, FUSE), *off = compile(g, &y, 1, false, NOFUSE);
        for (int run = 0; on && off && run < 2; run++) {
            fill(kn_plan_input_data(on, x), kn_node_numel(x), 9, -1, 1);
            fill(kn_plan_input_data(off, x), kn_node_numel(x), 9, -1, 1);
            CHECK_OK(kn_plan_run(on));
            CHECK_OK(kn_plan_run(off));
            CHECK(same(on, off, y), "%s run %d: bit-identical", q->what, run);
            fill_param(g, ga, 20 + (uint32_t)run, -1.0f, 2.0f);
            fill_param(g, rv, 30 + (uint32_t)run, 0.01f, 3.0f);
            fill_param(g, w, 40 + (uint32_t)run, -0.2f, 0.2f);
        }
        kn_plan_free(on);
        kn_plan_free(off);

        /* a training plan: batch statistics, never fused; the relu still fuses... into nothing:
         * its input is the batch norm, not a conv */
        kn_node *loss = kn_graph_sum(g, kn_graph_mul(g, y, y), 0, false);
        kn_node *gw = NULL;
        CHECK_OK(kn_graph_backward(g, loss, &w, 1, &gw));
        kn_node *outs[2] = {loss, gw};
        compare(g, x, outs, 2, true, q->what); /* the loss's mul → sum chain fuses */
        kn_plan *tp = compile(g, outs, 2, true, FUSE);
        CHECK(tp && kn__plan_ir(tp)->nodes[kn_node_id(conv)].fused_bn < 0 && is_live(tp, bn),
              "%s: a training batch norm is not fused", q->what);
        kn_plan_free(tp);
        kn_graph_free(g);
    }
}

/* ---- training: conv + relu with gradients; relu's backward reads the output ---- */
static void test_training(void)
{
    static const char *const acts[] = {"relu", "leaky_relu 0.2", "leaky_relu -0.5", "tanh"};
    for (int k = 0; k < 4; k++) {
        kn_graph *g = kn_graph_new();
        kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (int64_t[]){4, 16, 8, 8});
        kn_node *w = param(g, "w", 4, (int64_t[]){16, 16, 3, 3}, 11, -0.2f, 0.2f);
        kn_node *b = param(g, "b", 1, (int64_t[]){16}, 12, -0.2f, 0.2f);
        kn_node *w2 = param(g, "w2", 2, (int64_t[]){5, 1024}, 13, -0.05f, 0.05f);
        kn_node *conv = kn_graph_conv2d(g, x, w, b, &(kn_conv2d_opts){.pad_h = 1, .pad_w = 1}), *h;
        switch (k) {
        case 0: h = kn_graph_relu(g, conv); break;
        case 1: h = kn_graph_leaky_relu(g, conv, 0.2); break;
        case 2: h = kn_graph_leaky_relu(g, conv, -0.5); break;
        default: h = kn_graph_tanh(g, conv); break;
        }
        kn_node *logits = kn_graph_linear(g, kn_graph_flatten(g, h), w2, NULL);
        kn_node *labels = kn_graph_input(g, "labels", KN_I32, 1, (int64_t[]){4});
        kn_node *loss = kn_graph_softmax_cross_entropy(g, logits, labels);
        kn_node *params[3] = {w, b, w2}, *grads[3] = {0};
        CHECK_OK(kn_graph_backward(g, loss, params, 3, grads));
        kn_node *outs[5] = {loss, logits, grads[0], grads[1], grads[2]};
        CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
        kn_plan *on = compile(g, outs, 5, true, FUSE), *off = compile(g, outs, 5, true, NOFUSE);
        if (on && off) {
            for (int i = 0; i < 2; i++) {
                kn_plan *p = i ? off : on;
                fill(kn_plan_input_data(p, x), kn_node_numel(x), 17, -1, 1);
                int32_t *lab = kn_plan_input_data(p, labels);
                for (int j = 0; j < 4; j++)
                    lab[j] = (j * 3) % 5;
                CHECK_OK(kn_plan_run(p));
            }
            for (int i = 0; i < 5; i++)
                CHECK(same(on, off, outs[i]), "%s training: output %d (loss, logits, dw, db, dw2) bit-identical",
                      acts[k], i);
            const kn__ir *ir = kn__plan_ir(on);
            bool expect = k < 2; /* relu, leaky_relu with slope ≥ 0 */
            CHECK((fused_of(on) == 1) == expect, "%s training: fused %d", acts[k], fused_of(on));
            CHECK((ir->n_rewired == 1) == expect, "%s: %d backward ops rewired", acts[k], ir->n_rewired);
            for (int i = 0; i < ir->n && expect; i++)
                if ((ir->nodes[i].flags & KN__IR_LIVE) && ir->nodes[i].node->op == KN_OP_UNARY_BWD)
                    CHECK(ir->nodes[i].src[0] == kn_node_id(conv), "the backward reads the fused conv (= relu's value)");
            kn_plan_stats son, soff;
            kn_plan_get_stats(on, &son);
            kn_plan_get_stats(off, &soff);
            CHECK(son.arena_bytes <= soff.arena_bytes, "%s: arena %zu fused, %zu not", acts[k],
                  son.arena_bytes, soff.arena_bytes);
        }
        kn_plan_free(on);
        kn_plan_free(off);
        kn_graph_free(g);
    }
}

/* ---- where fusion must not fire ---- */
static void test_not_fired(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){6, 8});
    kn_node *w = param(g, "w", 2, (int64_t[]){8, 8}, 21, -0.5f, 0.5f);
    /* a second reader of the pre-activation */
    kn_node *h1 = kn_graph_linear(g, x, w, NULL);
    kn_node *y1 = kn_graph_add(g, kn_graph_relu(g, h1), h1);
    /* two activations of one conv */
    kn_node *h2 = kn_graph_linear(g, x, w, NULL);
    kn_node *y2 = kn_graph_mul(g, kn_graph_relu(g, h2), kn_graph_sigmoid(g, h2));
    /* a view in between (a different shape) */
    kn_node *h3 = kn_graph_linear(g, x, w, NULL);
    kn_node *y3 = kn_graph_relu(g, kn_graph_reshape(g, h3, 2, (int64_t[]){12, 4}));
    /* the pre-activation is itself an output */
    kn_node *h4 = kn_graph_linear(g, x, w, NULL);
    kn_node *y4 = kn_graph_tanh(g, h4);
    /* not a conv/linear: matmul + relu */
    kn_node *y5 = kn_graph_relu(g, kn_graph_matmul(g, x, w, false, true));
    kn_node *outs[6] = {y1, y2, y3, y4, h4, y5};
    CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
    unsigned nocse = KN_PASS_ALL & ~KN_PASS_CSE; /* keep the four linears apart */
    kn_plan *p = compile(g, outs, 6, false, nocse);
    const kn__ir *ir = kn__plan_ir(p);
    kn_node *heads[4] = {h1, h2, h3, h4};
    for (int k = 0; k < 4; k++)
        CHECK(ir->nodes[kn_node_id(heads[k])].fused_act < 0 && is_live(p, heads[k]), "linear %d: no activation fused",
              k + 1);
    CHECK(ir->n_fused == 2, "only the chains relu → add and relu → mul: %d fused", ir->n_fused);
    CHECK(compare(g, x, outs, 6, false, "not fired") >= 0, "compared (with CSE, the linears merge)");
    kn_plan_free(p);

    /* the positive control: one reader fuses */
    kn_node *y6 = kn_graph_relu(g, kn_graph_linear(g, x, w, NULL));
    p = compile(g, &y6, 1, false, nocse);
    CHECK(fused_of(p) == 1, "control fuses: %d", fused_of(p));
    kn_plan_free(p);

    /* the reference backend has no epilogue kernels */
    kn_plan_opts ro = {.backend = KN_BACKEND_REF, .passes = FUSE};
    CHECK_OK(kn_plan_compile(&p, g, &y6, 1, &ro));
    CHECK(fused_of(p) == 0, "reference backend: not fused");
    kn_plan_free(p);

    /* conv → relu → batch norm: only the relu fuses */
    kn_node *xi = kn_graph_input(g, "xi", KN_F32, 4, (int64_t[]){2, 3, 5, 5});
    kn_node *wc = param(g, "wc", 4, (int64_t[]){4, 3, 3, 3}, 22, -0.5f, 0.5f);
    kn_node *ga = param(g, "ga", 1, (int64_t[]){4}, 23, 0.5f, 1.5f), *be = param(g, "be", 1, (int64_t[]){4}, 24, 0, 1);
    kn_node *rm = kn_graph_param(g, "rm", KN_F32, 1, (int64_t[]){4}, false);
    kn_node *rv = kn_graph_param(g, "rv", KN_F32, 1, (int64_t[]){4}, false);
    fill_param(g, rv, 25, 0.5f, 1.0f);
    kn_node *y7 = kn_graph_batch_norm(g, kn_graph_relu(g, kn_graph_conv2d(g, xi, wc, NULL, NULL)), ga, be, rm, rv,
                                      0.1, 1e-5);
    CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
    CHECK(compare(g, xi, &y7, 1, false, "conv relu bn") == 1, "conv → relu → bn: the relu only");
    kn_graph_free(g);
}

/* ---- elementwise chains ---- */
static void test_chains(void)
{
    /* the trainer's guard: Σ g² per gradient, partial sums added, lr + 0·Σ */
    kn_graph *g = kn_graph_new();
    kn_node *gr[4], *sq = NULL;
    const int64_t sizes[4] = {100003, 4099, 16, 1};
    kn_node *x = kn_graph_input(g, "x", KN_F32, 1, (int64_t[]){4 * 100003});
    for (int k = 0; k < 4; k++) {
        gr[k] = kn_graph_slice(g, x, 0, k * 100003, k * 100003 + sizes[k]);
        kn_node *s = kn_graph_sum(g, kn_graph_mul(g, gr[k], gr[k]), 0, false);
        sq = sq ? kn_graph_add(g, sq, s) : s;
    }
    kn_node *lr = kn_graph_scalar(g, KN_F32, 0.5);
    kn_node *guarded = kn_graph_add(g, lr, kn_graph_mul(g, kn_graph_scalar(g, KN_F32, 0.0), sq));
    kn_node *outs[2] = {sq, guarded};
    CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
    int f = compare(g, x, outs, 2, false, "guard");
    CHECK(f == 4 + 2 + 1, "guard: 4 mul → sum, the 3 adds (one step), 0·sq + lr: %d fused", f);
    kn_plan *p = compile(g, outs, 2, false, FUSE);
    FILE *fp = tmpfile();
    CHECK_OK(kn_plan_write_dot(p, fp, true, NULL, 0));
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    rewind(fp);
    char *text = calloc((size_t)len + 1, 1);
    CHECK(text && fread(text, 1, (size_t)len, fp) == (size_t)len, "read DOT");
    fclose(fp);
    CHECK(text && strstr(text, "chain mul → sum") && strstr(text, "chain add → add → add"), "DOT shows the chains");
    free(text);
    kn_plan_free(p);
    kn_graph_free(g);

    /* every chainable op, one-element and full-size operands, sizes around the block */
    const int64_t ns[3] = {5, 2048 + 17, 70001};
    for (int k = 0; k < 3; k++) {
        g = kn_graph_new();
        x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){1, ns[k]});
        kn_node *y = kn_graph_input(g, "y", KN_F32, 2, (int64_t[]){1, ns[k]});
        kn_node *c = kn_graph_scalar(g, KN_F32, 1.5);
        kn_node *h = kn_graph_add(g, x, y);
        h = kn_graph_mul(g, h, c);
        h = kn_graph_sub(g, c, h);
        h = kn_graph_abs(g, h);
        h = kn_graph_div(g, h, kn_graph_add(g, kn_graph_abs(g, y), c)); /* the other operand: its own chain */
        h = kn_graph_sqrt(g, h);
        h = kn_graph_pow(g, h, c);
        h = kn_graph_log(g, kn_graph_scale(g, h, 0.5, 1.0));
        h = kn_graph_exp(g, kn_graph_neg(g, h));
        h = kn_graph_clamp(g, h, 0.1, 0.9);
        h = kn_graph_gelu(g, kn_graph_leaky_relu(g, kn_graph_tanh(g, h), 0.1));
        h = kn_graph_silu(g, kn_graph_sigmoid(g, kn_graph_relu(g, kn_graph_sub(g, h, y))));
        kn_node *m = kn_graph_mean(g, kn_graph_mul(g, h, h), 3u, false);
        kn_node *o2[2] = {h, m};
        CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
        kn_plan *on = compile(g, o2, 2, false, FUSE), *off = compile(g, o2, 2, false, NOFUSE);
        if (on && off) {
            for (int i = 0; i < 2; i++) {
                kn_plan *pp = i ? off : on;
                fill(kn_plan_input_data(pp, x), ns[k], 41, -3, 3);
                fill(kn_plan_input_data(pp, y), ns[k], 42, -3, 3);
                CHECK_OK(kn_plan_run(pp));
            }
            CHECK(same(on, off, h) && same(on, off, m), "n = %lld: chain and mean bit-identical (mean %.9g vs %.9g)",
                  (long long)ns[k], kn_plan_scalar(on, m), kn_plan_scalar(off, m));
            /* abs → add; 16 ops (the longest chain) from add to sub; relu → sigmoid → silu; mul → mean */
            CHECK(kn_plan_num_steps(on) == 4, "n = %lld: %d steps, expected 4 chains", (long long)ns[k],
                  kn_plan_num_steps(on));
        }
        kn_plan_free(on);
        kn_plan_free(off);
        kn_graph_free(g);
    }

    /* not fired: a broadcast of more than one element, an intermediate read twice, an update in between */
    g = kn_graph_new();
    x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){4, 5});
    kn_node *b = param(g, "b", 1, (int64_t[]){5}, 51, -1, 1);
    kn_node *y1 = kn_graph_exp(g, kn_graph_add(g, x, b)); /* add broadcasts b: starts no chain... */
    kn_node *t = kn_graph_neg(g, x);
    kn_node *y2 = kn_graph_add(g, kn_graph_exp(g, t), t); /* t read twice: neg ends no chain */
    kn_node *pw = param(g, "pw", 2, (int64_t[]){4, 5}, 52, -1, 1);
    kn_node *m1 = kn_graph_mul(g, pw, x);
    kn_node *upd = kn_graph_sgd_update(g, pw, x, kn_graph_scalar(g, KN_F32, 0.1), NULL, 0, 0, false);
    kn_node *y3 = kn_graph_exp(g, m1); /* mul → exp would read pw after its update */
    kn_node *o3[4] = {y1, y2, upd, y3};
    CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
    p = compile(g, o3, 4, false, FUSE);
    const kn__ir *ir = kn__plan_ir(p);
    CHECK(!ir->nodes[kn_node_id(y1)].chain, "a broadcast add starts no chain");
    CHECK(is_live(p, t) && is_live(p, m1) && !ir->nodes[kn_node_id(y3)].chain, "no chain through a second reader or an update");
    CHECK(ir->nodes[kn_node_id(y2)].chain && ir->n_fused == 1, "exp → add chains (%d fused)", ir->n_fused);
    kn_plan_free(p);
    /* bit-identical, the update included (fresh graphs: the update writes pw) */
    kn_graph_free(g);
}

/* ---- log_softmax + nll_loss → softmax_cross_entropy ---- */
static double max_rel(const float *a, const float *b, int64_t n)
{
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs((double)b[i]));
    for (int64_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)a[i] - (double)b[i]) / (scale > 0 ? scale : 1));
    return worst;
}

static void test_ce_rewrite(void)
{
    for (int variant = 0; variant < 3; variant++) { /* 0: rewritten; 1: log-probs also an output; 2: axis 0 */
        kn_graph *g = kn_graph_new();
        kn_node *x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){9, 13});
        kn_node *lab = kn_graph_input(g, "labels", KN_I32, 1, (int64_t[]){9});
        const int C = variant == 2 ? 9 : 7; /* axis 0 needs a square [9, 9] for nll's [N, C] */
        kn_node *w = param(g, "w", 2, (int64_t[]){C, 13}, 61, -1, 1);
        kn_node *logits = kn_graph_linear(g, x, w, NULL);
        kn_node *lp = kn_graph_log_softmax(g, logits, variant == 2 ? 0 : -1);
        kn_node *loss = kn_graph_nll_loss(g, lp, lab);
        kn_node *gw = NULL;
        CHECK_OK(kn_graph_backward(g, loss, &w, 1, &gw));
        kn_node *outs[3] = {loss, gw, lp};
        int n_out = variant == 1 ? 3 : 2;
        CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
        kn_plan *on = compile(g, outs, n_out, true, FUSE), *off = compile(g, outs, n_out, true, NOFUSE);
        if (!on || !off) {
            kn_plan_free(on);
            kn_plan_free(off);
            kn_graph_free(g);
            continue;
        }
        for (int i = 0; i < 2; i++) {
            kn_plan *p = i ? off : on;
            fill(kn_plan_input_data(p, x), kn_node_numel(x), 62, -3, 3);
            int32_t *l = kn_plan_input_data(p, lab);
            for (int r = 0; r < 9; r++)
                l[r] = (r * 5) % C;
            CHECK_OK(kn_plan_run(p));
        }
        const kn__ir *ir = kn__plan_ir(on);
        const kn__ir_node *lv = &ir->nodes[kn_node_id(loss)];
        bool expect = variant == 0;
        CHECK((lv->exec && lv->exec->op == KN_OP_SOFTMAX_CE) == expect, "variant %d: nll %s rewritten", variant,
              expect ? "" : "not");
        CHECK(is_live(on, lp) == !expect, "variant %d: log_softmax %s", variant, expect ? "gone" : "kept");
        int ce_bwd = 0;
        for (int i = 0; i < ir->n; i++)
            ce_bwd += (ir->nodes[i].flags & KN__IR_LIVE) && ir->nodes[i].exec &&
                      ir->nodes[i].exec->op == KN_OP_SOFTMAX_CE_BWD;
        CHECK(ce_bwd == (expect ? 1 : 0), "variant %d: %d backward ops rewritten", variant, ce_bwd);
        double dl = max_rel(kn_plan_data(on, loss), kn_plan_data(off, loss), 1);
        double dg = max_rel(kn_plan_data(on, gw), kn_plan_data(off, gw), kn_node_numel(gw));
        CHECK(dl <= 1e-6 && dg <= 1e-5, "variant %d: loss rel. diff %.3g, gradient %.3g (max rel. to the largest)",
              variant, dl, dg);
        if (expect)
            printf("log_softmax + nll_loss as softmax_cross_entropy: loss rel. diff %.3g, gradient %.3g\n", dl, dg);
        else
            CHECK(same(on, off, loss) && same(on, off, gw), "variant %d: not rewritten, bit-identical", variant);
        kn_plan_free(on);
        kn_plan_free(off);
        kn_graph_free(g);
    }
}

/* ---- statistics, DOT, KILN_PASSES, example models ---- */
static char *read_all(FILE *f)
{
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = calloc((size_t)n + 1, 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n)
        s[0] = 0;
    return s;
}

static void test_plumbing(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (int64_t[]){2, 3, 6, 6});
    kn_node *w = param(g, "w", 4, (int64_t[]){4, 3, 3, 3}, 31, -0.5f, 0.5f);
    kn_node *ga = param(g, "ga", 1, (int64_t[]){4}, 32, 0.5f, 1.5f), *be = param(g, "be", 1, (int64_t[]){4}, 33, 0, 1);
    kn_node *rm = kn_graph_param(g, "rm", KN_F32, 1, (int64_t[]){4}, false);
    kn_node *rv = kn_graph_param(g, "rv", KN_F32, 1, (int64_t[]){4}, false);
    fill_param(g, rv, 34, 0.5f, 1.0f);
    kn_node *y = kn_graph_silu(g, kn_graph_batch_norm(g, kn_graph_conv2d(g, x, w, NULL, NULL), ga, be, rm, rv, 0.1,
                                                      1e-3));
    CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
    kn_plan *p = compile(g, &y, 1, false, FUSE);
    kn_plan_stats s;
    CHECK_OK(kn_plan_get_stats(p, &s));
    CHECK(s.fused == 2 && (s.passes & KN_PASS_FUSE) && s.steps == 1, "stats: %d fused, %d steps, passes %#x", s.fused,
          s.steps, s.passes);
    FILE *f = tmpfile();
    CHECK_OK(kn_plan_write_dot(p, f, true, NULL, 0));
    char *text = read_all(f);
    fclose(f);
    CHECK(text && strstr(text, "conv2d + batch_norm + silu"), "DOT labels the fused conv: %s", text ? text : "");
    free(text);
    kn_plan_free(p);

    setenv("KILN_PASSES", "dce,fuse", 1);
    CHECK_OK(kn_plan_compile(&p, g, &y, 1, &(kn_plan_opts){0}));
    CHECK(p && kn_plan_get_stats(p, &s) == KN_OK && s.passes == (KN_PASS_DCE | KN_PASS_FUSE) && s.fused == 2,
          "KILN_PASSES=dce,fuse: passes %#x, %d fused", s.passes, s.fused);
    kn_plan_free(p);
    setenv("KILN_PASSES", "dce,cse,fold,inplace,memplan", 1);
    CHECK_OK(kn_plan_compile(&p, g, &y, 1, &(kn_plan_opts){0}));
    CHECK(p && kn_plan_get_stats(p, &s) == KN_OK && s.fused == 0, "all but fuse: %d fused", s.fused);
    kn_plan_free(p);
    unsetenv("KILN_PASSES");
    kn_graph_free(g);

    /* the CLI shows the fusions */
    int rc = kt_run("%s graph model_b --batch 2 -o /dev/null", KILN_BIN);
    CHECK(rc == 0 && strstr(kt_out, "3 fused"), "kiln graph model_b reports 3 fusions: %s", kt_out);
    rc = kt_run("%s graph examples/resnet_cifar.kiln --batch 2 --inference -o /dev/null", KILN_BIN);
    CHECK(rc == 0 && strstr(kt_out, " fused"), "kiln graph resnet --inference: %s", kt_out);
}

/* ---- out of memory ---- */
static kn_status build_compile(void *arg)
{
    (void)arg;
    kn_graph *g = kn_graph_new();
    if (!g)
        return KN_ERR_OOM;
    kn_node *x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){4, 6});
    kn_node *lab = kn_graph_input(g, "labels", KN_I32, 1, (int64_t[]){4});
    kn_node *w = kn_graph_param(g, "w", KN_F32, 2, (int64_t[]){5, 6}, true);
    /* an epilogue (linear + relu), a chain (scale → exp → sum), the cross-entropy rewrite */
    kn_node *h = kn_graph_relu(g, kn_graph_linear(g, x, w, NULL));
    kn_node *loss = kn_graph_add(g, kn_graph_sum(g, kn_graph_exp(g, kn_graph_scale(g, h, 0.1, 0.0)), 0, false),
                                 kn_graph_nll_loss(g, kn_graph_log_softmax(g, h, -1), lab));
    kn_node *gw = NULL;
    kn_status st = kn_graph_backward(g, loss, &w, 1, &gw);
    if (!st)
        st = kn_graph_status(g);
    kn_plan *p = NULL;
    kn_node *outs[2] = {loss, gw};
    if (!st)
        st = kn_plan_compile(&p, g, outs, 2, &(kn_plan_opts){.training = true, .passes = FUSE});
    if (!st && fused_of(p) < 4)
        st = KN_ERR_ARG;
    if (!st) {
        int32_t *l = kn_plan_input_data(p, lab);
        for (int i = 0; i < 4; i++)
            l[i] = i;
    }
    if (!st)
        st = kn_plan_run(p);
    kn_plan_free(p);
    kn_graph_free(g);
    return st;
}

static void test_oom(void)
{
    long n = kt_oom_loop("fuse: build, compile, run", build_compile, NULL, 2000);
    CHECK(n > 5, "success after %ld failed allocations", n);
}

int main(void)
{
    test_linear_acts();
    test_conv_bn();
    test_training();
    test_not_fired();
    test_chains();
    test_ce_rewrite();
    test_plumbing();
    test_oom();
    return kt_finish("test_fuse");
}
