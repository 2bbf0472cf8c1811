/* cmd_info.c — `kiln info MODEL|CHECKPOINT`: layers with output shapes, parameter counts and
 * FLOPs, the recipe, and for checkpoints the training state stored in them. */
#include <string.h>

#include "cli.h"

int cmd_info(int argc, char **argv)
{
    if (argc < 3 || cli_flag(argv, 2, "--help") || cli_flag(argv, 2, "-h")) {
        printf("usage: kiln info MODEL.kiln|NAME|CHECKPOINT.safetensors\n");
        return argc < 3 ? 2 : 0;
    }
    const char *spec = argv[2];
    kn_error err = {0};
    kn_model *m = NULL;
    kn_meta meta = {0};
    size_t len = strlen(spec);
    bool ckpt = len > 12 && !strcmp(spec + len - 12, ".safetensors");
    if (ckpt) {
        if (kn_checkpoint_read_meta(spec, &meta, &err))
            return cli_fail("info", &err);
        const char *text = kn_meta_get(&meta, "kiln.model");
        if (!text) {
            kn_meta_clear(&meta);
            fprintf(stderr, "kiln info: %s has no kiln.model metadata: not a kiln checkpoint\n", spec);
            return 1;
        }
        if (kn_model_parse(&m, text, spec, &err)) {
            kn_meta_clear(&meta);
            return cli_fail("info", &err);
        }
    } else if (cli_load_model(spec, &m, &err)) {
        return cli_fail("info", &err);
    }
    int rc = kn_model_summary(m, stdout, &err) ? cli_fail("info", &err) : 0;
    if (!rc && ckpt) {
        const char *keys[] = {"kiln.epoch", "kiln.step", "kiln.seed", "kiln.recipe", "kiln.distill", "kiln.quantized",
                              "kiln.calibration", "kiln.pruning"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            const char *v = kn_meta_get(&meta, keys[i]);
            if (v)
                printf("%-12s %s\n", keys[i] + 5, v);
        }
    }
    kn_meta_clear(&meta);
    kn_model_free(m);
    return rc;
}
