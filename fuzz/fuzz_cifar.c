/* fuzz_cifar.c — libFuzzer harness for the CIFAR binary batch reader
 * (kn_dataset_load_cifar). The input is one batch file, read as CIFAR-10 and as CIFAR-100,
 * each once alone and once listed twice (the reader concatenates batches). A failure must be
 * KN_ERR_FORMAT or KN_ERR_OOM with a message; a success must be a coherent u8 [3, 32, 32] data
 * set with the record count the file size implies. The format has no header, so the fuzzer
 * mostly explores sizes and label bytes; -max_len should allow a few 3073/3074-byte records. */
#include "fuzz_common.h"

static const kn_status allowed[] = {KN_ERR_FORMAT, KN_ERR_OOM, KN_STATUS_COUNT};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *path;
    if (!path)
        path = kf_tmp(".bin");
    kf_write(path, data, size);
    const char *paths[2] = {path, path};
    for (int c100 = 0; c100 < 2; c100++)
        for (int np = 1; np <= 2; np++) {
            kn_dataset *ds = NULL;
            kn_error e = {0};
            kn_status st = kn_dataset_load_cifar(&ds, paths, np, c100, &e);
            kf_check_error(st, &e, allowed);
            if (st == KN_OK) {
                kf_check_dataset(ds);
                size_t rec = c100 ? 3074 : 3073;
                if (ds->dtype != KN_U8 || ds->ndim != 3 || ds->shape[0] != 3 || ds->shape[1] != 32 ||
                    ds->shape[2] != 32 || ds->classes != (c100 ? 100 : 10) || (size_t)ds->n * rec != size * (size_t)np)
                    kf_fail("a CIFAR data set that does not match the file", st, &e);
            } else if (ds) {
                kf_fail("an error with a data set handed out", st, &e);
            }
            kn_dataset_free(ds);
        }
    return 0;
}
