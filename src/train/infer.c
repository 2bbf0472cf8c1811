/* infer.c — evaluation and prediction with a model: the inference branch shared with the
 * trainer, normalisation, and kn_infer (a checkpoint loaded for eval/predict). Evaluation
 * pads the last batch with zeros and scores only the real examples; the loss is the mean
 * softmax cross-entropy computed in double from the logits. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "../core/alloc.h"
#include "../data/data_internal.h"
#include "kiln/io.h"
#include "session.h"

double kn__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void kn__norm_example(const void *raw, kn_dtype dt, int64_t size, const kn__norm *nm, float *dst)
{
    if (dt == KN_U8) { /* the loader's own table, so test inputs are the training inputs' bits */
        float lut[256], pad;
        kn__normalise_bytes(nm->scale, nm->mean, nm->std, lut, &pad);
        const uint8_t *p = raw;
        for (int64_t i = 0; i < size; i++)
            dst[i] = lut[p[i]];
    } else {
        kn__normalise(raw, size, nm->scale, nm->mean, nm->std, dst);
    }
}

void kn__norm_fit(const kn_dataset *ds, kn__norm *nm)
{
    nm->scale = ds->dtype == KN_U8 ? 1.0f / 255.0f : 1.0f;
    int64_t total = ds->n * kn_dataset_example_size(ds), count = 0;
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < total; i++) {
        double v = ds->dtype == KN_U8 ? ((const uint8_t *)ds->x)[i] : ((const float *)ds->x)[i];
        if (!isfinite(v))
            continue; /* a NaN in the data must not poison the statistics: the guard skips its batch */
        v *= nm->scale;
        s += v;
        s2 += v * v;
        count++;
    }
    double mean = count ? s / (double)count : 0, var = count ? s2 / (double)count - mean * mean : 1;
    nm->mean = (float)mean;
    nm->std = var > 1e-12 ? (float)sqrt(var) : 1.0f;
}

kn_status kn__check_data(const kn_model *m, const kn_dataset *ds, kn_error *err)
{
    int64_t shape[3];
    int nd = kn_model_input_shape(m, shape);
    int64_t want = 1, have = kn_dataset_example_size(ds);
    for (int i = 0; i < nd; i++)
        want *= shape[i];
    bool same = nd == ds->ndim;
    for (int i = 0; same && i < nd; i++)
        same = shape[i] == ds->shape[i];
    if (!same && !(nd == 1 && want == have)) {
        char a[64], b[64];
        snprintf(a, sizeof a, nd == 3 ? "[%lld,%lld,%lld]" : "[%lld]", (long long)shape[0], (long long)shape[1],
                 (long long)shape[2]);
        snprintf(b, sizeof b, ds->ndim == 3 ? "[%lld,%lld,%lld]" : "[%lld]", (long long)ds->shape[0],
                 (long long)ds->shape[1], (long long)ds->shape[2]);
        return kn_error_set(err, KN_ERR_SHAPE, "data set %s has examples of shape %s but the model's input is %s",
                            ds->name, b, a);
    }
    if (ds->classes > kn_model_num_classes(m))
        return kn_error_set(err, KN_ERR_SHAPE, "data set %s has %d classes but the model outputs %d", ds->name,
                            ds->classes, kn_model_num_classes(m));
    return KN_OK;
}

kn_status kn__eval_build(kn_graph *g, const kn_model *m, int64_t batch, int threads, kn__eval_branch *b, kn_error *err)
{
    kn_plan_opts po = {.backend = KN_BACKEND_CPU, .threads = threads};
    return kn__eval_build_on(g, m, batch, &po, NULL, b, err);
}

kn_status kn__eval_build_on(kn_graph *g, const kn_model *m, int64_t batch, const kn_plan_opts *base,
                            const kn_build_opts *o,
                            kn__eval_branch *b, kn_error *err)
{
    memset(b, 0, sizeof *b);
    int64_t shape[4] = {batch};
    int nd = kn_model_input_shape(m, shape + 1);
    b->batch = batch;
    b->classes = kn_model_num_classes(m);
    b->x = kn_graph_input(g, "eval.x", KN_F32, nd + 1, shape);
    if (!b->x)
        return kn_error_set(err, kn_graph_status(g), "creating the evaluation input: %s", kn_graph_error(g));
    b->logits = kn_model_build_ex(m, g, b->x, o, err);
    if (!b->logits)
        return err && err->status ? err->status : kn_error_set(err, kn_graph_status(g), "%s", kn_graph_error(g));
    kn_plan_opts po = *base;
    po.training = false;
    kn_status st = kn_plan_compile(&b->plan, g, &b->logits, 1, &po);
    if (st)
        return kn_error_set(err, st, "compiling the evaluation plan: %s", kn_plan_last_error());
    b->probs = kn__alloc((size_t)batch * (size_t)b->classes * sizeof(float));
    if (!b->probs)
        return kn_error_set(err, KN_ERR_OOM, "out of memory for evaluation buffers");
    return KN_OK;
}

void kn__eval_free(kn__eval_branch *b)
{
    kn_plan_free(b->plan);
    kn__free(b->probs);
    memset(b, 0, sizeof *b);
}

/* Runs one padded batch of `n` examples (ids from idx or consecutive from first). */
static kn_status eval_batch(kn__eval_branch *b, const kn_dataset *ds, const int64_t *idx, int64_t first, int64_t n,
                            const kn__norm *nm, kn_error *err)
{
    int64_t size = kn_dataset_example_size(ds);
    size_t esz = kn_dtype_size(ds->dtype);
    float *x = kn_plan_input_data(b->plan, b->x);
    for (int64_t i = 0; i < n; i++) {
        int64_t e = idx ? idx[first + i] : first + i;
        kn__norm_example((const char *)ds->x + (size_t)e * (size_t)size * esz, ds->dtype, size, nm, x + i * size);
    }
    memset(x + n * size, 0, (size_t)((b->batch - n) * size) * sizeof(float));
    kn_status st = kn_plan_run(b->plan);
    if (st)
        return kn_error_set(err, st, "evaluation: %s", kn_plan_error(b->plan));
    return KN_OK;
}

/* Softmax of a logits row into p; returns log-sum-exp. */
static double softmax_row(const float *z, int c, float *p)
{
    double mx = z[0];
    for (int j = 1; j < c; j++)
        mx = z[j] > mx ? z[j] : mx;
    double s = 0;
    for (int j = 0; j < c; j++)
        s += exp((double)z[j] - mx);
    for (int j = 0; p && j < c; j++)
        p[j] = (float)(exp((double)z[j] - mx) / s);
    return mx + log(s);
}

kn_status kn__evaluate(kn__eval_branch *b, const kn_dataset *ds, const int64_t *idx, int64_t n, const kn__norm *nm,
                       kn_eval_result *res, kn_error *err)
{
    memset(res, 0, sizeof *res);
    res->classes = b->classes;
    res->confusion = kn__calloc((size_t)b->classes * (size_t)b->classes, sizeof(int64_t));
    if (!res->confusion)
        return kn_error_set(err, KN_ERR_OOM, "out of memory for the confusion matrix");
    double loss = 0;
    int64_t correct = 0;
    for (int64_t first = 0; first < n; first += b->batch) {
        int64_t m = n - first < b->batch ? n - first : b->batch;
        kn_status st = eval_batch(b, ds, idx, first, m, nm, err);
        if (st)
            return st;
        const float *z = kn_plan_data(b->plan, b->logits);
        for (int64_t i = 0; i < m; i++) {
            int64_t e = idx ? idx[first + i] : first + i;
            int y = ds->y[e];
            if (y < 0 || y >= b->classes)
                return kn_error_set(err, KN_ERR_RANGE, "%s: label %d of example %lld is outside [0, %d)", ds->name, y,
                                    (long long)e, b->classes);
            const float *row = z + i * b->classes;
            int best = 0;
            for (int j = 1; j < b->classes; j++)
                best = row[j] > row[best] ? j : best;
            loss += softmax_row(row, b->classes, NULL) - row[y];
            correct += best == y;
            res->confusion[y * b->classes + best]++;
        }
    }
    res->n = n;
    res->loss = n ? loss / (double)n : NAN;
    res->accuracy = n ? (double)correct / (double)n : NAN;
    return KN_OK;
}

void kn_eval_result_free(kn_eval_result *r)
{
    if (r) {
        kn__free(r->confusion);
        r->confusion = NULL;
    }
}

/* ---- kn_infer ---- */
struct kn_infer {
    kn_model *model;
    kn_graph *g;
    kn__eval_branch b;
    kn__norm norm;
};

static float meta_float(const kn_meta *m, const char *key, float dflt)
{
    const char *v = kn_meta_get(m, key);
    return v ? strtof(v, NULL) : dflt;
}

kn_status kn_infer_load(kn_infer **out, const char *path, int batch, int threads, kn_error *err)
{
    return kn_infer_load_on(out, path, batch, threads, KN_BACKEND_CPU, 0, err);
}

kn_status kn_infer_load_on(kn_infer **out, const char *path, int batch, int threads, kn_backend_kind backend,
                           int device, kn_error *err)
{
    *out = NULL;
    char why[512];
    kn_status ds = kn_device_resolve(&backend, &device, why, sizeof why);
    if (ds)
        return kn_error_set(err, ds, "%s", why);
    kn_meta meta = {0};
    kn_status st = kn_checkpoint_read_meta(path, &meta, err);
    if (st)
        return st;
    kn_infer *inf = kn__calloc(1, sizeof *inf);
    if (!inf) {
        kn_meta_clear(&meta);
        return kn_error_set(err, KN_ERR_OOM, "out of memory");
    }
    const char *text = kn_meta_get(&meta, "kiln.model");
    if (!text) {
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: no kiln.model in the metadata: not a kiln checkpoint", path);
        goto fail;
    }
    st = kn_model_parse(&inf->model, text, path, err);
    if (st)
        goto fail;
    inf->norm.scale = meta_float(&meta, "kiln.norm_scale", 1.0f);
    inf->norm.mean = meta_float(&meta, "kiln.norm_mean", 0.0f);
    inf->norm.std = meta_float(&meta, "kiln.norm_std", 1.0f);
    inf->g = kn_graph_new();
    if (!inf->g) {
        st = kn_error_set(err, KN_ERR_OOM, "out of memory");
        goto fail;
    }
    /* a quantised checkpoint (kiln/quant.h) runs the int8 graph; its scales are checked here */
    kn_build_opts bo = {0};
    st = kn__quant_meta(path, &meta, &bo.int8, err);
    if (st)
        goto fail;
    kn_plan_opts po = {.backend = backend, .device = device, .threads = threads};
    st = kn__eval_build_on(inf->g, inf->model, batch > 0 ? batch : 256, &po, &bo, &inf->b, err);
    if (st)
        goto fail;
    st = kn_checkpoint_load(inf->g, path, true, NULL, err);
    if (!st && bo.int8)
        st = kn__quant_validate(inf->g, path, err);
    if (st)
        goto fail;
    kn_meta_clear(&meta);
    *out = inf;
    return KN_OK;
fail:
    kn_meta_clear(&meta);
    kn_infer_free(inf);
    return st;
}

void kn_infer_free(kn_infer *inf)
{
    if (!inf)
        return;
    kn__eval_free(&inf->b);
    kn_graph_free(inf->g);
    kn_model_free(inf->model);
    kn__free(inf);
}

const kn_model *kn_infer_model(const kn_infer *inf) { return inf ? inf->model : NULL; }

kn_status kn_infer_evaluate(kn_infer *inf, const kn_dataset *ds, kn_eval_result *res, kn_error *err)
{
    kn_status st = kn__check_data(inf->model, ds, err);
    if (st)
        return st;
    return kn__evaluate(&inf->b, ds, NULL, ds->n, &inf->norm, res, err);
}

kn_status kn_infer_probs(kn_infer *inf, const void *x, kn_dtype dtype, int64_t n, float *probs, kn_error *err)
{
    if (dtype != KN_U8 && dtype != KN_F32)
        return kn_error_set(err, KN_ERR_DTYPE, "predict: inputs must be u8 or f32, got %s", kn_dtype_name(dtype));
    kn_dataset view = {.n = n, .dtype = dtype, .x = (void *)x, .classes = inf->b.classes};
    int64_t shape[3];
    view.ndim = kn_model_input_shape(inf->model, shape);
    memcpy(view.shape, shape, sizeof shape);
    snprintf(view.name, sizeof view.name, "input");
    int c = inf->b.classes;
    for (int64_t first = 0; first < n; first += inf->b.batch) {
        int64_t m = n - first < inf->b.batch ? n - first : inf->b.batch;
        kn_status st = eval_batch(&inf->b, &view, NULL, first, m, &inf->norm, err);
        if (st)
            return st;
        const float *z = kn_plan_data(inf->b.plan, inf->b.logits);
        for (int64_t i = 0; i < m; i++)
            softmax_row(z + i * c, c, probs + (first + i) * c);
    }
    return KN_OK;
}
