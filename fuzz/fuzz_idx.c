/* fuzz_idx.c — libFuzzer harness for the IDX reader (kn_dataset_load_idx: MNIST-family image
 * and label files, plain or gzip). One input holds both files (fuzz_common.h: two length
 * bytes, the image file, the label file); each is written to its own temporary file and read
 * back. A failure must be KN_ERR_FORMAT, KN_ERR_UNSUPPORTED or KN_ERR_OOM with a message; a
 * success must be a coherent data set. There is no memory-based entry point in src/data/idx.c,
 * hence the files. */
#include "fuzz_common.h"

static const kn_status allowed[] = {KN_ERR_FORMAT, KN_ERR_UNSUPPORTED, KN_ERR_OOM, KN_STATUS_COUNT};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *images, *labels;
    if (!images) {
        images = kf_tmp("-images-idx3-ubyte");
        labels = kf_tmp("-labels-idx1-ubyte");
    }
    const uint8_t *a, *b;
    size_t alen, blen;
    kf_split(data, size, &a, &alen, &b, &blen);
    kf_write(images, a, alen);
    kf_write(labels, b, blen);
    kn_dataset *ds = NULL;
    kn_error e = {0};
    kn_status st = kn_dataset_load_idx(&ds, images, labels, &e);
    kf_check_error(st, &e, allowed);
    if (st == KN_OK) {
        kf_check_dataset(ds);
        if (ds->dtype != KN_U8 || ds->ndim != 3 || ds->shape[0] != 1 || ds->classes < 10)
            kf_fail("an IDX data set that is not u8 [1, rows, cols]", st, &e);
    } else if (ds) {
        kf_fail("an error with a data set handed out", st, &e);
    }
    kn_dataset_free(ds);
    return 0;
}
