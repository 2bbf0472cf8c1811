/* cmd_quantize.c — `kiln quantize`: int8 post-training quantisation of a trained checkpoint
 * (kiln/quant.h), calibrated on training examples; writes DIR/model.safetensors, which eval,
 * predict and bench accept like any checkpoint. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "kiln/quant.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: kiln quantize --model CKPT --out DIR [options]\n"
            "  --model CKPT        FP32 checkpoint (DIR/model.safetensors or its directory)\n"
            "  --out DIR           writes DIR/model.safetensors (int8 weights, f32 scales; kiln.quantized = int8)\n"
            "  --data D            calibration data: fashion-mnist (default), mnist, cifar10 or a directory;\n"
            "                      examples from its training split\n"
            "  --calib N           calibration examples, spread evenly over the split (default 1000)\n"
            "  --calib-method M    minmax (default: the observed range) or percentile (clip outliers)\n"
            "  --percentile P      percentile range [100-P, P] (default 99.99)\n"
            "  --threads N         CPU threads (default: all cores)\n"
            "Weights: symmetric int8 per output channel. Inputs of conv/dense layers: asymmetric uint8\n"
            "per tensor. Then: kiln eval --model DIR/model.safetensors, kiln bench --model ... --infer.\n");
}

int cmd_quantize(int argc, char **argv)
{
    const char *model = NULL, *out = NULL, *data = "fashion-mnist";
    kn_quant_opts o;
    kn_quant_opts_defaults(&o);
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        int r = 0;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            help(stdout);
            return 0;
        } else if ((r = cli_opt(argc, argv, &i, "--model", &v))) {
            model = v;
        } else if ((r = cli_opt(argc, argv, &i, "--out", &v))) {
            out = v;
        } else if ((r = cli_opt(argc, argv, &i, "--data", &v))) {
            data = v;
        } else if ((r = cli_opt(argc, argv, &i, "--calib", &v))) {
            long long n;
            if (!cli_int("quantize", "--calib", v, 1, (long long)1 << 40, &n))
                return 2;
            o.calib = n;
        } else if ((r = cli_opt(argc, argv, &i, "--calib-method", &v))) {
            if (!strcmp(v, "minmax"))
                o.method = KN_CALIB_MINMAX;
            else if (!strcmp(v, "percentile"))
                o.method = KN_CALIB_PERCENTILE;
            else {
                fprintf(stderr, "kiln quantize: --calib-method: '%s' is not minmax or percentile\n", v);
                return 2;
            }
        } else if ((r = cli_opt(argc, argv, &i, "--percentile", &v))) {
            if (!cli_double("quantize", "--percentile", v, 50.000001, 100, &o.percentile))
                return 2;
        } else if ((r = cli_opt(argc, argv, &i, "--threads", &v))) {
            long long t;
            if (!cli_int("quantize", "--threads", v, 0, 1024, &t))
                return 2;
            o.threads = (int)t;
        } else {
            fprintf(stderr, "kiln quantize: unknown option '%s' (see kiln quantize --help)\n", argv[i]);
            return 2;
        }
        if (r < 0) {
            fprintf(stderr, "kiln quantize: %s needs a value\n", argv[i]);
            return 2;
        }
    }
    if (!model || !out) {
        fprintf(stderr, "kiln quantize: give --model CKPT and --out DIR (see kiln quantize --help)\n");
        return 2;
    }
    kn_error err = {0};
    if (kn_make_dirs(out) != 0) {
        kn_error_set(&err, KN_ERR_IO, "cannot create the output directory %s: %s", out, strerror(errno));
        return cli_fail("quantize", &err);
    }
    kn_dataset *train = NULL, *test = NULL;
    if (kn_dataset_open(data, &train, &test, &err))
        return cli_fail("quantize", &err);
    kn_dataset_free(test);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    kn_status st = kn_quantize(model, train, &o, path, &err);
    kn_dataset_free(train);
    if (st)
        return cli_fail("quantize", &err);
    printf("saved: %s (int8, calibrated on %lld examples of %s, %s)\n", path, (long long)o.calib, data,
           o.method == KN_CALIB_PERCENTILE ? "percentile" : "minmax");
    return 0;
}
