/* test_numerics.c — numerical guards: NaN injected into an input batch, a gradient and a
 * weight. A guarded update (lr + 0·Σg², as the trainer builds it) leaves the parameters and
 * the optimizer state bit-identical; debug_numerics stops at the first op whose output is not
 * finite and says whether it came from an input; kn_train skips and counts such steps, or
 * stops with the op's name under debug_numerics. */
#include <math.h>
#include <stdlib.h>

#include "kiln/train.h"
#include "util.h"

typedef struct net {
    kn_graph *g;
    kn_node *x, *y, *w, *b, *lr, *t, *loss, *gnorm2, *updates[2];
    kn_plan *plan;
} net;

/* x [4,3] → linear(w [2,3], b) → cross-entropy; Adam updates guarded by the gradient norm.
 * nan_grad: the weight's gradient is replaced by a constant holding a NaN. */
static void net_build(net *n, bool nan_grad, bool debug)
{
    memset(n, 0, sizeof *n);
    kn_graph *g = n->g = kn_graph_new();
    n->x = kn_graph_input(g, "x", KN_F32, 2, (int64_t[]){4, 3});
    n->y = kn_graph_input(g, "y", KN_I32, 1, (int64_t[]){4});
    n->lr = kn_graph_input(g, "lr", KN_F32, 0, NULL);
    n->t = kn_graph_input(g, "t", KN_F32, 0, NULL);
    n->w = kn_graph_param(g, "w", KN_F32, 2, (int64_t[]){2, 3}, true);
    n->b = kn_graph_param(g, "b", KN_F32, 1, (int64_t[]){2}, true);
    kn_graph_param_init(g, n->w, KN_INIT_UNIFORM, -1, 1);
    kn_graph_param_init(g, n->b, KN_INIT_UNIFORM, -1, 1);
    n->loss = kn_graph_softmax_cross_entropy(g, kn_graph_linear(g, n->x, n->w, n->b), n->y);
    kn_node *params[2] = {n->w, n->b}, *grads[2];
    kn_graph_backward(g, n->loss, params, 2, grads);
    if (nan_grad) {
        float bad[6] = {0.1f, NAN, 0.2f, 0.3f, 0.4f, 0.5f};
        grads[0] = kn_graph_const(g, KN_F32, 2, (int64_t[]){2, 3}, bad);
    }
    kn_node *sq = kn_graph_add(g, kn_graph_sum(g, kn_graph_mul(g, grads[0], grads[0]), 0, false),
                               kn_graph_sum(g, kn_graph_mul(g, grads[1], grads[1]), 0, false));
    n->gnorm2 = sq;
    kn_node *lr = kn_graph_add(g, n->lr, kn_graph_mul(g, kn_graph_scalar(g, KN_F32, 0), sq));
    for (int i = 0; i < 2; i++) {
        char m[32], v[32];
        snprintf(m, sizeof m, "m%d", i);
        snprintf(v, sizeof v, "v%d", i);
        int64_t shape[2] = {kn_node_dim(params[i], 0), kn_node_ndim(params[i]) > 1 ? kn_node_dim(params[i], 1) : 1};
        kn_node *mm = kn_graph_param(g, m, KN_F32, kn_node_ndim(params[i]), shape, false);
        kn_node *vv = kn_graph_param(g, v, KN_F32, kn_node_ndim(params[i]), shape, false);
        n->updates[i] = kn_graph_adam_update(g, params[i], grads[i], lr, n->t, mm, vv, 0.9, 0.999, 1e-8, 0, false);
    }
    CHECK(kn_graph_status(g) == KN_OK, "build: %s", kn_graph_error(g));
    kn_node *outs[4] = {n->loss, n->gnorm2, n->updates[0], n->updates[1]};
    kn_plan_opts o = {.training = true, .debug_numerics = debug};
    CHECK_OK(kn_plan_compile(&n->plan, g, outs, 4, &o));
}

static kn_status net_run(net *n, const float *x)
{
    int32_t y[4] = {0, 1, 1, 0};
    float lr = 0.1f, t = 1;
    kn_plan_set_input(n->plan, n->x, x, sizeof(float) * 12);
    kn_plan_set_input(n->plan, n->y, y, sizeof y);
    kn_plan_set_input(n->plan, n->lr, &lr, sizeof lr);
    kn_plan_set_input(n->plan, n->t, &t, sizeof t);
    return kn_plan_run(n->plan);
}

static void net_free(net *n)
{
    kn_plan_free(n->plan);
    kn_graph_free(n->g);
}

static const float X[12] = {0.5f, -1, 2, 1, 0.25f, -0.5f, -2, 1, 0, 0.75f, 0.5f, -1};

/* Runs one guarded step on x (optionally poisoning the weight first): nothing may change. */
static void guarded_step(const char *what, const float *x, bool nan_weight, bool nan_grad)
{
    net n;
    net_build(&n, nan_grad, false);
    float *w = kn_graph_param_data(n.g, n.w);
    if (nan_weight)
        w[4] = NAN;
    size_t bytes = kn_graph_param_bytes(n.g);
    unsigned char *before = malloc(bytes);
    memcpy(before, kn_graph_param_data(n.g, n.w), bytes); /* all params and state: one buffer */
    CHECK_OK(net_run(&n, x));
    CHECK(!isfinite(kn_plan_scalar(n.plan, n.gnorm2)), "%s: the gradient norm reports the non-finite value", what);
    CHECK(memcmp(before, kn_graph_param_data(n.g, n.w), bytes) == 0,
          "%s: parameters or optimizer state changed although the step had to be skipped", what);
    free(before);
    net_free(&n);

    /* the same without poison updates the weights (the guard is not always on) */
    net ok;
    net_build(&ok, false, false);
    float w0 = ((float *)kn_graph_param_data(ok.g, ok.w))[0];
    CHECK_OK(net_run(&ok, X));
    CHECK(((float *)kn_graph_param_data(ok.g, ok.w))[0] != w0, "%s: a finite step updates", what);
    net_free(&ok);
}

static void debug_run(const char *what, const float *x, bool nan_weight, const char *op, const char *why)
{
    net n;
    net_build(&n, false, true);
    if (nan_weight)
        ((float *)kn_graph_param_data(n.g, n.w))[4] = NAN;
    kn_status st = net_run(&n, x);
    CHECK(st == KN_ERR_RANGE, "%s: debug_numerics stops the run (got %s)", what, kn_status_name(st));
    CHECK(strstr(kn_plan_error(n.plan), op) && strstr(kn_plan_error(n.plan), why), "%s: message: %s", what,
          kn_plan_error(n.plan));
    net_free(&n);
}

/* An op that creates a NaN itself: log of a negative number. */
static void debug_created(void)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 1, (int64_t[]){3});
    kn_node *y = kn_graph_exp(g, kn_graph_log(g, x));
    kn_plan *p = NULL;
    kn_plan_opts o = {.debug_numerics = true};
    CHECK_OK(kn_plan_compile(&p, g, &y, 1, &o));
    float v[3] = {1, -1, 2};
    kn_plan_set_input(p, x, v, sizeof v);
    CHECK(kn_plan_run(p) == KN_ERR_RANGE, "log(-1) stops the run");
    CHECK(strstr(kn_plan_error(p), "log") && strstr(kn_plan_error(p), "this op created it") &&
              strstr(kn_plan_error(p), "[1]"),
          "message: %s", kn_plan_error(p));
    kn_plan_free(p);
    kn_graph_free(g);
}

/* kn_train on features with one NaN example: that batch's step is skipped and counted. */
static void train_with_nan(void)
{
    kn_dataset ds = {.n = 40, .ndim = 1, .shape = {3}, .dtype = KN_F32, .classes = 2};
    float *x = malloc(sizeof(float) * 120);
    ds.y = malloc(sizeof(int32_t) * 40);
    for (int i = 0; i < 40; i++) {
        ds.y[i] = i % 2;
        for (int j = 0; j < 3; j++)
            x[i * 3 + j] = (float)(ds.y[i] ? 1 : -1) + 0.1f * (float)j;
    }
    ds.x = x;
    snprintf(ds.name, sizeof ds.name, "features");
    kn_error err = {0};
    kn_model *m = NULL;
    CHECK_OK(kn_model_parse(&m, "input 3\ndense 2\n", "tiny", &err));
    kn_train_opts o;
    kn_train_opts_defaults(&o);
    o.recipe = *kn_model_recipe(m);
    o.recipe.batch = 10;
    o.recipe.epochs = 2;
    o.threads = 1;
    kn_train_result res;
    x[7 * 3 + 1] = NAN; /* example 7: each epoch it lands in one batch (normalisation skips it) */
    kn_status st = kn_train(m, &ds, NULL, &o, &res, &err);
    CHECK(st == KN_OK, "training with a NaN example: %s", err.msg);
    if (st == KN_OK) {
        CHECK(res.skipped_steps >= 1, "skipped steps %lld", (long long)res.skipped_steps);
        CHECK(res.steps + res.skipped_steps == 8, "steps %lld + skipped %lld == 8", (long long)res.steps,
              (long long)res.skipped_steps);
        kn_train_result_free(&res);
    }
    o.debug_numerics = true;
    st = kn_train(m, &ds, NULL, &o, &res, &err);
    CHECK(st == KN_ERR_RANGE && strstr(err.msg, "numerics"), "debug_numerics: %s", err.msg);
    kn_model_free(m);
    free(x);
    free(ds.y);
}

int main(void)
{
    float xnan[12];
    memcpy(xnan, X, sizeof X);
    xnan[5] = NAN;
    guarded_step("NaN in the input batch", xnan, false, false);
    guarded_step("NaN in a weight", X, true, false);
    guarded_step("NaN in a gradient", X, false, true);
    debug_run("debug: NaN input", xnan, false, "linear", "input 0");
    debug_run("debug: NaN weight", X, true, "linear", "input 1");
    debug_created();
    train_with_nan();
    return kt_finish("test_numerics");
}
