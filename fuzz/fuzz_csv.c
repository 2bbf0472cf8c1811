/* fuzz_csv.c — libFuzzer harness for the CSV reader (kn_dataset_load_csv). The input is one
 * file, read with the label in the last column (-1), the first (0) and the third (2). A
 * failure must be KN_ERR_FORMAT, KN_ERR_ARG (label column outside the rows) or KN_ERR_OOM
 * with a message; a success must be a coherent f32 [F] data set. */
#include "fuzz_common.h"

static const kn_status allowed[] = {KN_ERR_FORMAT, KN_ERR_ARG, KN_ERR_OOM, KN_STATUS_COUNT};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *path;
    if (!path)
        path = kf_tmp(".csv");
    kf_write(path, data, size);
    static const int columns[] = {-1, 0, 2};
    for (int i = 0; i < 3; i++) {
        kn_dataset *ds = NULL;
        kn_error e = {0};
        kn_status st = kn_dataset_load_csv(&ds, path, columns[i], &e);
        kf_check_error(st, &e, allowed);
        if (st == KN_OK) {
            kf_check_dataset(ds);
            if (ds->dtype != KN_F32 || ds->ndim != 1)
                kf_fail("a CSV data set that is not f32 [F]", st, &e);
        } else if (ds) {
            kf_fail("an error with a data set handed out", st, &e);
        }
        kn_dataset_free(ds);
    }
    return 0;
}
