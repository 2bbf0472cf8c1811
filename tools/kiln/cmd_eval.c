/* cmd_eval.c — `kiln eval` (accuracy, loss and confusion matrix of a saved model on a data
 * set's test split; several models side by side with size and speed: eval_table.c) and
 * `kiln predict` (top classes for PNG images or data-set examples). */
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_eval(int argc, char **argv)
{
    const char *models[16], *data = "fashion-mnist";
    int n_models = 0, threads = 0, json = 0, compare = 0, device = 0;
    double seconds = 1.0;
    kn_backend_kind backend = KN_BACKEND_CPU;
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        int r = 0;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            printf("usage: kiln eval --model DIR/model.safetensors [--model ...] [--data fashion-mnist|DIR] [--json] "
                   "[--threads N] [--device D]\n"
                   "  one model: accuracy, loss and the confusion matrix\n"
                   "  several models (or --compare): a side-by-side table, one row per model: accuracy, loss,\n"
                   "    parameters, checkpoint size, FLOPs per example, latency at batch 1 (ms) and throughput\n"
                   "    at batch 64 (examples/s); checkpoints may be given as run directories\n"
                   "  --bench-seconds S  time each latency/throughput measurement for at least S seconds and\n"
                   "                     10 runs (default 1)\n"
                   "  --json             JSON (an array with several models)\n" CLI_DEVICE_HELP);
            return 0;
        } else if ((r = cli_opt(argc, argv, &i, "--model", &v))) {
            if (r > 0 && n_models < 16)
                models[n_models++] = v;
        } else if ((r = cli_opt(argc, argv, &i, "--data", &v))) {
            data = v;
        } else if ((r = cli_opt(argc, argv, &i, "--threads", &v))) {
            long long t;
            if (!cli_int("eval", "--threads", v, 0, 1024, &t))
                return 2;
            threads = (int)t;
        } else if ((r = cli_opt(argc, argv, &i, "--bench-seconds", &v))) {
            if (!cli_double("eval", "--bench-seconds", v, 0, 3600, &seconds))
                return 2;
        } else if ((r = cli_opt(argc, argv, &i, "--device", &v))) {
            if (r > 0 && !cli_device("eval", v, &backend, &device))
                return 2;
        } else if (cli_flag(argv, i, "--deterministic")) {
            /* evaluation has no order-varying reductions to fix: accepted for symmetry */
        } else if (cli_flag(argv, i, "--json")) {
            json = 1;
        } else if (cli_flag(argv, i, "--compare")) {
            compare = 1;
        } else if (argv[i][0] != '-' && n_models < 16) {
            models[n_models++] = argv[i];
        } else {
            fprintf(stderr, "kiln eval: unknown option '%s'\n", argv[i]);
            return 2;
        }
        if (r < 0) {
            fprintf(stderr, "kiln eval: %s needs a value\n", argv[i]);
            return 2;
        }
    }
    if (!n_models) {
        fprintf(stderr, "kiln eval: give a checkpoint with --model DIR/model.safetensors\n");
        return 2;
    }
    kn_error err = {0};
    kn_dataset *train = NULL, *test = NULL;
    if (kn_dataset_open(data, &train, &test, &err))
        return cli_fail("eval", &err);
    kn_dataset_free(train);
    if (n_models > 1 || compare) {
        int rc = cli_eval_table(models, n_models, test, threads, json, seconds);
        kn_dataset_free(test);
        return rc;
    }
    int rc = 0;
    if (json && n_models > 1)
        printf("[\n");
    for (int k = 0; k < n_models && !rc; k++) {
        kn_infer *inf = NULL;
        kn_eval_result res = {0};
        if (kn_infer_load_on(&inf, models[k], 500, threads, backend, device, &err) ||
            kn_infer_evaluate(inf, test, &res, &err)) {
            rc = cli_fail("eval", &err);
        } else if (json) {
            printf("%s{\"model\": \"%s\", \"data\": \"%s\", \"examples\": %lld, \"accuracy\": %.6f, \"loss\": %.6f}%s\n",
                   n_models > 1 ? "  " : "", models[k], test->name, (long long)res.n, res.accuracy, res.loss,
                   k + 1 < n_models ? "," : "");
        } else {
            printf("%s on %s: accuracy %.4f, loss %.4f (%lld examples)\n", models[k], test->name, res.accuracy, res.loss,
                   (long long)res.n);
            cli_print_confusion(stdout, &res, test->name);
        }
        kn_eval_result_free(&res);
        kn_infer_free(inf);
    }
    if (json && n_models > 1 && !rc)
        printf("]\n");
    kn_dataset_free(test);
    return rc;
}

/* Reads an 8-bit PNG into u8 [C, H, W] with the model's channel count (gray <-> RGB). */
static kn_status read_png(const char *path, int c, int64_t h, int64_t w, uint8_t *out, kn_error *err)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return kn_error_set(err, KN_ERR_FORMAT, "%s: not a readable PNG file (%s)", path, img.message);
    if ((int64_t)img.height != h || (int64_t)img.width != w) {
        png_image_free(&img);
        return kn_error_set(err, KN_ERR_SHAPE, "%s is %ux%u pixels; the model expects %lldx%lld", path, img.width,
                            img.height, (long long)w, (long long)h);
    }
    img.format = c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    uint8_t *buf = malloc(PNG_IMAGE_SIZE(img));
    if (!buf || !png_image_finish_read(&img, NULL, buf, 0, NULL)) {
        free(buf);
        png_image_free(&img);
        return kn_error_set(err, KN_ERR_FORMAT, "%s: cannot decode (%s)", path, img.message);
    }
    for (int ch = 0; ch < c; ch++) /* interleaved HWC -> planar CHW */
        for (int64_t i = 0; i < h * w; i++)
            out[ch * h * w + i] = buf[i * c + ch];
    free(buf);
    return KN_OK;
}

int cmd_predict(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *files[256];
    long long indices[256], top = 3;
    int n_files = 0, n_idx = 0, threads = 0, device = 0;
    kn_backend_kind backend = KN_BACKEND_CPU;
    for (int i = 2; i < argc; i++) {
        const char *v = NULL;
        int r = 0;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            printf("usage: kiln predict --model DIR/model.safetensors IMAGE.png ... [--top K]\n"
                   "       kiln predict --model DIR/model.safetensors --data fashion-mnist --index I [--index J ...]\n"
                   "  [--threads N] [--device cpu|cuda|cuda:N|auto]\n");
            return 0;
        } else if ((r = cli_opt(argc, argv, &i, "--model", &v))) {
            model = v;
        } else if ((r = cli_opt(argc, argv, &i, "--data", &v))) {
            data = v;
        } else if ((r = cli_opt(argc, argv, &i, "--index", &v))) {
            if (n_idx < 256 && !cli_int("predict", "--index", v, 0, (long long)1 << 40, &indices[n_idx++]))
                return 2;
        } else if ((r = cli_opt(argc, argv, &i, "--top", &v))) {
            if (!cli_int("predict", "--top", v, 1, 1000, &top))
                return 2;
        } else if ((r = cli_opt(argc, argv, &i, "--threads", &v))) {
            long long t;
            if (!cli_int("predict", "--threads", v, 0, 1024, &t))
                return 2;
            threads = (int)t;
        } else if ((r = cli_opt(argc, argv, &i, "--device", &v))) {
            if (r > 0 && !cli_device("predict", v, &backend, &device))
                return 2;
        } else if (argv[i][0] != '-' && n_files < 256) {
            files[n_files++] = argv[i];
        } else {
            fprintf(stderr, "kiln predict: unknown option '%s'\n", argv[i]);
            return 2;
        }
        if (r < 0) {
            fprintf(stderr, "kiln predict: %s needs a value\n", argv[i]);
            return 2;
        }
    }
    if (!model || (!n_files && !n_idx)) {
        fprintf(stderr, "kiln predict: give --model CHECKPOINT and PNG files, or --data D --index I\n");
        return 2;
    }
    kn_error err = {0};
    kn_infer *inf = NULL;
    if (kn_infer_load_on(&inf, model, 64, threads, backend, device, &err))
        return cli_fail("predict", &err);
    const kn_model *m = kn_infer_model(inf);
    int64_t shape[3] = {1, 1, 1};
    int nd = kn_model_input_shape(m, shape);
    int64_t size = shape[0] * (nd == 3 ? shape[1] * shape[2] : 1);
    int classes = kn_model_num_classes(m);
    kn_dataset *train = NULL, *test = NULL;
    if (n_idx && kn_dataset_open(data ? data : "fashion-mnist", &train, &test, &err)) {
        kn_infer_free(inf);
        return cli_fail("predict", &err);
    }
    int n = n_files + n_idx, rc = 0;
    uint8_t *x8 = calloc((size_t)(n * size), 1);
    float *x32 = calloc((size_t)(n * size), sizeof(float));
    float *probs = calloc((size_t)n * (size_t)classes, sizeof(float));
    bool f32 = test && test->dtype == KN_F32;
    for (int k = 0; k < n_files && !rc; k++) {
        if (nd != 3)
            rc = cli_fail("predict", &(kn_error){KN_ERR_ARG, "PNG input needs an image model (input C H W)"});
        else if (read_png(files[k], (int)shape[0], shape[1], shape[2], x8 + k * size, &err))
            rc = cli_fail("predict", &err);
        for (int64_t j = 0; f32 && j < size; j++)
            x32[k * size + j] = x8[k * size + j];
    }
    for (int k = 0; k < n_idx && !rc; k++) {
        if (indices[k] >= test->n) {
            fprintf(stderr, "kiln predict: --index %lld is beyond the %lld test examples\n", indices[k],
                    (long long)test->n);
            rc = 2;
            break;
        }
        size_t esz = kn_dtype_size(test->dtype);
        memcpy(f32 ? (void *)(x32 + (n_files + k) * size) : (void *)(x8 + (n_files + k) * size),
               (const char *)test->x + (size_t)(indices[k] * size) * esz, (size_t)size * esz);
    }
    if (!rc && kn_infer_probs(inf, f32 ? (void *)x32 : (void *)x8, f32 ? KN_F32 : KN_U8, n, probs, &err))
        rc = cli_fail("predict", &err);
    const char *dsname = test ? test->name : data ? data : "fashion-mnist";
    for (int k = 0; k < n && !rc; k++) {
        if (k < n_files)
            printf("%s:", files[k]);
        else
            printf("%s[%lld] (label %d):", dsname, indices[k - n_files], test->y[indices[k - n_files]]);
        float *p = probs + (size_t)k * (size_t)classes;
        for (int t = 0; t < top && t < classes; t++) {
            int best = 0;
            for (int j = 1; j < classes; j++)
                best = p[j] > p[best] ? j : best;
            const char *name = cli_class_name(dsname, best);
            printf("  %d%s%s%s %.3f", best, name ? " (" : "", name ? name : "", name ? ")" : "", p[best]);
            p[best] = -1;
        }
        printf("\n");
    }
    free(x8);
    free(x32);
    free(probs);
    kn_dataset_free(train);
    kn_dataset_free(test);
    kn_infer_free(inf);
    return rc;
}
