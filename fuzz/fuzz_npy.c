/* fuzz_npy.c — libFuzzer harness for the NumPy .npy reader (kn_dataset_load_npy). One input
 * holds the x and y files (fuzz_common.h: two length bytes, x.npy, y.npy), each written to
 * its own temporary file. A failure must be KN_ERR_FORMAT, KN_ERR_UNSUPPORTED or KN_ERR_OOM
 * with a message; a success must be a coherent data set. */
#include "fuzz_common.h"

static const kn_status allowed[] = {KN_ERR_FORMAT, KN_ERR_UNSUPPORTED, KN_ERR_OOM, KN_STATUS_COUNT};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *xp, *yp;
    if (!xp) {
        xp = kf_tmp("-x.npy");
        yp = kf_tmp("-y.npy");
    }
    const uint8_t *a, *b;
    size_t alen, blen;
    kf_split(data, size, &a, &alen, &b, &blen);
    kf_write(xp, a, alen);
    kf_write(yp, b, blen);
    kn_dataset *ds = NULL;
    kn_error e = {0};
    kn_status st = kn_dataset_load_npy(&ds, xp, yp, &e);
    kf_check_error(st, &e, allowed);
    if (st == KN_OK)
        kf_check_dataset(ds);
    else if (ds)
        kf_fail("an error with a data set handed out", st, &e);
    kn_dataset_free(ds);
    return 0;
}
