/* open.c — data sets by name or directory (kn_dataset_open), the kn_dataset lifetime helpers
 * shared by every reader, the seeded Fisher–Yates shuffle, and the train/validation split.
 * It only finds files and hands them to the format readers (idx.c, cifar.c, npy.c, csv.c);
 * it deliberately downloads nothing: a missing data set gets a message saying how to
 * install it or where to put it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "data_internal.h"

#define SYSTEM_DATA_ROOT "/usr/share/datasets"

/* ---- kn_dataset basics ------------------------------------------------------------------ */

int64_t kn_dataset_example_size(const kn_dataset *ds)
{
    if (!ds)
        return 0;
    int64_t n = 1;
    for (int i = 0; i < ds->ndim && i < 3; i++)
        n *= ds->shape[i];
    return n;
}

void kn_dataset_free(kn_dataset *ds)
{
    if (!ds)
        return;
    kn__free(ds->x);
    kn__free(ds->y);
    kn__free(ds);
}

kn_status kn__dataset_new(kn_dataset **out, int64_t n, int ndim, const int64_t *shape, kn_dtype dt, bool alloc_x,
                          const char *path, kn_error *err)
{
    *out = NULL;
    if (n <= 0)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: holds no examples", path);
    if (ndim < 1 || ndim > 3)
        return kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: examples with %d dims are not supported (1 to 3: [F], "
                                                     "[H, W] or [C, H, W])", path, ndim);
    if (dt != KN_U8 && dt != KN_F32)
        return kn_error_set(err, KN_ERR_ARG, "%s: data sets hold u8 or f32, not %s", path, kn_dtype_name(dt));
    int64_t numel = n;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return kn_error_set(err, KN_ERR_FORMAT, "%s: example dimension %d is %lld; it must be positive", path, i,
                                (long long)shape[i]);
        if (numel > INT64_MAX / shape[i])
            return kn_error_set(err, KN_ERR_FORMAT, "%s: %lld examples of this shape overflow the address space",
                                path, (long long)n);
        numel *= shape[i];
    }
    size_t bytes = kn__mul_size((size_t)numel, kn_dtype_size(dt));
    if (bytes == SIZE_MAX || (uint64_t)n > SIZE_MAX / sizeof(int32_t))
        return kn_error_set(err, KN_ERR_FORMAT, "%s: %lld examples overflow the address space", path, (long long)n);
    kn_dataset *ds = kn__calloc(1, sizeof *ds);
    if (!ds)
        return kn_error_set(err, KN_ERR_OOM, "%s: out of memory", path);
    ds->n = n;
    ds->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        ds->shape[i] = shape[i];
    ds->dtype = dt;
    ds->y = kn__calloc((size_t)n, sizeof(int32_t));
    ds->x = alloc_x ? kn__alloc(bytes) : NULL;
    if (!ds->y || (alloc_x && !ds->x)) {
        kn_dataset_free(ds);
        return kn_error_set(err, KN_ERR_OOM, "%s: out of memory allocating %zu bytes for %lld examples", path, bytes,
                            (long long)n);
    }
    *out = ds;
    return KN_OK;
}

const char *kn__path_base(const char *path)
{
    if (!path)
        return "";
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void kn__dataset_set_name(kn_dataset *ds, const char *name)
{
    snprintf(ds->name, sizeof ds->name, "%s", name ? name : "");
}

void kn__dataset_set_classes(kn_dataset *ds, int32_t min_classes)
{
    int32_t mx = -1;
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->y[i] > mx)
            mx = ds->y[i];
    ds->classes = mx + 1 > min_classes ? mx + 1 : min_classes;
}

/* ---- shuffling and splitting ------------------------------------------------------------ */

void kn__shuffle(int64_t *a, int64_t n, uint64_t seed, uint64_t stream)
{
    for (int64_t i = n - 1; i > 0; i--) {
        /* hi and lo are (k + 0.5) / 2^24 with 24-bit k: together a 48-bit uniform in (0,1). */
        double hi = kn_rng_uniform(seed, stream, 2 * (uint64_t)i);
        double lo = kn_rng_uniform(seed, stream, 2 * (uint64_t)i + 1);
        double u = ((double)(int64_t)(hi * 16777216.0) + lo) / 16777216.0;
        int64_t j = (int64_t)(u * (double)(i + 1));
        if (j > i)
            j = i;
        int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

kn_status kn_split_indices(int64_t n, int64_t val, uint64_t seed, int64_t **train_idx, int64_t **val_idx)
{
    if (!train_idx || !val_idx || n < 0 || val < 0 || val > n)
        return KN_ERR_ARG;
    *train_idx = NULL;
    *val_idx = NULL;
    if ((uint64_t)n > SIZE_MAX / sizeof(int64_t))
        return KN_ERR_RANGE;
    int64_t *all = kn__alloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    int64_t *v = kn__alloc((size_t)(val > 0 ? val : 1) * sizeof(int64_t));
    if (!all || !v) {
        kn__free(all);
        kn__free(v);
        return KN_ERR_OOM;
    }
    for (int64_t i = 0; i < n; i++)
        all[i] = i;
    kn__shuffle(all, n, seed, KN__STREAM_SPLIT);
    memcpy(v, all + (n - val), (size_t)val * sizeof(int64_t));
    *train_idx = all; /* the first n - val entries; the tail is unused */
    *val_idx = v;
    return KN_OK;
}

/* ---- finding data sets ------------------------------------------------------------------ */

static bool is_dir(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static bool is_file(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

/* dir/base, or dir/base.gz when gz_ok; false when neither exists (or the path is too long). */
static bool find(char *out, size_t cap, const char *dir, const char *base, bool gz_ok)
{
    if ((size_t)snprintf(out, cap, "%s/%s", dir, base) < cap && is_file(out))
        return true;
    return gz_ok && (size_t)snprintf(out, cap, "%s/%s.gz", dir, base) < cap && is_file(out);
}

enum { PATH_CAP = 4096 };

typedef struct found {
    bool any;      /* some file of a known layout is there */
    kn_status st;  /* the result when any */
} found;

static void set_names(kn_dataset *train, kn_dataset *test, const char *label)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s/train", label);
    kn__dataset_set_name(train, buf);
    if (test) {
        snprintf(buf, sizeof buf, "%s/test", label);
        kn__dataset_set_name(test, buf);
    }
}

/* Loads one split per call through `load` after checking all of the split's files exist. */
static found try_idx(const char *dir, const char *label, kn_dataset **train, kn_dataset **test, kn_error *err)
{
    static const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                   "t10k-labels-idx1-ubyte"};
    char p[4][PATH_CAP];
    bool have[4], any = false;
    for (int i = 0; i < 4; i++)
        any |= (have[i] = find(p[i], PATH_CAP, dir, names[i], true));
    if (!any)
        return (found){false, KN_OK};
    for (int i = 0; i < 4; i++)
        if (!have[i] && (i < 2 || test))
            return (found){true, kn_error_set(err, KN_ERR_IO,
                                              "%s: %s[.gz] is missing (an MNIST-style directory holds "
                                              "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                                              "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, plain or .gz)",
                                              dir, names[i])};
    kn_status st = kn_dataset_load_idx(train, p[0], p[1], err);
    if (!st && test)
        st = kn_dataset_load_idx(test, p[2], p[3], err);
    if (!st)
        set_names(*train, test ? *test : NULL, label);
    return (found){true, st};
}

static found try_cifar(const char *dir, const char *label, kn_dataset **train, kn_dataset **test, kn_error *err)
{
    char sub[PATH_CAP], b[6][PATH_CAP];
    const char *paths[6];
    for (int i = 0; i < 6; i++)
        paths[i] = b[i];
    /* The official tarballs extract into these subdirectories. */
    if (snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", dir) < PATH_CAP && is_dir(sub)) {
        found f = try_cifar(sub, label, train, test, err);
        if (f.any)
            return f;
    }
    if (snprintf(sub, sizeof sub, "%s/cifar-100-binary", dir) < PATH_CAP && is_dir(sub)) {
        found f = try_cifar(sub, label, train, test, err);
        if (f.any)
            return f;
    }
    bool c10 = find(b[0], PATH_CAP, dir, "data_batch_1.bin", false);
    bool c100 = !c10 && find(b[0], PATH_CAP, dir, "train.bin", false);
    if (!c10 && !c100)
        return (found){false, KN_OK};
    int ntrain = c10 ? 5 : 1;
    for (int i = 1; i < ntrain; i++) {
        char base[32];
        snprintf(base, sizeof base, "data_batch_%d.bin", i + 1);
        if (!find(b[i], PATH_CAP, dir, base, false))
            return (found){true, kn_error_set(err, KN_ERR_IO,
                                              "%s: %s is missing (CIFAR-10 has data_batch_1.bin .. data_batch_5.bin "
                                              "and test_batch.bin)",
                                              dir, base)};
    }
    const char *tname = c10 ? "test_batch.bin" : "test.bin";
    if (test && !find(b[5], PATH_CAP, dir, tname, false))
        return (found){true, kn_error_set(err, KN_ERR_IO, "%s: %s is missing", dir, tname)};
    kn_status st = kn_dataset_load_cifar(train, paths, ntrain, c100, err);
    if (!st && test)
        st = kn_dataset_load_cifar(test, paths + 5, 1, c100, err);
    if (!st)
        set_names(*train, test ? *test : NULL, label);
    return (found){true, st};
}

static found try_npy(const char *dir, const char *label, kn_dataset **train, kn_dataset **test, kn_error *err)
{
    static const char *names[4] = {"x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy"};
    char p[4][PATH_CAP];
    bool have[4], any = false;
    for (int i = 0; i < 4; i++)
        any |= (have[i] = find(p[i], PATH_CAP, dir, names[i], false));
    if (!any)
        return (found){false, KN_OK};
    for (int i = 0; i < 4; i++)
        if (!have[i] && (i < 2 || test))
            return (found){true, kn_error_set(err, KN_ERR_IO,
                                              "%s: %s is missing (a NumPy data set directory holds x_train.npy, "
                                              "y_train.npy, x_test.npy and y_test.npy)",
                                              dir, names[i])};
    kn_status st = kn_dataset_load_npy(train, p[0], p[1], err);
    if (!st && test)
        st = kn_dataset_load_npy(test, p[2], p[3], err);
    if (!st)
        set_names(*train, test ? *test : NULL, label);
    return (found){true, st};
}

static found try_csv(const char *dir, const char *label, kn_dataset **train, kn_dataset **test, kn_error *err)
{
    char p[2][PATH_CAP];
    bool htrain = find(p[0], PATH_CAP, dir, "train.csv", false), htest = find(p[1], PATH_CAP, dir, "test.csv", false);
    if (!htrain && !htest)
        return (found){false, KN_OK};
    if (!htrain || (test && !htest))
        return (found){true, kn_error_set(err, KN_ERR_IO, "%s: %s is missing (a CSV data set directory holds "
                                                          "train.csv and test.csv, label in the last column)",
                                          dir, htrain ? "test.csv" : "train.csv")};
    kn_status st = kn_dataset_load_csv(train, p[0], -1, err);
    if (!st && test)
        st = kn_dataset_load_csv(test, p[1], -1, err);
    if (!st)
        set_names(*train, test ? *test : NULL, label);
    return (found){true, st};
}

static found load_dir(const char *dir, const char *label, kn_dataset **train, kn_dataset **test, kn_error *err)
{
    char base[64];
    if (!label) { /* the directory's own name, without trailing slashes */
        size_t len = strlen(dir);
        while (len > 1 && dir[len - 1] == '/')
            len--;
        size_t start = len;
        while (start > 0 && dir[start - 1] != '/')
            start--;
        size_t n = len - start < sizeof base - 1 ? len - start : sizeof base - 1;
        memcpy(base, dir + start, n);
        base[n] = 0;
        label = n ? base : "data";
    }
    found f = try_idx(dir, label, train, test, err);
    if (!f.any)
        f = try_cifar(dir, label, train, test, err);
    if (!f.any)
        f = try_npy(dir, label, train, test, err);
    if (!f.any)
        f = try_csv(dir, label, train, test, err);
    return f;
}

typedef struct known_set {
    const char *name, *alias, *title, *dir, *howto;
} known_set;

static const known_set KNOWN[] = {
    {"fashion-mnist", "fashion_mnist", "Fashion-MNIST", "fashion-mnist",
     "install it with `sudo apt-get install dataset-fashion-mnist` (or run scripts/install-deps.sh), or pass "
     "--data DIR with the four IDX files"},
    {"mnist", NULL, "MNIST", "mnist",
     "put the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
     "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in $KILN_DATA/mnist, or pass --data DIR with them"},
    {"cifar-10", "cifar10", "CIFAR-10", "cifar-10",
     "download the binary version (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) and "
     "extract it into $KILN_DATA/cifar-10, or pass --data DIR with data_batch_1..5.bin and test_batch.bin"},
    {"cifar-100", "cifar100", "CIFAR-100", "cifar-100",
     "download the binary version (cifar-100-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) and "
     "extract it into $KILN_DATA/cifar-100, or pass --data DIR with train.bin and test.bin"},
};

kn_status kn__dataset_open_in(const char *spec, const char *system_root, kn_dataset **train, kn_dataset **test,
                              kn_error *err)
{
    if (train)
        *train = NULL;
    if (test)
        *test = NULL;
    if (!spec || !*spec || !train)
        return kn_error_set(err, KN_ERR_ARG, "kn_dataset_open: %s", !train ? "NULL train output" : "empty data set name");
    kn_dataset *tr = NULL, *te = NULL;
    kn_dataset **pte = test ? &te : NULL;
    found f = {false, KN_OK};
    const known_set *k = NULL;
    for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++)
        if (!strcmp(spec, KNOWN[i].name) || (KNOWN[i].alias && !strcmp(spec, KNOWN[i].alias)))
            k = &KNOWN[i];
    char searched[2 * PATH_CAP + 16] = "";
    if (k) {
        const char *env = getenv("KILN_DATA");
        const char *roots[2] = {env && *env ? env : NULL, system_root};
        for (int r = 0; r < 2 && !f.any; r++) {
            char dir[PATH_CAP];
            if (!roots[r] || (size_t)snprintf(dir, sizeof dir, "%s/%s", roots[r], k->dir) >= sizeof dir)
                continue;
            size_t used = strlen(searched);
            snprintf(searched + used, sizeof searched - used, "%s%s", used ? " or " : "", dir);
            if (is_dir(dir))
                f = load_dir(dir, k->name, &tr, pte, err);
        }
    }
    if (!f.any && is_dir(spec))
        f = load_dir(spec, NULL, &tr, pte, err);
    if (!f.any) {
        if (k)
            return kn_error_set(err, KN_ERR_IO, "%s not found in %s: %s", k->title, searched, k->howto);
        struct stat sb;
        bool exists = stat(spec, &sb) == 0;
        if (!exists || !S_ISDIR(sb.st_mode))
            return kn_error_set(err, KN_ERR_IO,
                                "%s: not a known data set name (fashion-mnist, mnist, cifar-10, cifar-100) and %s; "
                                "pass a directory holding the data set's files",
                                spec, exists ? "not a directory" : "no such directory");
        return kn_error_set(err, KN_ERR_IO,
                            "%s holds no data set kiln recognises: expected the four MNIST-style IDX files "
                            "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                            "t10k-labels-idx1-ubyte; plain or .gz), CIFAR-10 batches (data_batch_1..5.bin, "
                            "test_batch.bin), CIFAR-100 (train.bin, test.bin), x_train.npy + y_train.npy + "
                            "x_test.npy + y_test.npy, or train.csv + test.csv",
                            spec);
    }
    if (f.st) {
        kn_dataset_free(tr);
        kn_dataset_free(te);
        return f.st;
    }
    *train = tr;
    if (test)
        *test = te;
    return KN_OK;
}

kn_status kn_dataset_open(const char *spec, kn_dataset **train, kn_dataset **test, kn_error *err)
{
    return kn__dataset_open_in(spec, SYSTEM_DATA_ROOT, train, test, err);
}
