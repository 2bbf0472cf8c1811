/* cifar.c — the CIFAR-10 / CIFAR-100 binary batch reader: records of 1 label byte + 3072
 * pixel bytes (CIFAR-10) or coarse + fine label bytes + 3072 (CIFAR-100; the fine label is
 * used), planar R, G, B 32x32. Several batch files are concatenated into one data set. It
 * deliberately does not read the Python pickle version of CIFAR. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "data_internal.h"

#define CIFAR_PIXELS 3072

/* Opens a batch file and returns its record count after checking its size. */
static kn_status open_batch(const char *path, size_t rec, bool cifar100, FILE **out, int64_t *count,
                            kn_error *err)
{
    *out = NULL;
    if (!path)
        return kn_error_set(err, KN_ERR_ARG, "CIFAR reader: NULL file path");
    FILE *f = fopen(path, "rb");
    if (!f)
        return kn_error_set(err, KN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat s;
    if (fstat(fileno(f), &s) != 0 || !S_ISREG(s.st_mode)) {
        fclose(f);
        return kn_error_set(err, KN_ERR_IO, "%s: not a regular file", path);
    }
    const char *name = cifar100 ? "CIFAR-100" : "CIFAR-10";
    if (s.st_size == 0) {
        fclose(f);
        return kn_error_set(err, KN_ERR_FORMAT, "%s: the file is empty; expected %s records of %zu bytes", path,
                            name, rec);
    }
    if ((uint64_t)s.st_size % rec != 0) {
        const char *hint = "";
        if (!cifar100 && (uint64_t)s.st_size % (rec + 1) == 0)
            hint = " (its size fits CIFAR-100 records: open it as CIFAR-100)";
        else if (cifar100 && (uint64_t)s.st_size % (rec - 1) == 0)
            hint = " (its size fits CIFAR-10 records: open it as CIFAR-10)";
        fclose(f);
        return kn_error_set(err, KN_ERR_FORMAT,
                            "%s: size %lld bytes is not a multiple of the %zu-byte %s record (%s label byte%s + "
                            "3072 pixel bytes): the file is truncated or not a %s binary batch%s",
                            path, (long long)s.st_size, rec, name, cifar100 ? "2" : "1", cifar100 ? "s" : "",
                            name, hint);
    }
    *out = f;
    *count = (int64_t)((uint64_t)s.st_size / rec);
    return KN_OK;
}

kn_status kn_dataset_load_cifar(kn_dataset **out, const char *const *paths, int n_paths, bool cifar100,
                                kn_error *err)
{
    if (!out)
        return kn_error_set(err, KN_ERR_ARG, "kn_dataset_load_cifar: NULL output pointer");
    *out = NULL;
    if (!paths || n_paths <= 0)
        return kn_error_set(err, KN_ERR_ARG, "kn_dataset_load_cifar: no batch files given (n_paths = %d)", n_paths);
    const size_t nlab = cifar100 ? 2 : 1, rec = nlab + CIFAR_PIXELS;
    int64_t total = 0;
    kn_status st = KN_OK;
    for (int i = 0; i < n_paths && !st; i++) {
        FILE *f = NULL;
        int64_t c = 0;
        st = open_batch(paths[i], rec, cifar100, &f, &c, err);
        if (f)
            fclose(f);
        if (!st && total > INT64_MAX - c)
            st = kn_error_set(err, KN_ERR_FORMAT, "%s: too many records", paths[i]);
        total += c;
    }
    if (st)
        return st;
    kn_dataset *ds = NULL;
    if ((st = kn__dataset_new(&ds, total, 3, (const int64_t[]){3, 32, 32}, KN_U8, true, paths[0], err)))
        return st;
    enum { CHUNK = 256 };
    unsigned char *buf = kn__alloc(CHUNK * rec);
    if (!buf) {
        kn_dataset_free(ds);
        return kn_error_set(err, KN_ERR_OOM, "%s: out of memory", paths[0]);
    }
    const int32_t classes = cifar100 ? 100 : 10;
    unsigned char *px = ds->x;
    int64_t at = 0;
    for (int i = 0; i < n_paths && !st; i++) {
        FILE *f = NULL;
        int64_t c = 0;
        if ((st = open_batch(paths[i], rec, cifar100, &f, &c, err)))
            break;
        if (c > total - at) { /* the file grew since it was measured */
            fclose(f);
            st = kn_error_set(err, KN_ERR_IO, "%s: the file changed while it was read", paths[i]);
            break;
        }
        for (int64_t r0 = 0; r0 < c && !st; r0 += CHUNK) {
            size_t nr = (size_t)(c - r0 < CHUNK ? c - r0 : CHUNK);
            if (fread(buf, rec, nr, f) != nr) {
                st = kn_error_set(err, KN_ERR_IO, "%s: read failed at record %lld: %s", paths[i], (long long)r0,
                                  ferror(f) ? strerror(errno) : "unexpected end of file");
                break;
            }
            for (size_t r = 0; r < nr; r++) {
                const unsigned char *p = buf + r * rec;
                int coarse = cifar100 ? p[0] : 0, label = p[nlab - 1];
                if (label >= classes || coarse >= 20) {
                    st = kn_error_set(err, KN_ERR_FORMAT,
                                      "%s: record %lld has %slabel %d; %s labels are 0..%d%s", paths[i],
                                      (long long)(r0 + (int64_t)r), coarse >= 20 ? "coarse " : "",
                                      coarse >= 20 ? coarse : label, cifar100 ? "CIFAR-100" : "CIFAR-10",
                                      coarse >= 20 ? 19 : classes - 1,
                                      cifar100 ? "" : " (is this a CIFAR-100 file?)");
                    break;
                }
                ds->y[at] = label;
                memcpy(px + (size_t)at * CIFAR_PIXELS, p + nlab, CIFAR_PIXELS);
                at++;
            }
        }
        fclose(f);
    }
    kn__free(buf);
    if (!st && at != total)
        st = kn_error_set(err, KN_ERR_IO, "%s: the files changed while they were read", paths[0]);
    if (st) {
        kn_dataset_free(ds);
        return st;
    }
    ds->classes = classes;
    kn__dataset_set_name(ds, kn__path_base(paths[0]));
    *out = ds;
    return KN_OK;
}
