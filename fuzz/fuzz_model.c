/* fuzz_model.c — libFuzzer harness for the model description format: the input, made a
 * NUL-terminated string, goes to kn_model_parse (the parser behind kn_model_load). A failure
 * must be KN_ERR_FORMAT, KN_ERR_SHAPE or KN_ERR_OOM with a message naming "<fuzz>:LINE"; a
 * success is then queried through every accessor (layer info, stats, summary to /dev/null).
 * An input with an embedded NUL is cut there, as a C string would be (kn_model_load refuses
 * such files before parsing; tests/test_corpus.c covers that). A single allocation over
 * 256 MB fails (KN_ERR_OOM, which must then be clean): a description of a few KB must not
 * need more, and the parse-time probe once allocated gigabytes of batch-norm statistics for
 * a 40-byte file (tests/corpus/model/crash-probe-allocates.kiln). */
#include "fuzz_common.h"

static const kn_status allowed[] = {KN_ERR_FORMAT, KN_ERR_SHAPE, KN_ERR_OOM, KN_STATUS_COUNT};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (!devnull) {
        if (!(devnull = fopen("/dev/null", "w")))
            abort();
        kf_cap_allocations((size_t)256 << 20);
    }
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    kn_model *m = NULL;
    kn_error e = {0};
    kn_status st = kn_model_parse(&m, text, "<fuzz>", &e);
    kf_check_error(st, &e, allowed);
    if (st == KN_OK) {
        if (!m || kn_model_num_layers(m) < 2 || kn_model_num_classes(m) < 1)
            kf_fail("an incoherent model", st, &e);
        int64_t shape[3];
        int nd = kn_model_input_shape(m, shape);
        if (nd != 1 && nd != 3)
            kf_fail("an input of neither 1 nor 3 dims", st, &e);
        for (int i = 0; i < kn_model_num_layers(m); i++) {
            kn_model_layer li;
            if (kn_model_layer_info(m, i, &li) != KN_OK || !li.name || !li.kind)
                kf_fail("a layer without info", st, &e);
        }
        int64_t params = 0;
        double flops = 0;
        if (kn_model_stats(m, &params, &flops, &e) != KN_OK || params < 0 || !(flops >= 0))
            kf_fail("stats of a parsed model", st, &e);
        if (kn_model_summary(m, devnull, &e) != KN_OK)
            kf_fail("summary of a parsed model", st, &e);
        if (strcmp(kn_model_text(m), text) != 0)
            kf_fail("the model text changed", st, &e);
    } else if (m) {
        kf_fail("an error with a model handed out", st, &e);
    } else if (!strstr(e.msg, "<fuzz>")) {
        kf_fail("a message that does not name the source", st, &e);
    }
    kn_model_free(m);
    free(text);
    return 0;
}
