/* test_optim.c — the optimizer update nodes over several steps of a whole training plan.
 * A tiny quadratic, loss = Σ ½·a·(w − c)² for two parameters, has the closed-form gradient
 * a·(w − c), so the test recomputes in double, by hand, three steps of SGD (momentum 0.9,
 * Nesterov, weight decay) on w1 and three of AdamW on w2, with a learning-rate schedule fed
 * through 0-d inputs, and compares after every step (f64 on reference kernels, f32 on the
 * CPU kernels). It also checks that a training plan listing the update nodes among its
 * outputs runs every one of them, that a plan asked only for the loss runs none, and that
 * Adam rejects t < 1 at run time. Not here: per-op f32-vs-f64 comparisons and bad-call
 * cases (tests/ops/optim.c). */
#include <math.h>

#include "util.h"

#define N 5
static const double A[N] = {1.0, 2.0, 0.5, 3.0, 1.5};     /* curvatures */
static const double C[N] = {0.25, -0.75, 1.25, 0.0, -0.5}; /* minimum */
static const double W1[N] = {1.0, 0.5, -1.0, 2.0, 0.25};  /* SGD start */
static const double W2[N] = {-0.5, 1.5, 2.0, -1.0, 0.75}; /* AdamW start */
static const double LR_SGD[3] = {0.1, 0.05, 0.02}, LR_ADAM[3] = {0.1, 0.08, 0.05};
#define MOMENTUM 0.9
#define SGD_WD 0.01
#define B1 0.9
#define B2 0.999
#define EPS 1e-8
#define ADAM_WD 0.1

typedef struct problem {
    kn_graph *g;
    kn_node *w1, *w2, *buf, *m, *v, *lr_sgd, *lr_adam, *t, *loss, *sgd, *adam;
} problem;

static void set(kn_graph *g, kn_node *p, const double *x)
{
    void *d = kn_graph_param_data(g, p);
    for (int i = 0; i < N; i++) {
        if (kn_node_dtype(p) == KN_F32)
            ((float *)d)[i] = (float)x[i];
        else
            ((double *)d)[i] = x[i];
    }
}

static double get(kn_graph *g, kn_node *p, int i)
{
    void *d = kn_graph_param_data(g, p);
    return kn_node_dtype(p) == KN_F32 ? ((float *)d)[i] : ((double *)d)[i];
}

static kn_node *const_vec(kn_graph *g, kn_dtype dt, const double *x)
{
    float f[N];
    for (int i = 0; i < N; i++)
        f[i] = (float)x[i];
    return kn_graph_const(g, dt, 1, (const int64_t[]){N}, dt == KN_F32 ? (const void *)f : (const void *)x);
}

/* ½·Σ a·(w − c)² */
static kn_node *quadratic(kn_graph *g, kn_node *w, kn_node *a, kn_node *c)
{
    kn_node *d = kn_graph_sub(g, w, c);
    return kn_graph_scale(g, kn_graph_sum(g, kn_graph_mul(g, kn_graph_mul(g, a, d), d), 0, false), 0.5, 0);
}

static bool build(problem *pb, kn_dtype dt)
{
    kn_graph *g = pb->g = kn_graph_new();
    const int64_t shape[1] = {N};
    pb->w1 = kn_graph_param(g, "w1", dt, 1, shape, true);
    pb->w2 = kn_graph_param(g, "w2", dt, 1, shape, true);
    pb->buf = kn_graph_param(g, "w1.momentum", dt, 1, shape, false);
    pb->m = kn_graph_param(g, "w2.m", dt, 1, shape, false);
    pb->v = kn_graph_param(g, "w2.v", dt, 1, shape, false);
    pb->lr_sgd = kn_graph_input(g, "lr_sgd", dt, 0, NULL);
    pb->lr_adam = kn_graph_input(g, "lr_adam", dt, 0, NULL);
    pb->t = kn_graph_input(g, "t", dt, 0, NULL);
    kn_node *a = const_vec(g, dt, A), *c = const_vec(g, dt, C);
    pb->loss = kn_graph_add(g, quadratic(g, pb->w1, a, c), quadratic(g, pb->w2, a, c));
    kn_node *params[2] = {pb->w1, pb->w2}, *grads[2] = {0};
    CHECK_OK(kn_graph_backward(g, pb->loss, params, 2, grads));
    pb->sgd = kn_graph_sgd_update(g, pb->w1, grads[0], pb->lr_sgd, pb->buf, MOMENTUM, SGD_WD, true);
    pb->adam = kn_graph_adam_update(g, pb->w2, grads[1], pb->lr_adam, pb->t, pb->m, pb->v, B1, B2, EPS, ADAM_WD,
                                    true);
    CHECK(pb->sgd && pb->adam, "building the updates failed: %s", kn_graph_error(g));
    if (!pb->sgd || !pb->adam)
        return false;
    set(g, pb->w1, W1);
    set(g, pb->w2, W2);
    return true;
}

static void set_scalar(kn_plan *p, kn_node *in, kn_dtype dt, double x)
{
    float f = (float)x;
    CHECK_OK(kn_plan_set_input(p, in, dt == KN_F32 ? (const void *)&f : (const void *)&x, kn_dtype_size(dt)));
}

static void three_steps(kn_dtype dt, kn_backend_kind be, double tol)
{
    problem pb;
    if (!build(&pb, dt)) {
        kn_graph_free(pb.g);
        return;
    }
    kn_plan *plan = NULL;
    kn_plan_opts o = {.backend = be, .training = true};
    kn_node *outs[3] = {pb.loss, pb.sgd, pb.adam};
    CHECK_OK(kn_plan_compile(&plan, pb.g, outs, 3, &o));
    if (!plan) {
        kn_graph_free(pb.g);
        return;
    }
    if (dt == KN_F32)
        CHECK(kn_plan_num_fallbacks(plan) == 0, "f32 plan ran %d steps on reference kernels",
              kn_plan_num_fallbacks(plan));
    double w1[N], w2[N], buf[N] = {0}, m[N] = {0}, v[N] = {0};
    memcpy(w1, W1, sizeof w1);
    memcpy(w2, W2, sizeof w2);
    for (int s = 0; s < 3; s++) {
        set_scalar(plan, pb.lr_sgd, dt, LR_SGD[s]);
        set_scalar(plan, pb.lr_adam, dt, LR_ADAM[s]);
        set_scalar(plan, pb.t, dt, s + 1);
        CHECK_OK(kn_plan_run(plan));
        double loss = 0;
        for (int i = 0; i < N; i++)
            loss += 0.5 * A[i] * ((w1[i] - C[i]) * (w1[i] - C[i]) + (w2[i] - C[i]) * (w2[i] - C[i]));
        CHECK(kt_close(kn_plan_scalar(plan, pb.loss), loss, tol, tol), "%s step %d: loss %.12g, expected %.12g",
              kn_dtype_name(dt), s + 1, kn_plan_scalar(plan, pb.loss), loss);
        /* torch.optim.SGD(momentum=0.9, weight_decay=0.01, nesterov=True) */
        for (int i = 0; i < N; i++) {
            double g = A[i] * (w1[i] - C[i]) + SGD_WD * w1[i];
            buf[i] = MOMENTUM * buf[i] + g;
            w1[i] -= LR_SGD[s] * (g + MOMENTUM * buf[i]);
        }
        /* torch.optim.AdamW(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1) */
        double t = s + 1, bc1 = 1 - pow(B1, t), bc2 = 1 - pow(B2, t);
        for (int i = 0; i < N; i++) {
            double g = A[i] * (w2[i] - C[i]);
            w2[i] *= 1 - LR_ADAM[s] * ADAM_WD;
            m[i] = B1 * m[i] + (1 - B1) * g;
            v[i] = B2 * v[i] + (1 - B2) * g * g;
            w2[i] -= LR_ADAM[s] * (m[i] / bc1) / (sqrt(v[i] / bc2) + EPS);
        }
        for (int i = 0; i < N; i++) {
            CHECK(kt_close(get(pb.g, pb.w1, i), w1[i], tol, tol), "%s SGD step %d: w1[%d] = %.12g, expected %.12g",
                  kn_dtype_name(dt), s + 1, i, get(pb.g, pb.w1, i), w1[i]);
            CHECK(kt_close(get(pb.g, pb.buf, i), buf[i], tol, tol), "%s SGD step %d: buf[%d] = %.12g, expected %.12g",
                  kn_dtype_name(dt), s + 1, i, get(pb.g, pb.buf, i), buf[i]);
            CHECK(kt_close(get(pb.g, pb.w2, i), w2[i], tol, tol), "%s AdamW step %d: w2[%d] = %.12g, expected %.12g",
                  kn_dtype_name(dt), s + 1, i, get(pb.g, pb.w2, i), w2[i]);
            CHECK(kt_close(get(pb.g, pb.m, i), m[i], tol, tol) && kt_close(get(pb.g, pb.v, i), v[i], tol, tol),
                  "%s AdamW step %d: m[%d], v[%d] = %.12g, %.12g, expected %.12g, %.12g", kn_dtype_name(dt), s + 1,
                  i, i, get(pb.g, pb.m, i), get(pb.g, pb.v, i), m[i], v[i]);
        }
    }
    /* The update node's value is the parameter itself. */
    const void *out = kn_plan_data(plan, pb.sgd);
    CHECK(out == NULL || out == kn_graph_param_data(pb.g, pb.w1), "sgd_update's output is not w1's storage");
    kn_plan_free(plan);
    kn_graph_free(pb.g);
}

/* A plan asked only for the loss runs no update (training or not); a bad step count is a
 * run-time error. */
static void inference_and_errors(void)
{
    problem pb;
    if (!build(&pb, KN_F32)) {
        kn_graph_free(pb.g);
        return;
    }
    for (int training = 0; training < 2; training++) {
        kn_plan *plan = NULL;
        CHECK_OK(kn_plan_compile(&plan, pb.g, &pb.loss, 1, &(kn_plan_opts){.training = training}));
        if (!plan)
            continue;
        CHECK_OK(kn_plan_run(plan));
        for (int i = 0; i < N; i++)
            CHECK(get(pb.g, pb.w1, i) == (float)W1[i] && get(pb.g, pb.w2, i) == (float)W2[i],
                  "a loss-only plan (training %d) changed a parameter (element %d)", training, i);
        kn_plan_free(plan);
    }
    kn_plan *plan = NULL;
    kn_node *outs[3] = {pb.loss, pb.sgd, pb.adam};
    CHECK_OK(kn_plan_compile(&plan, pb.g, outs, 3, &(kn_plan_opts){.training = true}));
    if (plan) {
        set_scalar(plan, pb.lr_sgd, KN_F32, 0.1);
        set_scalar(plan, pb.lr_adam, KN_F32, 0.1);
        set_scalar(plan, pb.t, KN_F32, 0); /* t counts from 1 */
        kn_status st = kn_plan_run(plan);
        CHECK(st == KN_ERR_RANGE, "adam with t = 0 returned %s", kn_status_name(st));
        CHECK(strstr(kn_plan_error(plan), "t = 0") != NULL, "adam t = 0 message: %s", kn_plan_error(plan));
        kn_plan_free(plan);
    }
    kn_graph_free(pb.g);
}

int main(void)
{
    three_steps(KN_F64, KN_BACKEND_REF, 1e-12);
    three_steps(KN_F64, KN_BACKEND_CPU, 1e-12);
    three_steps(KN_F32, KN_BACKEND_CPU, 2e-5);
    inference_and_errors();
    return kt_finish("test_optim");
}
