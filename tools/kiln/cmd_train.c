/* cmd_train.c — `kiln train`: the main job. Reads a model (file or built-in example) and a
 * data set, trains with the model's recipe overridden by command-line options, prints
 * progress, test accuracy and the confusion matrix, and writes the run directory. The option
 * parsing and the run are shared with `kiln distill` (cli_train_main with its own options). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kiln train [--model FILE|NAME] [--data fashion-mnist|mnist|DIR] [options]\n"
            "  --model M          model description file, or a built-in example (");
    cli_list_builtin(f);
    fprintf(f, "); default model_b\n");
    cli_train_options_help(f);
}

void cli_train_options_help(FILE *f)
{
    fprintf(f,
            "  --data D           data set (default fashion-mnist)\n"
            "  --out DIR          where to write model.safetensors, metrics.csv, curves.png, summary.json\n"
            "                     (default runs/<model name>)\n"
            "  --epochs N --batch N --lr X --optimizer sgd|adam|adamw --momentum X --nesterov\n"
            "  --weight-decay X --schedule constant|step|cosine --warmup EPOCHS --step-size N --gamma X\n"
            "  --clip NORM --accum N --crop PAD --flip --no-augment --val-split FRACTION\n"
            "                     override the model's recipe (see docs/model-format.md)\n"
            "  --precision P      fp32 (default), bf16 or fp16: mixed precision for conv/dense products\n"
            "                     (FP32 master weights; softmax, losses, normalisation and reductions in FP32;\n"
            "                     evaluation in FP32); see docs/compression.md\n"
            "  --loss-scale S     fp16: initial dynamic loss scale (default 65536); a step with inf/NaN\n"
            "                     gradients is skipped and halves it, 2000 clean steps double it\n"
            "  --loss-scale-window N  fp16: clean steps before the loss scale doubles (default 2000)\n"
            "  --seed N           random seed (default 42)\n"
            "  --threads N        CPU threads (default: all cores)\n"
            CLI_DEVICE_HELP
            "  --resident-data    keep the training set on the GPU (when it fits in half its free memory)\n"
            "                     and gather, normalise and augment each batch there; same results\n"
            "  --resume DIR       continue the run saved in DIR (same model, data and seed)\n"
            "  --init-from CKPT   start from the weights of a checkpoint (file or run directory) of the same\n"
            "                     model, with a fresh optimizer and schedule: fine-tuning\n"
            "  --stop-after-steps N  save and stop after N optimizer steps (resume later)\n"
            "  --debug-numerics   stop at the first op that produces NaN/Inf and name it (slow); without\n"
            "                     it a step with a non-finite loss or gradient is skipped and counted\n"
            "  --qat              quantisation-aware training: int8 fake quantisation of conv/dense weights\n"
            "                     (per channel) and inputs (straight-through gradient); then kiln quantize\n"
            "  --quiet            no progress output\n");
}

/* Maps a command-line option to a recipe key (same keys as the model file's `train` lines). */
static const char *recipe_key(const char *opt)
{
    static const char *map[][2] = {{"--epochs", "epochs"},     {"--batch", "batch"},   {"--lr", "lr"},
                                   {"--optimizer", "optimizer"}, {"--momentum", "momentum"},
                                   {"--weight-decay", "weight_decay"}, {"--schedule", "schedule"},
                                   {"--warmup", "warmup"},     {"--step-size", "step_size"}, {"--gamma", "gamma"},
                                   {"--clip", "clip"},         {"--accum", "accum"},   {"--crop", "crop"},
                                   {"--val-split", "val_split"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i][0], opt))
            return map[i][1];
    return NULL;
}

int cmd_train(int argc, char **argv)
{
    const cli_train_ext x = {.cmd = "train", .usage = usage, .default_model = "model_b"};
    return cli_train_main(argc, argv, &x);
}

int cli_train_main(int argc, char **argv, const cli_train_ext *x)
{
    const char *model_spec = x->default_model, *data = "fashion-mnist", *out = NULL;
    kn_train_opts o;
    kn_train_opts_defaults(&o);
    o.progress = true;
    /* recipe overrides are applied after the model's own recipe: remember them */
    const char *keys[64], *vals[64];
    int n_over = 0;
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        int r;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            x->usage(stdout);
            return 0;
        } else if (x->option && (r = x->option(argc, argv, &i, &o))) {
            if (r == 2)
                return 2;
        } else if ((r = cli_opt(argc, argv, &i, "--model", &v))) {
            model_spec = v;
        } else if ((r = cli_opt(argc, argv, &i, "--data", &v))) {
            data = v;
        } else if ((r = cli_opt(argc, argv, &i, "--out", &v))) {
            out = v;
        } else if ((r = cli_opt(argc, argv, &i, "--resume", &v))) {
            o.resume = v;
        } else if ((r = cli_opt(argc, argv, &i, "--init-from", &v))) {
            o.init_from = v;
        } else if ((r = cli_opt(argc, argv, &i, "--seed", &v))) {
            long long s;
            if (!cli_int(x->cmd, "--seed", v, 0, (long long)1 << 62, &s))
                return 2;
            o.seed = (uint64_t)s;
        } else if ((r = cli_opt(argc, argv, &i, "--precision", &v))) {
            kn_error perr = {0};
            if (kn_precision_parse(v, &o.precision, &perr)) {
                cli_fail(x->cmd, &perr);
                return 2;
            }
        } else if ((r = cli_opt(argc, argv, &i, "--loss-scale", &v))) {
            if (!cli_double(x->cmd, "--loss-scale", v, 0x1p-24, 0x1p40, &o.loss_scale))
                return 2;
        } else if ((r = cli_opt(argc, argv, &i, "--loss-scale-window", &v))) {
            long long w;
            if (!cli_int(x->cmd, "--loss-scale-window", v, 1, 1 << 30, &w))
                return 2;
            o.loss_scale_window = (int)w;
        } else if ((r = cli_opt(argc, argv, &i, "--threads", &v))) {
            long long t;
            if (!cli_int(x->cmd, "--threads", v, 0, 1024, &t))
                return 2;
            o.threads = (int)t;
        } else if ((r = cli_opt(argc, argv, &i, "--stop-after-steps", &v))) {
            long long t;
            if (!cli_int(x->cmd, "--stop-after-steps", v, 1, (long long)1 << 62, &t))
                return 2;
            o.stop_after_steps = t;
        } else if ((r = cli_opt(argc, argv, &i, "--device", &v))) {
            if (r > 0 && !cli_device(x->cmd, v, &o.backend, &o.device))
                return 2;
        } else if (cli_flag(argv, i, "--deterministic")) {
            o.deterministic = true;
        } else if (cli_flag(argv, i, "--resident-data")) {
            o.resident_data = true;
        } else if (cli_flag(argv, i, "--quiet")) {
            o.progress = false;
        } else if (cli_flag(argv, i, "--debug-numerics")) {
            o.debug_numerics = true;
        } else if (cli_flag(argv, i, "--qat")) {
            o.qat = true;
        } else if (cli_flag(argv, i, "--nesterov") || cli_flag(argv, i, "--flip") ||
                   cli_flag(argv, i, "--no-augment")) {
            if (n_over + 2 > 64)
                break;
            if (!strcmp(argv[i], "--no-augment")) {
                keys[n_over] = "crop", vals[n_over++] = "0";
                keys[n_over] = "flip", vals[n_over++] = "0";
            } else {
                keys[n_over] = argv[i] + 2, vals[n_over++] = "1";
            }
        } else {
            const char *eq = strchr(argv[i], '=');
            char opt[64];
            snprintf(opt, sizeof opt, "%.*s", eq ? (int)(eq - argv[i]) : (int)strlen(argv[i]), argv[i]);
            const char *key = recipe_key(opt);
            if (!key) {
                fprintf(stderr, "kiln %s: unknown option '%s' (see kiln %s --help)\n", x->cmd, argv[i], x->cmd);
                return 2;
            }
            r = cli_opt(argc, argv, &i, opt, &v);
            if (r == 1 && n_over < 64) {
                keys[n_over] = key;
                vals[n_over++] = v;
            }
        }
        if (r < 0) {
            fprintf(stderr, "kiln %s: %s needs a value\n", x->cmd, argv[i]);
            return 2;
        }
    }

    if (!model_spec) {
        fprintf(stderr, "kiln %s: give the model to train with --model FILE|NAME\n", x->cmd);
        return 2;
    }
    if (x->check && x->check(&o))
        return 2;
    char why[512];
    if (kn_device_resolve(&o.backend, &o.device, why, sizeof why)) { /* before loading any data */
        fprintf(stderr, "kiln %s: %s\n", x->cmd, why);
        return 1;
    }
    kn_error err = {0};
    if ((o.loss_scale > 0 || o.loss_scale_window > 0) && o.precision != KN_PRECISION_FP16) {
        fprintf(stderr, "kiln %s: --loss-scale and --loss-scale-window apply to --precision fp16 only (%s needs no "
                        "loss scaling)\n", x->cmd, kn_precision_name(o.precision));
        return 2;
    }
    kn_model *m = NULL;
    if (cli_load_model(model_spec, &m, &err))
        return cli_fail(x->cmd, &err);
    o.recipe = *kn_model_recipe(m);
    for (int k = 0; k < n_over; k++)
        if (kn_recipe_set(&o.recipe, keys[k], vals[k], &err)) {
            kn_model_free(m);
            return cli_fail(x->cmd, &err);
        }
    char out_buf[512];
    if (!out) {
        const char *base = strrchr(model_spec, '/');
        base = base ? base + 1 : model_spec;
        snprintf(out_buf, sizeof out_buf, "runs/%.*s%s", (int)strcspn(base, "."), base,
                 x->out_suffix ? x->out_suffix : "");
        out = out_buf;
    }
    o.out_dir = out;

    kn_dataset *train = NULL, *test = NULL;
    if (kn_dataset_open(data, &train, &test, &err)) {
        kn_model_free(m);
        return cli_fail(x->cmd, &err);
    }
    const kn_recipe *r = &o.recipe;
    char dev[32];
    fprintf(stderr, "kiln %s: %s on %s (%lld train, %lld test examples), %s lr %g, batch %d, %d epochs, seed %llu, "
            "device %s%s%s\n", x->cmd, model_spec, data, (long long)train->n, (long long)(test ? test->n : 0),
            r->optimizer, r->lr, r->batch, r->epochs, (unsigned long long)o.seed,
            kn_device_name(o.backend, o.device, dev, sizeof dev), o.precision ? ", precision " : "",
            o.precision ? kn_precision_name(o.precision) : "");
    if (o.teacher)
        fprintf(stderr, "kiln %s: teacher %s, temperature %g, alpha %g\n", x->cmd, o.teacher, o.temperature, o.alpha);
    kn_train_result res;
    kn_status st = kn_train(m, train, test, &o, &res, &err);
    int rc = 0;
    if (st) {
        rc = cli_fail(x->cmd, &err);
    } else if (res.stopped) {
        printf("stopped after %lld steps; resume with: kiln %s --model %s --data %s --resume %s%s%s\n",
               (long long)res.steps, x->cmd, model_spec, data, out, o.teacher ? " --teacher " : "",
               o.teacher ? o.teacher : "");
    } else {
        printf("test accuracy: %.4f (%lld examples), test loss %.4f\n", res.test.accuracy, (long long)res.test.n,
               res.test.loss);
        printf("training: %d epochs, %.1f s, %.0f images/s\n", res.epochs_done, res.seconds, res.train_images_per_s);
        if (res.loss_scale > 0)
            printf("loss scaling: final scale %g, %lld steps skipped, halved %lld times, doubled %lld times\n",
                   res.loss_scale, (long long)res.skipped_steps, (long long)res.scale_halvings,
                   (long long)res.scale_doublings);
        cli_print_confusion(stdout, &res.test, test ? test->name : NULL);
        printf("saved: %s/model.safetensors, %s/metrics.csv, %s/curves.png, %s/summary.json\n", out, out, out, out);
    }
    if (!st)
        kn_train_result_free(&res);
    kn_dataset_free(train);
    kn_dataset_free(test);
    kn_model_free(m);
    return rc;
}
