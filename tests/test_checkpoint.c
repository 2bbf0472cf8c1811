/* test_checkpoint.c — checkpoints (safetensors + kiln.crc32) and the file helpers: bit-exact
 * round trips over every dtype, metadata with JSON-special characters, the file layout and
 * checksum definition, model mismatches (shape, dtype, missing, extra), corrupt-file corpora
 * (every kind of bad header, 200 single-byte corruptions, 1,000 single-bit flips, truncations), atomic writes under
 * injected ENOSPC/EIO/rename failures, unwritable destinations, SIGKILL during save, out-of-
 * memory injection, and the JSON reader itself. Not a performance test.
 *
 * Files go to a fresh directory under $TMPDIR (or /tmp), removed at the end. A save killed
 * with SIGKILL leaves PATH.tmp.<pid> behind (documented in io/file.h); the kill test counts
 * and removes those. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, O_DIRECTORY, ... even under -std=c11 */
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "io/file.h"
#include "io/json.h"
#include "util.h"

static char dir[512];

/* dir/name in one of 8 rotating buffers: copy it to keep it across other P() calls. */
static const char *P(const char *name)
{
    static char bufs[8][768];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- models ----------------------------------------------------------------------------- */
typedef struct spec {
    const char *name;
    kn_dtype dt;
    int ndim;
    int64_t shape[4];
    bool trainable;
} spec;

static const spec base[] = {
    {"conv1.weight", KN_F32, 4, {32, 1, 3, 3}, true},
    {"conv1.bias", KN_F32, 1, {32}, true},
    {"bn.running_mean", KN_F64, 1, {32}, false},
    {"emb", KN_BF16, 2, {5, 3}, true},
    {"half", KN_F16, 2, {2, 2}, true},
    {"q8", KN_I8, 2, {3, 3}, false},
    {"idx", KN_I32, 1, {4}, false},
    {"step", KN_I64, 0, {0}, false},
    {"mask", KN_U8, 1, {7}, false},
    {"empty", KN_F32, 2, {0, 4}, true},
};
#define NBASE ((int)(sizeof base / sizeof base[0]))

static kn_graph *build(const spec *s, int n)
{
    kn_graph *g = kn_graph_new();
    kn_node *x = kn_graph_input(g, "x", KN_F32, 1, (int64_t[]){32}); /* non-param nodes are ignored */
    for (int i = 0; i < n; i++)
        kn_graph_param(g, s[i].name, s[i].dt, s[i].ndim, s[i].shape, s[i].trainable);
    kn_graph_relu(g, x);
    CHECK(kn_graph_status(g) == KN_OK, "model builds: %s", kn_graph_error(g));
    return g;
}

static kn_graph *build_base(void) { return build(base, NBASE); }

static int params_of(kn_graph *g, kn_node **out) { return kn_graph_params(g, false, out, 64); }

static size_t param_bytes(const kn_node *n) { return (size_t)kn_node_numel(n) * kn_dtype_size(kn_node_dtype(n)); }

static void fill(kn_graph *g, uint64_t seed)
{
    kn_node *ps[64];
    int n = params_of(g, ps);
    uint64_t s = seed * 0x2545f4914f6cdd1dull + 1;
    for (int i = 0; i < n; i++) {
        unsigned char *d = kn_graph_param_data(g, ps[i]);
        for (size_t k = 0; k < param_bytes(ps[i]); k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            d[k] = (unsigned char)(s >> 56); /* arbitrary bit patterns, NaN payloads included */
        }
    }
}

/* All parameter bytes of g, concatenated (malloc'ed). */
static unsigned char *snap(kn_graph *g, size_t *len)
{
    kn_node *ps[64];
    int n = params_of(g, ps);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += param_bytes(ps[i]);
    unsigned char *b = malloc(total + 1), *o = b;
    for (int i = 0; i < n; i++) {
        memcpy(o, kn_graph_param_data(g, ps[i]), param_bytes(ps[i]));
        o += param_bytes(ps[i]);
    }
    *len = total;
    return b;
}

static bool same_params(kn_graph *a, kn_graph *b)
{
    size_t la, lb;
    unsigned char *x = snap(a, &la), *y = snap(b, &lb);
    bool eq = la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return eq;
}

static bool unchanged(kn_graph *g, const unsigned char *before, size_t len)
{
    size_t l;
    unsigned char *now_ = snap(g, &l);
    bool eq = l == len && memcmp(now_, before, len) == 0;
    free(now_);
    return eq;
}

/* ---- raw files ---------------------------------------------------------------------------- */
static unsigned char *slurp(const char *path, size_t *len)
{
    void *d = NULL;
    kn_status st = kn_read_file(path, (size_t)1 << 30, &d, len, NULL);
    CHECK(st == KN_OK, "read %s: %s", path, kn_status_name(st));
    return d;
}

static void put_file(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "open %s", path);
    if (f) {
        CHECK(fwrite(d, 1, n, f) == n, "write %s", path);
        fclose(f);
    }
}

/* A foreign safetensors file: header (padded to 8 if pad) + data. */
static void put_st(const char *path, const char *header, bool pad, const void *data, size_t data_len)
{
    size_t hl = strlen(header), n = pad ? (hl + 7) / 8 * 8 : hl;
    unsigned char *b = calloc(8 + n + data_len + 1, 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, ' ', n - hl);
    if (data_len)
        memcpy(b + 8 + n, data, data_len);
    put_file(path, b, 8 + n + data_len);
    free(b);
}

/* Number of PATH.tmp.* files left in dir (removing them when clean). */
static int temp_files(bool clean)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strstr(e->d_name, ".tmp.")) {
            n++;
            if (clean)
                unlink(P(e->d_name));
        }
    }
    if (d)
        closedir(d);
    return n;
}

static bool file_equals(const char *path, const unsigned char *want, size_t len)
{
    size_t l = 0;
    void *d = NULL;
    if (kn_read_file(path, (size_t)1 << 30, &d, &l, NULL) != KN_OK)
        return false;
    bool eq = l == len && memcmp(d, want, len) == 0;
    kn_free(d);
    return eq;
}

/* ---- tests -------------------------------------------------------------------------------- */
static const char *tricky_values[][2] = {
    {"epoch", "12"},
    {"quote", "say \"hi\""},
    {"backslash", "C:\\path\\to\\file \\u0041 \\\\"},
    {"newlines", "line1\nline2\r\n\ttab"},
    {"control", "\x01\x02\x1f\x7f bell\b formfeed\f"},
    {"unicode", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\xa5 \xe2\x80\xa8"},
    {"json", "{\"a\":[1,2,{\"b\":null}]}"},
    {"empty", ""},
    {"slash </script>", "/ // \\/"},
};
#define NTRICKY ((int)(sizeof tricky_values / sizeof tricky_values[0]))

static void set_tricky(kn_meta *m)
{
    for (int i = 0; i < NTRICKY; i++)
        CHECK_OK(kn_meta_set(m, tricky_values[i][0], tricky_values[i][1]));
}

static void check_tricky(const kn_meta *m, const char *what)
{
    for (int i = 0; i < NTRICKY; i++) {
        const char *v = kn_meta_get(m, tricky_values[i][0]);
        CHECK(v && strcmp(v, tricky_values[i][1]) == 0, "%s: metadata %s round-trips (got %s)", what,
              tricky_values[i][0], v ? v : "(absent)");
    }
    CHECK(kn_meta_get(m, "kiln.crc32") == NULL, "%s: the checksum is not handed out as metadata", what);
    CHECK(kn_meta_get(m, "kiln.version") && strcmp(kn_meta_get(m, "kiln.version"), KILN_VERSION) == 0,
          "%s: kiln.version recorded", what);
    CHECK(m->n == NTRICKY + 1, "%s: %d metadata entries", what, m->n);
}

static void test_meta_api(void)
{
    kn_meta m = {0};
    CHECK_OK(kn_meta_set(&m, "a", "1"));
    CHECK_OK(kn_meta_set(&m, "b", "2"));
    CHECK_OK(kn_meta_set(&m, "a", "3"));
    CHECK(m.n == 2 && strcmp(kn_meta_get(&m, "a"), "3") == 0, "set replaces");
    CHECK(kn_meta_get(&m, "zz") == NULL && kn_meta_get(NULL, "a") == NULL, "absent → NULL");
    char longkey[80];
    memset(longkey, 'k', 64);
    longkey[64] = '\0';
    CHECK(kn_meta_set(&m, longkey, "x") == KN_ERR_ARG, "64-byte key refused");
    longkey[63] = '\0';
    CHECK_OK(kn_meta_set(&m, longkey, "x"));
    CHECK(kn_meta_set(NULL, "a", "b") == KN_ERR_ARG && kn_meta_set(&m, NULL, "b") == KN_ERR_ARG &&
              kn_meta_set(&m, "a", NULL) == KN_ERR_ARG, "NULL arguments");
    kn_meta_clear(&m);
    for (int i = 0; i < KN_META_MAX; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        CHECK_OK(kn_meta_set(&m, k, k));
    }
    CHECK(kn_meta_set(&m, "one-more", "x") == KN_ERR_ARG, "full");
    CHECK_OK(kn_meta_set(&m, "k5", "replaced while full"));
    kn_meta_clear(&m);
    CHECK(m.n == 0, "clear");
    kn_meta_clear(&m);
    kn_meta_clear(NULL);
}

/* Checks the on-disk layout and recomputes the checksum by its definition. */
static void check_layout(const char *path, kn_graph *g)
{
    size_t len;
    unsigned char *b = slurp(path, &len);
    if (!b)
        return;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | b[i];
    CHECK(n % 8 == 0 && 8 + n <= len, "header length %llu is a multiple of 8 and fits", (unsigned long long)n);
    CHECK(b[8] == '{', "header is a JSON object");
    const char *key = "\"kiln.crc32\":\"";
    char *at = memmem(b + 8, (size_t)n, key, strlen(key));
    CHECK(at != NULL, "kiln.crc32 present");
    if (at) {
        char *digits = at + strlen(key), stored[9];
        memcpy(stored, digits, 8);
        stored[8] = '\0';
        memcpy(digits, "00000000", 8);
        char want[9];
        snprintf(want, sizeof want, "%08lx", crc32(0, b, (uInt)len));
        CHECK(strcmp(stored, want) == 0, "crc32 of the file with the digits zeroed: stored %s, recomputed %s",
              stored, want);
    }
    /* tensors back to back in node order from the start of the data */
    kn_node *ps[64];
    int np = params_of(g, ps);
    size_t off = 8 + (size_t)n;
    for (int i = 0; i < np; i++) {
        CHECK(off + param_bytes(ps[i]) <= len &&
                  memcmp(b + off, kn_graph_param_data(g, ps[i]), param_bytes(ps[i])) == 0,
              "tensor %s at its place in node order", kn_node_name(ps[i]));
        off += param_bytes(ps[i]);
    }
    CHECK(off == len, "nothing after the last tensor");
    kn_free(b);
}

static void test_roundtrip(void)
{
    kn_graph *a = build_base(), *b = build_base();
    fill(a, 1);
    fill(b, 2);
    CHECK(!same_params(a, b), "different fills");
    kn_meta m = {0};
    set_tricky(&m);
    CHECK_OK(kn_meta_set(&m, "kiln.crc32", "ffffffff")); /* reserved: replaced by the real one */
    kn_error err = {0};
    kn_status st = kn_checkpoint_save(a, P("model.safetensors"), &m, &err);
    CHECK(st == KN_OK, "save: %s", err.msg);
    CHECK(temp_files(false) == 0, "no temporary file after a save");
    check_layout(P("model.safetensors"), a);
    kn_meta got = {0};
    CHECK_OK(kn_meta_set(&got, "stale", "replaced by the load"));
    st = kn_checkpoint_load(b, P("model.safetensors"), false, &got, &err);
    CHECK(st == KN_OK, "load: %s", err.msg);
    CHECK(same_params(a, b), "bit-exact round trip of every dtype");
    check_tricky(&got, "load");
    CHECK(kn_meta_get(&got, "stale") == NULL, "previous metadata cleared");
    kn_meta_clear(&got);
    st = kn_checkpoint_read_meta(P("model.safetensors"), &got, &err);
    CHECK(st == KN_OK, "read_meta: %s", err.msg);
    check_tricky(&got, "read_meta");
    kn_meta_clear(&got);
    /* load with meta = NULL; saving without metadata */
    fill(b, 3);
    CHECK_OK(kn_checkpoint_load(b, P("model.safetensors"), false, NULL, NULL));
    CHECK(same_params(a, b), "load without meta");
    CHECK_OK(kn_checkpoint_save(a, P("nometa.safetensors"), NULL, NULL));
    CHECK_OK(kn_checkpoint_read_meta(P("nometa.safetensors"), &got, NULL));
    CHECK(got.n == 1 && kn_meta_get(&got, "kiln.version"), "only kiln.version without user metadata");
    kn_meta_clear(&got);
    /* a model without parameters */
    kn_graph *e = kn_graph_new();
    CHECK_OK(kn_checkpoint_save(e, P("empty.safetensors"), &m, NULL));
    CHECK_OK(kn_checkpoint_load(e, P("empty.safetensors"), false, NULL, NULL));
    CHECK(kn_checkpoint_load(e, P("model.safetensors"), false, NULL, &err) == KN_ERR_SHAPE,
          "a model without parameters refuses a file with tensors");
    CHECK_OK(kn_checkpoint_load(e, P("model.safetensors"), true, NULL, NULL));
    kn_graph_free(e);
    /* overwrite keeps working; argument errors */
    fill(a, 4);
    CHECK_OK(kn_checkpoint_save(a, P("model.safetensors"), &m, NULL));
    CHECK_OK(kn_checkpoint_load(b, P("model.safetensors"), false, NULL, NULL));
    CHECK(same_params(a, b), "overwrite");
    CHECK(kn_checkpoint_save(NULL, "x", NULL, &err) == KN_ERR_ARG, "NULL graph");
    CHECK(kn_checkpoint_save(a, NULL, NULL, &err) == KN_ERR_ARG, "NULL path");
    CHECK(kn_checkpoint_load(a, "", false, NULL, &err) == KN_ERR_ARG, "empty path");
    CHECK(kn_checkpoint_read_meta(P("model.safetensors"), NULL, &err) == KN_ERR_ARG, "NULL meta");
    CHECK(kn_checkpoint_load(a, P("does-not-exist"), false, NULL, &err) == KN_ERR_IO &&
              strstr(err.msg, "does-not-exist"), "missing file: %s", err.msg);
    CHECK(kn_checkpoint_load(a, dir, false, NULL, &err) == KN_ERR_IO, "a directory: %s", err.msg);
    kn_meta_clear(&m);
    kn_graph_free(a);
    kn_graph_free(b);
}

static void test_save_errors(void)
{
    kn_error err = {0};
    spec s[3] = {base[0], base[1], base[2]};
    s[1].name = "conv1.weight";
    kn_graph *g = build(s, 3);
    CHECK(kn_checkpoint_save(g, P("dup.safetensors"), NULL, &err) == KN_ERR_ARG &&
              strstr(err.msg, "\"conv1.weight\""), "duplicate parameter names: %s", err.msg);
    CHECK(kn_checkpoint_load(g, P("model.safetensors"), true, NULL, &err) == KN_ERR_ARG, "load refuses them too");
    kn_graph_free(g);
    s[1].name = NULL;
    g = build(s, 3);
    CHECK(kn_checkpoint_save(g, P("dup.safetensors"), NULL, &err) == KN_ERR_ARG && strstr(err.msg, "no name"),
          "unnamed parameter: %s", err.msg);
    kn_graph_free(g);
    s[1].name = "__metadata__";
    g = build(s, 3);
    CHECK(kn_checkpoint_save(g, P("dup.safetensors"), NULL, &err) == KN_ERR_ARG && strstr(err.msg, "reserved"),
          "reserved name: %s", err.msg);
    kn_graph_free(g);
    g = build_base();
    kn_meta m = {0};
    CHECK_OK(kn_meta_set(&m, "bin", "\xff\xfe"));
    CHECK(kn_checkpoint_save(g, P("dup.safetensors"), &m, &err) == KN_ERR_ARG && strstr(err.msg, "UTF-8"),
          "metadata that is not UTF-8: %s", err.msg);
    kn_meta_clear(&m);
    m.n = KN_META_MAX + 1;
    CHECK(kn_checkpoint_save(g, P("dup.safetensors"), &m, &err) == KN_ERR_ARG, "bad metadata count");
    m.n = 1; /* NULL key */
    CHECK(kn_checkpoint_save(g, P("dup.safetensors"), &m, &err) == KN_ERR_ARG, "NULL metadata key");
    CHECK(access(P("dup.safetensors"), F_OK) != 0 && temp_files(false) == 0, "nothing written on argument errors");
    kn_graph_free(g);
}

/* Loading into g must fail with `want` and a message containing needle, leaving g as it was. */
static void expect_load_fail(kn_graph *g, const char *path, bool allow_extra, kn_status want, const char *needle,
                             const char *what)
{
    size_t len;
    unsigned char *before = snap(g, &len);
    kn_error err = {0};
    kn_meta m = {0};
    kn_meta_set(&m, "keep", "me");
    kn_status st = kn_checkpoint_load(g, path, allow_extra, &m, &err);
    CHECK(st == want, "%s: got %s, expected %s (%s)", what, kn_status_name(st), kn_status_name(want), err.msg);
    CHECK(!needle || strstr(err.msg, needle), "%s: message mentions '%s': %s", what, needle, err.msg);
    CHECK(unchanged(g, before, len), "%s: parameters untouched", what);
    CHECK(m.n == 1 && kn_meta_get(&m, "keep"), "%s: metadata untouched", what);
    kn_meta_clear(&m);
    free(before);
}

static void test_mismatch(void)
{
    kn_graph *a = build_base();
    fill(a, 5);
    CHECK_OK(kn_checkpoint_save(a, P("model.safetensors"), NULL, NULL));
    spec s[NBASE + 1];
    memcpy(s, base, sizeof base);
    s[0].shape[0] = 64;
    kn_graph *g = build(s, NBASE);
    fill(g, 6);
    expect_load_fail(g, P("model.safetensors"), false, KN_ERR_SHAPE,
                     "tensor conv1.weight has shape [32,1,3,3] in the file but [64,1,3,3] in the model", "shape");
    expect_load_fail(g, P("model.safetensors"), true, KN_ERR_SHAPE, "different model?", "shape, allow_extra");
    kn_graph_free(g);

    memcpy(s, base, sizeof base);
    s[2].dt = KN_F32;
    g = build(s, NBASE);
    fill(g, 6);
    expect_load_fail(g, P("model.safetensors"), false, KN_ERR_DTYPE, "bn.running_mean is F64 [32] in the file but F32",
                     "dtype");
    kn_graph_free(g);

    memcpy(s, base, sizeof base);
    s[3].ndim = 1; /* emb [5] instead of [5,3] */
    g = build(s, NBASE);
    expect_load_fail(g, P("model.safetensors"), false, KN_ERR_SHAPE, "[5,3] in the file but [5]", "rank");
    kn_graph_free(g);

    memcpy(s, base, sizeof base);
    s[NBASE] = (spec){"fc.weight", KN_F32, 2, {10, 32}, true};
    g = build(s, NBASE + 1);
    fill(g, 7);
    expect_load_fail(g, P("model.safetensors"), false, KN_ERR_SHAPE, "\"fc.weight\" F32 [10,32] is not in the file",
                     "missing");
    expect_load_fail(g, P("model.safetensors"), true, KN_ERR_SHAPE, "fc.weight", "missing, allow_extra");
    kn_graph_free(g);

    /* model without conv1.bias: extra tensor in the file */
    spec t[NBASE];
    int k = 0;
    for (int i = 0; i < NBASE; i++)
        if (i != 1)
            t[k++] = base[i];
    g = build(t, k);
    fill(g, 8);
    expect_load_fail(g, P("model.safetensors"), false, KN_ERR_SHAPE, "tensor \"conv1.bias\" F32 [32] in the file",
                     "extra");
    kn_error err = {0};
    CHECK(kn_checkpoint_load(g, P("model.safetensors"), true, NULL, &err) == KN_OK, "allow_extra: %s", err.msg);
    kn_node *pa[64], *pg[64];
    params_of(a, pa);
    int ng = params_of(g, pg);
    bool eq = true;
    for (int i = 0; i < ng; i++) {
        kn_node *src = kn_graph_find(a, kn_node_name(pg[i]));
        eq = eq && memcmp(kn_graph_param_data(g, pg[i]), kn_graph_param_data(a, src), param_bytes(src)) == 0;
    }
    CHECK(eq, "allow_extra loads the matching tensors bit-exactly");
    kn_graph_free(g);
    kn_graph_free(a);
}

/* Single-byte corruptions anywhere and truncations: always an error, never a change. */
static void test_corruption(void)
{
    kn_graph *a = build_base(), *g = build_base();
    fill(a, 9);
    fill(g, 10);
    kn_meta m = {0};
    set_tricky(&m);
    CHECK_OK(kn_checkpoint_save(a, P("good.safetensors"), &m, NULL));
    kn_meta_clear(&m);
    size_t len;
    unsigned char *good = slurp(P("good.safetensors"), &len);
    if (!good)
        return;
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = hn << 8 | good[i];
    size_t before_len;
    unsigned char *before = snap(g, &before_len);
    unsigned char *bad = malloc(len);
    int errors = 0, ok = 0, format = 0;
    for (int t = 0; t < 200; t++) {
        size_t pos;
        if (t < 8)
            pos = (size_t)t; /* every byte of the header length */
        else if (t < 100)
            pos = 8 + (size_t)(rnd() % hn); /* the JSON header */
        else if (t < 120)
            pos = len - 1 - (size_t)(rnd() % 64); /* the last tensors */
        else
            pos = (size_t)(rnd() % len);
        memcpy(bad, good, len);
        bad[pos] ^= (unsigned char)(1 + rnd() % 255);
        put_file(P("bad.safetensors"), bad, len);
        kn_error err = {0};
        kn_meta got = {0};
        kn_status st = kn_checkpoint_load(g, P("bad.safetensors"), false, &got, &err);
        kn_status st2 = kn_checkpoint_read_meta(P("bad.safetensors"), &got, NULL);
        if (st == KN_OK || st2 == KN_OK) {
            ok++;
            fprintf(stderr, "corruption at byte %zu accepted\n", pos);
        } else
            errors++;
        format += st == KN_ERR_FORMAT;
        CHECK(got.n == 0, "no metadata on failure");
        kn_meta_clear(&got);
    }
    CHECK(ok == 0 && errors == 200, "all 200 single-byte corruptions refused (%d accepted)", ok);
    CHECK(format == 200, "all as KN_ERR_FORMAT (%d)", format);
    CHECK(unchanged(g, before, before_len), "parameters untouched by 200 corrupt loads");
    /* 1,000 random single-bit flips anywhere in the file: every one is detected on load */
    int flips_ok = 0;
    for (int t = 0; t < 1000; t++) {
        size_t pos = (size_t)(rnd() % len);
        memcpy(bad, good, len);
        bad[pos] ^= (unsigned char)(1u << (rnd() % 8));
        put_file(P("bad.safetensors"), bad, len);
        kn_status st = kn_checkpoint_load(g, P("bad.safetensors"), false, NULL, NULL);
        if (st == KN_OK) {
            flips_ok++;
            fprintf(stderr, "bit flip at byte %zu accepted\n", pos);
        }
    }
    CHECK(flips_ok == 0, "all 1000 single-bit flips detected (%d accepted)", flips_ok);
    CHECK(unchanged(g, before, before_len), "parameters untouched by 1000 bit-flipped loads");
    /* a corrupted data byte says so */
    memcpy(bad, good, len);
    bad[len - 40] ^= 0x10;
    put_file(P("bad.safetensors"), bad, len);
    expect_load_fail(g, P("bad.safetensors"), false, KN_ERR_FORMAT,
                     "checksum mismatch: the file is corrupted or truncated", "data byte flipped");

    /* truncations */
    int refused = 0, tries = 0;
    for (size_t cut = 0; cut < len; cut += (cut < 64 || cut + 64 > len || (cut > 8 + hn - 8 && cut < 8 + hn + 8))
                                              ? 1 : 1 + rnd() % 37) {
        put_file(P("cut.safetensors"), good, cut);
        tries++;
        kn_meta got = {0};
        if (kn_checkpoint_load(g, P("cut.safetensors"), true, NULL, NULL) != KN_OK &&
            kn_checkpoint_read_meta(P("cut.safetensors"), &got, NULL) != KN_OK)
            refused++;
        kn_meta_clear(&got);
    }
    CHECK(refused == tries, "all %d truncations refused (%d)", tries, refused);
    CHECK(unchanged(g, before, before_len), "parameters untouched by truncated loads");
    put_file(P("cut.safetensors"), good, len - 1);
    expect_load_fail(g, P("cut.safetensors"), false, KN_ERR_FORMAT, NULL, "one byte short");
    /* appended bytes */
    unsigned char *longer = malloc(len + 8);
    memcpy(longer, good, len);
    memset(longer + len, 0, 8);
    put_file(P("cut.safetensors"), longer, len + 8);
    expect_load_fail(g, P("cut.safetensors"), false, KN_ERR_FORMAT, "checksum mismatch", "trailing bytes");
    expect_load_fail(g, P("cut.safetensors"), true, KN_ERR_FORMAT, "checksum mismatch", "trailing bytes, allow_extra");
    free(longer);
    free(before);
    free(bad);
    kn_free(good);
    kn_graph_free(a);
    kn_graph_free(g);
}

/* Hand-made (foreign) files: every field validated. */
static void test_bad_headers(void)
{
    spec s[2] = {{"a", KN_F32, 1, {4}, true}, {"b", KN_I64, 2, {1, 2}, true}};
    kn_graph *g = build(s, 2);
    fill(g, 11);
    unsigned char data[64];
    for (int i = 0; i < 64; i++)
        data[i] = (unsigned char)(i * 7 + 1);
    char path[768];
    snprintf(path, sizeof path, "%s", P("foreign.safetensors"));
    kn_error err = {0};

    /* a valid foreign file (no kiln.crc32, unpadded header) loads */
    put_st(path, "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"I64\",\"shape\":[1,2],\"data_offsets\""
                 ":[16,32]},\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
           false, data, 32);
    kn_meta m = {0};
    CHECK(kn_checkpoint_load(g, path, false, &m, &err) == KN_OK, "foreign file: %s", err.msg);
    CHECK(memcmp(kn_graph_param_data(g, kn_graph_find(g, "a")), data, 16) == 0 &&
              memcmp(kn_graph_param_data(g, kn_graph_find(g, "b")), data + 16, 16) == 0, "foreign data");
    CHECK(m.n == 1 && strcmp(kn_meta_get(&m, "format"), "pt") == 0, "foreign metadata");
    kn_meta_clear(&m);
    fill(g, 12);

#define OKT "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}"
#define BT(o) "\"b\":{\"dtype\":\"I64\",\"shape\":[1,2],\"data_offsets\":" o "}"
    static const struct {
        const char *header;
        size_t data;
        kn_status want;
        const char *needle;
    } cases[] = {
        {"hello, world", 32, KN_ERR_FORMAT, "not valid JSON"},
        {"", 32, KN_ERR_FORMAT, "not valid JSON"},
        {"[1,2]", 32, KN_ERR_FORMAT, "not a JSON object"},
        {"{" OKT "," BT("[16,32]"), 32, KN_ERR_FORMAT, "not valid JSON"},
        {"{" OKT "," BT("[16,32]") "}}", 32, KN_ERR_FORMAT, "after the end"},
        {"{" OKT "," OKT "}", 16, KN_ERR_FORMAT, "duplicate key \"a\""},
        {"{" OKT "," BT("[8,24]") "}", 24, KN_ERR_FORMAT, "overlap"},
        {"{" OKT "," BT("[24,40]") "}", 40, KN_ERR_FORMAT, "belong to no tensor"},
        {"{" OKT "," BT("[16,32]") "}", 40, KN_ERR_FORMAT, "the tensors cover 32"},
        {"{" OKT "," BT("[16,48]") "}", 40, KN_ERR_FORMAT, "run past the end"},
        {"{" OKT "," BT("[16,31]") "}", 31, KN_ERR_FORMAT, "hold 15 bytes"},
        {"{" OKT "," BT("[32,16]") "}", 32, KN_ERR_FORMAT, "begin <= end"},
        {"{" OKT "," BT("[-16,32]") "}", 32, KN_ERR_FORMAT, "begin <= end"},
        {"{" OKT "," BT("[16]") "}", 32, KN_ERR_FORMAT, "data_offsets"},
        {"{" OKT "," BT("[16,32,48]") "}", 32, KN_ERR_FORMAT, "data_offsets"},
        {"{" OKT "," BT("[16,\"32\"]") "}", 32, KN_ERR_FORMAT, "data_offsets"},
        {"{" OKT "," BT("[16,32.0]") "}", 32, KN_ERR_FORMAT, "only integers"},
        {"{" OKT "," BT("[16,99999999999999999999]") "}", 32, KN_ERR_FORMAT, "64 bits"},
        {"{" OKT ",\"b\":{\"dtype\":\"I65\",\"shape\":[1,2],\"data_offsets\":[16,32]}}", 32, KN_ERR_FORMAT,
         "unknown dtype"},
        {"{" OKT ",\"b\":{\"dtype\":\"BOOL\",\"shape\":[16],\"data_offsets\":[16,32]}}", 32, KN_ERR_UNSUPPORTED,
         "BOOL"},
        {"{" OKT ",\"b\":{\"dtype\":7,\"shape\":[1,2],\"data_offsets\":[16,32]}}", 32, KN_ERR_FORMAT, "dtype"},
        {"{" OKT ",\"b\":{\"shape\":[1,2],\"data_offsets\":[16,32]}}", 32, KN_ERR_FORMAT, "dtype"},
        {"{" OKT ",\"b\":{\"dtype\":\"I64\",\"shape\":[1,-2],\"data_offsets\":[16,32]}}", 32, KN_ERR_FORMAT,
         "non-negative"},
        {"{" OKT ",\"b\":{\"dtype\":\"I64\",\"shape\":2,\"data_offsets\":[16,32]}}", 32, KN_ERR_FORMAT, "shape"},
        {"{" OKT ",\"b\":{\"dtype\":\"I64\",\"shape\":[2147483648,2],\"data_offsets\":[16,32]}}", 32,
         KN_ERR_FORMAT, "needs 34359738368"},
        {"{" OKT ",\"b\":{\"dtype\":\"I64\",\"shape\":[4294967296,1073741824],\"data_offsets\":[16,32]}}", 32,
         KN_ERR_FORMAT, "byte size overflows"},
        {"{" OKT ",\"b\":{\"dtype\":\"I64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[16,32]}}", 32,
         KN_ERR_FORMAT, "element count overflows"},
        {"{" OKT ",\"b\":{\"dtype\":\"I64\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[16,32]}}", 32,
         KN_ERR_UNSUPPORTED, "9 dimensions"},
        {"{" OKT ",\"b\":[1,2]}", 32, KN_ERR_FORMAT, "not an object"},
        {"{\"__metadata__\":[]," OKT "," BT("[16,32]") "}", 32, KN_ERR_FORMAT, "__metadata__"},
        {"{\"__metadata__\":{\"epoch\":3}," OKT "," BT("[16,32]") "}", 32, KN_ERR_FORMAT, "not a string"},
        {"{\"__metadata__\":{\"kiln.version\":\"0.1.0\"}," OKT "," BT("[16,32]") "}", 32, KN_ERR_FORMAT,
         "without the \"kiln.crc32\""},
        {"{\"__metadata__\":{\"kiln.crc32\":\"1234\"}," OKT "," BT("[16,32]") "}", 32, KN_ERR_FORMAT, "8 lowercase"},
        {"{\"__metadata__\":{\"kiln.crc32\":\"0000000G\"}," OKT "," BT("[16,32]") "}", 32, KN_ERR_FORMAT, "hex"},
        {"{\"__metadata__\":{\"kiln.crc32\":\"12345678\"}," OKT "," BT("[16,32]") "}", 32, KN_ERR_FORMAT,
         "checksum mismatch"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}\x01," BT("[16,32]") "}", 32,
         KN_ERR_FORMAT, "not valid JSON"},
        {"{\"a\xff\":{}}", 32, KN_ERR_FORMAT, "UTF-8"},
        {"{" OKT "," BT("[16,32]") ",\"c\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[32,32]}}", 32,
         KN_ERR_SHAPE, "tensor \"c\" U8 [0]"},
        {"{" OKT "}", 16, KN_ERR_SHAPE, "\"b\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        put_st(path, cases[i].header, true, data, cases[i].data);
        char what[64];
        snprintf(what, sizeof what, "bad header case %zu", i);
        expect_load_fail(g, path, false, cases[i].want, cases[i].needle, what);
    }
    /* a zero-size extra tensor is fine with allow_extra */
    put_st(path, "{" OKT "," BT("[16,32]") ",\"c\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[32,32]}}", true,
           data, 32);
    CHECK_OK(kn_checkpoint_load(g, path, true, NULL, NULL));
    fill(g, 12);

    /* header length field: larger than the file, over 100 MB, huge, short file */
    unsigned char raw[64];
    memset(raw, ' ', sizeof raw);
    uint64_t lens[] = {57, 1000, (uint64_t)200 << 20, UINT64_MAX, (uint64_t)1 << 63};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int b = 0; b < 8; b++)
            raw[b] = (unsigned char)(lens[i] >> (8 * b));
        put_file(path, raw, sizeof raw);
        expect_load_fail(g, path, false, KN_ERR_FORMAT, "header length", "header length > file");
    }
    put_file(path, raw, 5);
    expect_load_fail(g, path, false, KN_ERR_FORMAT, "too short", "5-byte file");
    put_file(path, raw, 0);
    expect_load_fail(g, path, false, KN_ERR_FORMAT, "too short", "empty file");
    /* more than KN_META_MAX metadata entries: only with meta = NULL */
    char big[8192] = "{\"__metadata__\":{";
    for (int i = 0; i < 70; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%s\"k%d\":\"v\"", i ? "," : "", i);
    strcat(big, "}," OKT "," BT("[16,32]") "}");
    put_st(path, big, true, data, 32);
    expect_load_fail(g, path, false, KN_ERR_UNSUPPORTED, "meta = NULL", "71 metadata entries");
    CHECK_OK(kn_checkpoint_load(g, path, false, NULL, NULL));
    kn_graph_free(g);
#undef OKT
#undef BT
}

static void test_atomic_failures(void)
{
    kn_graph *a = build_base();
    fill(a, 13);
    kn_error err = {0};
    char path[768];
    snprintf(path, sizeof path, "%s", P("atomic.safetensors"));
    CHECK_OK(kn_checkpoint_save(a, path, NULL, NULL));
    size_t good_len;
    unsigned char *good = slurp(path, &good_len);
    fill(a, 14); /* saves below would change the file if they got through */

    /* a full disk at many points of the write */
    uint64_t points[] = {0, 1, 7, 8, 9, 100, good_len / 2, good_len - 1};
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        kn__io_set_fault(KN__IO_FAULT_WRITE, points[i], ENOSPC);
        kn_status st = kn_checkpoint_save(a, path, NULL, &err);
        kn__io_set_fault(KN__IO_FAULT_NONE, 0, 0);
        CHECK(st == KN_ERR_IO, "ENOSPC after %llu bytes: %s", (unsigned long long)points[i], kn_status_name(st));
        CHECK(strstr(err.msg, strerror(ENOSPC)) && strstr(err.msg, path), "message: %s", err.msg);
        CHECK(file_equals(path, good, good_len), "previous file intact after ENOSPC at %llu",
              (unsigned long long)points[i]);
        CHECK(temp_files(false) == 0, "no temporary file left after ENOSPC at %llu", (unsigned long long)points[i]);
    }
    struct {
        kn__io_fault where;
        int e;
        const char *needle;
    } stages[] = {
        {KN__IO_FAULT_FSYNC, EIO, "fsync failed"},
        {KN__IO_FAULT_CLOSE, EIO, "close failed"},
        {KN__IO_FAULT_RENAME, EXDEV, "rename"},
    };
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        kn__io_set_fault(stages[i].where, 0, stages[i].e);
        kn_status st = kn_checkpoint_save(a, path, NULL, &err);
        kn__io_set_fault(KN__IO_FAULT_NONE, 0, 0);
        CHECK(st == KN_ERR_IO && strstr(err.msg, stages[i].needle) && strstr(err.msg, strerror(stages[i].e)),
              "%s: %s", stages[i].needle, err.msg);
        CHECK(file_equals(path, good, good_len), "previous file intact (%s)", stages[i].needle);
        CHECK(temp_files(false) == 0, "no temporary file left (%s)", stages[i].needle);
    }
    /* the same through kn_write_file_atomic */
    kn__io_set_fault(KN__IO_FAULT_WRITE, 3, ENOSPC);
    CHECK(kn_write_file_atomic(path, "hello world", 11, &err) == KN_ERR_IO, "write_file_atomic ENOSPC");
    kn__io_set_fault(KN__IO_FAULT_NONE, 0, 0);
    CHECK(file_equals(path, good, good_len) && temp_files(false) == 0, "intact after write_file_atomic ENOSPC");

    /* read errors while loading leave the parameters as they were */
    kn_graph *g = build_base();
    fill(g, 15);
    uint64_t rpoints[] = {0, 4, 8, 200, good_len - 1};
    for (size_t i = 0; i < sizeof rpoints / sizeof rpoints[0]; i++) {
        kn__io_set_fault(KN__IO_FAULT_READ, rpoints[i], EIO);
        expect_load_fail(g, path, false, KN_ERR_IO, strerror(EIO), "EIO while reading");
        kn__io_set_fault(KN__IO_FAULT_NONE, 0, 0);
    }
    kn_graph_free(g);

    /* destinations that cannot be written */
    CHECK(kn_checkpoint_save(a, P("no/such/dir/x.safetensors"), NULL, &err) == KN_ERR_IO &&
              strstr(err.msg, "no/such/dir/x.safetensors") && strstr(err.msg, strerror(ENOENT)),
          "nonexistent directory: %s", err.msg);
    CHECK(kn_checkpoint_save(a, P("atomic.safetensors/x"), NULL, &err) == KN_ERR_IO, "a file as directory: %s",
          err.msg);
    mkdir(P("adir"), 0755);
    CHECK(kn_checkpoint_save(a, P("adir"), NULL, &err) == KN_ERR_IO && strstr(err.msg, "rename"),
          "a directory as destination: %s", err.msg);
    rmdir(P("adir"));
    CHECK(temp_files(false) == 0, "no temporary file left by refused destinations");
    /* a read-only directory; as root (which writes anyway) the save runs in a child as nobody */
    char ro[768];
    snprintf(ro, sizeof ro, "%s", P("ro"));
    mkdir(ro, 0555);
    chmod(ro, 0555);
    bool as_root = geteuid() == 0;
    if (as_root)
        chmod(dir, 0755);
    fflush(NULL);
    pid_t pid = as_root ? fork() : 0;
    if (pid == 0) {
        if (as_root && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(2);
        char target[800];
        snprintf(target, sizeof target, "%s/x.safetensors", ro);
        kn_status st = kn_checkpoint_save(a, target, NULL, &err);
        bool ok = st == KN_ERR_IO && strstr(err.msg, strerror(EACCES)) && strstr(err.msg, target);
        if (!as_root)
            CHECK(ok, "read-only directory: %s", err.msg);
        else
            _exit(ok ? 0 : 1);
    } else if (pid > 0) {
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
            printf("test_checkpoint: cannot switch to user nobody: read-only directory case skipped\n");
        else
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "read-only directory (as nobody): status %d", status);
    }
    if (as_root)
        chmod(dir, 0700);
    DIR *rd = opendir(ro);
    int nleft = 0;
    for (struct dirent *e; rd && (e = readdir(rd));)
        nleft += e->d_name[0] != '.';
    if (rd)
        closedir(rd);
    CHECK(nleft == 0, "nothing left in the read-only directory");
    rmdir(ro);
    CHECK(file_equals(path, good, good_len), "previous file still intact");
    kn_free(good);
    kn_graph_free(a);
}

/* SIGKILL at random moments of a loop of ~4 MB saves: PATH always holds a whole checkpoint. */
static void test_kill_during_save(void)
{
    const int64_t nw = 1024 * 1024; /* 4 MB of f32: small enough for 200+ trials per run */
    spec s[2] = {{"big.w", KN_F32, 1, {nw}, true}, {"big.step", KN_I64, 0, {0}, false}};
    kn_graph *g = build(s, 2);
    float *w = kn_graph_param_data(g, kn_graph_find(g, "big.w"));
    int64_t *step = kn_graph_param_data(g, kn_graph_find(g, "big.step"));
    if (!w || !step)
        return;
    for (int64_t i = 0; i < nw; i++)
        w[i] = (float)i * 0.5f;
    w[0] = w[nw - 1] = 0.0f;
    *step = 0;
    char path[768];
    snprintf(path, sizeof path, "%s", P("kill.safetensors"));
    kn_meta m = {0};
    kn_meta_set(&m, "iter", "0");
    double t0 = now();
    CHECK_OK(kn_checkpoint_save(g, path, &m, NULL)); /* the known-good first checkpoint */
    double t_save = now() - t0;
    double max_delay = 2.5 * t_save + 0.002;
    if (max_delay > 0.25)
        max_delay = 0.25;
    kn_graph *h = build(s, 2);
    float *hw = kn_graph_param_data(h, kn_graph_find(h, "big.w"));
    int64_t *hstep = kn_graph_param_data(h, kn_graph_find(h, "big.step"));
    int trials = 0, leftovers = 0, newer = 0, good = 0;
    double start = now();
    /* 200 to 220 trials; stop adding after 20 s, and at 30 s in any case */
    for (; trials < 220 && (trials < 200 || now() - start < 20.0) && now() - start < 30.0; trials++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            CHECK(0, "fork: %s", strerror(errno));
            break;
        }
        if (pid == 0) {
            for (int64_t it = 1;; it++) {
                char v[32];
                snprintf(v, sizeof v, "%lld", (long long)it);
                kn_meta_set(&m, "iter", v);
                *step = it;
                w[0] = w[nw - 1] = (float)it;
                if (kn_checkpoint_save(g, path, &m, NULL) != KN_OK)
                    _exit(3);
            }
        }
        double delay = (double)(rnd() % 1000000) / 1e6 * max_delay;
        usleep((useconds_t)(delay * 1e6));
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child killed (not failed: status %d)", status);
        kn_meta got = {0};
        kn_error err = {0};
        kn_status st = kn_checkpoint_load(h, path, false, &got, &err);
        CHECK(st == KN_OK, "trial %d (delay %.1f ms): the checkpoint loads: %s", trials, delay * 1e3, err.msg);
        if (st == KN_OK) {
            const char *it = kn_meta_get(&got, "iter");
            long long n = it ? atoll(it) : -1;
            bool consistent = n == *hstep && hw[0] == (float)n && hw[nw - 1] == (float)n &&
                              memcmp(hw + 1, w + 1, (size_t)(nw - 2) * sizeof *w) == 0;
            CHECK(consistent, "trial %d: one whole checkpoint (iter %lld, step %lld)", trials, n, (long long)*hstep);
            good += consistent;
            newer += n > 0;
        }
        kn_meta_clear(&got);
        leftovers += temp_files(true); /* PATH.tmp.<child pid> from a killed save: expected, removed */
    }
    printf("test_checkpoint: kill test: %d trials (save %.1f ms, delays up to %.1f ms), %d whole checkpoints, %d "
           "newer than the first, %d temporary files left by killed saves (removed)\n",
           trials, t_save * 1e3, max_delay * 1e3, good, newer, leftovers);
    /* 50 trials take 2-6 s on an idle machine; a child killed inside fsync only dies when the
     * fsync ends, so on a disk shared with other heavy writers the time cap may come first. */
    double spent = now() - start;
    if (trials < 200 && spent >= 30.0)
        printf("test_checkpoint: kill test: only %d trials fit in %.1f s (slow or busy disk)\n", trials, spent);
    CHECK(trials >= 200 || (spent >= 30.0 && trials >= 50), "at least 200 trials (%d in %.1f s)", trials, spent);
    kn_meta_clear(&m);
    unlink(path);
    kn_graph_free(g);
    kn_graph_free(h);
}

static void test_oom(void)
{
    kn_graph *a = build_base(), *g = build_base();
    fill(a, 16);
    fill(g, 17);
    kn_meta m = {0};
    set_tricky(&m);
    char path[768];
    snprintf(path, sizeof path, "%s", P("oom.safetensors"));
    CHECK_OK(kn_checkpoint_save(a, path, &m, NULL));
    size_t good_len, before_len;
    unsigned char *good = slurp(path, &good_len), *before = snap(g, &before_len);
    kn_graph *b = build_base();
    fill(b, 18);
    long n;
    kn_status st = KN_ERR_OOM;
    for (n = 1; n < 1000 && st != KN_OK; n++) {
        kt_oom_install(n);
        st = kn_checkpoint_save(b, path, &m, NULL);
        long live = kt_oom_live();
        kt_oom_remove();
        CHECK(st == KN_OK || st == KN_ERR_OOM, "save, allocation %ld fails: %s", n, kn_status_name(st));
        CHECK(live == 0, "save, allocation %ld fails: %ld blocks leaked", n, live);
        if (st != KN_OK)
            CHECK(file_equals(path, good, good_len) && temp_files(false) == 0, "intact after OOM %ld", n);
    }
    CHECK(st == KN_OK, "save succeeds once allocations do");
    CHECK_OK(kn_checkpoint_save(a, path, &m, NULL));
    st = KN_ERR_OOM;
    for (n = 1; n < 1000 && st != KN_OK; n++) {
        kn_meta got = {0};
        kt_oom_install(n);
        st = kn_checkpoint_load(g, path, false, &got, NULL);
        if (st == KN_OK)
            kn_meta_clear(&got);
        long live = kt_oom_live();
        kt_oom_remove();
        CHECK(st == KN_OK || st == KN_ERR_OOM, "load, allocation %ld fails: %s", n, kn_status_name(st));
        CHECK(live == 0, "load, allocation %ld fails: %ld blocks leaked", n, live);
        if (st != KN_OK)
            CHECK(unchanged(g, before, before_len) && got.n == 0, "untouched after OOM %ld", n);
    }
    CHECK(st == KN_OK && same_params(a, g), "load succeeds once allocations do");
    kn_meta_clear(&m);
    free(before);
    kn_free(good);
    kn_graph_free(a);
    kn_graph_free(b);
    kn_graph_free(g);
}

static void test_file_helpers(void)
{
    kn_error err = {0};
    char path[768];
    snprintf(path, sizeof path, "%s", P("plain.txt"));
    CHECK_OK(kn_write_file_atomic(path, "hello\0world", 11, &err));
    void *d = NULL;
    size_t n = 0;
    CHECK_OK(kn_read_file(path, 100, &d, &n, &err));
    CHECK(n == 11 && d && memcmp(d, "hello\0world", 11) == 0 && ((char *)d)[11] == '\0', "round trip");
    kn_free(d);
    CHECK(kn_read_file(path, 10, &d, &n, &err) == KN_ERR_FORMAT && d == NULL && n == 0 && strstr(err.msg, "limit"),
          "size cap: %s", err.msg);
    CHECK_OK(kn_read_file(path, 11, &d, &n, &err));
    kn_free(d);
    CHECK_OK(kn_write_file_atomic(path, NULL, 0, &err));
    CHECK_OK(kn_read_file(path, 100, &d, &n, &err));
    CHECK(n == 0 && d && ((char *)d)[0] == '\0', "empty file");
    kn_free(d);
    CHECK(kn_write_file_atomic(path, NULL, 5, &err) == KN_ERR_ARG, "NULL data");
    CHECK(kn_write_file_atomic(NULL, "x", 1, &err) == KN_ERR_ARG, "NULL path");
    CHECK(kn_read_file(P("nope"), 100, &d, &n, &err) == KN_ERR_IO && strstr(err.msg, "nope"), "missing: %s", err.msg);
    CHECK(kn_read_file(dir, 100, &d, &n, &err) == KN_ERR_IO, "directory: %s", err.msg);
    CHECK(kn_read_file(NULL, 100, &d, &n, &err) == KN_ERR_ARG, "NULL path");
    /* files whose stat size is 0 but that have content (procfs), and character devices */
    if (access("/proc/self/status", R_OK) == 0) {
        CHECK_OK(kn_read_file("/proc/self/status", 1 << 20, &d, &n, &err));
        CHECK(n > 0 && strstr(d, "Name:"), "procfs file read to its end (%zu bytes)", n);
        kn_free(d);
        CHECK(kn_read_file("/proc/self/status", 8, &d, &n, &err) == KN_ERR_FORMAT, "cap on a growing read");
    }
    CHECK_OK(kn_read_file("/dev/null", 100, &d, &n, &err));
    CHECK(n == 0, "/dev/null");
    kn_free(d);
    unlink(path);
    CHECK(temp_files(false) == 0, "no temporary files");
}

/* ---- the JSON reader ------------------------------------------------------------------------ */
static kn_status jparse(const char *s, kn__json *doc, char *msg)
{
    return kn__json_parse(doc, s, strlen(s), msg, 256);
}

static void test_json(void)
{
    kn__json doc;
    char msg[256];
    const char *src = " {\"a\" : [1, -2, 0, 9223372036854775807, -9223372036854775808], \"s\":\"x\\\"\\\\\\/\\b\\f\\n"
                      "\\r\\t\\u00e9\\u65e5\\ud83d\\udd25\", \"t\":true, \"f\":false, \"n\":null, \"e\":{}, \"ea\":[]} ";
    CHECK(jparse(src, &doc, msg) == KN_OK, "valid document: %s", msg);
    if (doc.nodes) {
        const kn__json_node *root = &doc.nodes[0];
        CHECK(root->type == KN__JSON_OBJECT && root->count == 7, "root object with 7 members");
        const kn__json_node *a = kn__json_get(&doc, root, "a");
        const kn__json_node *x = kn__json_child(&doc, a);
        int64_t want[] = {1, -2, 0, INT64_MAX, INT64_MIN};
        for (int i = 0; i < 5; i++, x = kn__json_next(&doc, x))
            CHECK(x && x->type == KN__JSON_INT && x->ival == want[i], "int %d", i);
        const kn__json_node *s = kn__json_get(&doc, root, "s");
        const char *dec = "x\"\\/\b\f\n\r\t\xc3\xa9\xe6\x97\xa5\xf0\x9f\x94\xa5";
        CHECK(s && s->type == KN__JSON_STRING && strcmp(s->str, dec) == 0 && s->str_len == strlen(dec),
              "escapes decoded");
        CHECK(s && s->raw_len == strlen("x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u65e5\\ud83d\\udd25") &&
                  src[s->raw_off - 1] == '"', "raw position of a string");
        CHECK(kn__json_get(&doc, root, "t")->ival == 1 && kn__json_get(&doc, root, "n")->type == KN__JSON_NULL,
              "literals");
        CHECK(kn__json_get(&doc, root, "e")->count == 0 && kn__json_get(&doc, root, "zz") == NULL, "empty, absent");
    }
    kn__json_free(&doc);
    static const char *bad[] = {
        "",        " ",           "{",          "}",          "[1,]",        "{\"a\":1,}",  "{\"a\" 1}",
        "{1:2}",   "[1 2]",       "01",         "-",          "1.5",         "1e3",         "9223372036854775808",
        "-9223372036854775809",   "\"abc",      "\"a\\x\"",   "\"\\u12\"",   "\"\\ud800\"", "\"\\udc00\"",
        "\"\\ud800\\u0041\"",     "\"\\u0000\"", "\"a\tb\"",  "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
        "\"\xe6\x97\"",           "tru",        "nul",        "[1]x",       "{\"a\":1,\"a\":2}", "[] []",
        "{\"a\":{\"b\":1,\"b\":1}}", "\xef\xbb\xbf{}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kn_status st = jparse(bad[i], &doc, msg);
        CHECK(st == KN_ERR_FORMAT && msg[0] && doc.nodes == NULL, "bad JSON %zu (%s) refused: %s", i, bad[i], msg);
        kn__json_free(&doc);
    }
    /* depth limit */
    char deep[200];
    for (int d = 63; d <= 66; d++) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        deep[2 * d] = '\0';
        kn_status st = jparse(deep, &doc, msg);
        CHECK((st == KN_OK) == (d <= KN__JSON_MAX_DEPTH), "depth %d: %s", d, msg);
        kn__json_free(&doc);
    }
    /* never reads past the buffer: parse prefixes of a valid document from an exact-size copy */
    size_t len = strlen(src);
    for (size_t cut = 0; cut <= len; cut++) {
        char *b = malloc(cut ? cut : 1);
        memcpy(b, src, cut);
        kn_status st = kn__json_parse(&doc, b, cut, msg, sizeof msg);
        CHECK((st == KN_OK) == (cut >= len - 1), "prefix %zu", cut);
        kn__json_free(&doc);
        free(b);
    }
    /* random mutations: no crash, clean result (run under ASan) */
    int accepted = 0;
    for (int t = 0; t < 3000; t++) {
        char *b = malloc(len);
        memcpy(b, src, len);
        int k = 1 + (int)(rnd() % 4);
        for (int j = 0; j < k; j++)
            b[rnd() % len] = (char)(rnd() & 0xff);
        kn_status st = kn__json_parse(&doc, b, len, msg, sizeof msg);
        CHECK(st == KN_OK || st == KN_ERR_FORMAT, "mutation: %s", kn_status_name(st));
        accepted += st == KN_OK;
        kn__json_free(&doc);
        free(b);
    }
    /* escaping writer round-trips through the reader */
    const char *raw = "q\"b\\n\n\x01\x1f\x7f caf\xc3\xa9";
    char out[128];
    size_t n = kn__json_escape(raw, NULL);
    CHECK(n == kn__json_escape(raw, out) && n < sizeof out, "escape size");
    CHECK(kn__json_parse(&doc, out, n, msg, sizeof msg) == KN_OK && strcmp(doc.nodes[0].str, raw) == 0,
          "escape round trip: %s", msg);
    kn__json_free(&doc);
    CHECK(kn__utf8_valid("caf\xc3\xa9", 5) && !kn__utf8_valid("\xc3", 1) && !kn__utf8_valid("\xc0\x80", 2),
          "utf8_valid");
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/kiln_ckpt_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "test_checkpoint: cannot create a temporary directory: %s\n", strerror(errno));
        return 1;
    }
    rng_state ^= (uint64_t)getpid() << 20 ^ (uint64_t)time(NULL);
    test_json();
    test_meta_api();
    test_file_helpers();
    test_roundtrip();
    test_save_errors();
    test_mismatch();
    test_bad_headers();
    test_corruption();
    test_atomic_failures();
    test_oom();
    test_kill_during_save();
    /* remove what is left */
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] != '.' || (e->d_name[1] && strcmp(e->d_name, "..") != 0))
            unlink(P(e->d_name));
    if (d)
        closedir(d);
    CHECK(rmdir(dir) == 0, "temporary directory removed: %s", strerror(errno));
    return kt_finish("test_checkpoint");
}
