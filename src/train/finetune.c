/* finetune.c — kn_train_opts.init_from: the weights of a checkpoint start a fresh run
 * (fine-tuning; the optimizer state and the schedule start afresh). The model is built in a
 * scratch graph holding exactly its parameters, the file is loaded there (so every parameter
 * is checked by name, dtype and shape), the file's own model (when it records one) must not
 * have parameters this model lacks, and only then are the values copied into the training
 * graph. Not here: resuming a run (trainer.c), which restores everything. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/alloc.h"
#include "finetune.h"
#include "kiln/io.h"

#define MAX_PARAMS 512

/* Every parameter of the file's own model (kiln.model) must be one of m's. */
static kn_status same_parameters(kn_graph *mine, const char *text, const char *path, kn_error *err)
{
    kn_model *fm = NULL;
    kn_status st = kn_model_parse(&fm, text, path, err);
    if (st)
        return st;
    kn_graph *fg = kn_model_new_graph(fm, path, err);
    kn_model_free(fm);
    if (!fg)
        return err && err->status ? err->status : KN_ERR_OOM;
    kn_node *ps[MAX_PARAMS];
    int n = kn_graph_params(fg, false, ps, MAX_PARAMS);
    for (int i = 0; !st && i < n && i < MAX_PARAMS; i++)
        if (!kn_graph_find(mine, kn_node_name(ps[i])))
            st = kn_error_set(err, KN_ERR_SHAPE, "%s holds parameter \"%.200s\", which the model does not have: "
                              "checkpoint of a different model?", path, kn_node_name(ps[i]));
    kn_graph_free(fg);
    return st;
}

kn_status kn__init_from(kn_graph *g, const kn_model *m, const char *spec, kn__norm *norm, char *pruning,
                        size_t pruning_size, kn_error *err)
{
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, stat(spec, &sb) == 0 && S_ISDIR(sb.st_mode) ? "%s/model.safetensors" : "%s", spec);
    kn_graph *sg = kn_model_new_graph(m, path, err);
    if (!sg)
        return err && err->status ? err->status : KN_ERR_OOM;
    kn_meta meta = {0};
    kn_status st = kn_checkpoint_load(sg, path, true, &meta, err);
    if (!st && kn_meta_get(&meta, "kiln.model"))
        st = same_parameters(sg, kn_meta_get(&meta, "kiln.model"), path, err);
    kn_node *ps[MAX_PARAMS];
    int n = st ? 0 : kn_graph_params(sg, false, ps, MAX_PARAMS);
    if (n > MAX_PARAMS)
        st = kn_error_set(err, KN_ERR_UNSUPPORTED, "the model has %d parameter tensors; at most %d are supported", n,
                          MAX_PARAMS);
    for (int i = 0; !st && i < n; i++) { /* the training graph built the same model: all there */
        kn_node *q = kn_graph_find(g, kn_node_name(ps[i]));
        if (!q || kn_node_numel(q) != kn_node_numel(ps[i]) || kn_node_dtype(q) != kn_node_dtype(ps[i]))
            st = kn_error_set(err, KN_ERR_ARG, "init_from: the training graph has no parameter %s like the model's",
                              kn_node_name(ps[i]));
    }
    for (int i = 0; !st && i < n; i++)
        memcpy(kn_graph_param_data(g, kn_graph_find(g, kn_node_name(ps[i]))), kn_graph_param_data(sg, ps[i]),
               (size_t)kn_node_numel(ps[i]) * kn_dtype_size(kn_node_dtype(ps[i])));
    if (!st && kn_meta_get(&meta, "kiln.norm_std")) {
        const char *sc = kn_meta_get(&meta, "kiln.norm_scale"), *mu = kn_meta_get(&meta, "kiln.norm_mean");
        float sd = strtof(kn_meta_get(&meta, "kiln.norm_std"), NULL);
        if (sc && mu && sd > 0) {
            norm->scale = strtof(sc, NULL);
            norm->mean = strtof(mu, NULL);
            norm->std = sd;
        }
    }
    if (!st)
        snprintf(pruning, pruning_size, "%s", kn_meta_get(&meta, "kiln.pruning") ? kn_meta_get(&meta, "kiln.pruning") : "");
    kn_meta_clear(&meta);
    kn_graph_free(sg);
    return st;
}
