/* distill.c — knowledge distillation: the loss kn_distill_loss, and the teacher of a kn_train
 * run (kn_train_opts.teacher). The teacher's checkpoint gives its model text (kiln.model),
 * its normalisation (kiln.norm_*) and its weights; it is built with kn_model_build_ex
 * (prefix "teacher.", frozen: no gradient, batch norm on running statistics, no dropout) on
 * the student's input node in the student's training graph, so one compiled plan runs the
 * teacher's forward, the student's forward and backward and the updates. The teacher's
 * parameters are left out of the student's checkpoints (kn_checkpoint_save_ex).
 * Not here: caching teacher outputs across epochs (augmentation makes every batch new), or
 * intermediate-feature (hint) losses. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/alloc.h"
#include "../graph/graph_internal.h"
#include "distill.h"
#include "kiln/io.h"

kn_node *kn_distill_loss(kn_graph *g, kn_node *student, kn_node *teacher, kn_node *labels, double temperature,
                         double alpha)
{
    if (!g || !student || !teacher || !labels || kn_graph_status(g))
        return NULL;
    if (!(temperature > 0) || !isfinite(temperature)) {
        kn__fail(g, KN_ERR_ARG, "distill: temperature %g must be a finite number > 0", temperature);
        return NULL;
    }
    if (!(alpha >= 0 && alpha <= 1)) {
        kn__fail(g, KN_ERR_ARG, "distill: alpha %g must be in [0, 1]", alpha);
        return NULL;
    }
    char a[160], b[160];
    if (kn_node_ndim(student) != 2 || kn_node_ndim(teacher) != 2 || kn_node_dim(student, 0) != kn_node_dim(teacher, 0) ||
        kn_node_dim(student, 1) != kn_node_dim(teacher, 1)) {
        kn__fail(g, KN_ERR_SHAPE, "distill: student logits %s and teacher logits %s must both be [N, classes]",
                 kn_node_shape_str(student, a, sizeof a), kn_node_shape_str(teacher, b, sizeof b));
        return NULL;
    }
    double inv_t = 1.0 / temperature;
    kn_node *ce = kn_graph_softmax_cross_entropy(g, student, labels);
    kn_node *log_q = kn_graph_log_softmax(g, kn_graph_scale(g, student, inv_t, 0), -1);
    kn_node *p = kn_graph_softmax(g, kn_graph_scale(g, teacher, inv_t, 0), -1);
    kn_node *kl = kn_graph_kl_div(g, log_q, p);
    return kn_graph_add(g, kn_graph_scale(g, ce, 1.0 - alpha, 0),
                        kn_graph_scale(g, kl, alpha * temperature * temperature, 0));
}

static float meta_float(const kn_meta *m, const char *key, float dflt)
{
    const char *v = kn_meta_get(m, key);
    return v ? strtof(v, NULL) : dflt;
}

/* "[1,28,28]" */
static const char *input_str(const kn_model *m, char *buf, size_t size)
{
    int64_t s[3] = {0};
    int nd = kn_model_input_shape(m, s);
    if (nd == 3)
        snprintf(buf, size, "[%lld,%lld,%lld]", (long long)s[0], (long long)s[1], (long long)s[2]);
    else
        snprintf(buf, size, "[%lld]", (long long)s[0]);
    return buf;
}

/* The teacher's model and weights, checked against the student. */
static kn_status open_teacher(kn__distill *d, const kn_model *student, kn_error *err)
{
    kn_meta meta = {0};
    kn_status st = kn_checkpoint_read_meta(d->path, &meta, err);
    if (st) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        return kn_error_set(err, st, "teacher: %s", msg);
    }
    const char *text = kn_meta_get(&meta, "kiln.model");
    if (!text)
        st = kn_error_set(err, KN_ERR_FORMAT, "teacher %s has no kiln.model in its metadata: not a kiln checkpoint "
                          "(give a model.safetensors written by kiln train)", d->path);
    if (!st)
        st = kn_model_parse(&d->teacher, text, d->path, err);
    d->norm.scale = meta_float(&meta, "kiln.norm_scale", 1.0f);
    d->norm.mean = meta_float(&meta, "kiln.norm_mean", 0.0f);
    d->norm.std = meta_float(&meta, "kiln.norm_std", 1.0f);
    kn_meta_clear(&meta);
    if (st)
        return st;
    if (!(d->norm.scale > 0) || !(d->norm.std > 0) || !isfinite(d->norm.mean))
        return kn_error_set(err, KN_ERR_FORMAT, "teacher %s: bad normalisation in its metadata (scale %g, mean %g, "
                            "std %g)", d->path, d->norm.scale, d->norm.mean, d->norm.std);
    int64_t ts[3] = {0}, ss[3] = {0};
    int tn = kn_model_input_shape(d->teacher, ts), sn = kn_model_input_shape(student, ss);
    if (tn != sn || memcmp(ts, ss, sizeof ts) != 0) {
        char a[64], b[64];
        return kn_error_set(err, KN_ERR_SHAPE, "teacher %s takes inputs %s but the student takes %s: distillation "
                            "needs a teacher trained on the same kind of examples", d->path,
                            input_str(d->teacher, a, sizeof a), input_str(student, b, sizeof b));
    }
    if (kn_model_num_classes(d->teacher) != kn_model_num_classes(student))
        return kn_error_set(err, KN_ERR_SHAPE, "teacher %s outputs %d classes but the student outputs %d: distillation "
                            "needs "
                            "the same classes", d->path, kn_model_num_classes(d->teacher),
                            kn_model_num_classes(student));
    for (int i = 0; i < kn_model_num_layers(student); i++) {
        kn_model_layer L;
        if (kn_model_layer_info(student, i, &L) == KN_OK && !strcmp(L.name, "teacher"))
            return kn_error_set(err, KN_ERR_ARG, "the student has a layer named 'teacher' (line %d): distillation "
                                "reserves the parameter names teacher.* for the teacher; rename the layer", L.line);
    }
    /* the weights: the teacher built alone in a graph of its own, loaded from the file (its
     * optimizer state is ignored) */
    d->weights = kn_graph_new();
    if (!d->weights)
        return kn_error_set(err, KN_ERR_OOM, "out of memory for the teacher");
    int64_t shape[4] = {1};
    int nd = kn_model_input_shape(d->teacher, shape + 1);
    kn_node *x = kn_graph_input(d->weights, "x", KN_F32, nd + 1, shape);
    if (!x || !kn_model_build(d->teacher, d->weights, x, err))
        return err && err->status ? err->status
                                  : kn_error_set(err, kn_graph_status(d->weights), "teacher %s: %s", d->path,
                                                 kn_graph_error(d->weights));
    return kn_checkpoint_load(d->weights, d->path, true, NULL, err);
}

kn_status kn__distill_open(kn__distill *d, const kn_model *student, const kn_train_opts *o, kn_error *err)
{
    memset(d, 0, sizeof *d);
    if (!o->teacher || !*o->teacher)
        return kn_error_set(err, KN_ERR_ARG, "distillation needs a teacher checkpoint");
    if (!(o->temperature > 0) || !isfinite(o->temperature))
        return kn_error_set(err, KN_ERR_ARG, "distillation: temperature %g must be a finite number > 0 (e.g. 4)",
                            o->temperature);
    if (!(o->alpha >= 0 && o->alpha <= 1))
        return kn_error_set(err, KN_ERR_ARG, "distillation: alpha %g must be in [0, 1] (the weight of the teacher's "
                            "soft targets; e.g. 0.9)", o->alpha);
    d->temperature = o->temperature;
    d->alpha = o->alpha;
    struct stat sb;
    int n = stat(o->teacher, &sb) == 0 && S_ISDIR(sb.st_mode)
                ? snprintf(d->path, sizeof d->path, "%s/model.safetensors", o->teacher)
                : snprintf(d->path, sizeof d->path, "%s", o->teacher);
    if (n < 0 || (size_t)n >= sizeof d->path)
        return kn_error_set(err, KN_ERR_ARG, "teacher path is too long (%zu bytes)", strlen(o->teacher));
    kn_status st = open_teacher(d, student, err);
    if (st)
        kn__distill_close(d);
    return st;
}

void kn__distill_close(kn__distill *d)
{
    kn_graph_free(d->weights);
    kn_model_free(d->teacher);
    d->weights = NULL;
    d->teacher = NULL;
}

/* Copies the loaded teacher weights into the "teacher.*" parameters of g. */
static kn_status copy_weights(kn__distill *d, kn_graph *g, kn_error *err)
{
    int n = kn_graph_params(d->weights, false, NULL, 0);
    kn_node **ps = kn__calloc(n > 0 ? (size_t)n : 1, sizeof *ps);
    if (!ps)
        return kn_error_set(err, KN_ERR_OOM, "out of memory copying the teacher's weights");
    kn_graph_params(d->weights, false, ps, n);
    kn_status st = KN_OK;
    for (int i = 0; i < n && !st; i++) {
        char name[512];
        snprintf(name, sizeof name, KN__TEACHER_PREFIX "%s", kn_node_name(ps[i]));
        kn_node *p = kn_graph_find(g, name);
        size_t bytes = (size_t)kn_node_numel(ps[i]) * kn_dtype_size(kn_node_dtype(ps[i]));
        if (!p || kn_node_numel(p) != kn_node_numel(ps[i]) || kn_node_dtype(p) != kn_node_dtype(ps[i]) ||
            !kn_graph_param_data(g, p))
            st = kn_error_set(err, KN_ERR_SHAPE, "teacher %s: parameter %s has no match in the training graph", d->path,
                              name); /* cannot happen: both come from the same model text */
        else if (bytes)
            memcpy(kn_graph_param_data(g, p), kn_graph_param_data(d->weights, ps[i]), bytes);
    }
    kn__free(ps);
    if (!st) {
        kn_graph_free(d->weights);
        d->weights = NULL;
    }
    return st;
}

kn_node *kn__distill_loss(kn__distill *d, kn_graph *g, kn_node *x, kn_node *logits, kn_node *y, const kn__norm *norm,
                          kn_error *err)
{
    /* The student sees (raw·s − m)/σ, the teacher wants (raw·s' − m')/σ': an affine map of x
     * (none when both normalisations are the same, as with one training set). */
    double a = (double)norm->std * d->norm.scale / ((double)norm->scale * d->norm.std);
    double b = ((double)norm->mean * d->norm.scale / norm->scale - d->norm.mean) / d->norm.std;
    kn_node *xt = a == 1.0 && b == 0.0 ? x : kn_graph_scale(g, x, a, b);
    kn_build_opts bo = {.prefix = KN__TEACHER_PREFIX, .frozen = true};
    kn_node *tl = kn_model_build_ex(d->teacher, g, xt, &bo, err);
    if (!tl)
        return NULL;
    if (d->weights && copy_weights(d, g, err))
        return NULL;
    kn_node *loss = kn_distill_loss(g, logits, tl, y, d->temperature, d->alpha);
    if (!loss)
        kn_error_set(err, kn_graph_status(g) ? kn_graph_status(g) : KN_ERR_OOM, "building the distillation loss: %s",
                     kn_graph_error(g));
    return loss;
}
