/* test_distill.c — knowledge distillation: kn_distill_loss against a hand computation (value
 * and gradient), its argument errors; a teacher with batch norm and dropout trained here,
 * then built frozen into a student's training graph whose data is normalised otherwise: in
 * inference form on its own normalisation (its logits match an inference plan's), no gradient
 * to it, its weights and running statistics unchanged by training
 * steps while the student's change; kn_train with alpha = 0 bit-identical to plain training;
 * the student's checkpoint without the teacher and loadable by inference; stop and resume of
 * a distillation run bit-identical to an uninterrupted one; bad teachers refused with clear
 * messages; out-of-memory while opening the teacher; kn_checkpoint_save_ex/load_ex leaving
 * out the teacher.* parameters. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "kiln/io.h"
#include "kiln/plan.h"
#include "kiln/train.h"
#include "graph/graph_internal.h"
#include "train/distill.h"
#include "util.h"

/* Teacher: a small CNN with batch norm and dropout for 8x8 images. */
static const char *TEACHER =
    "input 1 8 8\n"
    "conv2d 6 3 pad=1\n"
    "batchnorm\n"
    "relu\n"
    "maxpool 2\n"
    "flatten\n"
    "dropout 0.3\n"
    "dense 3\n"
    "train optimizer=adam lr=0.01 batch=16 epochs=3\n";
static const char *STUDENT =
    "input 1 8 8\n"
    "flatten\n"
    "dense 8\n"
    "relu\n"
    "dense 3\n"
    "train optimizer=adam lr=0.01 batch=16 epochs=2\n";

static bool file_contains(const char *path, const char *needle);

/* ---- the loss on a tiny case ---------------------------------------------------------------- */
static void softmax_ref(const double *z, int c, double t, double *p)
{
    double mx = z[0] / t, s = 0;
    for (int j = 1; j < c; j++)
        mx = fmax(mx, z[j] / t);
    for (int j = 0; j < c; j++)
        s += exp(z[j] / t - mx);
    for (int j = 0; j < c; j++)
        p[j] = exp(z[j] / t - mx) / s;
}

static void test_loss_by_hand(void)
{
    const float s[6] = {1.0f, -0.5f, 2.0f, 0.3f, 0.1f, -1.2f}, tch[6] = {0.5f, 0.0f, 3.0f, 2.0f, -1.0f, 0.0f};
    const int32_t lab[2] = {2, 1};
    const double T = 2.0, alpha = 0.7;
    kn_graph *g = kn_graph_new();
    int64_t shape[2] = {2, 3};
    kn_node *sl = kn_graph_param(g, "student", KN_F32, 2, shape, true);
    kn_node *tl = kn_graph_input(g, "teacher", KN_F32, 2, shape);
    kn_node *y = kn_graph_input(g, "y", KN_I32, 1, shape);
    kn_node *loss = kn_distill_loss(g, sl, tl, y, T, alpha);
    CHECK(loss && kn_node_ndim(loss) == 0, "distill loss is a scalar: %s", kn_graph_error(g));
    kn_node *grad = NULL;
    CHECK_OK(kn_graph_backward(g, loss, &sl, 1, &grad));
    memcpy(kn_graph_param_data(g, sl), s, sizeof s);
    kn_plan *p = NULL;
    kn_node *outs[2] = {loss, grad};
    CHECK_OK(kn_plan_compile(&p, g, outs, 2, NULL));
    if (p) {
        CHECK_OK(kn_plan_set_input(p, tl, tch, sizeof tch));
        CHECK_OK(kn_plan_set_input(p, y, lab, sizeof lab));
        CHECK_OK(kn_plan_run(p));
        /* by hand: (1−α)·mean CE + α·T²·mean Σ p(log p − log q), p = softmax(t/T), q = softmax(s/T) */
        double want = 0, dwant[6];
        for (int i = 0; i < 2; i++) {
            double zs[3], zt[3], p1[3], pt[3], qt[3];
            for (int j = 0; j < 3; j++)
                zs[j] = s[i * 3 + j], zt[j] = tch[i * 3 + j];
            softmax_ref(zs, 3, 1, p1);
            softmax_ref(zt, 3, T, pt);
            softmax_ref(zs, 3, T, qt);
            double ce = -log(p1[lab[i]]), kl = 0;
            for (int j = 0; j < 3; j++)
                kl += pt[j] * (log(pt[j]) - log(qt[j]));
            want += ((1 - alpha) * ce + alpha * T * T * kl) / 2;
            /* d/ds: (1−α)(softmax(s) − onehot)/N + α·T·(q − p)/N */
            for (int j = 0; j < 3; j++)
                dwant[i * 3 + j] = ((1 - alpha) * (p1[j] - (j == lab[i])) + alpha * T * (qt[j] - pt[j])) / 2;
        }
        double got = kn_plan_scalar(p, loss);
        CHECK(kt_close(got, want, 1e-5, 1e-6), "distillation loss %.8f, by hand %.8f", got, want);
        const float *d = kn_plan_data(p, grad);
        for (int k = 0; d && k < 6; k++)
            CHECK(kt_close(d[k], dwant[k], 1e-4, 1e-6), "gradient [%d] %.7f, by hand %.7f", k, d[k], dwant[k]);
    }
    kn_plan_free(p);

    /* argument errors: recorded in the graph with a message, NULL returned */
    kn_node *bad = kn_distill_loss(g, sl, tl, y, 0, 0.5);
    CHECK(!bad && kn_graph_status(g) == KN_ERR_ARG && strstr(kn_graph_error(g), "temperature"), "T = 0: %s",
          kn_graph_error(g));
    kn_graph_clear_error(g);
    bad = kn_distill_loss(g, sl, tl, y, 4, 1.5);
    CHECK(!bad && kn_graph_status(g) == KN_ERR_ARG && strstr(kn_graph_error(g), "alpha"), "alpha 1.5: %s",
          kn_graph_error(g));
    kn_graph_clear_error(g);
    kn_node *wide = kn_graph_input(g, "wide", KN_F32, 2, (int64_t[]){2, 4});
    bad = kn_distill_loss(g, sl, wide, y, 4, 0.5);
    CHECK(!bad && kn_graph_status(g) == KN_ERR_SHAPE && strstr(kn_graph_error(g), "[2,4]"), "shapes: %s",
          kn_graph_error(g));
    kn_graph_free(g);
}

/* ---- checkpoints that leave the teacher out --------------------------------------------------- */
static void test_checkpoint_skip(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/skip.safetensors", dir);
    kn_error err = {0};
    kn_graph *g = kn_graph_new();
    kn_node *w = kn_graph_param(g, "dense1.weight", KN_F32, 1, (int64_t[]){4}, true);
    kn_node *tw = kn_graph_param(g, "teacher.dense1.weight", KN_F32, 1, (int64_t[]){3}, false);
    float wv[4] = {1, 2, 3, 4}, tv[3] = {7, 8, 9};
    memcpy(kn_graph_param_data(g, w), wv, sizeof wv);
    memcpy(kn_graph_param_data(g, tw), tv, sizeof tv);
    CHECK_OK(kn_checkpoint_save_ex(g, path, NULL, "teacher.", &err));
    CHECK(!file_contains(path, "teacher.dense1") && file_contains(path, "dense1.weight"), "save_ex left out teacher.*");
    /* load_ex: the teacher is neither required nor touched */
    float zero[4] = {0};
    memcpy(kn_graph_param_data(g, w), zero, sizeof wv);
    ((float *)kn_graph_param_data(g, tw))[0] = 42;
    CHECK_OK(kn_checkpoint_load_ex(g, path, false, "teacher.", NULL, &err));
    CHECK(!memcmp(kn_graph_param_data(g, w), wv, sizeof wv), "load_ex restored the student");
    CHECK(((float *)kn_graph_param_data(g, tw))[0] == 42, "load_ex left the teacher alone");
    /* a plain load needs every parameter of the graph */
    kn_status st = kn_checkpoint_load(g, path, false, NULL, &err);
    CHECK(st == KN_ERR_SHAPE && strstr(err.msg, "teacher.dense1.weight"), "plain load: %s", err.msg);
    /* a file holding teacher.* tensors: extra for load_ex (allowed with allow_extra) */
    CHECK_OK(kn_checkpoint_save(g, path, NULL, &err));
    st = kn_checkpoint_load_ex(g, path, false, "teacher.", NULL, &err);
    CHECK(st == KN_ERR_SHAPE && strstr(err.msg, "teacher.dense1.weight"), "extra teacher tensor: %s", err.msg);
    CHECK_OK(kn_checkpoint_load_ex(g, path, true, "teacher.", NULL, &err));
    kn_graph_free(g);
}

/* ---- the teacher inside a training graph ------------------------------------------------------ */
#define MAXP 64

/* A frozen zero parameter "<p>.<suffix>" of p's shape (optimizer state). */
static kn_node *like(kn_graph *g, kn_node *p, const char *suffix)
{
    char name[128];
    int64_t shape[KN_MAX_DIMS];
    snprintf(name, sizeof name, "%s.%s", kn_node_name(p), suffix);
    for (int i = 0; i < kn_node_ndim(p); i++)
        shape[i] = kn_node_dim(p, i);
    return kn_graph_param(g, name, kn_node_dtype(p), kn_node_ndim(p), shape, false);
}

static void test_teacher_in_graph(const char *teacher_ckpt, const kn_model *student, const kn_dataset *ds)
{
    kn_error err = {0};
    kn_train_opts o;
    kn_train_opts_defaults(&o);
    o.teacher = teacher_ckpt;
    kn__distill d;
    kn_status st = kn__distill_open(&d, student, &o, &err);
    CHECK(st == KN_OK, "opening the teacher: %s", err.msg);
    if (st)
        return;
    kn_graph *g = kn_graph_new();
    kn_graph_set_seed(g, 3);
    int64_t xs[4] = {16, 1, 8, 8};
    kn_node *x = kn_graph_input(g, "x", KN_F32, 4, xs);
    kn_node *y = kn_graph_input(g, "y", KN_I32, 1, xs);
    kn_node *lr = kn_graph_input(g, "lr", KN_F32, 0, NULL), *t = kn_graph_input(g, "t", KN_F32, 0, NULL);
    kn_node *logits = kn_model_build(student, g, x, &err);
    /* the student's data normalised otherwise than the teacher's: the teacher must still see
     * its own normalisation (an affine map of x in the graph) */
    kn__norm snorm = {.scale = 1.0f / 255.0f, .mean = 0.3f, .std = 0.6f};
    kn_node *loss = kn__distill_loss(&d, g, x, logits, y, &snorm, &err);
    CHECK(loss != NULL, "distillation loss: %s", err.msg);
    CHECK(loss && kn_graph_find(g, "teacher.dense1.bias"), "the teacher's parameters are named teacher.*");

    kn_node *trainable[MAXP], *all[MAXP];
    int nt = kn_graph_params(g, true, trainable, MAXP), na = kn_graph_params(g, false, all, MAXP);
    int n_teacher = 0;
    for (int i = 0; i < nt; i++)
        CHECK(strncmp(kn_node_name(trainable[i]), "teacher.", 8) != 0, "teacher parameter %s is trainable",
              kn_node_name(trainable[i]));
    kn_node *tparams[MAXP];
    for (int i = 0; i < na; i++)
        if (!strncmp(kn_node_name(all[i]), "teacher.", 8))
            tparams[n_teacher++] = all[i];
    CHECK(n_teacher == 8, "teacher parameters: %d, expected 8 (conv, batch norm with running statistics, dense)",
          n_teacher);
    /* the teacher's logits: loss = (1−α)·ce + α·T²·kl(log_q, softmax(teacher/T)) */
    kn_node *tlog = NULL;
    if (loss && loss->nsrc == 2 && loss->src[1]->nsrc == 1) {
        kn_node *kl = loss->src[1]->src[0];
        tlog = kl->nsrc == 2 && kl->src[1]->nsrc == 1 ? kl->src[1]->src[0]->src[0] : NULL;
    }
    CHECK(tlog && kn_node_dim(tlog, 1) == 3 && !strcmp(kn_node_op_name(tlog), kn_node_op_name(logits)),
          "teacher logits found in the loss");
    /* gradients: the backward of the training step reaches the student only */
    kn_node *sg[MAXP];
    CHECK_OK(kn_graph_backward(g, loss, trainable, nt, sg));
    CHECK(kn_graph_grad(g, logits) != NULL, "the student's logits have a gradient");
    CHECK(tlog && kn_graph_grad(g, tlog) == NULL, "the teacher's logits got a gradient");
    for (int i = 0; i < n_teacher; i++)
        CHECK(kn_graph_grad(g, tparams[i]) == NULL, "teacher parameter %s got a gradient", kn_node_name(tparams[i]));
    kn_node *outs[MAXP + 2];
    int no = 0;
    outs[no++] = loss;
    outs[no++] = logits;
    for (int i = 0; i < nt; i++) {
        CHECK(sg[i] != NULL, "student parameter %s has a gradient", kn_node_name(trainable[i]));
        outs[no++] = kn_graph_adam_update(g, trainable[i], sg[i], lr, t, like(g, trainable[i], "m"),
                                          like(g, trainable[i], "v"), 0.9, 0.999, 1e-8, 0, false);
    }
    CHECK(kn_graph_status(g) == KN_OK, "graph: %s", kn_graph_error(g));
    kn_plan *p = NULL;
    kn_plan_opts po = {.training = true, .threads = 2};
    /* the teacher alone in an inference plan: what its logits must be on the same input */
    kn_graph *ig = kn_graph_new();
    kn_node *ix = kn_graph_input(ig, "x", KN_F32, 4, xs);
    kn_node *teacher_logits = kn_model_build(d.teacher, ig, ix, &err);
    CHECK_OK(kn_checkpoint_load(ig, d.path, true, NULL, &err));
    kn_plan *ip = NULL;
    CHECK_OK(kn_plan_compile(&ip, ig, &teacher_logits, 1, &(kn_plan_opts){.training = false, .threads = 2}));
    outs[no++] = tlog;
    CHECK_OK(kn_plan_compile(&p, g, outs, no, &po));

    size_t tbytes[MAXP];
    void *before[MAXP];
    for (int i = 0; i < n_teacher; i++) {
        tbytes[i] = (size_t)kn_node_numel(tparams[i]) * 4;
        before[i] = malloc(tbytes[i]);
        memcpy(before[i], kn_graph_param_data(g, tparams[i]), tbytes[i]);
    }
    float *sw0 = malloc((size_t)kn_node_numel(trainable[0]) * 4);
    memcpy(sw0, kn_graph_param_data(g, trainable[0]), (size_t)kn_node_numel(trainable[0]) * 4);
    if (p && ip) {
        for (int step = 0; step < 3; step++) {
            float *xb = kn_plan_input_data(p, x);
            int32_t *yb = kn_plan_input_data(p, y);
            for (int i = 0; i < 16; i++) {
                int e = step * 16 + i;
                kn__norm_example((const uint8_t *)ds->x + e * 64, KN_U8, 64, &snorm, xb + i * 64);
                kn__norm_example((const uint8_t *)ds->x + e * 64, KN_U8, 64, &d.norm,
                              (float *)kn_plan_input_data(ip, ix) + i * 64);
                yb[i] = ds->y[e];
            }
            *(float *)kn_plan_input_data(p, lr) = 0.01f;
            *(float *)kn_plan_input_data(p, t) = (float)(step + 1);
            CHECK_OK(kn_plan_run(p));
            CHECK_OK(kn_plan_run(ip));
            CHECK(isfinite(kn_plan_scalar(p, loss)), "loss %g", kn_plan_scalar(p, loss));
            const float *a = kn_plan_data(p, tlog), *b = kn_plan_data(ip, teacher_logits);
            double worst = 0;
            for (int k = 0; a && b && k < 16 * 3; k++)
                worst = fmax(worst, fabs((double)a[k] - b[k]));
            CHECK(a && b && worst < 1e-4, "step %d: teacher logits in the training plan differ from inference by %g "
                  "(batch norm or dropout not in inference form, or the input not renormalised?)", step, worst);
        }
    }
    for (int i = 0; i < n_teacher; i++) {
        CHECK(!memcmp(before[i], kn_graph_param_data(g, tparams[i]), tbytes[i]), "teacher parameter %s changed",
              kn_node_name(tparams[i]));
        free(before[i]);
    }
    CHECK(memcmp(sw0, kn_graph_param_data(g, trainable[0]), (size_t)kn_node_numel(trainable[0]) * 4) != 0,
          "the student's %s did not change", kn_node_name(trainable[0]));
    free(sw0);
    kn_plan_free(p);
    kn_plan_free(ip);
    kn_graph_free(ig);
    kn_graph_free(g);
    kn__distill_close(&d);
}

/* ---- kn_train -------------------------------------------------------------------------------- */
/* The student's tensors of a checkpoint, loaded into a graph built like inference. */
static float *student_weights(const kn_model *m, const char *path, size_t *bytes)
{
    kn_graph *g = kn_graph_new();
    kn_error err = {0};
    kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (int64_t[]){1, 1, 8, 8});
    kn_model_build(m, g, x, &err);
    float *out = NULL;
    if (kn_checkpoint_load(g, path, true, NULL, &err) == KN_OK) {
        *bytes = kn_graph_param_bytes(g);
        kn_node *ps[MAXP];
        int n = kn_graph_params(g, false, ps, MAXP);
        out = malloc(*bytes);
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            size_t b = (size_t)kn_node_numel(ps[i]) * 4;
            memcpy((char *)out + off, kn_graph_param_data(g, ps[i]), b);
            off += b;
        }
        *bytes = off;
    } else {
        fprintf(stderr, "%s\n", err.msg);
    }
    kn_graph_free(g);
    return out;
}

static bool same_weights(const kn_model *m, const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    float *wa = student_weights(m, a, &na), *wb = student_weights(m, b, &nb);
    bool same = wa && wb && na == nb && na > 0 && !memcmp(wa, wb, na);
    free(wa);
    free(wb);
    return same;
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    for (size_t i = 0; i + strlen(needle) <= n; i++)
        if (!memcmp(buf + i, needle, strlen(needle)))
            return true;
    return false;
}

typedef struct oom_ctx {
    const kn_model *student;
    const char *teacher;
} oom_ctx;

static kn_status open_close(void *arg)
{
    oom_ctx *c = arg;
    kn_train_opts o;
    kn_train_opts_defaults(&o);
    o.teacher = c->teacher;
    kn__distill d;
    kn_status st = kn__distill_open(&d, c->student, &o, NULL);
    kn__distill_close(&d);
    return st;
}

int main(void)
{
    test_loss_by_hand();

    char dir[] = "/tmp/kiln_distill_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char tdir[600], plain[600], dist0[600], dist[600], part[600], path[700], path2[700];
    snprintf(tdir, sizeof tdir, "%s/teacher", dir);
    snprintf(plain, sizeof plain, "%s/plain", dir);
    snprintf(dist0, sizeof dist0, "%s/alpha0", dir);
    snprintf(dist, sizeof dist, "%s/distilled", dir);
    snprintf(part, sizeof part, "%s/part", dir);
    test_checkpoint_skip(dir);
    kn_dataset *train = kt_lines_dataset(200, 1, 8), *test = kt_lines_dataset(60, 2, 8);
    kn_error err = {0};
    kn_model *tm = NULL, *sm = NULL;
    CHECK_OK(kn_model_parse(&tm, TEACHER, "teacher", &err));
    CHECK_OK(kn_model_parse(&sm, STUDENT, "student", &err));
    kn_train_opts o;
    kn_train_opts_defaults(&o);
    CHECK(o.temperature == 4 && o.alpha == 0.9, "defaults T %g alpha %g", o.temperature, o.alpha);
    o.threads = 2;
    o.seed = 5;
    o.recipe = *kn_model_recipe(tm);
    o.out_dir = tdir;
    kn_train_result res;
    CHECK(kn_train(tm, train, test, &o, &res, &err) == KN_OK, "training the teacher: %s", err.msg);
    kn_train_result_free(&res);

    test_teacher_in_graph(tdir, sm, train);

    /* alpha = 0: bit for bit the student trained alone */
    o.recipe = *kn_model_recipe(sm);
    o.out_dir = plain;
    kn_train_result r0, r1;
    CHECK(kn_train(sm, train, test, &o, &r0, &err) == KN_OK, "student alone: %s", err.msg);
    o.out_dir = dist0;
    o.teacher = tdir;
    o.alpha = 0;
    CHECK(kn_train(sm, train, test, &o, &r1, &err) == KN_OK, "alpha 0: %s", err.msg);
    CHECK(r0.n_logs == r1.n_logs && r0.test.loss == r1.test.loss && r0.logs[1].train_loss == r1.logs[1].train_loss,
          "alpha 0 test loss %.9g vs %.9g, train loss %.9g vs %.9g", r1.test.loss, r0.test.loss, r1.logs[1].train_loss,
          r0.logs[1].train_loss);
    snprintf(path, sizeof path, "%s/model.safetensors", plain);
    snprintf(path2, sizeof path2, "%s/model.safetensors", dist0);
    CHECK(same_weights(sm, path, path2), "alpha 0: the student's weights differ from plain training");
    kn_train_result_free(&r0);
    kn_train_result_free(&r1);

    /* alpha 0.9: the student changes; its checkpoint holds no teacher and loads for inference */
    o.alpha = 0.9;
    o.out_dir = dist;
    CHECK(kn_train(sm, train, test, &o, &r1, &err) == KN_OK, "distillation: %s", err.msg);
    CHECK(r1.test.accuracy > 0.5, "distilled student accuracy %g", r1.test.accuracy);
    kn_train_result_free(&r1);
    snprintf(path2, sizeof path2, "%s/model.safetensors", dist);
    CHECK(!same_weights(sm, path, path2), "alpha 0.9 trains a different student than alpha 0");
    CHECK(!file_contains(path2, "teacher.conv1"), "the student's checkpoint holds teacher tensors");
    CHECK(file_contains(path2, "kiln.distill"), "the student's checkpoint records the distillation");
    kn_infer *inf = NULL;
    kn_eval_result ev = {0};
    CHECK(kn_infer_load(&inf, path2, 32, 2, &err) == KN_OK && kn_infer_evaluate(inf, test, &ev, &err) == KN_OK,
          "inference on the distilled student: %s", err.msg);
    kn_eval_result_free(&ev);
    kn_infer_free(inf);

    /* stop and resume a distillation run: same weights as the uninterrupted one */
    o.out_dir = part;
    o.stop_after_steps = 9;
    CHECK(kn_train(sm, train, test, &o, &r1, &err) == KN_OK && r1.stopped, "stopped distillation: %s", err.msg);
    kn_train_result_free(&r1);
    o.stop_after_steps = 0;
    o.resume = part;
    CHECK(kn_train(sm, train, test, &o, &r1, &err) == KN_OK, "resumed distillation: %s", err.msg);
    kn_train_result_free(&r1);
    o.resume = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", part);
    CHECK(same_weights(sm, path, path2), "resumed distillation differs from the uninterrupted run");

    /* bad teachers and options */
    struct {
        const char *what, *teacher, *needle;
        double t, a;
        kn_status want;
    } bad[] = {
        {"missing file", "/nonexistent/teacher.safetensors", "teacher", 4, 0.9, KN_ERR_IO},
        {"T = 0", tdir, "temperature", 0, 0.9, KN_ERR_ARG},
        {"alpha 1.5", tdir, "alpha", 4, 1.5, KN_ERR_ARG},
        {"alpha NaN", tdir, "alpha", 4, NAN, KN_ERR_ARG},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.teacher = bad[i].teacher;
        o.temperature = bad[i].t;
        o.alpha = bad[i].a;
        o.out_dir = NULL;
        kn_error e = {0};
        kn_status st = kn_train(sm, train, test, &o, &r1, &e);
        CHECK(st == bad[i].want && strstr(e.msg, bad[i].needle), "%s: %s (%s)", bad[i].what, kn_status_name(st), e.msg);
    }
    o.temperature = 4;
    o.alpha = 0.9;
    o.teacher = tdir;
    const char *students[][3] = {
        {"other input", "input 1 6 6\nflatten\ndense 3\n", "[1,6,6]"},
        {"other classes", "input 1 8 8\nflatten\ndense 4\n", "outputs 4"},
        {"layer named teacher", "input 1 8 8\nflatten\ndense 3 name=teacher\n", "'teacher'"},
    };
    for (int i = 0; i < 3; i++) {
        kn_model *bm = NULL;
        CHECK_OK(kn_model_parse(&bm, students[i][1], "bad student", &err));
        kn__distill d;
        kn_error e = {0};
        kn_status st = kn__distill_open(&d, bm, &o, &e);
        CHECK(st != KN_OK && strstr(e.msg, students[i][2]) && strstr(e.msg, "teacher"), "%s: %s", students[i][0], e.msg);
        kn__distill_close(&d);
        kn_model_free(bm);
    }
    /* a safetensors file that is not a kiln training checkpoint (no kiln.model) */
    {
        kn_graph *g = kn_graph_new();
        kn_graph_param(g, "w", KN_F32, 1, (int64_t[]){3}, true);
        snprintf(path, sizeof path, "%s/foreign.safetensors", dir);
        CHECK_OK(kn_checkpoint_save(g, path, NULL, &err));
        kn_graph_free(g);
        o.teacher = path;
        kn_error e = {0};
        kn_status st = kn_train(sm, train, test, &o, &r1, &e);
        CHECK(st == KN_ERR_FORMAT && strstr(e.msg, "kiln.model"), "foreign file: %s", e.msg);
    }

    oom_ctx c = {sm, tdir};
    long n = kt_oom_loop("opening a teacher", open_close, &c, 2000);
    CHECK(n > 3, "out-of-memory sites while opening a teacher: %ld", n);

    kn_model_free(tm);
    kn_model_free(sm);
    kt_free_dataset(train);
    kt_free_dataset(test);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return kt_finish("test_distill");
}
