/* test_corpus.c — runs kiln's bad-file corpus (tests/corpus/<reader>/) through every file
 * reader: IDX, CIFAR, .npy, CSV, safetensors checkpoints and the model format. Each directory
 * has a MANIFEST (written by fuzz/make_corpus.py; crash reproducers found by fuzzing are added
 * there) with one row per case: the reader's arguments, the status it must return and either a
 * piece of the message (bad files) or the values a valid file must produce (CRC-32 of the data,
 * counts, shapes). Every bad file must fail with exactly its documented status, the same status
 * in the kn_error and a non-empty message, and hand nothing out; every valid file must load to
 * exactly the listed values, and checkpoints must round-trip (save, reload: the same bytes and
 * metadata; a file kiln wrote itself is rewritten byte for byte). Then every truncation point
 * of every valid file is tried: binary formats must fail with KN_ERR_FORMAT (CIFAR: unless the
 * cut falls on a record boundary, which is a smaller valid file), text formats may parse or
 * fail with a documented status. Every file in a corpus directory must be listed in its
 * MANIFEST. The error codes per class of bad file are tabled in fuzz/README.md. Set
 * KILN_CORPUS_VERBOSE=1 to print every row's status and message. Not here: the fuzzers
 * themselves (fuzz/, scripts/ci-fuzz.sh). */
#define _GNU_SOURCE /* mkdtemp */
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "kiln/nn.h"
#include "util.h"

#define CORPUS "tests/corpus"
#define MAX_ROWS 512

static char tmpdir[256];

typedef enum reader { R_IDX, R_CIFAR, R_NPY, R_CSV, R_ST, R_MODEL, R_COUNT } reader;
static const char *const reader_dir[R_COUNT] = {"idx", "cifar", "npy", "csv", "safetensors", "model"};
static const int reader_nargs[R_COUNT] = {2, 2, 2, 2, 2, 1};
/* Which arguments name files (bit i: argument i). */
static const unsigned reader_files[R_COUNT] = {3, 2, 3, 2, 2, 1};

typedef struct row {
    int nargs;
    char *args[2];
    kn_status want;
    char *rest;            /* message substring, or the key=value list of a valid row */
} row;

/* ---- small helpers ------------------------------------------------------------------------ */

static unsigned char *slurp(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    unsigned char *b = malloc(cap);
    for (size_t got; b && (got = fread(b + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            unsigned char *nb = realloc(b, cap *= 2);
            if (!nb)
                free(b);
            b = nb;
        }
    }
    fclose(f);
    *len = n;
    return b;
}

static void put_file(const char *path, const void *data, size_t len)
{
    unlink(path); /* a new file: ext4 flushes a truncated-and-rewritten one on close (auto_da_alloc) */
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        fprintf(stderr, "test_corpus: cannot write %s\n", path);
        exit(2);
    }
}

static unsigned crc_of(const void *p, size_t n)
{
    return (unsigned)(crc32(crc32(0, Z_NULL, 0), p, (uInt)n) & 0xffffffffu);
}

static bool status_from(const char *s, kn_status *out)
{
    for (int i = 0; i < KN_STATUS_COUNT; i++)
        if (!strcmp(s, kn_status_name((kn_status)i))) {
            *out = (kn_status)i;
            return true;
        }
    return false;
}

/* The value of `key=` in a valid row's list, or NULL. */
static const char *kv(const row *r, const char *key, char *buf, size_t size)
{
    size_t n = strlen(key);
    for (const char *p = r->rest; p && *p;) {
        while (*p == ' ')
            p++;
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > n && !strncmp(p, key, n) && p[n] == '=') {
            snprintf(buf, size, "%.*s", (int)(len - n - 1), p + n + 1);
            return buf;
        }
        p = e;
    }
    return NULL;
}

/* ---- the readers ---------------------------------------------------------------------------- */

/* The graph checkpoints load into (the same as fuzz/fuzz_safetensors.c and the corpus). */
static kn_graph *small_graph(void)
{
    kn_graph *g = kn_graph_new();
    kn_graph_param(g, "w", KN_F32, 2, (const int64_t[]){2, 3}, true);
    kn_graph_param(g, "b", KN_F32, 1, (const int64_t[]){3}, true);
    kn_graph_param(g, "h", KN_F16, 1, (const int64_t[]){3}, false);
    kn_graph_param(g, "step", KN_I64, 0, NULL, false);
    CHECK(kn_graph_status(g) == KN_OK, "the checkpoint graph builds: %s", kn_graph_error(g));
    return g;
}

static size_t graph_bytes(kn_graph *g, unsigned char *buf, size_t cap)
{
    kn_node *ps[8];
    int n = kn_graph_params(g, false, ps, 8);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t b = (size_t)kn_node_numel(ps[i]) * kn_dtype_size(kn_node_dtype(ps[i]));
        if (at + b <= cap)
            memcpy(buf + at, kn_graph_param_data(g, ps[i]), b);
        at += b;
    }
    return at;
}

static void scribble(kn_graph *g)
{
    kn_node *ps[8];
    int n = kn_graph_params(g, false, ps, 8);
    for (int i = 0; i < n; i++)
        memset(kn_graph_param_data(g, ps[i]), 0xA5,
               (size_t)kn_node_numel(ps[i]) * kn_dtype_size(kn_node_dtype(ps[i])));
}

typedef struct result {
    kn_dataset *ds;
    kn_model *model;
    kn_graph *g;
    kn_meta meta;
} result;

static void result_free(result *res)
{
    kn_dataset_free(res->ds);
    kn_model_free(res->model);
    kn_graph_free(res->g);
    kn_meta_clear(&res->meta);
    memset(res, 0, sizeof *res);
}

/* Runs reader rd on the row's arguments (files resolved to paths). */
static kn_status run(reader rd, char *const *a, kn_error *e, result *res)
{
    memset(res, 0, sizeof *res);
    memset(e, 0, sizeof *e);
    switch (rd) {
    case R_IDX:
        return kn_dataset_load_idx(&res->ds, a[0], a[1], e);
    case R_CIFAR:
        return kn_dataset_load_cifar(&res->ds, (const char *const *)&a[1], 1, !strcmp(a[0], "c100"), e);
    case R_NPY:
        return kn_dataset_load_npy(&res->ds, a[0], a[1], e);
    case R_CSV:
        return kn_dataset_load_csv(&res->ds, a[1], atoi(a[0]), e);
    case R_ST: {
        if (!strcmp(a[0], "meta")) {
            kn_meta_set(&res->meta, "sentinel", "kept on error");
            kn_status st = kn_checkpoint_read_meta(a[1], &res->meta, e);
            if (st)
                CHECK(res->meta.n == 1 && kn_meta_get(&res->meta, "sentinel"),
                      "%s: a failed read_meta changed the caller's metadata", a[1]);
            return st;
        }
        res->g = small_graph();
        scribble(res->g);
        unsigned char before[128], after[128];
        size_t nb = graph_bytes(res->g, before, sizeof before);
        kn_meta_set(&res->meta, "sentinel", "kept on error");
        kn_status st = kn_checkpoint_load(res->g, a[1], !strcmp(a[0], "extra"), &res->meta, e);
        if (st) {
            CHECK(graph_bytes(res->g, after, sizeof after) == nb && !memcmp(before, after, nb),
                  "%s: a failed load changed the parameters", a[1]);
            CHECK(res->meta.n == 1 && kn_meta_get(&res->meta, "sentinel"),
                  "%s: a failed load changed the caller's metadata", a[1]);
        }
        return st;
    }
    case R_MODEL:
        return kn_model_load(&res->model, a[0], e);
    default:
        return KN_ERR_ARG;
    }
}

static bool handed_out(reader rd, const result *res)
{
    return rd == R_MODEL ? res->model != NULL : res->ds != NULL;
}

/* ---- checks of a valid file's result --------------------------------------------------- */

static void check_dataset(const char *what, const row *r, const kn_dataset *ds)
{
    char v[64], sh[64] = "";
    if (!ds) {
        CHECK(0, "%s: KN_OK without a data set", what);
        return;
    }
    for (int i = 0, o = 0; i < ds->ndim; i++)
        o += snprintf(sh + o, sizeof sh - (size_t)o, "%s%lld", i ? "x" : "", (long long)ds->shape[i]);
    size_t xbytes = (size_t)ds->n * (size_t)kn_dataset_example_size(ds) * kn_dtype_size(ds->dtype);
    char xs[16], ys[16];
    snprintf(xs, sizeof xs, "%08x", crc_of(ds->x, xbytes));
    snprintf(ys, sizeof ys, "%08x", crc_of(ds->y, (size_t)ds->n * sizeof(int32_t)));
    if (kv(r, "n", v, sizeof v))
        CHECK(ds->n == atoll(v), "%s: n = %lld, want %s", what, (long long)ds->n, v);
    if (kv(r, "shape", v, sizeof v))
        CHECK(!strcmp(sh, v), "%s: example shape %s, want %s", what, sh, v);
    if (kv(r, "classes", v, sizeof v))
        CHECK(ds->classes == atoi(v), "%s: %d classes, want %s", what, ds->classes, v);
    if (kv(r, "x", v, sizeof v))
        CHECK(!strcmp(xs, v), "%s: x has CRC-32 %s, want %s", what, xs, v);
    if (kv(r, "y", v, sizeof v))
        CHECK(!strcmp(ys, v), "%s: y has CRC-32 %s, want %s", what, ys, v);
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->y[i] < 0 || ds->y[i] >= ds->classes) {
            CHECK(0, "%s: label %d outside [0, %d)", what, ds->y[i], ds->classes);
            break;
        }
}

static void check_model(const char *what, const row *r, const kn_model *m)
{
    char v[64];
    int64_t params = -1;
    CHECK_OK(kn_model_stats(m, &params, NULL, NULL));
    if (kv(r, "layers", v, sizeof v))
        CHECK(kn_model_num_layers(m) == atoi(v), "%s: %d layers, want %s", what, kn_model_num_layers(m), v);
    if (kv(r, "classes", v, sizeof v))
        CHECK(kn_model_num_classes(m) == atoi(v), "%s: %d classes, want %s", what, kn_model_num_classes(m), v);
    if (kv(r, "params", v, sizeof v))
        CHECK(params == atoll(v), "%s: %lld parameters, want %s", what, (long long)params, v);
}

/* Checkpoint: the parameter bytes and metadata count, then the round trip. */
static void check_checkpoint(const char *what, const row *r, const char *path, result *res)
{
    char v[64], key[80];
    if (kv(r, "meta", v, sizeof v))
        CHECK(res->meta.n == atoi(v), "%s: %d metadata entries, want %s", what, res->meta.n, v);
    if (!res->g)
        return; /* read_meta */
    kn_node *ps[8];
    int n = kn_graph_params(res->g, false, ps, 8);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "crc.%s", kn_node_name(ps[i]));
        char got[16];
        snprintf(got, sizeof got, "%08x",
                 crc_of(kn_graph_param_data(res->g, ps[i]),
                        (size_t)kn_node_numel(ps[i]) * kn_dtype_size(kn_node_dtype(ps[i]))));
        if (kv(r, key, v, sizeof v))
            CHECK(!strcmp(got, v), "%s: parameter %s has CRC-32 %s, want %s", what, kn_node_name(ps[i]), got, v);
    }
    char out[512];
    snprintf(out, sizeof out, "%s/resaved.safetensors", tmpdir);
    kn_error e = {0};
    kn_status st = kn_checkpoint_save(res->g, out, &res->meta, &e);
    CHECK(st == KN_OK, "%s: saving it again: %s", what, e.msg);
    kn_graph *g2 = small_graph();
    kn_meta m2 = {0};
    st = kn_checkpoint_load(g2, out, false, &m2, &e);
    CHECK(st == KN_OK, "%s: loading the re-saved file: %s", what, e.msg);
    unsigned char a[128], b[128];
    size_t na = graph_bytes(res->g, a, sizeof a), nb = graph_bytes(g2, b, sizeof b);
    CHECK(na == nb && !memcmp(a, b, na), "%s: the re-saved checkpoint holds other parameter bytes", what);
    for (int i = 0; i < res->meta.n; i++) {
        const char *k = res->meta.keys[i], *want = strcmp(k, "kiln.version") ? res->meta.values[i] : KILN_VERSION;
        const char *got = kn_meta_get(&m2, k);
        CHECK(got && !strcmp(got, want), "%s: metadata \"%s\" did not round-trip", what, k);
    }
    CHECK(m2.n == res->meta.n + (kn_meta_get(&res->meta, "kiln.version") ? 0 : 1),
          "%s: the re-saved file has %d metadata entries, want %d (+ kiln.version)", what, m2.n, res->meta.n);
    /* A file kiln wrote (same version) must come back byte for byte. */
    size_t lo, lr;
    unsigned char *orig = slurp(path, &lo), *again = slurp(out, &lr);
    const char *ver = kn_meta_get(&res->meta, "kiln.version");
    if (orig && memmem(orig, lo, "\"kiln.crc32\"", 12) && ver && !strcmp(ver, KILN_VERSION))
        CHECK(again && lo == lr && !memcmp(orig, again, lo), "%s: re-saving did not reproduce the file byte for byte",
              what);
    free(orig);
    free(again);
    kn_meta_clear(&m2);
    kn_graph_free(g2);
    unlink(out);
}

/* ---- one corpus directory ---------------------------------------------------------------- */

static int parse_manifest(reader rd, char *text, row *rows)
{
    int n = 0;
    for (char *save = NULL, *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        while (*ln == ' ')
            ln++;
        if (!*ln || *ln == '#')
            continue;
        if (n == MAX_ROWS) {
            CHECK(0, "%s/MANIFEST: more than %d rows", reader_dir[rd], MAX_ROWS);
            break;
        }
        row *r = &rows[n];
        memset(r, 0, sizeof *r);
        char *p = ln;
        const char *status = NULL;
        for (int f = 0; f <= reader_nargs[rd]; f++) {
            while (*p == ' ')
                p++;
            char *tok = p;
            while (*p && *p != ' ')
                p++;
            if (*p)
                *p++ = 0;
            if (f < reader_nargs[rd])
                r->args[f] = tok;
            else
                status = tok;
        }
        while (*p == ' ')
            p++;
        r->rest = p;
        r->nargs = reader_nargs[rd];
        if (!status || !status_from(status, &r->want)) {
            CHECK(0, "%s/MANIFEST: row \"%s\": bad status \"%s\"", reader_dir[rd], ln, status ? status : "");
            continue;
        }
        n++;
    }
    return n;
}

/* Every file of the directory is used by some row. */
static void check_listed(reader rd, const row *rows, int n)
{
    char dir[256];
    snprintf(dir, sizeof dir, CORPUS "/%s", reader_dir[rd]);
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d)
        return;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "MANIFEST"))
            continue;
        bool used = false;
        for (int i = 0; i < n && !used; i++)
            for (int a = 0; a < rows[i].nargs; a++)
                used |= (reader_files[rd] >> a & 1) && !strcmp(rows[i].args[a], de->d_name);
        CHECK(used, "%s/%s is not listed in its MANIFEST", dir, de->d_name);
    }
    closedir(d);
}

/* The statuses a cut-short valid file may give. Binary formats declare their sizes, so a cut
 * is always malformed; text formats may still parse. */
static bool cut_status_ok(reader rd, kn_status st)
{
    switch (rd) {
    case R_CSV:
        return st == KN_OK || st == KN_ERR_FORMAT || st == KN_ERR_ARG;
    case R_MODEL:
        return st == KN_OK || st == KN_ERR_FORMAT || st == KN_ERR_SHAPE;
    default:
        return st == KN_ERR_FORMAT;
    }
}

static int n_cases, n_cuts;

static void check_failure(const char *what, reader rd, kn_status st, const kn_error *e, const result *res)
{
    CHECK(e->status == st, "%s: returned %s but the kn_error holds %s", what, kn_status_name(st),
          kn_status_name(e->status));
    CHECK(e->msg[0] != 0, "%s: %s without a message", what, kn_status_name(st));
    CHECK(!handed_out(rd, res), "%s: failed with %s but handed out a result", what, kn_status_name(st));
}

/* Whether this file in this role (with these mode arguments) was cut already. */
static bool cut_before(reader rd, const row *r, int a)
{
    static char seen[256][160];
    static int n_seen;
    char key[160];
    snprintf(key, sizeof key, "%d %d %s %s", (int)rd, a, r->args[a], reader_files[rd] & 1 ? "" : r->args[0]);
    for (int i = 0; i < n_seen; i++)
        if (!strcmp(seen[i], key))
            return true;
    if (n_seen < 256)
        snprintf(seen[n_seen++], sizeof seen[0], "%s", key);
    return false;
}

static void run_truncations(reader rd, const row *r, char *const *paths)
{
    for (int a = 0; a < r->nargs; a++) {
        if (!(reader_files[rd] >> a & 1) || strncmp(r->args[a], "ok-", 3) != 0 || cut_before(rd, r, a))
            continue;
        size_t len;
        unsigned char *data = slurp(paths[a], &len);
        CHECK(data != NULL, "cannot read %s", paths[a]);
        if (!data)
            continue;
        char cut[512];
        const char *dot = strrchr(r->args[a], '.');
        snprintf(cut, sizeof cut, "%s/cut%s", tmpdir, dot ? dot : ""); /* keep .gz: nothing depends on it */
        char *args[2] = {paths[0], r->nargs > 1 ? paths[1] : NULL};
        args[a] = cut;
        size_t rec = rd == R_CIFAR ? (!strcmp(r->args[0], "c100") ? 3074 : 3073) : 0;
        for (size_t l = 0; l < len; l++) {
            put_file(cut, data, l);
            kn_error e;
            result res;
            kn_status st = run(rd, args, &e, &res);
            n_cuts++;
            char what[400];
            snprintf(what, sizeof what, "%s/%s cut to %zu of %zu bytes", reader_dir[rd], r->args[a], l, len);
            if (rd == R_CIFAR && l && l % rec == 0) {
                CHECK(st == KN_OK && res.ds && res.ds->n == (int64_t)(l / rec), "%s: %zu whole records: got %s",
                      what, l / rec, st ? e.msg : "a wrong count");
            } else {
                CHECK(cut_status_ok(rd, st), "%s: got %s (%s)", what, kn_status_name(st), st ? e.msg : "loaded");
                if (st)
                    check_failure(what, rd, st, &e, &res);
            }
            result_free(&res);
        }
        free(data);
        unlink(cut);
    }
}

/* One MANIFEST row: run the reader, check the outcome, then (valid rows) every truncation. */
static void do_row(reader rd, const row *r, int *bad, int *good)
{
    char pbuf[2][512], *paths[2] = {NULL, NULL};
    for (int a = 0; a < r->nargs; a++) {
        if (reader_files[rd] >> a & 1) {
            snprintf(pbuf[a], sizeof pbuf[a], CORPUS "/%s/%s", reader_dir[rd], r->args[a]);
            paths[a] = pbuf[a];
        } else {
            paths[a] = r->args[a];
        }
    }
    char what[600];
    snprintf(what, sizeof what, "%s: %s%s%s", reader_dir[rd], r->args[0], r->nargs > 1 ? " " : "",
             r->nargs > 1 ? r->args[1] : "");
    kn_error e;
    result res;
    kn_status st = run(rd, paths, &e, &res);
    if (getenv("KILN_CORPUS_VERBOSE")) /* to write or review MANIFEST rows */
        printf("%s: %s: %s\n", what, kn_status_name(st), st ? e.msg : "loaded");
    CHECK(st == r->want, "%s: got %s (%s), want %s", what, kn_status_name(st), st ? e.msg : "loaded",
          kn_status_name(r->want));
    ++*(r->want == KN_OK ? good : bad);
    if (st != KN_OK) {
        check_failure(what, rd, st, &e, &res);
        if (r->want != KN_OK && *r->rest)
            CHECK(strstr(e.msg, r->rest) != NULL, "%s: message \"%s\" lacks \"%s\"", what, e.msg, r->rest);
    } else if (r->want == KN_OK) {
        if (rd == R_MODEL)
            check_model(what, r, res.model);
        else if (rd == R_ST)
            check_checkpoint(what, r, paths[1], &res);
        else
            check_dataset(what, r, res.ds);
    }
    result_free(&res);
    if (r->want == KN_OK)
        run_truncations(rd, r, paths);
}

/* Allocation hooks for the crash reproducers: any single allocation over 256 MB fails, so a
 * reader that sizes memory by what a small file declares gets KN_ERR_OOM, not the machine. */
static void *capped_alloc(size_t bytes, size_t align, void *user)
{
    (void)user;
    if (bytes > ((size_t)256 << 20))
        return NULL;
    return aligned_alloc(align, (bytes + align - 1) / align * align);
}

static void capped_free(void *p, void *user)
{
    (void)user;
    free(p);
}

/* A reproducer of a crash found by fuzzing runs in a child process (with allocations capped
 * as above), so that if the bug comes back (or is not fixed yet) it shows as a failed check
 * naming the file instead of killing the whole test, and the remaining rows still run. */
static void do_row_isolated(reader rd, const row *r, int *bad, int *good)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        kn_set_alloc_hooks(&(kn_alloc_hooks){capped_alloc, capped_free, NULL});
        int before = kt_failures;
        do_row(rd, r, bad, good);
        fflush(stdout);
        exit(kt_failures > before ? 3 : 0); /* exit(), not _exit(): LeakSanitizer checks the child too */
    }
    int ws = 0;
    kt_checks++;
    if (pid < 0 || waitpid(pid, &ws, 0) != pid) {
        kt_failures++;
        fprintf(stderr, "%s: %s: cannot run the crash reproducer in a child process\n", reader_dir[rd], r->args[0]);
        return;
    }
    ++*(r->want == KN_OK ? good : bad);
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == 3) {
        kt_failures++; /* the child printed what failed */
    } else if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
        kt_failures++;
        fprintf(stderr, "%s: crash reproducer %s: %s%s%s: the reader crashed (%s %d; the sanitizer report is above)\n",
                __FILE__, reader_dir[rd], r->args[0], r->nargs > 1 ? " " : "", r->nargs > 1 ? r->args[1] : "",
                WIFSIGNALED(ws) ? "signal" : "exit status", WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
    }
}

static bool is_crash_row(reader rd, const row *r)
{
    for (int a = 0; a < r->nargs; a++)
        if ((reader_files[rd] >> a & 1) && !strncmp(r->args[a], "crash-", 6))
            return true;
    return false;
}

static void run_reader(reader rd)
{
    char path[256];
    snprintf(path, sizeof path, CORPUS "/%s/MANIFEST", reader_dir[rd]);
    size_t len;
    char *text = (char *)slurp(path, &len);
    CHECK(text != NULL, "cannot read %s (run the tests from the repository root)", path);
    if (!text)
        return;
    char *t2 = realloc(text, len + 1);
    if (!t2) {
        free(text);
        return;
    }
    text = t2;
    text[len] = 0;
    static row rows[MAX_ROWS];
    int n = parse_manifest(rd, text, rows);
    CHECK(n > 0, "%s: no rows", path);
    check_listed(rd, rows, n);
    int bad = 0, good = 0;
    for (int i = 0; i < n; i++) {
        n_cases++;
        if (is_crash_row(rd, &rows[i]))
            do_row_isolated(rd, &rows[i], &bad, &good);
        else
            do_row(rd, &rows[i], &bad, &good);
    }
    printf("%-12s %3d bad, %2d valid cases\n", reader_dir[rd], bad, good);
    free(text);
}

int main(void)
{
    const char *t = getenv("TMPDIR"); /* else /dev/shm: thousands of small files are written */
    snprintf(tmpdir, sizeof tmpdir, "%s/kiln-corpus-XXXXXX",
             t && *t ? t : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    for (int rd = 0; rd < R_COUNT; rd++)
        run_reader((reader)rd);
    printf("%d corpus cases and %d truncations run\n", n_cases, n_cuts);
    rmdir(tmpdir);
    return kt_finish("test_corpus");
}
