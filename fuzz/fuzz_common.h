/* fuzz_common.h — helpers shared by kiln's libFuzzer harnesses (fuzz/fuzz_*.c): per-process
 * temporary files for the readers that take paths (created once with mkstemp in /dev/shm when
 * it exists, rewritten for every input, removed at exit), splitting one input into two files,
 * and the checks every harness applies to a reader's result (a failure carries the status it
 * returned, a documented code and a non-empty message). A violated check calls abort(), which
 * libFuzzer reports as a crash with the input that caused it. Not a general test library. */
#ifndef KN_FUZZ_COMMON_H
#define KN_FUZZ_COMMON_H

#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kiln/kiln.h"
#include "kiln/nn.h"

#define KF_MAX_TMP 4

static char kf_paths[KF_MAX_TMP][256];
static int kf_n_paths;

static inline void kf_cleanup(void)
{
    for (int i = 0; i < kf_n_paths; i++)
        unlink(kf_paths[i]);
}

/* A new empty temporary file whose name ends in `suffix` (e.g. ".npy"); the path stays valid
 * for the life of the process and the file is removed at exit. Aborts if none can be made. */
static inline const char *kf_tmp(const char *suffix)
{
    if (kf_n_paths == KF_MAX_TMP)
        abort();
    struct stat sb;
    const char *dir = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0
                          ? "/dev/shm"
                          : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    char *p = kf_paths[kf_n_paths];
    snprintf(p, 256, "%s/kiln-fuzz-%ld-XXXXXX%s", dir, (long)getpid(), suffix); /* pid: run.sh cleans up */
    int fd = mkstemps(p, (int)strlen(suffix));
    if (fd < 0) {
        perror("kiln fuzz: mkstemps");
        abort();
    }
    close(fd);
    if (kf_n_paths++ == 0)
        atexit(kf_cleanup);
    return p;
}

/* Replaces the contents of path with data[0..len). Aborts on failure (a harness problem, not
 * a finding). */
static inline void kf_write(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror("kiln fuzz: writing the temporary file");
        abort();
    }
}

/* Two files in one input (readers taking an images/labels or x/y pair): the first two bytes
 * are the little-endian length of the second file (clamped to what is left), then the first
 * file, then the second. fuzz/run.sh builds seeds in this layout from tests/corpus/. */
static inline void kf_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *alen, const uint8_t **b,
                     size_t *blen)
{
    size_t nb = size >= 2 ? (size_t)data[0] | (size_t)data[1] << 8 : 0;
    size_t rest = size >= 2 ? size - 2 : 0;
    if (nb > rest)
        nb = rest;
    *a = data + (size >= 2 ? 2 : size);
    *alen = rest - nb;
    *b = *a + *alen;
    *blen = nb;
}

/* Allocation hooks that refuse any single kiln allocation over `cap` bytes (so a reader that
 * sizes memory by what a file declares fails cleanly with KN_ERR_OOM instead of exhausting the
 * machine; the harness then checks that the failure is clean). */
static size_t kf_cap;

static inline void *kf_capped_alloc(size_t bytes, size_t align, void *user)
{
    (void)user;
    if (bytes > kf_cap)
        return NULL;
    return aligned_alloc(align, (bytes + align - 1) / align * align);
}

static inline void kf_capped_free(void *p, void *user)
{
    (void)user;
    free(p);
}

static inline void kf_cap_allocations(size_t cap)
{
    kf_cap = cap;
    kn_alloc_hooks h = {kf_capped_alloc, kf_capped_free, NULL};
    kn_set_alloc_hooks(&h);
}

static inline void kf_fail(const char *what, kn_status st, const kn_error *e)
{
    fprintf(stderr, "kiln fuzz: %s (status %s, error record %s, message \"%s\")\n", what, kn_status_name(st),
            kn_status_name(e->status), e->msg);
    abort();
}

/* A reader's failure must carry one of the `allowed` statuses (a KN_STATUS_COUNT-terminated
 * list), record that same status in err, and say something. */
static inline void kf_check_error(kn_status st, const kn_error *e, const kn_status *allowed)
{
    if (st == KN_OK)
        return;
    bool ok = false;
    for (int i = 0; allowed[i] != KN_STATUS_COUNT; i++)
        ok |= allowed[i] == st;
    if (!ok)
        kf_fail("a status the reader does not document", st, e);
    if (e->status != st)
        kf_fail("the error record holds another status than the one returned", st, e);
    if (!e->msg[0])
        kf_fail("an error without a message", st, e);
    if (!memchr(e->msg, 0, sizeof e->msg))
        kf_fail("an unterminated message", st, e);
}

/* A data set a reader returned must be coherent: every example and label readable, every
 * label in [0, classes). Touching all of x lets ASan catch a short buffer. */
static inline void kf_check_dataset(const kn_dataset *ds)
{
    kn_error e = {0};
    if (!ds)
        kf_fail("KN_OK without a data set", KN_OK, &e);
    if (ds->n < 1 || ds->ndim < 1 || ds->ndim > 3 || !ds->x || !ds->y || ds->classes < 1 ||
        (ds->dtype != KN_U8 && ds->dtype != KN_F32))
        kf_fail("an incoherent data set", KN_OK, &e);
    int64_t per = kn_dataset_example_size(ds);
    if (per < 1)
        kf_fail("an example of no elements", KN_OK, &e);
    size_t bytes = (size_t)ds->n * (size_t)per * kn_dtype_size(ds->dtype);
    volatile unsigned char sink = 0;
    const unsigned char *x = ds->x;
    for (size_t i = 0; i < bytes; i += 61)
        sink ^= x[i];
    sink ^= x[bytes - 1];
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->y[i] < 0 || ds->y[i] >= ds->classes)
            kf_fail("a label outside [0, classes)", KN_OK, &e);
    (void)sink;
}

#endif
