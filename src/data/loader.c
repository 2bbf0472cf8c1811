/* loader.c — the batch loader: a per-epoch permutation of the examples (Fisher–Yates driven
 * by Philox, so the order depends only on seed and epoch), conversion to float32 with
 * normalisation, augmentation (zero-padded random crop, horizontal flip) whose random
 * numbers depend only on (seed, epoch, position in the epoch), and an optional background
 * thread filling batch k+1 while the caller uses batch k (two buffers, allocated once).
 * Foreground and background loading give bit-identical batches. Normalisation goes through
 * kn__normalise (bytes through a lookup table made by it) and augmentation through augment.h,
 * which a plan gathering its own batches (kn_graph_load_batch) shares. It deliberately keeps to one
 * worker thread and simple augmentations; heavier pipelines belong in a preprocessing step. */
#include <pthread.h>
#include <string.h>

#include "core/alloc.h"
#include "data_internal.h"

struct kn_loader {
    const kn_dataset *ds;    /* borrowed */
    kn_loader_opts o;
    int64_t n;               /* examples per epoch */
    int64_t *idx;            /* [n] the examples this loader covers */
    int64_t *order;          /* [n] this epoch's order (positions into ds) */
    int64_t nbatches;
    int64_t ex;              /* elements per example */
    int C, H, W;             /* image layout for augmentation (C = 1 for [H, W]) */
    float *x[2];             /* [batch, ex] each (none with rows_only) */
    float lut[256];          /* u8 data: the normalised value of each byte */
    float pad;               /* the normalised value of a zero pixel (crop padding) */
    float *tmp;              /* [ex] f32 data with augmentation: the normalised example */
    int32_t *y[2];           /* [batch] each */
    int epoch;
    bool started;            /* an epoch has been started */
    int64_t next;            /* the batch the next kn_loader_next returns */

    /* background thread state, guarded by mu */
    bool threaded;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;     /* signalled to the worker: something changed */
    pthread_cond_t done;     /* signalled by the worker: a batch is ready or it went idle */
    bool quit, pausing, busy, active;
    int64_t filled;          /* batches 0..filled-1 of this epoch are in their buffers */
    int64_t released;        /* the caller no longer reads batches 0..released-1 */
};

static int64_t batch_count(const kn_loader *l, int64_t k)
{
    int64_t start = k * l->o.batch;
    return l->n - start < l->o.batch ? l->n - start : l->o.batch;
}

void kn__normalise(const float *src, int64_t n, float scale, float mean, float std, float *dst)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = (src[i] * scale - mean) / std;
}

void kn__normalise_bytes(float scale, float mean, float std, float lut[256], float *pad)
{
    float bytes[256], zero = 0;
    for (int v = 0; v < 256; v++)
        bytes[v] = (float)v;
    kn__normalise(bytes, 256, scale, mean, std, lut);
    kn__normalise(&zero, 1, scale, mean, std, pad);
}

/* Converts one example into dst, applying crop and flip drawn from (seed, epoch, pos). */
static void fill_example(const kn_loader *l, int64_t src, int64_t pos, float *dst)
{
    const kn_dataset *ds = l->ds;
    const uint8_t *xu = ds->dtype == KN_U8 ? (const uint8_t *)ds->x + src * l->ex : NULL;
    const float *xf = ds->dtype == KN_F32 ? (const float *)ds->x + src * l->ex : NULL;
    const bool augment = l->o.crop_pad > 0 || l->o.hflip;
    if (xu) {
        for (int64_t j = 0; !augment && j < l->ex; j++)
            dst[j] = l->lut[xu[j]];
    } else {
        kn__normalise(xf, l->ex, l->o.scale, l->o.mean, l->o.std, augment ? l->tmp : dst);
    }
    if (!augment)
        return;
    kn__augment a = kn__augment_draw(l->o.seed, (uint64_t)l->epoch, (uint64_t)pos, l->o.crop_pad, l->o.hflip);
    for (int c = 0; c < l->C; c++)
        for (int i = 0; i < l->H; i++)
            for (int j = 0; j < l->W; j++) {
                int64_t from = kn__augment_source(a, l->H, l->W, c, i, j);
                dst[((int64_t)c * l->H + i) * l->W + j] = from < 0 ? l->pad : xu ? l->lut[xu[from]] : l->tmp[from];
            }
}

static void fill_batch(const kn_loader *l, int64_t k, int slot)
{
    int64_t cnt = batch_count(l, k), start = k * l->o.batch;
    for (int64_t i = 0; i < cnt; i++) {
        int64_t src = l->order[start + i];
        l->y[slot][i] = l->ds->y[src];
        if (!l->o.rows_only)
            fill_example(l, src, start + i, l->x[slot] + i * l->ex);
    }
}

static void *worker(void *arg)
{
    kn_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit &&
               !(l->active && !l->pausing && l->filled < l->nbatches && l->filled < l->released + 2))
            pthread_cond_wait(&l->work, &l->mu);
        if (l->quit)
            break;
        int64_t k = l->filled;
        l->busy = true;
        pthread_mutex_unlock(&l->mu);
        fill_batch(l, k, (int)(k & 1)); /* slot k%2 is free: batch k-2 was released */
        pthread_mutex_lock(&l->mu);
        l->busy = false;
        l->filled = k + 1;
        pthread_cond_broadcast(&l->done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

kn_status kn_loader_new(kn_loader **out, const kn_dataset *ds, const int64_t *indices, int64_t n_indices,
                        const kn_loader_opts *opts, kn_error *err)
{
    if (!out)
        return kn_error_set(err, KN_ERR_ARG, "kn_loader_new: NULL output pointer");
    *out = NULL;
    if (!ds || !opts)
        return kn_error_set(err, KN_ERR_ARG, "kn_loader_new: NULL %s", !ds ? "data set" : "options");
    if (!ds->x || !ds->y || ds->n < 0 || ds->ndim < 1 || ds->ndim > 3 || (ds->dtype != KN_U8 && ds->dtype != KN_F32))
        return kn_error_set(err, KN_ERR_ARG, "kn_loader_new: data set '%s' is malformed (no data, or ndim %d, or "
                                             "dtype %s not u8/f32)",
                            ds->name, ds->ndim, kn_dtype_name(ds->dtype));
    if (opts->batch <= 0)
        return kn_error_set(err, KN_ERR_ARG, "kn_loader_new: batch size %d; it must be positive", opts->batch);
    if (opts->std < 0 || opts->std != opts->std || opts->scale != opts->scale || opts->mean != opts->mean)
        return kn_error_set(err, KN_ERR_ARG, "kn_loader_new: scale %g, mean %g, std %g: std must be >= 0 (0 means "
                                             "1) and none may be NaN",
                            opts->scale, opts->mean, opts->std);
    if (opts->crop_pad < 0 || opts->crop_pad > 65536)
        return kn_error_set(err, KN_ERR_ARG, "kn_loader_new: crop_pad %d is outside 0..65536", opts->crop_pad);
    if ((opts->crop_pad > 0 || opts->hflip) && ds->ndim < 2)
        return kn_error_set(err, KN_ERR_ARG,
                            "kn_loader_new: random crop and flip need image examples ([C, H, W] or [H, W]); "
                            "'%s' has examples of shape [%lld]",
                            ds->name, (long long)ds->shape[0]);
    int64_t ex = kn_dataset_example_size(ds);
    int64_t n = indices ? n_indices : ds->n;
    if (n < 0)
        return kn_error_set(err, KN_ERR_ARG, "kn_loader_new: n_indices %lld is negative", (long long)n_indices);
    for (int64_t i = 0; indices && i < n; i++)
        if (indices[i] < 0 || indices[i] >= ds->n)
            return kn_error_set(err, KN_ERR_RANGE, "kn_loader_new: indices[%lld] = %lld is outside '%s' (0..%lld)",
                                (long long)i, (long long)indices[i], ds->name, (long long)ds->n - 1);
    if (ex <= 0 || (uint64_t)opts->batch > SIZE_MAX / sizeof(float) / (uint64_t)ex ||
        (uint64_t)n > SIZE_MAX / sizeof(int64_t))
        return kn_error_set(err, KN_ERR_ARG, "kn_loader_new: batch %d of %lld-element examples is too large",
                            opts->batch, (long long)ex);
    if (ds->ndim >= 2 && (ds->shape[ds->ndim - 1] > INT32_MAX / 2 || ds->shape[ds->ndim - 2] > INT32_MAX / 2 ||
                          (ds->ndim == 3 && ds->shape[0] > INT32_MAX)))
        return kn_error_set(err, KN_ERR_ARG, "kn_loader_new: image dimensions of '%s' are too large", ds->name);

    kn_loader *l = kn__calloc(1, sizeof *l);
    if (!l)
        return kn_error_set(err, KN_ERR_OOM, "kn_loader_new: out of memory");
    l->ds = ds;
    l->o = *opts;
    if (l->o.std == 0)
        l->o.std = 1;
    if (l->o.scale == 0)
        l->o.scale = 1;
    l->n = n;
    l->ex = ex;
    l->C = ds->ndim == 3 ? (int)ds->shape[0] : 1;
    l->H = ds->ndim >= 2 ? (int)ds->shape[ds->ndim - 2] : 1;
    l->W = (int)ds->shape[ds->ndim - 1];
    l->nbatches = opts->drop_last ? n / opts->batch : (n + opts->batch - 1) / opts->batch;
    size_t nn = (size_t)(n > 0 ? n : 1);
    l->idx = kn__alloc(nn * sizeof(int64_t));
    l->order = kn__alloc(nn * sizeof(int64_t));
    const bool xs = !opts->rows_only;
    for (int s = 0; s < 2; s++) {
        l->x[s] = xs ? kn__alloc((size_t)opts->batch * (size_t)ex * sizeof(float)) : NULL;
        l->y[s] = kn__alloc((size_t)opts->batch * sizeof(int32_t));
    }
    l->tmp = xs && ds->dtype == KN_F32 && (opts->crop_pad > 0 || opts->hflip) ? kn__alloc((size_t)ex * sizeof(float)) : NULL;
    if (!l->idx || !l->order || (xs && (!l->x[0] || !l->x[1])) || !l->y[0] || !l->y[1] ||
        (xs && ds->dtype == KN_F32 && (opts->crop_pad > 0 || opts->hflip) && !l->tmp)) {
        kn_loader_free(l);
        return kn_error_set(err, KN_ERR_OOM, "kn_loader_new: out of memory for batch buffers (2 x %d examples of "
                                             "%lld floats)",
                            opts->batch, (long long)ex);
    }
    for (int64_t i = 0; i < n; i++)
        l->idx[i] = indices ? indices[i] : i;
    kn__normalise_bytes(l->o.scale, l->o.mean, l->o.std, l->lut, &l->pad);
    if (opts->background) {
        bool mu = pthread_mutex_init(&l->mu, NULL) == 0;
        bool cw = mu && pthread_cond_init(&l->work, NULL) == 0;
        bool cd = cw && pthread_cond_init(&l->done, NULL) == 0;
        if (cd && pthread_create(&l->thread, NULL, worker, l) == 0) {
            l->threaded = true;
        } else { /* no thread: load in the foreground, which gives the same batches */
            if (cd)
                pthread_cond_destroy(&l->done);
            if (cw)
                pthread_cond_destroy(&l->work);
            if (mu)
                pthread_mutex_destroy(&l->mu);
        }
    }
    *out = l;
    return KN_OK;
}

void kn_loader_free(kn_loader *l)
{
    if (!l)
        return;
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->quit = true;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_cond_destroy(&l->done);
        pthread_cond_destroy(&l->work);
        pthread_mutex_destroy(&l->mu);
    }
    for (int s = 0; s < 2; s++) {
        kn__free(l->x[s]);
        kn__free(l->y[s]);
    }
    kn__free(l->tmp);
    kn__free(l->order);
    kn__free(l->idx);
    kn__free(l);
}

static void make_order(kn_loader *l)
{
    memcpy(l->order, l->idx, (size_t)l->n * sizeof(int64_t));
    if (l->o.shuffle)
        kn__shuffle(l->order, l->n, l->o.seed, (uint64_t)l->epoch);
}

kn_status kn_loader_start_epoch(kn_loader *l, int epoch)
{
    if (!l || epoch < 0)
        return KN_ERR_ARG;
    if (l->threaded) {
        /* Stop the worker between batches, then reset: it never sees a half-made order. */
        pthread_mutex_lock(&l->mu);
        l->pausing = true;
        while (l->busy)
            pthread_cond_wait(&l->done, &l->mu);
        l->epoch = epoch;
        make_order(l);
        l->filled = 0;
        l->released = 0;
        l->active = true;
        l->pausing = false;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->mu);
    } else {
        l->epoch = epoch;
        make_order(l);
    }
    l->started = true;
    l->next = 0;
    return KN_OK;
}

bool kn_loader_next(kn_loader *l, kn_batch *b)
{
    if (!l || !b)
        return false;
    if (!l->started)
        kn_loader_start_epoch(l, 0);
    int64_t k = l->next;
    if (k >= l->nbatches)
        return false;
    int slot = (int)(k & 1);
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->released = k; /* the caller is done with batch k-1 */
        pthread_cond_broadcast(&l->work);
        while (l->filled <= k)
            pthread_cond_wait(&l->done, &l->mu);
        pthread_mutex_unlock(&l->mu);
    } else {
        fill_batch(l, k, slot);
    }
    b->x = l->x[slot];
    b->y = l->y[slot];
    b->n = batch_count(l, k);
    b->index = k;
    b->rows = l->order + k * l->o.batch;
    b->first = k * l->o.batch;
    b->epoch = l->epoch;
    l->next = k + 1;
    return true;
}

int64_t kn_loader_num_batches(const kn_loader *l) { return l ? l->nbatches : 0; }

int64_t kn_loader_size(const kn_loader *l) { return l ? (l->o.drop_last ? l->nbatches * l->o.batch : l->n) : 0; }
