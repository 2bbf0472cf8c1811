/* quantize.c — int8 post-training quantisation (kiln/quant.h): calibrates the input range of
 * every conv and dense layer by running the FP32 model on sample data (min-max, or a
 * percentile range from a histogram), quantises the weights per output channel, and writes a
 * checkpoint of the int8 graph (kn_build_opts.int8) whose metadata says kiln.quantized = int8.
 * Also the checks used when such a checkpoint is loaded (kn__quant_meta, kn__quant_validate).
 * Deliberately not here: the int8 kernels (src/backend/cpu/qgemm.c), quantisation-aware
 * training (the fake_quant op in the model builder), entropy (KL) calibration. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/alloc.h"
#include "../ops/quant_internal.h"
#include "kiln/io.h"
#include "kiln/quant.h"
#include "session.h"

#define HIST_BINS 4096

void kn_quant_opts_defaults(kn_quant_opts *o)
{
    memset(o, 0, sizeof *o);
    o->calib = 1000;
    o->method = KN_CALIB_MINMAX;
    o->percentile = 99.99;
    o->batch = 250;
}

kn_status kn__quant_meta(const char *path, const kn_meta *meta, bool *int8, kn_error *err)
{
    const char *q = kn_meta_get(meta, "kiln.quantized");
    *int8 = false;
    if (!q)
        return KN_OK;
    if (strcmp(q, "int8") != 0)
        return kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: kiln.quantized is '%s'; this kiln reads 'int8' only", path, q);
    *int8 = true;
    return KN_OK;
}

kn_status kn_checkpoint_is_quantized(const char *path, bool *quantized, kn_error *err)
{
    kn_meta meta = {0};
    *quantized = false;
    kn_status st = kn_checkpoint_read_meta(path, &meta, err);
    if (!st)
        st = kn__quant_meta(path, &meta, quantized, err);
    kn_meta_clear(&meta);
    return st;
}

kn_status kn__quant_validate(kn_graph *g, const char *path, kn_error *err)
{
    for (int i = 0; i < g->n_nodes; i++) {
        const kn_node *n = g->nodes[i];
        if (n->op != KN_OP_QCONV2D && n->op != KN_OP_QLINEAR)
            continue;
        const kn_node *ws = n->src[KN_Q_WSCALE], *xq = n->src[KN_Q_XQ];
        if (ws->op != KN_OP_PARAM || xq->op != KN_OP_PARAM || ws->dtype != KN_F32 || xq->dtype != KN_F32)
            continue; /* not from a checkpoint */
        const float *s = kn_graph_param_data(g, ws), *p = kn_graph_param_data(g, xq);
        for (int64_t o = 0; o < kn__numel(ws); o++)
            if (!(isfinite(s[o]) && s[o] > 0))
                return kn_error_set(err, KN_ERR_FORMAT,
                                    "%s: %s[%lld] is %g; weight scales must be finite and > 0 (a damaged quantised "
                                    "checkpoint: quantise the model again)",
                                    path, ws->name, (long long)o, (double)s[o]);
        if (!kn__q_params_ok(p[0], p[1]))
            return kn_error_set(err, KN_ERR_FORMAT,
                                "%s: %s is (scale %g, zero point %g); the scale must be finite and > 0 and the zero "
                                "point an integer in [0, 255] (a damaged quantised checkpoint: quantise again)",
                                path, xq->name, (double)p[0], (double)p[1]);
    }
    return KN_OK;
}

/* ---- calibration ------------------------------------------------------------------------ */

typedef struct qlayer {
    char name[160];        /* the layer's parameter prefix, e.g. "conv1" */
    const kn_node *w;      /* FP32 weight parameter */
    const kn_node *in;     /* FP32 input of the layer */
    double lo, hi;         /* observed range */
    int64_t *hist;         /* HIST_BINS counts over [lo, hi] (percentile only) */
    int64_t count;
} qlayer;

typedef struct qctx {
    kn_model *m;
    kn__norm norm;
    kn_graph *g;
    kn_node *x, *logits;
    kn_plan *plan;
    int64_t batch;
    qlayer *layers;
    int n_layers;
} qctx;

static void qctx_free(qctx *c)
{
    for (int i = 0; i < c->n_layers; i++)
        kn__free(c->layers[i].hist);
    kn__free(c->layers);
    kn_plan_free(c->plan);
    kn_graph_free(c->g);
    kn_model_free(c->m);
}

static float meta_float(const kn_meta *m, const char *key, float dflt)
{
    const char *v = kn_meta_get(m, key);
    return v ? strtof(v, NULL) : dflt;
}

/* The FP32 model with its weights, and an inference plan that also outputs every conv/dense
 * layer's input. */
static kn_status qctx_open(qctx *c, const char *path, const kn_meta *meta, int64_t batch, int threads, kn_error *err)
{
    const char *text = kn_meta_get(meta, "kiln.model");
    if (!text)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: no kiln.model in the metadata: not a kiln checkpoint", path);
    kn_status st = kn_model_parse(&c->m, text, path, err);
    if (st)
        return st;
    c->norm.scale = meta_float(meta, "kiln.norm_scale", 1.0f);
    c->norm.mean = meta_float(meta, "kiln.norm_mean", 0.0f);
    c->norm.std = meta_float(meta, "kiln.norm_std", 1.0f);
    c->g = kn_graph_new();
    if (!c->g)
        return kn_error_set(err, KN_ERR_OOM, "out of memory");
    int64_t shape[4] = {batch};
    int nd = kn_model_input_shape(c->m, shape + 1);
    c->batch = batch;
    c->x = kn_graph_input(c->g, "calib.x", KN_F32, nd + 1, shape);
    c->logits = c->x ? kn_model_build(c->m, c->g, c->x, err) : NULL;
    if (!c->logits)
        return err && err->status ? err->status : kn_error_set(err, kn_graph_status(c->g), "%s", kn_graph_error(c->g));
    st = kn_checkpoint_load(c->g, path, true, NULL, err);
    if (st)
        return st;
    int cap = 0;
    for (int i = 0; i < c->g->n_nodes; i++)
        cap += c->g->nodes[i]->op == KN_OP_CONV2D || c->g->nodes[i]->op == KN_OP_LINEAR;
    if (cap == 0)
        return kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: the model has no conv2d or dense layer to quantise", path);
    c->layers = kn__calloc((size_t)cap, sizeof *c->layers);
    kn_node **outs = kn__calloc((size_t)cap + 1, sizeof *outs);
    if (!c->layers || !outs) {
        kn__free(outs);
        return kn_error_set(err, KN_ERR_OOM, "out of memory");
    }
    int n_outs = 0;
    outs[n_outs++] = c->logits;
    for (int i = 0; i < c->g->n_nodes; i++) {
        kn_node *n = c->g->nodes[i];
        if (n->op != KN_OP_CONV2D && n->op != KN_OP_LINEAR)
            continue;
        qlayer *L = &c->layers[c->n_layers++];
        const char *wn = n->src[1]->name;
        size_t len = strlen(wn);
        if (n->src[1]->op != KN_OP_PARAM || len < 8 || len - 7 >= sizeof L->name || strcmp(wn + len - 7, ".weight")) {
            kn__free(outs);
            return kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: a %s layer whose weight is not a '<layer>.weight' parameter",
                                path, kn__op_names[n->op]);
        }
        memcpy(L->name, wn, len - 7);
        L->w = n->src[1];
        L->in = n->src[0];
        L->lo = INFINITY;
        L->hi = -INFINITY;
        if (L->in != c->x)
            outs[n_outs++] = n->src[0];
    }
    kn_plan_opts po = {.backend = KN_BACKEND_CPU, .training = false, .threads = threads};
    st = kn_plan_compile(&c->plan, c->g, outs, n_outs, &po);
    kn__free(outs);
    if (st)
        return kn_error_set(err, st, "compiling the calibration plan: %s", kn_plan_last_error());
    return KN_OK;
}

/* Runs the model on calibration examples [first, first + n) of the sample. */
static kn_status run_batch(qctx *c, const kn_dataset *ds, int64_t first, int64_t n, int64_t total, kn_error *err)
{
    int64_t size = kn_dataset_example_size(ds);
    size_t esz = kn_dtype_size(ds->dtype);
    float *x = kn_plan_input_data(c->plan, c->x);
    for (int64_t i = 0; i < n; i++) {
        int64_t e = (first + i) * ds->n / total; /* spread evenly over the data set */
        kn__norm_example((const char *)ds->x + (size_t)e * (size_t)size * esz, ds->dtype, size, &c->norm, x + i * size);
    }
    kn_status st = kn_plan_run(c->plan);
    if (st)
        return kn_error_set(err, st, "calibration: %s", kn_plan_error(c->plan));
    return KN_OK;
}

/* Values of layer L's input for the first n examples of the batch. */
static const float *layer_input(qctx *c, const qlayer *L, int64_t n, int64_t *count)
{
    const kn_node *in = L->in;
    *count = kn__numel(in) / c->batch * n;
    return in == c->x ? kn_plan_input_data(c->plan, c->x) : kn_plan_data(c->plan, in);
}

static kn_status calibrate(qctx *c, const kn_dataset *ds, const kn_quant_opts *o, int64_t total, kn_error *err)
{
    bool pct = o->method == KN_CALIB_PERCENTILE;
    for (int pass = 0; pass < (pct ? 2 : 1); pass++) {
        if (pass == 1)
            for (int l = 0; l < c->n_layers; l++)
                if (!(c->layers[l].hist = kn__calloc(HIST_BINS, sizeof(int64_t))))
                    return kn_error_set(err, KN_ERR_OOM, "out of memory for calibration histograms");
        for (int64_t first = 0; first < total; first += c->batch) {
            int64_t n = total - first < c->batch ? total - first : c->batch;
            kn_status st = run_batch(c, ds, first, n, total, err);
            if (st)
                return st;
            for (int l = 0; l < c->n_layers; l++) {
                qlayer *L = &c->layers[l];
                int64_t cnt;
                const float *v = layer_input(c, L, n, &cnt);
                if (pass == 0) {
                    double lo = L->lo, hi = L->hi;
                    for (int64_t i = 0; i < cnt; i++) {
                        if (!isfinite(v[i]))
                            continue;
                        lo = v[i] < lo ? v[i] : lo;
                        hi = v[i] > hi ? v[i] : hi;
                    }
                    L->lo = lo, L->hi = hi;
                } else if (L->hi > L->lo) {
                    double k = HIST_BINS / (L->hi - L->lo);
                    for (int64_t i = 0; i < cnt; i++) {
                        if (!isfinite(v[i]))
                            continue;
                        int64_t b = (int64_t)((v[i] - L->lo) * k);
                        L->hist[b < 0 ? 0 : b >= HIST_BINS ? HIST_BINS - 1 : b]++;
                        L->count++;
                    }
                }
            }
        }
    }
    if (pct)
        for (int l = 0; l < c->n_layers; l++) {
            qlayer *L = &c->layers[l];
            if (!(L->hi > L->lo) || L->count == 0)
                continue;
            double tail = (100.0 - o->percentile) / 100.0 * (double)L->count, w = (L->hi - L->lo) / HIST_BINS;
            int64_t acc = 0;
            int lo_bin = 0, hi_bin = HIST_BINS - 1;
            while (lo_bin < HIST_BINS - 1 && (double)(acc + L->hist[lo_bin]) <= tail)
                acc += L->hist[lo_bin++];
            acc = 0;
            while (hi_bin > lo_bin && (double)(acc + L->hist[hi_bin]) <= tail)
                acc += L->hist[hi_bin--];
            double lo = L->lo + w * lo_bin, hi = L->lo + w * (hi_bin + 1);
            L->lo = lo > L->lo ? lo : L->lo;
            L->hi = hi < L->hi ? hi : L->hi;
        }
    return KN_OK;
}

/* Scale and zero point of the u8 range covering [lo, hi] and 0 (so zero padding is exact). */
static void act_qparams(double lo, double hi, float *scale, float *zp)
{
    lo = isfinite(lo) && lo < 0 ? lo : 0;
    hi = isfinite(hi) && hi > 0 ? hi : 0;
    if (!(hi > lo)) {
        *scale = 1.0f;
        *zp = 0;
        return;
    }
    float s = (float)((hi - lo) / 255.0);
    if (!(s > 0)) /* a range below float's resolution */
        s = 1e-30f;
    double z = nearbyint(-lo / s);
    *scale = s;
    *zp = (float)(z < 0 ? 0 : z > 255 ? 255 : z);
}

/* ---- the int8 checkpoint ---------------------------------------------------------------- */

/* Length of name without suffix when it is "<something><suffix>", else 0. */
static size_t prefix_len(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n > k && !strcmp(name + n - k, suffix) ? n - k : 0;
}

/* Fills every parameter of the int8 graph g8 from the calibrated FP32 context. */
static kn_status fill_int8(qctx *c, kn_graph *g8, const char *path, kn_error *err)
{
    for (int i = 0; i < g8->n_nodes; i++) {
        kn_node *p = g8->nodes[i];
        if (p->op != KN_OP_PARAM)
            continue;
        void *dst = kn_graph_param_data(g8, p);
        kn_node *src = kn_graph_find(c->g, p->name);
        if (p->dtype == KN_I8) { /* "<layer>.weight": per output channel, with "<layer>.weight_scale" */
            char sname[200];
            snprintf(sname, sizeof sname, "%.*s_scale", (int)(sizeof sname - 8), p->name);
            kn_node *sp = kn_graph_find(g8, sname);
            if (!src || !sp || src->dtype != KN_F32 || kn__numel(src) != kn__numel(p) || kn__numel(sp) != p->shape[0])
                return kn_error_set(err, KN_ERR_SHAPE, "%s: no FP32 weight fits the quantised %s", path, p->name);
            const float *w = kn_graph_param_data(c->g, src);
            float *scale = kn_graph_param_data(g8, sp);
            int8_t *q = dst;
            int64_t out = p->shape[0], per = out ? kn__numel(p) / out : 0;
            for (int64_t o = 0; o < out; o++) {
                double m = 0;
                for (int64_t k = 0; k < per; k++)
                    m = fabs(w[o * per + k]) > m ? fabs(w[o * per + k]) : m;
                if (!isfinite(m))
                    return kn_error_set(err, KN_ERR_RANGE, "%s: %s has a non-finite value in output channel %lld", path,
                                        p->name, (long long)o);
                double s = (float)kn__q_wscale(m);
                scale[o] = (float)s;
                for (int64_t k = 0; k < per; k++)
                    q[o * per + k] = (int8_t)kn__q_s8(w[o * per + k], s);
            }
            continue;
        }
        size_t pre;
        if ((pre = prefix_len(p->name, ".input_qparams"))) {
            const qlayer *L = NULL;
            for (int l = 0; l < c->n_layers && !L; l++)
                if (strlen(c->layers[l].name) == pre && !strncmp(c->layers[l].name, p->name, pre))
                    L = &c->layers[l];
            if (!L)
                return kn_error_set(err, KN_ERR_SHAPE, "%s: no calibrated layer for %s", path, p->name);
            float *qp = dst;
            act_qparams(L->lo, L->hi, &qp[0], &qp[1]);
            continue;
        }
        if (prefix_len(p->name, ".weight_scale"))
            continue; /* written with its weight */
        if (!src || src->op != KN_OP_PARAM || src->dtype != p->dtype || !kn__same_shape(src, p))
            return kn_error_set(err, KN_ERR_SHAPE, "%s: no FP32 parameter fits %s %s", path, p->name, kn__shp(p));
        memcpy(dst, kn_graph_param_data(c->g, src), kn__nbytes(p));
    }
    return KN_OK;
}

/* A file, or a directory holding model.safetensors. */
static void resolve(const char *in, char *out, size_t size)
{
    struct stat sb;
    if (stat(in, &sb) == 0 && S_ISDIR(sb.st_mode))
        snprintf(out, size, "%s/model.safetensors", in);
    else
        snprintf(out, size, "%s", in);
}

kn_status kn_quantize(const char *checkpoint, const kn_dataset *calib, const kn_quant_opts *opts, const char *out_path,
                      kn_error *err)
{
    if (!checkpoint || !calib || !out_path)
        return kn_error_set(err, KN_ERR_ARG, "kn_quantize: NULL checkpoint, data or output path");
    kn_quant_opts o;
    kn_quant_opts_defaults(&o);
    if (opts) {
        o.method = opts->method;
        o.calib = opts->calib ? opts->calib : o.calib;
        o.percentile = opts->percentile ? opts->percentile : o.percentile;
        o.batch = opts->batch ? opts->batch : o.batch;
        o.threads = opts->threads;
    }
    if (o.calib < 1 || o.batch < 1 || o.threads < 0)
        return kn_error_set(err, KN_ERR_ARG, "quantize: --calib %lld, batch %d, threads %d: each must be >= 1",
                            (long long)o.calib, o.batch, o.threads);
    if (o.method != KN_CALIB_MINMAX && o.method != KN_CALIB_PERCENTILE)
        return kn_error_set(err, KN_ERR_ARG, "quantize: unknown calibration method %d", (int)o.method);
    if (o.method == KN_CALIB_PERCENTILE && !(o.percentile > 50 && o.percentile <= 100))
        return kn_error_set(err, KN_ERR_ARG, "quantize: percentile %g, must be in (50, 100]", o.percentile);
    if (calib->n < 1)
        return kn_error_set(err, KN_ERR_ARG, "quantize: the calibration data set %s is empty", calib->name);
    int64_t total = o.calib < calib->n ? o.calib : calib->n;
    int64_t batch = o.batch < total ? o.batch : total;
    char path[4096];
    resolve(checkpoint, path, sizeof path);
    kn_meta meta = {0}, out = {0};
    qctx c = {0};
    kn_graph *g8 = NULL;
    bool q8 = false;
    kn_status st = kn_checkpoint_read_meta(path, &meta, err);
    if (!st)
        st = kn__quant_meta(path, &meta, &q8, err);
    if (!st && q8)
        st = kn_error_set(err, KN_ERR_ARG, "%s is already quantised (kiln.quantized = int8); quantise its FP32 checkpoint",
                          path);
    if (!st)
        st = qctx_open(&c, path, &meta, batch, o.threads, err);
    if (!st)
        st = kn__check_data(c.m, calib, err);
    if (!st)
        st = calibrate(&c, calib, &o, total, err);
    if (!st && !(g8 = kn_graph_new()))
        st = kn_error_set(err, KN_ERR_OOM, "out of memory");
    if (!st) {
        int64_t shape[4] = {1};
        int nd = kn_model_input_shape(c.m, shape + 1);
        kn_build_opts bo = {.int8 = true};
        kn_node *x = kn_graph_input(g8, "x", KN_F32, nd + 1, shape);
        if (!x || !kn_model_build_ex(c.m, g8, x, &bo, err))
            st = err && err->status ? err->status : kn_error_set(err, kn_graph_status(g8), "%s", kn_graph_error(g8));
    }
    if (!st)
        st = fill_int8(&c, g8, path, err);
    /* the metadata a loader needs: model, normalisation, the quantisation and how it was made */
    static const char *const keep[] = {"kiln.model", "kiln.format", "kiln.norm_scale", "kiln.norm_mean", "kiln.norm_std",
                                       "kiln.seed", "kiln.epoch", "kiln.step", "kiln.recipe", "kiln.history"};
    for (size_t i = 0; !st && i < sizeof keep / sizeof keep[0]; i++)
        if (kn_meta_get(&meta, keep[i]))
            st = kn_meta_set(&out, keep[i], kn_meta_get(&meta, keep[i]));
    char how[128];
    if (o.method == KN_CALIB_PERCENTILE)
        snprintf(how, sizeof how, "percentile %g, %lld examples of %s", o.percentile, (long long)total, calib->name);
    else
        snprintf(how, sizeof how, "minmax, %lld examples of %s", (long long)total, calib->name);
    if (!st)
        st = kn_meta_set(&out, "kiln.quantized", "int8");
    if (!st)
        st = kn_meta_set(&out, "kiln.calibration", how);
    if (st && err && !err->status)
        kn_error_set(err, st, "preparing the quantised checkpoint's metadata");
    if (!st)
        st = kn_checkpoint_save(g8, out_path, &out, err);
    kn_meta_clear(&meta);
    kn_meta_clear(&out);
    kn_graph_free(g8);
    qctx_free(&c);
    return st;
}
