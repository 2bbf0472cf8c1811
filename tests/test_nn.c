/* test_nn.c — the model description format (kiln/nn.h): every example file parses with the
 * expected layers, input shape, classes, parameter counts and (roughly) FLOPs; building twice
 * in one graph creates the parameters once; parameter initialisation ranges; an MLP forward
 * pass against a hand computation; recipe keys and their validation; every kind of bad
 * input gives the right status and a message naming source:line; out-of-memory injection
 * through parse and build. Run from the repository root (CTest does). It does not train. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/nn.h"
#include "util.h"

/* ---- examples ------------------------------------------------------------------------------ */

typedef struct example {
    const char *path;
    int layers;
    int in_ndim;
    int64_t in_shape[3];
    int classes;
    int64_t params, frozen;
    double flops; /* expected forward FLOPs per example, computed by hand below */
} example;

/* conv: 2·MACs + bias; linear: 2·in·out + out; relu / pool window / add: 1 per element. */
static double conv_fl(double o, double oh, double ow, double k2c, bool bias)
{
    return 2 * o * oh * ow * k2c + (bias ? o * oh * ow : 0);
}
static double dense_fl(double in, double out) { return 2 * in * out + out; }

static void check_example(const example *e)
{
    kn_model *m = NULL;
    kn_error err = {0};
    kn_status st = kn_model_load(&m, e->path, &err);
    CHECK(st == KN_OK && m, "%s: %s %s", e->path, kn_status_name(st), err.msg);
    if (!m)
        return;
    CHECK(kn_model_num_layers(m) == e->layers, "%s: %d layers, expected %d", e->path, kn_model_num_layers(m),
          e->layers);
    int64_t shape[3];
    int nd = kn_model_input_shape(m, shape);
    CHECK(nd == e->in_ndim, "%s: input ndim %d", e->path, nd);
    for (int i = 0; i < nd; i++)
        CHECK(shape[i] == e->in_shape[i], "%s: input dim %d = %lld", e->path, i, (long long)shape[i]);
    CHECK(kn_model_num_classes(m) == e->classes, "%s: %d classes", e->path, kn_model_num_classes(m));
    int64_t params = -1;
    double flops = -1;
    CHECK_OK(kn_model_stats(m, &params, &flops, NULL));
    CHECK(params == e->params, "%s: %lld params, expected %lld", e->path, (long long)params, (long long)e->params);
    CHECK(kt_close(flops, e->flops, 0.02, 0), "%s: %.0f FLOPs, expected about %.0f", e->path, flops, e->flops);
    int64_t frozen = 0, sum = 0;
    double fsum = 0;
    for (int i = 0; i < kn_model_num_layers(m); i++) {
        kn_model_layer L;
        CHECK_OK(kn_model_layer_info(m, i, &L));
        frozen += L.frozen;
        sum += L.params;
        fsum += L.flops;
        CHECK(L.line > 0 && L.name && *L.name && L.kind, "%s: layer %d info", e->path, i);
    }
    CHECK(frozen == e->frozen, "%s: %lld frozen elements, expected %lld", e->path, (long long)frozen,
          (long long)e->frozen);
    CHECK(sum == params && fabs(fsum - flops) < 1e-6 * flops, "%s: layer sums match the totals", e->path);
    kn_model_layer L;
    CHECK(kn_model_layer_info(m, kn_model_num_layers(m), &L) == KN_ERR_ARG, "layer index out of range");
    CHECK(strstr(kn_model_text(m), "input ") != NULL, "%s: text kept", e->path);
    printf("\n");
    CHECK_OK(kn_model_summary(m, stdout, NULL));
    kn_model_free(m);
}

static void test_examples(void)
{
    /* model A: conv 32 3×3 valid → [32,26,26], pool → [32,13,13] = 5408 */
    double fl_a = conv_fl(32, 26, 26, 9, true) + 32 * 26 * 26 /* relu */ + 32 * 13 * 13 * 4 /* pool */ +
                  dense_fl(5408, 64) + 64 + dense_fl(64, 10);
    double fl_b = conv_fl(32, 28, 28, 9, true) + 32 * 28 * 28 + 32 * 14 * 14 * 4 + conv_fl(64, 14, 14, 32 * 9, true) +
                  64 * 14 * 14 + 64 * 7 * 7 * 4 + dense_fl(3136, 128) + 128 + dense_fl(128, 10);
    double fl_mlp = dense_fl(784, 256) + 256 + dense_fl(256, 128) + 128 + dense_fl(128, 10);
    /* resnet: convs dominate; batchnorm (8/element in the op table), relu and add are small */
    double big = 32 * 32 * 32, small = 64 * 16 * 16;
    double fl_res = conv_fl(32, 32, 32, 27, false) + 4 * conv_fl(32, 32, 32, 288, false) +
                    conv_fl(64, 16, 16, 288, false) + 3 * conv_fl(64, 16, 16, 576, false) +
                    conv_fl(64, 16, 16, 32, false) + 5 * 8 * big + 5 * 8 * small /* bn */ +
                    5 * big + 3 * small /* relu */ + 2 * big + 2 * small /* add */ + small /* gap */ +
                    dense_fl(64, 10);
    const example ex[] = {
        {"examples/mlp.kiln", 7, 3, {1, 28, 28}, 10, 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10, 0, fl_mlp},
        {"examples/model_a.kiln", 8, 3, {1, 28, 28}, 10, 320 + 32 * 13 * 13 * 64 + 64 + 650, 0, fl_a},
        {"examples/model_b.kiln", 11, 3, {1, 28, 28}, 10, 320 + 18496 + 401536 + 1290, 0, fl_b},
        {"examples/resnet_cifar.kiln", 36, 3, {3, 32, 32}, 10,
         /* stem */ 864 + 64 + /* blocks 1-2 */ 4 * (9216 + 64) + /* block 3 */ 18432 + 128 + 36864 + 128 + 2048 +
             128 + /* block 4 */ 2 * (36864 + 128) + /* dense */ 650,
         2 * (5 * 32 + 5 * 64), fl_res},
    };
    CHECK(ex[0].params == 235146 && ex[1].params == 347146 && ex[2].params == 421642, "hand counts");
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++)
        check_example(&ex[i]);

    /* recipes */
    kn_model *m = NULL;
    CHECK_OK(kn_model_load(&m, "examples/resnet_cifar.kiln", NULL));
    if (m) {
        const kn_recipe *r = kn_model_recipe(m);
        CHECK(!strcmp(r->optimizer, "sgd") && r->lr == 0.1 && r->momentum == 0.9 && r->nesterov &&
                  r->weight_decay == 5e-4 && !strcmp(r->schedule, "cosine") && r->warmup_epochs == 1 &&
                  r->batch == 128 && r->epochs == 30 && r->crop_pad == 4 && r->hflip && r->beta2 == 0.999,
              "resnet recipe");
        kn_model_layer L;
        CHECK_OK(kn_model_layer_info(m, 1, &L));
        CHECK(!strcmp(L.name, "conv1") && !strcmp(L.kind, "conv2d") && L.ndim == 3 && L.shape[0] == 32 &&
                  L.shape[1] == 32 && L.shape[2] == 32,
              "resnet layer 1: %s %s", L.name, L.kind);
        CHECK_OK(kn_model_layer_info(m, kn_model_num_layers(m) - 2, &L));
        CHECK(!strcmp(L.kind, "globalavgpool") && L.ndim == 1 && L.shape[0] == 64, "globalavgpool gives [C]");
        kn_model_free(m);
    }
    CHECK_OK(kn_model_load(&m, "examples/model_b.kiln", NULL));
    if (m) {
        const kn_recipe *r = kn_model_recipe(m);
        CHECK(!strcmp(r->optimizer, "adam") && r->lr == 1e-3 && r->batch == 64 && r->epochs == 5, "model B recipe");
        kn_model_layer L;
        CHECK_OK(kn_model_layer_info(m, 8, &L));
        CHECK(!strcmp(L.name, "fc1") && !strcmp(L.kind, "dense") && L.params == 401536, "fc1: %s", L.name);
        kn_model_free(m);
    }
}

/* ---- building ------------------------------------------------------------------------------ */

static kn_node *image_input(kn_graph *g, const char *name, int64_t n, kn_dtype dt)
{
    return kn_graph_input(g, name, dt, 4, (int64_t[]){n, 1, 28, 28});
}

static bool all_within(kn_graph *g, const char *name, double bound, bool *nonconst)
{
    kn_node *p = kn_graph_find(g, name);
    const float *d = p ? kn_graph_param_data(g, p) : NULL;
    if (!d)
        return false;
    bool ok = true;
    *nonconst = false;
    for (int64_t i = 0; i < kn_node_numel(p); i++) {
        ok = ok && fabsf(d[i]) <= bound;
        *nonconst = *nonconst || d[i] != d[0];
    }
    return ok;
}

static void test_build_twice(void)
{
    kn_model *m = NULL;
    kn_error err = {0};
    CHECK_OK(kn_model_load(&m, "examples/model_b.kiln", &err));
    if (!m)
        return;
    kn_graph *g = kn_graph_new();
    kn_node *y1 = kn_model_build(m, g, image_input(g, "x", 64, KN_F32), &err);
    CHECK(y1 && kn_node_dim(y1, 0) == 64 && kn_node_dim(y1, 1) == 10, "first build: %s", err.msg);
    int np = kn_graph_params(g, false, NULL, 0);
    size_t bytes = kn_graph_param_bytes(g);
    CHECK(np == 8, "model B has 8 parameter tensors, got %d", np);
    kn_node *w1 = kn_graph_find(g, "conv1.weight");
    CHECK(w1 && kn_node_dim(w1, 0) == 32 && kn_node_dim(w1, 1) == 1, "conv1.weight");
    CHECK(kn_graph_find(g, "fc1.bias") && kn_graph_find(g, "fc2.weight") && kn_graph_find(g, "conv2.bias"),
          "parameter names");
    /* PyTorch's default ranges */
    bool varied = false;
    CHECK(all_within(g, "conv1.weight", 1 / 3.0, &varied) && varied, "conv1.weight in ±1/3");
    CHECK(all_within(g, "conv1.bias", 1 / 3.0, &varied) && varied, "conv1.bias in ±1/3");
    CHECK(all_within(g, "conv2.weight", 1 / sqrt(288.0), &varied) && varied, "conv2.weight in ±1/sqrt(288)");
    CHECK(all_within(g, "fc1.weight", 1 / 56.0, &varied) && varied, "fc1.weight in ±1/56");
    CHECK(all_within(g, "fc1.bias", 1 / 56.0, &varied) && varied, "fc1.bias in ±1/56");
    CHECK(!all_within(g, "fc1.weight", 0.5 / 56.0, &varied), "fc1.weight fills its range");

    kn_node *y2 = kn_model_build(m, g, image_input(g, "x_eval", 1000, KN_F32), &err);
    CHECK(y2 && kn_node_dim(y2, 0) == 1000 && kn_node_dim(y2, 1) == 10, "second build: %s", err.msg);
    CHECK(kn_graph_params(g, false, NULL, 0) == np && kn_graph_param_bytes(g) == bytes,
          "second build creates no parameters");
    CHECK(kn_graph_find(g, "conv1.weight") == w1, "same parameter node");

    /* input that does not fit */
    kn_node *bad = kn_graph_input(g, "x_bad", KN_F32, 4, (int64_t[]){8, 3, 28, 28});
    CHECK(!kn_model_build(m, g, bad, &err) && err.status == KN_ERR_SHAPE, "wrong input shape");
    CHECK(strstr(err.msg, "[8,3,28,28]") && strstr(err.msg, "[N,1,28,28]"), "message: %s", err.msg);
    CHECK(kn_graph_status(g) == KN_ERR_SHAPE, "recorded in the graph too");
    CHECK(!kn_model_build(m, g, image_input(g, "x3", 2, KN_F32), &err) && err.status == KN_ERR_SHAPE,
          "a graph with an error refuses further builds");
    kn_graph_clear_error(g);
    /* same names, other dtype */
    CHECK(!kn_model_build(m, g, image_input(g, "x64", 4, KN_F64), &err) && err.status == KN_ERR_SHAPE,
          "f64 build over f32 params");
    CHECK(strstr(err.msg, "conv1.weight") && strstr(err.msg, "model_b.kiln:"), "message: %s", err.msg);
    kn_graph_clear_error(g);
    CHECK(!kn_model_build(m, g, NULL, &err) && err.status == KN_ERR_ARG, "NULL x");
    kn_graph_free(g);

    /* batch norm initial values and frozen statistics */
    kn_model *r = NULL;
    CHECK_OK(kn_model_load(&r, "examples/resnet_cifar.kiln", &err));
    if (r) {
        g = kn_graph_new();
        kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (int64_t[]){2, 3, 32, 32});
        CHECK(kn_model_build(r, g, x, &err) != NULL, "resnet build: %s", err.msg);
        CHECK(kn_graph_params(g, false, NULL, 0) == kn_graph_params(g, true, NULL, 0) + 2 * 10,
              "10 batchnorms with 2 frozen statistics each");
        kn_node *gm = kn_graph_find(g, "bn1.gamma"), *rv = kn_graph_find(g, "bn1.running_var"),
                *rm = kn_graph_find(g, "bn1.running_mean"), *bt = kn_graph_find(g, "bn1.beta");
        const float *dg = gm ? kn_graph_param_data(g, gm) : NULL, *dv = rv ? kn_graph_param_data(g, rv) : NULL,
                    *dm = rm ? kn_graph_param_data(g, rm) : NULL, *db = bt ? kn_graph_param_data(g, bt) : NULL;
        CHECK(dg && dv && dm && db, "bn1 parameters exist");
        for (int i = 0; dg && dv && dm && db && i < 32; i++)
            CHECK(dg[i] == 1 && dv[i] == 1 && dm[i] == 0 && db[i] == 0, "bn1 init at %d", i);
        CHECK(!kn_graph_find(g, "conv1.bias"), "bias=0 gives no bias");
        kn_graph_free(g);
        kn_model_free(r);
    }
    kn_model_free(m);
}

/* MLP forward on two examples against the same computation done here from the parameters. */
static void test_forward_mlp(void)
{
    kn_model *m = NULL;
    CHECK_OK(kn_model_load(&m, "examples/mlp.kiln", NULL));
    if (!m)
        return;
    kn_graph *g = kn_graph_new();
    kn_graph_set_seed(g, 7);
    kn_node *x = kn_graph_input(g, "x", KN_F64, 4, (int64_t[]){2, 1, 28, 28});
    kn_error err = {0};
    kn_node *y = kn_model_build(m, g, x, &err);
    CHECK(y != NULL, "build: %s", err.msg);
    kn_plan *p = NULL;
    kn_plan_opts o = {.backend = KN_BACKEND_REF};
    if (y && kn_plan_compile(&p, g, &y, 1, &o) == KN_OK) {
        double *xd = kn_plan_input_data(p, x);
        for (int i = 0; i < 2 * 784; i++)
            xd[i] = sin(0.37 * i);
        CHECK_OK(kn_plan_run(p));
        const double *yd = kn_plan_data(p, y);
        static const char *const names[3] = {"dense1", "dense2", "dense3"};
        const int dims[4] = {784, 256, 128, 10};
        double h[2][784], t[2][784];
        for (int i = 0; i < 2 * 784; i++)
            h[i / 784][i % 784] = sin(0.37 * i);
        for (int l = 0; l < 3; l++) {
            char wn[32], bn[32];
            snprintf(wn, sizeof wn, "%s.weight", names[l]);
            snprintf(bn, sizeof bn, "%s.bias", names[l]);
            const double *w = kn_graph_param_data(g, kn_graph_find(g, wn));
            const double *b = kn_graph_param_data(g, kn_graph_find(g, bn));
            for (int n = 0; n < 2; n++)
                for (int o2 = 0; o2 < dims[l + 1]; o2++) {
                    double s = b[o2];
                    for (int k = 0; k < dims[l]; k++)
                        s += w[o2 * dims[l] + k] * h[n][k];
                    t[n][o2] = l < 2 && s < 0 ? 0 : s;
                }
            memcpy(h, t, sizeof h);
        }
        double maxerr = 0;
        for (int n = 0; n < 2; n++)
            for (int c = 0; c < 10; c++)
                maxerr = fmax(maxerr, fabs(yd[n * 10 + c] - h[n][c]));
        CHECK(maxerr < 1e-12, "MLP logits differ from the hand computation by %g", maxerr);
        kn_plan_free(p);
    } else {
        CHECK(0, "compile: %s", kn_plan_last_error());
    }
    kn_graph_free(g);
    kn_model_free(m);
}

/* Every layer kind, pad=same, aliases, automatic names, and a features model. */
static void test_layer_kinds(void)
{
    const char *img = "input 3 16 16\n"
                      "conv2d 8 3 pad=same\n"             /* conv1 [8,16,16] */
                      "batchnorm momentum=0.2 eps=1e-3\n" /* bn1 */
                      "leaky_relu 0.2 name=a\n"
                      "conv2d 8 3x1 pad=same groups=2 bias=0\n" /* conv2 [8,16,16], 8·4·3 = 96 params */
                      "gelu\n"
                      "add a\n"
                      "avgpool 2 stride=2\n" /* [8,8,8] */
                      "maxpool 3 stride=1 pad=1\n"
                      "conv2d 4 3 dilation=2 from=a\n" /* [4,12,12] */
                      "silu\n"
                      "sigmoid\n"
                      "tanh\n"
                      "flatten\n"
                      "dropout 0.5\n"
                      "linear 5\n"
                      "layernorm\n";
    kn_model *m = NULL;
    kn_error err = {0};
    CHECK_OK(kn_model_parse(&m, img, "img.kiln", &err));
    if (m) {
        kn_model_layer L;
        const char *want[] = {"input", "conv1",  "bn1",      "a",      "conv2",    "gelu1", "add1",     "avgpool1",
                              "maxpool1", "conv3", "silu1", "sigmoid1", "tanh1", "flatten1", "dropout1", "dense1", "ln1"};
        for (int i = 0; i < kn_model_num_layers(m) && i < 17; i++) {
            CHECK_OK(kn_model_layer_info(m, i, &L));
            CHECK(!strcmp(L.name, want[i]), "layer %d is %s, expected %s", i, L.name, want[i]);
        }
        CHECK(kn_model_num_layers(m) == 17 && kn_model_num_classes(m) == 5, "17 layers, 5 classes");
        kn_model_layer_info(m, 1, &L);
        CHECK(L.shape[1] == 16 && L.shape[2] == 16, "pad=same keeps 16x16");
        kn_model_layer_info(m, 4, &L);
        CHECK(L.params == 96 && L.shape[1] == 16 && L.shape[2] == 16, "grouped 3x1 conv: %lld", (long long)L.params);
        kn_model_layer_info(m, 2, &L);
        CHECK(L.params == 16 && L.frozen == 16, "bn params");
        kn_model_layer_info(m, 9, &L);
        CHECK(L.ndim == 3 && L.shape[0] == 4 && L.shape[1] == 12, "dilated conv from a: [%lld,%lld,%lld]",
              (long long)L.shape[0], (long long)L.shape[1], (long long)L.shape[2]);
        kn_model_layer_info(m, 16, &L);
        CHECK(L.params == 10 && !strcmp(L.kind, "layernorm"), "layernorm over [5]");
        kn_graph *g = kn_graph_new();
        kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (int64_t[]){3, 3, 16, 16});
        kn_node *y = kn_model_build(m, g, x, &err);
        CHECK(y && kn_node_dim(y, 0) == 3 && kn_node_dim(y, 1) == 5, "build: %s", err.msg);
        kn_graph_free(g);
        kn_model_free(m);
    }
    const char *feat = "# features\r\n\r\ninput 20\r\ndense 16\r\nbatchnorm\r\nrelu\r\ndense 3 bias=false\r\n";
    CHECK_OK(kn_model_parse(&m, feat, NULL, &err));
    if (m) {
        int64_t s[3] = {9, 9, 9};
        CHECK(kn_model_input_shape(m, s) == 1 && s[0] == 20 && s[1] == 0, "features input");
        int64_t params;
        kn_model_stats(m, &params, NULL, NULL);
        CHECK(params == 20 * 16 + 16 + 32 + 48, "features params %lld", (long long)params);
        kn_model_free(m);
    }
}

/* ---- errors -------------------------------------------------------------------------------- */

typedef struct bad_case {
    const char *what, *text;
    kn_status status;
    const char *needle1, *needle2;
} bad_case;

static void test_errors(void)
{
    static char long_line[2200], many[256 * 8 + 64];
    strcpy(long_line, "input 8\n# ");
    memset(long_line + 10, 'x', 2000);
    strcpy(long_line + 2010, "\ndense 2\n");
    strcpy(many, "input 4\n");
    for (int i = 0; i < 256; i++)
        strcat(many, "relu\n");
    const bad_case cases[] = {
        {"unknown layer", "input 1 28 28\nconv3d 32 3\n", KN_ERR_FORMAT, "t.kiln:2: unknown layer 'conv3d'",
         "known: input, conv2d, dense"},
        {"unknown option", "input 1 28 28\n\nconv2d 32 3 strid=2\nflatten\ndense 2\n", KN_ERR_FORMAT,
         "t.kiln:3: conv2d: option 'strid' unknown (stride, pad, dilation, groups, bias, name, from)", NULL},
        {"bad number", "input 1 28 28\nconv2d x\n", KN_ERR_FORMAT, "t.kiln:2: conv2d:", "'x' is not a whole number"},
        {"bad real", "input 4\ndropout 0.5x\ndense 2\n", KN_ERR_FORMAT, "t.kiln:2: dropout:", "'0.5x' is not a number"},
        {"out of range", "input 4\ndropout 1\ndense 2\n", KN_ERR_FORMAT, "t.kiln:2: dropout:", "out of range"},
        {"missing input line", "# no input\nconv2d 32 3\nrelu\n", KN_ERR_FORMAT, "t.kiln:2:",
         "'input' must be the first layer"},
        {"input twice", "input 4\ndense 3\ninput 4\n", KN_ERR_FORMAT, "t.kiln:3:", "'input' must be the first layer"},
        {"input with 2 numbers", "input 28 28\ndense 2\n", KN_ERR_FORMAT, "t.kiln:1: input:", "2 numbers"},
        {"missing argument", "input 4\ndense\n", KN_ERR_FORMAT, "t.kiln:2: dense: missing UNITS", NULL},
        {"too many arguments", "input 4\ndense 3 4\n", KN_ERR_FORMAT, "t.kiln:2: dense:", "unexpected argument '4'"},
        {"argument after options", "input 1 8 8\nconv2d 4 stride=1 3\n", KN_ERR_FORMAT, "t.kiln:2: conv2d:",
         "after the key=value options"},
        {"option twice", "input 4\ndense 3 bias=0 bias=1\n", KN_ERR_FORMAT, "t.kiln:2:", "given twice"},
        {"option without value", "input 4\ndense 3 name=\n", KN_ERR_FORMAT, "t.kiln:2:", "has no value"},
        {"input options", "input 4 name=x\ndense 3\n", KN_ERR_FORMAT, "t.kiln:1: input:", "takes no options"},
        {"dense without flatten", "input 1 28 28\nconv2d 32 3\nrelu\n# pool\nmaxpool 2\ndense 10\n", KN_ERR_SHAPE,
         "t.kiln:6: dense: input [1,32,13,13] has 4 dims; add 'flatten' before it", NULL},
        {"conv2d on features", "input 10\nconv2d 4 3\n", KN_ERR_SHAPE, "t.kiln:2: conv2d: input [1,10] has 2 dims",
         NULL},
        {"kernel larger than input", "input 1 4 4\nconv2d 4 5\nflatten\ndense 2\n", KN_ERR_SHAPE, "t.kiln:2:",
         "smaller than kernel"},
        {"pool larger than input", "input 1 2 2\nmaxpool 3\nflatten\ndense 2\n", KN_ERR_SHAPE, "t.kiln:2:",
         "max_pool2d"},
        {"add unknown name", "input 8\ndense 8\nadd b1\n", KN_ERR_FORMAT, "t.kiln:3: add: no earlier layer is named 'b1'",
         NULL},
        {"from unknown name", "input 8\ndense 8 from=zz\n", KN_ERR_FORMAT, "t.kiln:2: dense:", "named 'zz'"},
        {"add mismatched shapes", "input 8\ndense 8 name=a\ndense 4\nadd a\n", KN_ERR_SHAPE, "t.kiln:4: add:",
         "[1,4]"},
        {"duplicate name", "input 8\ndense 8 name=a\ndense 8 name=a\n", KN_ERR_FORMAT, "t.kiln:3:",
         "already used by the layer on line 2"},
        {"bad name", "input 8\ndense 8 name=a.b\n", KN_ERR_FORMAT, "t.kiln:2:", "name 'a.b' is not valid"},
        {"output not [N, classes]", "input 1 8 8\nconv2d 4 3\n", KN_ERR_SHAPE, "t.kiln:2:", "must be [N, classes]"},
        {"too-long line", long_line, KN_ERR_FORMAT, "t.kiln:2:", "the limit is 1024"},
        {"too many layers", many, KN_ERR_FORMAT, "t.kiln:257:", "more than 256 layers"},
        {"empty file", "", KN_ERR_FORMAT, "t.kiln:1:", "no layers"},
        {"comments only", "# nothing\n\n   \n", KN_ERR_FORMAT, "t.kiln:3:", "no layers"},
        {"input only", "input 4\n", KN_ERR_FORMAT, "t.kiln:1:", "only its input line"},
        {"pad=same even kernel", "input 1 8 8\nconv2d 4 2 pad=same\n", KN_ERR_FORMAT, "t.kiln:2:", "odd kernel"},
        {"groups", "input 1 8 8\nconv2d 6 3 groups=4\n", KN_ERR_FORMAT, "t.kiln:2:", "groups 4 must divide"},
        {"groups vs channels", "input 3 8 8\nconv2d 4 3 groups=2\nflatten\ndense 2\n", KN_ERR_SHAPE, "t.kiln:2:",
         "not divisible by groups 2"},
        {"pool pad", "input 1 8 8\nmaxpool 2 pad=2\n", KN_ERR_FORMAT, "t.kiln:2:", "more than half"},
        {"huge dense", "input 3 1024 1024\nflatten\ndense 16000000\n", KN_ERR_SHAPE, "t.kiln:3:", "2^31"},
        {"recipe bad value", "train lr=-1\ninput 4\ndense 2\n", KN_ERR_FORMAT, "t.kiln:1: train:", "lr"},
        {"recipe unknown key", "input 4\ndense 2\ntrain lrate=0.1\n", KN_ERR_FORMAT,
         "t.kiln:3: train: unknown recipe key 'lrate'", NULL},
        {"recipe not key=value", "input 4\ndense 2\ntrain adam\n", KN_ERR_FORMAT, "t.kiln:3: train:",
         "not a key=value"},
        {"uppercase keyword", "Input 4\ndense 2\n", KN_ERR_FORMAT, "t.kiln:1: unknown layer 'Input'", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        kn_model *m = (kn_model *)&cases; /* must come back NULL */
        kn_error err = {0};
        kn_status st = kn_model_parse(&m, c->text, "t.kiln", &err);
        CHECK(st == c->status && err.status == st && m == NULL, "%s: got %s, expected %s (%s)", c->what,
              kn_status_name(st), kn_status_name(c->status), err.msg);
        CHECK(strstr(err.msg, c->needle1) && (!c->needle2 || strstr(err.msg, c->needle2)),
              "%s: message '%s' lacks '%s' / '%s'", c->what, err.msg, c->needle1, c->needle2 ? c->needle2 : "");
        CHECK(kn_model_parse(&m, c->text, "t.kiln", NULL) == c->status, "%s: same status without err", c->what);
    }
    printf("\nexamples of messages:\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i += 5) {
        kn_model *m;
        kn_error err;
        kn_model_parse(&m, cases[i].text, "t.kiln", &err);
        printf("  %s\n", err.msg);
    }
    kn_model *m = NULL;
    kn_error err;
    CHECK(kn_model_parse(&m, NULL, "x", &err) == KN_ERR_ARG, "NULL text");
    CHECK(kn_model_parse(NULL, "input 4\ndense 2\n", "x", &err) == KN_ERR_ARG, "NULL out");
    CHECK(kn_model_load(&m, "examples/no_such_model.kiln", &err) == KN_ERR_IO && strstr(err.msg, "no_such_model"),
          "missing file: %s", err.msg);
    CHECK(kn_model_load(&m, "examples", &err) != KN_OK && m == NULL, "a directory");
    kn_model_free(NULL);
    CHECK(kn_model_num_classes(NULL) == 0 && kn_model_text(NULL) == NULL && kn_model_recipe(NULL) == NULL,
          "NULL model accessors");
    CHECK(kn_model_summary(NULL, stdout, &err) == KN_ERR_ARG, "summary of NULL");
}

/* ---- recipe -------------------------------------------------------------------------------- */

static void test_recipe(void)
{
    kn_recipe r, d;
    kn_recipe_defaults(&r);
    CHECK(!strcmp(r.optimizer, "adam") && r.lr == 1e-3 && r.momentum == 0.9 && r.beta1 == 0.9 && r.beta2 == 0.999 &&
              r.eps == 1e-8 && r.batch == 64 && r.epochs == 5 && !strcmp(r.schedule, "constant") &&
              r.step_size == 30 && r.gamma == 0.1 && r.accum == 1 && r.val_split == 0 && !r.hflip && r.crop_pad == 0,
          "defaults");
    const char *good[][2] = {{"optimizer", "sgd"}, {"lr", "0.05"},      {"momentum", "0.8"}, {"nesterov", "1"},
                             {"wd", "1e-4"},       {"beta1", "0.8"},    {"beta2", "0.99"},   {"eps", "1e-6"},
                             {"batch", "32"},      {"epochs", "12"},    {"schedule", "step"}, {"warmup", "0.5"},
                             {"step_size", "4"},   {"gamma", "0.5"},    {"clip", "1.5"},     {"accum", "2"},
                             {"crop", "4"},        {"flip", "1"},       {"val_split", "0.1"}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_OK(kn_recipe_set(&r, good[i][0], good[i][1], NULL));
    CHECK(!strcmp(r.optimizer, "sgd") && r.lr == 0.05 && r.momentum == 0.8 && r.nesterov && r.weight_decay == 1e-4 &&
              r.beta1 == 0.8 && r.beta2 == 0.99 && r.eps == 1e-6 && r.batch == 32 && r.epochs == 12 &&
              !strcmp(r.schedule, "step") && r.warmup_epochs == 0.5 && r.step_size == 4 && r.gamma == 0.5 &&
              r.clip_norm == 1.5 && r.accum == 2 && r.crop_pad == 4 && r.hflip && r.val_split == 0.1,
          "every key set");
    CHECK_OK(kn_recipe_set(&r, "weight_decay", "0.01", NULL));
    CHECK_OK(kn_recipe_set(&r, "clip_norm", "0", NULL));
    CHECK_OK(kn_recipe_set(&r, "crop_pad", "2", NULL));
    CHECK_OK(kn_recipe_set(&r, "hflip", "false", NULL));
    CHECK(r.weight_decay == 0.01 && r.clip_norm == 0 && r.crop_pad == 2 && !r.hflip, "aliases");
    const char *bad[][2] = {{"lr", "-1"},        {"lr", "0"},          {"lr", "abc"},       {"lr", "nan"},
                            {"lr", ""},          {"batch", "0"},       {"batch", "1.5"},    {"epochs", "-3"},
                            {"momentum", "1"},   {"schedule", "linear"}, {"optimizer", "rmsprop"}, {"val_split", "0.95"},
                            {"flip", "2"},       {"accum", "0"},       {"gamma", "0"},      {"warmup", "-1"},
                            {"wd", "-0.1"},      {"eps", "0"},         {"lrate", "0.1"},    {"batch", "99999999999999"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = r;
        kn_error err = {0};
        kn_status st = kn_recipe_set(&r, bad[i][0], bad[i][1], &err);
        CHECK(st == KN_ERR_ARG && err.status == KN_ERR_ARG, "%s=%s accepted", bad[i][0], bad[i][1]);
        CHECK(strstr(err.msg, bad[i][0]) != NULL, "message names the key: %s", err.msg);
        CHECK(!memcmp(&d, &r, sizeof r), "%s=%s changed the recipe", bad[i][0], bad[i][1]);
    }
    kn_error err;
    CHECK(kn_recipe_set(NULL, "lr", "1", &err) == KN_ERR_ARG && kn_recipe_set(&r, NULL, "1", &err) == KN_ERR_ARG,
          "NULL arguments");
    /* train lines anywhere, later ones win */
    kn_model *m = NULL;
    CHECK_OK(kn_model_parse(&m, "train lr=0.5 batch=8\ninput 4\ntrain lr=0.25 # again\ndense 2\n", "r.kiln", &err));
    if (m) {
        CHECK(kn_model_recipe(m)->lr == 0.25 && kn_model_recipe(m)->batch == 8, "train lines");
        kn_model_free(m);
    }
}

/* ---- out of memory ------------------------------------------------------------------------- */

static void test_oom(void)
{
    const char *path = "examples/resnet_cifar.kiln";
    int failures = 0, leaks = 0, n;
    for (n = 1; n < 100000; n++) {
        kt_oom_install(n);
        kn_model *m = NULL;
        kn_error err = {0};
        kn_status st = kn_model_load(&m, path, &err);
        kn_graph *g = NULL;
        if (st == KN_OK) {
            g = kn_graph_new();
            kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (int64_t[]){2, 3, 32, 32});
            if (g && x && !kn_model_build(m, g, x, &err))
                st = err.status;
        }
        bool done = st == KN_OK && g && kn_graph_status(g) == KN_OK;
        if (st != KN_OK && st != KN_ERR_OOM)
            failures++;
        kn_graph_free(g);
        kn_model_free(m);
        leaks += kt_oom_live() != 0;
        kt_oom_remove();
        if (done && kt_oom_count() < n)
            break;
    }
    CHECK(failures == 0 && leaks == 0, "OOM injection: %d wrong statuses, %d leaks over %d runs", failures, leaks, n);
    CHECK(n > 5 && n < 100000, "OOM loop ended after %d runs", n);
}

int main(void)
{
    test_examples();
    test_build_twice();
    test_forward_mlp();
    test_layer_kinds();
    test_errors();
    test_recipe();
    test_oom();
    return kt_finish("test_nn");
}
