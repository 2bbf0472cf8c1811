/* cmd_prune.c — `kiln prune`: prunes a trained checkpoint and fine-tunes it. Unstructured:
 * magnitude masks per layer or global, oneshot or gradual, kept through fine-tuning (kn_train
 * with init_from and prune). Structured: removes the conv filters (and optionally dense units)
 * with the smallest L1 norms into a smaller model (kn_prune_structured), then fine-tunes it.
 * Prints the test accuracy before pruning, right after it and after fine-tuning, the sparsity
 * or the filters per layer, and the parameter counts. The work is in src/compress. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "kiln/io.h"
#include "kiln/prune.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kiln prune --model CHECKPOINT --sparsity X [--structured] [options]\n"
            "  --model CKPT        trained kiln checkpoint (a .safetensors file or a run directory)\n"
            "  --sparsity X        unstructured: fraction of conv/dense weights set to zero, in [0, 1);\n"
            "                      --structured: fraction of the filters of each conv layer removed\n"
            "  --structured        remove whole conv filters (the model becomes smaller and faster);\n"
            "                      layers feeding a residual add, a layernorm or the output stay whole\n"
            "  --dense             with --structured: remove hidden dense units too\n"
            "  --global            unstructured: one magnitude threshold over all layers (default: per layer)\n"
            "  --schedule S        unstructured: oneshot (default) or gradual (sparsity raised over the\n"
            "                      fine-tuning steps, cubic schedule of Zhu & Gupta 2017)\n"
            "  --ramp F            gradual: fraction of the fine-tuning steps the ramp takes (default 0.5)\n"
            "  --finetune-epochs N fine-tuning epochs after pruning (default 2; 0 = prune only)\n"
            "  --lr X              fine-tuning learning rate (default: the model recipe's lr / 3)\n"
            "  --out DIR           where to write the pruned model.safetensors, metrics.csv, curves.png,\n"
            "                      summary.json (default runs/pruned)\n"
            "  --data D            data set for fine-tuning and accuracy (default fashion-mnist)\n"
            "  --seed N            random seed of the fine-tuning run (default 42)\n"
            "  --threads N         CPU threads (default: all cores)\n"
            "  --quiet             no progress output\n");
}

/* Test accuracy of a checkpoint. */
static kn_status accuracy(const char *ckpt, const kn_dataset *test, int threads, double *acc, kn_error *err)
{
    kn_infer *inf = NULL;
    kn_status st = kn_infer_load(&inf, ckpt, 1000, threads, err);
    kn_eval_result r = {0};
    if (!st)
        st = kn_infer_evaluate(inf, test, &r, err);
    if (!st)
        *acc = r.accuracy;
    kn_eval_result_free(&r);
    kn_infer_free(inf);
    return st;
}

static void print_sparsity(const char *dir)
{
    kn_prune_layer_stat *s = NULL;
    int n = 0;
    int64_t params = 0, zeros = 0, prunable = 0;
    kn_error err = {0};
    if (kn_prune_stats(dir, &s, &n, &params, &err)) {
        fprintf(stderr, "kiln prune: %s\n", err.msg);
        return;
    }
    printf("%-24s %10s %10s %9s\n", "weight", "elements", "zeros", "sparsity");
    for (int i = 0; i < n; i++) {
        printf("%-24s %10lld %10lld %8.2f%%\n", s[i].name, (long long)s[i].numel, (long long)s[i].zeros,
               100.0 * (double)s[i].zeros / (double)s[i].numel);
        zeros += s[i].zeros;
        prunable += s[i].numel;
    }
    printf("%-24s %10lld %10lld %8.2f%%\n", "conv/dense weights", (long long)prunable, (long long)zeros,
           prunable ? 100.0 * (double)zeros / (double)prunable : 0.0);
    printf("parameters: %lld, nonzero %lld (%.1f%% of them)\n", (long long)params, (long long)(params - zeros),
           params ? 100.0 * (double)(params - zeros) / (double)params : 0.0);
    kn_free(s);
}

typedef struct args {
    const char *model, *out, *data;
    double sparsity, lr, ramp;
    bool structured, dense, global, gradual, quiet, sparsity_given;
    long long epochs, seed, threads;
} args;

static int parse(int argc, char **argv, args *a)
{
    *a = (args){.out = "runs/pruned", .data = "fashion-mnist", .epochs = 2, .seed = 42};
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        int r = 0;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            usage(stdout);
            return 0;
        } else if (cli_flag(argv, i, "--structured")) {
            a->structured = true;
        } else if (cli_flag(argv, i, "--dense")) {
            a->dense = true;
        } else if (cli_flag(argv, i, "--global")) {
            a->global = true;
        } else if (cli_flag(argv, i, "--quiet")) {
            a->quiet = true;
        } else if ((r = cli_opt(argc, argv, &i, "--model", &v)) == 1) {
            a->model = v;
        } else if (!r && (r = cli_opt(argc, argv, &i, "--out", &v)) == 1) {
            a->out = v;
        } else if (!r && (r = cli_opt(argc, argv, &i, "--data", &v)) == 1) {
            a->data = v;
        } else if (!r && (r = cli_opt(argc, argv, &i, "--sparsity", &v)) == 1) {
            if (!cli_double("prune", "--sparsity", v, 0, 0.999, &a->sparsity))
                return 2;
            a->sparsity_given = true;
        } else if (!r && (r = cli_opt(argc, argv, &i, "--lr", &v)) == 1) {
            if (!cli_double("prune", "--lr", v, 1e-12, 100, &a->lr))
                return 2;
        } else if (!r && (r = cli_opt(argc, argv, &i, "--ramp", &v)) == 1) {
            if (!cli_double("prune", "--ramp", v, 1e-6, 1, &a->ramp))
                return 2;
        } else if (!r && (r = cli_opt(argc, argv, &i, "--schedule", &v)) == 1) {
            if (strcmp(v, "oneshot") && strcmp(v, "gradual")) {
                fprintf(stderr, "kiln prune: --schedule: bad value '%s' (expected oneshot or gradual)\n", v);
                return 2;
            }
            a->gradual = !strcmp(v, "gradual");
        } else if (!r && (r = cli_opt(argc, argv, &i, "--finetune-epochs", &v)) == 1) {
            if (!cli_int("prune", "--finetune-epochs", v, 0, 100000, &a->epochs))
                return 2;
        } else if (!r && (r = cli_opt(argc, argv, &i, "--seed", &v)) == 1) {
            if (!cli_int("prune", "--seed", v, 0, (long long)1 << 62, &a->seed))
                return 2;
        } else if (!r && (r = cli_opt(argc, argv, &i, "--threads", &v)) == 1) {
            if (!cli_int("prune", "--threads", v, 0, 1024, &a->threads))
                return 2;
        } else if (!r) {
            fprintf(stderr, "kiln prune: unknown option '%s' (see kiln prune --help)\n", argv[i]);
            return 2;
        }
        if (r < 0) {
            fprintf(stderr, "kiln prune: %s needs a value\n", argv[i]);
            return 2;
        }
    }
    if (!a->model || !a->sparsity_given) {
        fprintf(stderr, "kiln prune: --model CHECKPOINT and --sparsity X are required (see kiln prune --help)\n");
        return 2;
    }
    if (a->structured && (a->global || a->gradual || a->ramp > 0)) {
        fprintf(stderr, "kiln prune: --global, --schedule and --ramp are for unstructured pruning, not --structured\n");
        return 2;
    }
    if (a->dense && !a->structured) {
        fprintf(stderr, "kiln prune: --dense needs --structured\n");
        return 2;
    }
    return -1; /* go on */
}

/* The trained checkpoint's model (from its kiln.model metadata). */
static kn_status source_model(const char *spec, char *path, size_t size, kn_model **m, kn_error *err)
{
    struct stat sb;
    snprintf(path, size, stat(spec, &sb) == 0 && S_ISDIR(sb.st_mode) ? "%s/model.safetensors" : "%s", spec);
    kn_meta meta = {0};
    kn_status st = kn_checkpoint_read_meta(path, &meta, err);
    if (!st) {
        const char *text = kn_meta_get(&meta, "kiln.model");
        st = text ? kn_model_parse(m, text, path, err)
                  : kn_error_set(err, KN_ERR_FORMAT, "%s has no kiln.model metadata: not a kiln checkpoint", path);
    }
    kn_meta_clear(&meta);
    return st;
}

int cmd_prune(int argc, char **argv)
{
    args a;
    int rc = parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    kn_error err = {0};
    char src[4096], dst[4096];
    kn_model *m = NULL, *pm = NULL;
    kn_dataset *train = NULL, *test = NULL;
    snprintf(dst, sizeof dst, "%s/model.safetensors", a.out);
    kn_status st = source_model(a.model, src, sizeof src, &m, &err);
    if (!st)
        st = kn_dataset_open(a.data, &train, &test, &err);
    if (!st && !test)
        st = kn_error_set(&err, KN_ERR_ARG, "data set %s has no test split to measure accuracy on", a.data);
    double before = 0, pruned_acc = 0;
    int64_t params_before = 0;
    if (!st)
        st = accuracy(src, test, (int)a.threads, &before, &err);
    if (!st)
        st = kn_model_stats(m, &params_before, NULL, &err);
    if (st)
        goto done;
    printf("before: %s, test accuracy %.4f, %lld parameters\n", src, before, (long long)params_before);
    fflush(stdout);

    kn_train_opts o;
    kn_train_opts_defaults(&o);
    kn_prune_opts po;
    kn_prune_opts_defaults(&po);
    po.sparsity = a.sparsity;
    po.global = a.global;
    po.schedule = a.gradual ? KN_PRUNE_GRADUAL : KN_PRUNE_ONESHOT;
    po.ramp = a.ramp;
    o.seed = (uint64_t)a.seed;
    o.threads = (int)a.threads;
    o.progress = !a.quiet;
    o.out_dir = a.out;
    if (a.structured) {
        if (kn_make_dirs(a.out) != 0) {
            st = kn_error_set(&err, KN_ERR_IO, "cannot create the output directory %s: %s", a.out, strerror(errno));
            goto done;
        }
        kn_struct_prune_opts so;
        kn_struct_prune_opts_defaults(&so);
        so.fraction = a.sparsity;
        so.dense = a.dense;
        kn_struct_prune_report rep;
        st = kn_prune_structured(src, dst, &so, &pm, &rep, &err);
        if (st)
            goto done;
        printf("%-16s %8s %8s\n", "layer", "before", "after");
        for (int i = 0; i < rep.n; i++)
            printf("%-16s %8lld %8lld%s%s\n", rep.layers[i].name, (long long)rep.layers[i].before,
                   (long long)rep.layers[i].after, rep.layers[i].skipped ? "   kept whole: " : "",
                   rep.layers[i].skipped ? rep.layers[i].skipped : "");
        printf("parameters %lld -> %lld (%.1f%%), forward FLOPs per example %.4g -> %.4g (%.1f%%)\n",
               (long long)rep.params_before, (long long)rep.params_after,
               100.0 * (double)rep.params_after / (double)rep.params_before, rep.flops_before, rep.flops_after,
               100.0 * rep.flops_after / rep.flops_before);
        st = accuracy(dst, test, (int)a.threads, &pruned_acc, &err);
        if (st)
            goto done;
        printf("after pruning, before fine-tuning: test accuracy %.4f\n", pruned_acc);
        o.init_from = dst;
    } else {
        /* the one-shot pruned model without fine-tuning, for comparison (nothing written) */
        kn_train_opts z = o;
        kn_prune_opts zp = po;
        zp.schedule = KN_PRUNE_ONESHOT;
        z.recipe = *kn_model_recipe(m);
        z.recipe.epochs = 0;
        z.init_from = src;
        z.prune = &zp;
        z.out_dir = NULL;
        z.progress = false;
        kn_train_result zr;
        st = kn_train(m, train, test, &z, &zr, &err);
        if (st)
            goto done;
        pruned_acc = zr.test.accuracy;
        kn_train_result_free(&zr);
        printf("after pruning to %.1f%% (%s, one-shot), before fine-tuning: test accuracy %.4f\n", 100 * a.sparsity,
               a.global ? "global" : "per layer", pruned_acc);
        o.init_from = src;
        o.prune = &po;
    }
    fflush(stdout);
    const kn_model *ft = pm ? pm : m;
    o.recipe = *kn_model_recipe(ft);
    o.recipe.epochs = (int)a.epochs;
    o.recipe.lr = a.lr > 0 ? a.lr : o.recipe.lr / 3; /* lr/10 recovered less on model B (results file) */
    if (a.epochs > 0)
        fprintf(stderr, "kiln prune: fine-tuning %lld epochs, %s lr %g, batch %d, seed %lld\n", a.epochs,
                o.recipe.optimizer, o.recipe.lr, o.recipe.batch, a.seed);
    double after = pruned_acc;
    if (a.epochs > 0 || !a.structured) { /* structured with 0 epochs: the pruned file is the result */
        kn_train_result res;
        st = kn_train(ft, train, test, &o, &res, &err);
        if (st)
            goto done;
        after = res.test.accuracy;
        kn_train_result_free(&res);
    }
    if (!a.structured)
        print_sparsity(a.out);
    printf("after %s pruning and %lld fine-tuning epochs: test accuracy %.4f (before %.4f: %+.2f points)\n",
           a.structured ? "structured" : "unstructured", a.epochs, after, before, 100 * (after - before));
    printf("saved: %s\n", dst);
done:
    rc = st ? cli_fail("prune", &err) : 0;
    kn_dataset_free(train);
    kn_dataset_free(test);
    kn_model_free(m);
    kn_model_free(pm);
    return rc;
}
