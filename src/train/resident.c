/* resident.c — the training set kept on the device (resident.h): the table constant (bytes
 * with the loader's 256-entry normalisation, or floats normalised here by the loader's own
 * kn__normalise), the fit check against the GPU's free memory, each branch's load_batch
 * node, and the per-batch (row, epoch, position) triples. */
#include <stdio.h>
#include <string.h>

#include "../core/alloc.h"
#include "../data/data_internal.h"
#include "kiln/cuda.h"
#include "resident.h"

#define MIB(b) ((double)(b) / (1024.0 * 1024.0))

/* Whether `bytes` per plan for `plans` plans fit on the run's GPU (the CPU: always); says
 * why not on stderr. */
static bool fits(const kn_train_opts *o, size_t bytes, int plans)
{
    if (o->backend != KN_BACKEND_CUDA)
        return true;
    size_t free_b = 0, total = 0, idle = 0;
    if (kn_cuda_mem_info(o->device, &free_b, &total, &idle) != KN_OK) {
        fprintf(stderr, "kiln: --resident-data: cannot read cuda:%d's free memory (%s); batches are staged from the "
                        "host instead\n",
                o->device, kn_cuda_last_error());
        return false;
    }
    /* half of what is free (with kiln's idle cache) stays for the plans' arenas */
    size_t avail = (free_b + idle) / 2, need = bytes * (size_t)plans;
    if (need <= avail)
        return true;
    fprintf(stderr, "kiln: --resident-data: the training set needs %.1f MiB on cuda:%d (%d plan%s x %.1f MiB) but only "
                    "%.1f MiB may go to it (half of the %.1f MiB free); batches are staged from the host instead\n",
            MIB(need), o->device, plans, plans == 1 ? "" : "s", MIB(bytes), MIB(avail), MIB(free_b + idle));
    return false;
}

kn_status kn__resident_init(kn__resident *r, kn_graph *g, const kn_dataset *train, const kn__norm *nm,
                            const kn_train_opts *opts, int plans, kn_error *err)
{
    memset(r, 0, sizeof *r);
    if (!opts->resident_data)
        return KN_OK;
    int64_t ex = kn_dataset_example_size(train);
    size_t elem = train->dtype == KN_U8 ? 1 : sizeof(float), bytes = (size_t)train->n * (size_t)ex * elem;
    if (!fits(opts, bytes, plans))
        return KN_OK;
    int64_t shape[4] = {train->n};
    for (int i = 0; i < train->ndim; i++)
        shape[i + 1] = train->shape[i];
    float lut[256]; /* the loader's: byte tables gather through it; pad is its zero pixel either way */
    kn__normalise_bytes(nm->scale, nm->mean, nm->std, lut, &r->pad);
    if (train->dtype == KN_U8) {
        r->table = kn_graph_const(g, KN_U8, train->ndim + 1, shape, train->x);
        r->lut = kn_graph_const(g, KN_F32, 1, (const int64_t[]){256}, lut);
    } else { /* floats: normalised once, here, by the loader's function */
        float *norm = kn__alloc(bytes ? bytes : 1);
        if (!norm)
            return kn_error_set(err, KN_ERR_OOM, "--resident-data: out of memory for the %.1f MiB normalised training set",
                                MIB(bytes));
        kn__normalise(train->x, train->n * ex, nm->scale, nm->mean, nm->std, norm);
        r->table = kn_graph_const(g, KN_F32, train->ndim + 1, shape, norm);
        kn__free(norm);
    }
    if (kn_graph_status(g))
        return kn_error_set(err, kn_graph_status(g), "--resident-data: %s", kn_graph_error(g));
    r->crop_pad = opts->recipe.crop_pad;
    r->hflip = opts->recipe.hflip;
    r->seed = opts->seed;
    if (opts->progress)
        fprintf(stderr, "kiln: training set resident on %s (%.1f MiB per training plan)\n",
                opts->backend == KN_BACKEND_CUDA ? "the GPU" : "the plan", MIB(bytes));
    return KN_OK;
}

kn_node *kn__resident_batch(const kn__resident *r, kn_graph *g, const kn_model *m, const char *tag, int64_t batch,
                            kn_node **examples)
{
    char name[64];
    snprintf(name, sizeof name, "%s.examples", tag);
    *examples = kn_graph_input(g, name, KN_I64, 2, (const int64_t[]){batch, 3});
    kn_node *x = kn_graph_load_batch(g, r->table, *examples, r->lut, r->crop_pad, r->hflip, r->seed, r->pad);
    int64_t shape[4] = {batch};
    int nd = kn_model_input_shape(m, shape + 1);
    return kn_graph_reshape(g, x, nd + 1, shape);
}

void kn__resident_stage(int64_t *dst, const kn_batch *bt)
{
    for (int64_t i = 0; i < bt->n; i++) {
        dst[3 * i] = bt->rows[i];
        dst[3 * i + 1] = bt->epoch;
        dst[3 * i + 2] = bt->first + i;
    }
}
