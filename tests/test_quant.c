/* test_quant.c — int8 post-training quantisation end to end: a small CNN trained on synthetic
 * images is calibrated (min-max and percentile), quantised, saved and loaded back through
 * kn_infer_load; its predictions must stay close to the FP32 model's; the checkpoint holds i8
 * weights and valid scales; damaged or unsupported checkpoints and bad options fail with clear
 * errors; quantise + load survive every out-of-memory point; quantisation-aware training runs;
 * on Fashion-MNIST (when installed) a trained model loses < 1 point and the CLI works. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "kiln/nn.h"
#include "kiln/quant.h"
#include "kiln/train.h"
#include "util.h"

static const char *MODEL = "input 1 8 8\n"
                           "conv2d 8 3 pad=1\n"
                           "relu\n"
                           "maxpool 2\n"
                           "conv2d 16 3 pad=1 name=c2\n"
                           "relu\n"
                           "flatten\n"
                           "dense 16\n"
                           "relu\n"
                           "dense 3\n"
                           "train optimizer=adam lr=0.01 batch=16 epochs=3\n";

static char dir[256];
static char fp32[300], q8[300], qpct[300];
static kn_dataset *train_ds, *test_ds;

static bool train_small(const char *text, const kn_dataset *tr, const char *out, bool qat, kn_train_result *res)
{
    kn_model *m = NULL;
    kn_error err = {0};
    CHECK_OK(kn_model_parse(&m, text, "test", &err));
    if (!m)
        return false;
    kn_train_opts o;
    kn_train_opts_defaults(&o);
    o.recipe = *kn_model_recipe(m);
    o.out_dir = out;
    o.threads = 2;
    o.qat = qat;
    o.skip_epoch_test = true;
    kn_status st = kn_train(m, tr, NULL, &o, res, &err);
    CHECK(st == KN_OK, "training failed: %s", err.msg);
    kn_model_free(m);
    return st == KN_OK;
}

/* Class probabilities of a checkpoint on every example of ds (n × classes, free()). */
static float *probs_of(const char *path, const kn_dataset *ds)
{
    kn_infer *inf = NULL;
    kn_error err = {0};
    kn_status st = kn_infer_load(&inf, path, 32, 2, &err);
    CHECK(st == KN_OK, "loading %s: %s", path, err.msg);
    if (st)
        return NULL;
    int c = kn_model_num_classes(kn_infer_model(inf));
    float *p = malloc(sizeof(float) * (size_t)(ds->n * c));
    st = kn_infer_probs(inf, ds->x, ds->dtype, ds->n, p, &err);
    CHECK(st == KN_OK, "predicting with %s: %s", path, err.msg);
    kn_infer_free(inf);
    return p;
}

/* The input scale of every quantised layer, read from a checkpoint. */
static int qscales(const char *path, float *scales, int max)
{
    kn_infer *inf = NULL;
    kn_error err = {0};
    if (kn_infer_load(&inf, path, 1, 1, &err))
        return 0;
    kn_graph *g = kn_graph_new();
    kn_model *m = NULL;
    kn_meta meta = {0};
    int n = 0;
    if (!kn_checkpoint_read_meta(path, &meta, &err) && !kn_model_parse(&m, kn_meta_get(&meta, "kiln.model"), "t", &err)) {
        kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (const int64_t[]){1, 1, 8, 8});
        kn_build_opts bo = {.int8 = true};
        if (kn_model_build_ex(m, g, x, &bo, &err) && !kn_checkpoint_load(g, path, false, NULL, &err)) {
            kn_node *ps[64];
            int np = kn_graph_params(g, false, ps, 64);
            for (int i = 0; i < np && n < max; i++)
                if (strstr(kn_node_name(ps[i]), ".input_qparams"))
                    scales[n++] = ((const float *)kn_graph_param_data(g, ps[i]))[0];
        }
    }
    kn_model_free(m);
    kn_meta_clear(&meta);
    kn_graph_free(g);
    kn_infer_free(inf);
    return n;
}

static void test_roundtrip(void)
{
    kn_error err = {0};
    kn_quant_opts o;
    kn_quant_opts_defaults(&o);
    o.calib = 150;
    o.batch = 64; /* 3 batches, the last partial */
    o.threads = 2;
    CHECK_OK(kn_quantize(dir, train_ds, &o, q8, &err)); /* a directory holding model.safetensors */
    bool q = true;
    CHECK_OK(kn_checkpoint_is_quantized(fp32, &q, &err));
    CHECK(!q, "the FP32 checkpoint reads as quantised");
    CHECK_OK(kn_checkpoint_is_quantized(q8, &q, &err));
    CHECK(q, "the quantised checkpoint lacks kiln.quantized");
    kn_meta meta = {0};
    CHECK_OK(kn_checkpoint_read_meta(q8, &meta, &err));
    CHECK(kn_meta_get(&meta, "kiln.calibration") && strstr(kn_meta_get(&meta, "kiln.calibration"), "minmax, 150"),
          "calibration metadata: %s", kn_meta_get(&meta, "kiln.calibration"));
    CHECK(kn_meta_get(&meta, "kiln.model") && !strcmp(kn_meta_get(&meta, "kiln.model"), MODEL), "model text not kept");

    /* the file holds i8 weights with per-channel scales, f32 biases */
    kn_model *m = NULL;
    CHECK_OK(kn_model_parse(&m, MODEL, "t", &err));
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (const int64_t[]){1, 1, 8, 8});
    kn_build_opts bo = {.int8 = true};
    CHECK(kn_model_build_ex(m, g, x, &bo, &err) != NULL, "int8 build: %s", err.msg);
    CHECK_OK(kn_checkpoint_load(g, q8, false, NULL, &err)); /* exactly the int8 graph's tensors */
    kn_node *w = kn_graph_find(g, "c2.weight"), *ws = kn_graph_find(g, "c2.weight_scale");
    CHECK(w && kn_node_dtype(w) == KN_I8 && kn_node_numel(w) == 16 * 8 * 9, "c2.weight is not i8 [16,8,3,3]");
    CHECK(ws && kn_node_dtype(ws) == KN_F32 && kn_node_numel(ws) == 16, "c2.weight_scale is not f32 [16]");
    if (w && ws) {
        const int8_t *qw = kn_graph_param_data(g, w);
        const float *s = kn_graph_param_data(g, ws);
        for (int o2 = 0; o2 < 16; o2++) { /* symmetric per channel: each channel reaches ±127 */
            int mx = 0;
            for (int k = 0; k < 72; k++)
                mx = abs(qw[o2 * 72 + k]) > mx ? abs(qw[o2 * 72 + k]) : mx;
            CHECK(mx == 127 && s[o2] > 0, "channel %d: max |q| %d, scale %g", o2, mx, (double)s[o2]);
        }
    }
    /* weights dequantise to within half a step of the FP32 ones */
    kn_graph *g32 = kn_graph_new();
    kn_node *x32 = kn_graph_input(g32, "x", KN_F32, 4, (const int64_t[]){1, 1, 8, 8});
    kn_model_build(m, g32, x32, &err);
    CHECK_OK(kn_checkpoint_load(g32, fp32, true, NULL, &err));
    kn_node *w32 = kn_graph_find(g32, "c2.weight");
    if (w && ws && w32) {
        const int8_t *qw = kn_graph_param_data(g, w);
        const float *s = kn_graph_param_data(g, ws), *f = kn_graph_param_data(g32, w32);
        int bad = 0;
        for (int k = 0; k < 16 * 72 && bad < 3; k++)
            bad += fabs(qw[k] * (double)s[k / 72] - f[k]) > 0.5001 * s[k / 72];
        CHECK(bad == 0, "dequantised weights differ from FP32 by more than half a step");
    }
    kn_graph_free(g32);
    kn_graph_free(g);
    kn_model_free(m);
    kn_meta_clear(&meta);

    /* predictions close to FP32 */
    float *p32 = probs_of(fp32, test_ds), *p8 = probs_of(q8, test_ds);
    if (p32 && p8) {
        double mean = 0, mx = 0;
        int agree = 0, correct32 = 0, correct8 = 0;
        for (int64_t i = 0; i < test_ds->n; i++) {
            int a = 0, b = 0;
            for (int c = 0; c < 3; c++) {
                double d = fabs(p32[i * 3 + c] - p8[i * 3 + c]);
                mean += d;
                mx = d > mx ? d : mx;
                a = p32[i * 3 + c] > p32[i * 3 + a] ? c : a;
                b = p8[i * 3 + c] > p8[i * 3 + b] ? c : b;
            }
            agree += a == b;
            correct32 += a == test_ds->y[i];
            correct8 += b == test_ds->y[i];
        }
        mean /= (double)(test_ds->n * 3);
        printf("synthetic: fp32 accuracy %.3f, int8 %.3f, top-1 agreement %.3f, mean |dp| %.2e, max %.2e\n",
               correct32 / (double)test_ds->n, correct8 / (double)test_ds->n, agree / (double)test_ds->n, mean, mx);
        CHECK(correct32 > 0.8 * test_ds->n, "the FP32 model did not learn (%d of %lld)", correct32, (long long)test_ds->n);
        CHECK(agree >= 0.97 * test_ds->n, "int8 and FP32 agree on %d of %lld examples", agree, (long long)test_ds->n);
        CHECK(mean < 0.02, "mean probability difference %g", mean);
        CHECK(mean > 0, "int8 probabilities equal FP32 exactly: was anything quantised?");
    }
    free(p32);
    free(p8);
}

static void test_percentile(void)
{
    kn_error err = {0};
    kn_quant_opts o;
    kn_quant_opts_defaults(&o);
    o.calib = 150;
    o.method = KN_CALIB_PERCENTILE;
    o.percentile = 99.0;
    o.threads = 2;
    CHECK_OK(kn_quantize(fp32, train_ds, &o, qpct, &err));
    float smm[8], spc[8];
    int n1 = qscales(q8, smm, 8), n2 = qscales(qpct, spc, 8);
    CHECK(n1 == 4 && n2 == 4, "%d and %d quantised layers, expected 4", n1, n2);
    int narrower = 0;
    for (int i = 0; i < n1 && i < n2; i++) {
        CHECK(spc[i] <= smm[i], "layer %d: percentile scale %g > min-max scale %g", i, (double)spc[i], (double)smm[i]);
        narrower += spc[i] < smm[i];
    }
    CHECK(narrower > 0, "the 99%% percentile range clipped nothing");
    float *p = probs_of(qpct, test_ds);
    int correct = 0;
    for (int64_t i = 0; p && i < test_ds->n; i++) {
        int b = 0;
        for (int c = 1; c < 3; c++)
            b = p[i * 3 + c] > p[i * 3 + b] ? c : b;
        correct += b == test_ds->y[i];
    }
    CHECK(correct > 0.8 * test_ds->n, "percentile-calibrated model: %d of %lld correct", correct, (long long)test_ds->n);
    free(p);
}

/* Rewrites the quantised checkpoint with one value changed (name, index, value) or another
 * kiln.quantized. */
static void write_variant(const char *out, const char *name, int idx, float value, const char *qvalue)
{
    kn_error err = {0};
    kn_model *m = NULL;
    kn_model_parse(&m, MODEL, "t", &err);
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (const int64_t[]){1, 1, 8, 8});
    kn_build_opts bo = {.int8 = true};
    kn_model_build_ex(m, g, x, &bo, &err);
    kn_meta meta = {0};
    CHECK_OK(kn_checkpoint_load(g, q8, false, &meta, &err));
    if (name)
        ((float *)kn_graph_param_data(g, kn_graph_find(g, name)))[idx] = value;
    if (qvalue)
        kn_meta_set(&meta, "kiln.quantized", qvalue);
    CHECK_OK(kn_checkpoint_save(g, out, &meta, &err));
    kn_meta_clear(&meta);
    kn_graph_free(g);
    kn_model_free(m);
}

static void expect_load_error(const char *path, kn_status code, const char *msg)
{
    kn_infer *inf = NULL;
    kn_error err = {0};
    kn_status st = kn_infer_load(&inf, path, 8, 1, &err);
    CHECK(st == code, "%s: status %s, expected %s (%s)", path, kn_status_name(st), kn_status_name(code), err.msg);
    CHECK(strstr(err.msg, msg), "%s: message '%s' lacks '%s'", path, err.msg, msg);
    CHECK(inf == NULL, "a failed load returned an object");
    kn_infer_free(inf);
}

static void test_errors(void)
{
    kn_error err = {0};
    char bad[300];
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    write_variant(bad, "conv1.input_qparams", 0, NAN, NULL);
    expect_load_error(bad, KN_ERR_FORMAT, "conv1.input_qparams is (scale nan");
    write_variant(bad, "c2.input_qparams", 1, 3.5f, NULL);
    expect_load_error(bad, KN_ERR_FORMAT, "zero point an integer in [0, 255]");
    write_variant(bad, "dense1.weight_scale", 5, -1.0f, NULL);
    expect_load_error(bad, KN_ERR_FORMAT, "dense1.weight_scale[5] is -1");
    write_variant(bad, NULL, 0, 0, "int4");
    expect_load_error(bad, KN_ERR_UNSUPPORTED, "kiln.quantized is 'int4'");
    { /* an FP32 checkpoint that claims to be int8: the dtypes do not fit */
        kn_model *m = NULL;
        kn_model_parse(&m, MODEL, "t", &err);
        kn_graph *g = kn_graph_new();
        kn_node *x = kn_graph_input(g, "x", KN_F32, 4, (const int64_t[]){1, 1, 8, 8});
        kn_model_build(m, g, x, &err);
        kn_meta meta = {0};
        CHECK_OK(kn_checkpoint_load(g, fp32, true, NULL, &err));
        kn_meta_set(&meta, "kiln.model", MODEL);
        kn_meta_set(&meta, "kiln.quantized", "int8");
        CHECK_OK(kn_checkpoint_save(g, bad, &meta, &err));
        expect_load_error(bad, KN_ERR_DTYPE, "conv1.weight is F32");
        kn_meta_clear(&meta);
        kn_graph_free(g);
        kn_model_free(m);
    }

    /* quantising again, bad options, wrong data, an unwritable output */
    kn_quant_opts o;
    kn_quant_opts_defaults(&o);
    o.calib = 20;
    kn_status st = kn_quantize(q8, train_ds, &o, bad, &err);
    CHECK(st == KN_ERR_ARG && strstr(err.msg, "already quantised"), "re-quantising: %s %s", kn_status_name(st), err.msg);
    o.method = KN_CALIB_PERCENTILE;
    o.percentile = 30;
    st = kn_quantize(fp32, train_ds, &o, bad, &err);
    CHECK(st == KN_ERR_ARG && strstr(err.msg, "percentile 30"), "percentile 30: %s %s", kn_status_name(st), err.msg);
    o.method = KN_CALIB_MINMAX;
    kn_dataset *wrong = kt_lines_dataset(10, 5, 10);
    st = kn_quantize(fp32, wrong, &o, bad, &err);
    CHECK(st == KN_ERR_SHAPE && strstr(err.msg, "[1,10,10]"), "wrong data: %s %s", kn_status_name(st), err.msg);
    kt_free_dataset(wrong);
    char nowhere[320];
    snprintf(nowhere, sizeof nowhere, "%s/missing/dir/q.safetensors", dir);
    st = kn_quantize(fp32, train_ds, &o, nowhere, &err);
    CHECK(st == KN_ERR_IO && access(nowhere, F_OK) != 0, "unwritable output: %s %s", kn_status_name(st), err.msg);
    snprintf(nowhere, sizeof nowhere, "%s/none.safetensors", dir);
    st = kn_quantize(nowhere, train_ds, &o, bad, &err);
    CHECK(st == KN_ERR_IO, "missing checkpoint: %s %s", kn_status_name(st), err.msg);

    /* an int8 graph's kernels refuse bad scales at run time too */
    kn_graph *g = kn_graph_new();
    float wsv[2] = {0.1f, 0.1f}, xqv[2] = {0.0f, 0.0f}, xv[3] = {1, 2, 3};
    int8_t wv[6] = {1, 2, 3, 4, 5, 6};
    kn_node *x = kn_graph_const(g, KN_F32, 2, (const int64_t[]){1, 3}, xv);
    kn_node *w = kn_graph_const(g, KN_I8, 2, (const int64_t[]){2, 3}, wv);
    kn_node *ws = kn_graph_const(g, KN_F32, 1, (const int64_t[]){2}, wsv);
    kn_node *xq = kn_graph_const(g, KN_F32, 1, (const int64_t[]){2}, xqv);
    kn_node *y = kn_graph_qlinear(g, x, w, ws, xq, NULL, false);
    kn_plan *p = NULL;
    kn_plan_opts po = {.backend = KN_BACKEND_CPU};
    CHECK_OK(kn_plan_compile(&p, g, &y, 1, &po));
    st = p ? kn_plan_run(p) : KN_ERR_ARG;
    CHECK(st == KN_ERR_RANGE && strstr(kn_plan_error(p), "qlinear: input scale 0"), "scale 0: %s %s",
          kn_status_name(st), p ? kn_plan_error(p) : "");
    kn_plan_free(p);
    kn_graph_free(g);
}

/* ---- out of memory ---- */
static kn_status quantize_and_load(void *arg)
{
    (void)arg;
    char out[320];
    snprintf(out, sizeof out, "%s/oom.safetensors", dir);
    kn_error err = {0};
    kn_quant_opts o;
    kn_quant_opts_defaults(&o);
    o.calib = 40;
    o.batch = 16;
    o.method = KN_CALIB_PERCENTILE;
    o.threads = 1;
    kn_status st = kn_quantize(fp32, train_ds, &o, out, &err);
    if (st)
        return st;
    kn_infer *inf = NULL;
    st = kn_infer_load(&inf, out, 4, 1, &err);
    kn_infer_free(inf);
    return st;
}

static void test_qat(void)
{
    char qdir[300], qq[320];
    snprintf(qdir, sizeof qdir, "%s/qat", dir);
    kn_train_result res = {0};
    if (!train_small(MODEL, train_ds, qdir, true, &res))
        return;
    CHECK(res.n_logs == 3 && res.logs[2].train_acc > 0.8, "QAT training reached %g", res.n_logs ? res.logs[res.n_logs - 1].train_acc : 0);
    kn_train_result_free(&res);
    kn_error err = {0};
    snprintf(qq, sizeof qq, "%s/q.safetensors", qdir);
    CHECK_OK(kn_quantize(qdir, train_ds, NULL, qq, &err));
    float *p = probs_of(qq, test_ds);
    int correct = 0;
    for (int64_t i = 0; p && i < test_ds->n; i++) {
        int b = 0;
        for (int c = 1; c < 3; c++)
            b = p[i * 3 + c] > p[i * 3 + b] ? c : b;
        correct += b == test_ds->y[i];
    }
    CHECK(correct > 0.8 * test_ds->n, "QAT then int8: %d of %lld correct", correct, (long long)test_ds->n);
    free(p);
}

/* Fashion-MNIST, when installed: a small CNN trained for one epoch on 6000 images loses at
 * most 1 point of test accuracy when quantised, and the CLI quantises, evaluates, predicts
 * and benchmarks the result. */
static void test_fashion(void)
{
    kn_dataset *tr = NULL, *te = NULL;
    kn_error err = {0};
    if (kn_dataset_open("fashion-mnist", &tr, &te, &err)) {
        printf("fashion-mnist not installed: real-data checks skipped\n");
        return;
    }
    kn_dataset sub = *tr;
    sub.n = 6000;
    char fdir[300], fq[320], cmd[1200];
    snprintf(fdir, sizeof fdir, "%s/fashion", dir);
    kn_train_result res = {0};
    const char *text = "input 1 28 28\nconv2d 16 3 pad=1\nrelu\nmaxpool 2\nconv2d 16 3\nrelu\nmaxpool 2\nflatten\n"
                       "dense 32\nrelu\ndense 10\ntrain optimizer=adam lr=0.002 batch=64 epochs=1\n";
    if (train_small(text, &sub, fdir, false, &res)) {
        snprintf(fq, sizeof fq, "%s/q", dir);
        int rc = kt_run("%s quantize --model %s --out %s --calib 500 --threads 2", KILN_BIN, fdir, fq);
        CHECK(rc == 0 && strstr(kt_out, "saved:"), "kiln quantize: rc %d: %s", rc, kt_out);
        char f32[340], i8[340];
        snprintf(f32, sizeof f32, "%s/model.safetensors", fdir);
        snprintf(i8, sizeof i8, "%s/model.safetensors", fq);
        kn_infer *a = NULL, *b = NULL;
        kn_eval_result ra = {0}, rb = {0};
        CHECK_OK(kn_infer_load(&a, f32, 500, 2, &err));
        CHECK_OK(kn_infer_load(&b, i8, 500, 2, &err));
        if (a && b && !kn_infer_evaluate(a, te, &ra, &err) && !kn_infer_evaluate(b, te, &rb, &err)) {
            printf("fashion-mnist: fp32 accuracy %.4f, int8 %.4f\n", ra.accuracy, rb.accuracy);
            CHECK(ra.accuracy > 0.7, "the FP32 model reached only %.4f", ra.accuracy);
            CHECK(fabs(ra.accuracy - rb.accuracy) <= 0.01, "int8 accuracy %.4f vs FP32 %.4f", rb.accuracy, ra.accuracy);
        }
        kn_eval_result_free(&ra);
        kn_eval_result_free(&rb);
        kn_infer_free(a);
        kn_infer_free(b);
        rc = kt_run("%s eval --model %s --json --threads 2", KILN_BIN, i8);
        CHECK(rc == 0 && strstr(kt_out, "\"accuracy\": 0."), "kiln eval of the int8 model: rc %d: %s", rc, kt_out);
        rc = kt_run("%s predict --model %s --data fashion-mnist --index 0 --threads 2", KILN_BIN, i8);
        CHECK(rc == 0 && strstr(kt_out, "Ankle boot"), "kiln predict of the int8 model: rc %d: %s", rc, kt_out);
        snprintf(cmd, sizeof cmd, "%s bench --model %s --infer --batch 8 --steps 2 --warmup 1 --threads 2 --peak 0",
                 KILN_BIN, i8);
        rc = kt_run("%s", cmd);
        CHECK(rc == 0 && strstr(kt_out, "(0 on reference fallbacks)"), "kiln bench --infer of the int8 model: rc %d: %s",
              rc, kt_out);
        rc = kt_run("%s bench --model %s --train --steps 1 --threads 2 --peak 0", KILN_BIN, i8);
        CHECK(rc == 1 && strstr(kt_out, "only be benchmarked with --infer"), "bench --train of int8: rc %d: %s", rc,
              kt_out);
    }
    kn_train_result_free(&res);
    kn_dataset_free(tr);
    kn_dataset_free(te);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/kiln_test_quant_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(fp32, sizeof fp32, "%s/model.safetensors", dir);
    snprintf(q8, sizeof q8, "%s/q8.safetensors", dir);
    snprintf(qpct, sizeof qpct, "%s/qpct.safetensors", dir);
    train_ds = kt_lines_dataset(400, 1, 8);
    test_ds = kt_lines_dataset(200, 2, 8);
    kn_train_result res = {0};
    if (train_small(MODEL, train_ds, dir, false, &res)) {
        test_roundtrip();
        test_percentile();
        test_errors();
        long sites = kt_oom_loop("quantize + load", quantize_and_load, NULL, 20000);
        CHECK(sites > 20, "only %ld allocation sites failed", sites);
        test_qat();
    }
    kn_train_result_free(&res);
    int rc = kt_run("%s quantize --help", KILN_BIN);
    CHECK(rc == 0 && strstr(kt_out, "--calib-method"), "kiln quantize --help: %s", kt_out);
    rc = kt_run("%s quantize --model x", KILN_BIN);
    CHECK(rc == 2 && strstr(kt_out, "--out DIR"), "kiln quantize without --out: rc %d %s", rc, kt_out);
    rc = kt_run("%s train --help", KILN_BIN);
    CHECK(strstr(kt_out, "--qat"), "kiln train --help lacks --qat");
    test_fashion();
    kt_free_dataset(train_ds);
    kt_free_dataset(test_ds);
    kt_run("rm -rf %s", dir);
    return kt_finish("test_quant");
}
