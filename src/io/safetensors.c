/* safetensors.c — kiln checkpoints: a graph's parameters saved as a safetensors file with a
 * whole-file CRC-32 in the metadata, loaded back after validating every field, and the
 * kn_meta string map. Layout: 8-byte little-endian header length N, N bytes of JSON header
 * (space-padded so the data starts 8-byte aligned), then the tensors back to back in node
 * order. Loading checks the header length, the JSON, the checksum (when the file has one:
 * foreign safetensors files are accepted unverified), every entry (dtype, shape, offsets
 * that tile the data section exactly, as the safetensors spec demands) and the match with the
 * model, and only then writes the parameters. Not here: lazy/mmap loading, dtype conversion
 * on load, big-endian hosts (refused), or sharded (multi-file) checkpoints. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/alloc.h"
#include "file.h"
#include "json.h"
#include "kiln/kiln.h"

#define HEADER_MAX ((uint64_t)100 << 20) /* bytes of JSON header we accept */
#define CRC_KEY "kiln.crc32"
#define VERSION_KEY "kiln.version"
#define META_KEY_MAX 63

/* ---- kn_meta ------------------------------------------------------------------------------- */
kn_status kn_meta_set(kn_meta *m, const char *key, const char *value)
{
    if (!m || !key || !value || strlen(key) > META_KEY_MAX)
        return KN_ERR_ARG;
    int i = 0;
    while (i < m->n && !(m->keys[i] && strcmp(m->keys[i], key) == 0))
        i++;
    if (i == m->n && m->n >= KN_META_MAX)
        return KN_ERR_ARG;
    char *v = kn__strdup(value);
    char *k = i == m->n ? kn__strdup(key) : m->keys[i];
    if (!v || !k) {
        kn__free(v);
        if (i == m->n)
            kn__free(k);
        return KN_ERR_OOM;
    }
    if (i == m->n) {
        m->keys[i] = k;
        m->values[i] = NULL;
        m->n++;
    }
    kn__free(m->values[i]);
    m->values[i] = v;
    return KN_OK;
}

const char *kn_meta_get(const kn_meta *m, const char *key)
{
    for (int i = 0; m && key && i < m->n && i < KN_META_MAX; i++)
        if (m->keys[i] && strcmp(m->keys[i], key) == 0)
            return m->values[i];
    return NULL;
}

void kn_meta_clear(kn_meta *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n && i < KN_META_MAX; i++) {
        kn__free(m->keys[i]);
        kn__free(m->values[i]);
    }
    memset(m, 0, sizeof *m);
}

/* ---- helpers --------------------------------------------------------------------------------- */
static bool host_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static const char *const st_dtype_names[KN_DTYPE_COUNT] = {
    [KN_F32] = "F32", [KN_F64] = "F64", [KN_F16] = "F16", [KN_BF16] = "BF16",
    [KN_I8] = "I8",   [KN_I32] = "I32", [KN_I64] = "I64", [KN_U8] = "U8",
};

static const char *st_dtype_name(kn_dtype dt)
{
    return (unsigned)dt < KN_DTYPE_COUNT ? st_dtype_names[dt] : "?";
}

static uint32_t crc_update(uint32_t crc, const void *p, uint64_t n)
{
    const Bytef *b = p;
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, b, chunk);
        b += chunk;
        n -= chunk;
    }
    return crc;
}

static void shape_str(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < size)
        snprintf(buf + k, size - k, "]");
}

/* Growable string for the header. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static char *sb_reserve(sbuf *b, size_t n)
{
    if (b->oom)
        return NULL;
    if (n > SIZE_MAX / 4 - b->len) {
        b->oom = true;
        return NULL;
    }
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *q = kn__realloc(b->p, b->len, nc);
        if (!q) {
            b->oom = true;
            return NULL;
        }
        b->p = q;
        b->cap = nc;
    }
    return b->p + b->len;
}

static void sb_put(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    char *o = sb_reserve(b, n);
    if (o) {
        memcpy(o, s, n + 1);
        b->len += n;
    }
}

static void sb_json(sbuf *b, const char *s)
{
    size_t n = kn__json_escape(s, NULL);
    char *o = sb_reserve(b, n);
    if (o) {
        kn__json_escape(s, o);
        b->len += n;
        b->p[b->len] = '\0';
    }
}

__attribute__((format(printf, 2, 3))) static void sb_fmt(sbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp);
}

typedef struct name_ref {
    const char *name;
    int index;
} name_ref;

static int cmp_name_ref(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* The graph's parameters (all of them, node order) into *out, checked for unique non-empty
 * names; *total gets their byte size. `what` is "save" or "load" for messages. */
static kn_status graph_params(kn_graph *g, const char *path, const char *what, kn_node ***out, int *count,
                              uint64_t *total, kn_error *err)
{
    *out = NULL;
    *count = 0;
    *total = 0;
    int n = kn_graph_params(g, false, NULL, 0);
    kn_node **ps = kn__calloc(n > 0 ? (size_t)n : 1, sizeof *ps);
    name_ref *refs = kn__calloc(n > 0 ? (size_t)n : 1, sizeof *refs);
    if (!ps || !refs) {
        kn__free(ps);
        kn__free(refs);
        return kn_error_set(err, KN_ERR_OOM, "%s: out of memory listing %d parameters", path, n);
    }
    kn_graph_params(g, false, ps, n);
    kn_status st = KN_OK;
    uint64_t sum = 0;
    for (int i = 0; i < n && !st; i++) {
        const char *name = kn_node_name(ps[i]);
        char sh[160];
        if (!*name)
            st = kn_error_set(err, KN_ERR_ARG, "%s: cannot %s: parameter #%d (node %d, %s %s) has no name; every "
                              "parameter needs a unique name to be checkpointed", path, what, i, kn_node_id(ps[i]),
                              kn_dtype_name(kn_node_dtype(ps[i])), kn_node_shape_str(ps[i], sh, sizeof sh));
        else if (!kn__utf8_valid(name, strlen(name)) || strcmp(name, "__metadata__") == 0)
            st = kn_error_set(err, KN_ERR_ARG, "%s: cannot %s: parameter name \"%.200s\" is %s; rename it", path,
                              what, name, strcmp(name, "__metadata__") == 0 ? "reserved by safetensors" : "not UTF-8");
        uint64_t bytes = (uint64_t)kn_node_numel(ps[i]) * kn_dtype_size(kn_node_dtype(ps[i]));
        sum += bytes; /* each parameter lives in memory: no overflow */
        refs[i] = (name_ref){name, i};
    }
    if (!st && n > 1) {
        qsort(refs, (size_t)n, sizeof *refs, cmp_name_ref);
        for (int i = 1; i < n && !st; i++)
            if (strcmp(refs[i].name, refs[i - 1].name) == 0)
                st = kn_error_set(err, KN_ERR_ARG, "%s: cannot %s: two parameters are named \"%.200s\" (nodes %d "
                                  "and %d); names must be unique", path, what, refs[i].name,
                                  kn_node_id(ps[refs[i - 1].index]), kn_node_id(ps[refs[i].index]));
    }
    kn__free(refs);
    if (st) {
        kn__free(ps);
        return st;
    }
    *out = ps;
    *count = n;
    *total = sum;
    return KN_OK;
}

/* Drops the parameters whose names start with skip (NULL or "": none) from ps[0..*np) and
 * their bytes from *total: kn_checkpoint_save_ex/load_ex leave them out. */
static void skip_prefixed(kn_node **ps, int *np, uint64_t *total, const char *skip)
{
    if (!skip || !*skip)
        return;
    size_t len = strlen(skip);
    int k = 0;
    for (int i = 0; i < *np; i++) {
        if (strncmp(kn_node_name(ps[i]), skip, len) == 0)
            *total -= (uint64_t)kn_node_numel(ps[i]) * kn_dtype_size(kn_node_dtype(ps[i]));
        else
            ps[k++] = ps[i];
    }
    *np = k;
}

/* ---- save ------------------------------------------------------------------------------------- */
static bool is_reserved_key(const char *k) { return strcmp(k, CRC_KEY) == 0 || strcmp(k, VERSION_KEY) == 0; }

kn_status kn_checkpoint_save(kn_graph *g, const char *path, const kn_meta *meta, kn_error *err)
{
    return kn_checkpoint_save_ex(g, path, meta, NULL, err);
}

kn_status kn_checkpoint_save_ex(kn_graph *g, const char *path, const kn_meta *meta, const char *skip_prefix,
                                kn_error *err)
{
    if (!g || !path || !*path)
        return kn_error_set(err, KN_ERR_ARG, "kn_checkpoint_save: NULL graph or empty path");
    if (!host_little_endian())
        return kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: checkpoints need a little-endian host", path);
    if (meta && (meta->n < 0 || meta->n > KN_META_MAX))
        return kn_error_set(err, KN_ERR_ARG, "%s: metadata count %d is outside 0..%d", path, meta->n, KN_META_MAX);
    char why[512];
    if (kn_graph_sync_params(g, why, sizeof why)) /* a GPU plan may hold newer values */
        return kn_error_set(err, KN_ERR_DEVICE, "%s: copying the parameters back from the GPU: %s", path, why);
    for (int i = 0; meta && i < meta->n; i++) {
        const char *k = meta->keys[i], *v = meta->values[i];
        if (!k || !v)
            return kn_error_set(err, KN_ERR_ARG, "%s: metadata entry %d has a NULL key or value", path, i);
        if (!kn__utf8_valid(k, strlen(k)) || !kn__utf8_valid(v, strlen(v)))
            return kn_error_set(err, KN_ERR_ARG, "%s: metadata \"%.64s\" is not valid UTF-8; safetensors headers "
                                "are JSON text (encode binary values, e.g. as hex)", path, k);
    }
    kn_node **ps;
    int np;
    uint64_t total;
    kn_status st = graph_params(g, path, "save", &ps, &np, &total, err);
    if (st)
        return st;
    skip_prefixed(ps, &np, &total, skip_prefix);

    /* Header, with the checksum's 8 digits as '0' for now. */
    sbuf h = {0};
    sb_put(&h, "{\"__metadata__\":{\"" CRC_KEY "\":\"");
    size_t crc_at = h.len;
    sb_put(&h, "00000000\",\"" VERSION_KEY "\":\"" KILN_VERSION "\"");
    for (int i = 0; meta && i < meta->n; i++) {
        if (is_reserved_key(meta->keys[i]))
            continue;
        sb_put(&h, ",");
        sb_json(&h, meta->keys[i]);
        sb_put(&h, ":");
        sb_json(&h, meta->values[i]);
    }
    sb_put(&h, "}");
    uint64_t off = 0;
    for (int i = 0; i < np; i++) {
        kn_node *n = ps[i];
        uint64_t bytes = (uint64_t)kn_node_numel(n) * kn_dtype_size(kn_node_dtype(n));
        sb_put(&h, ",");
        sb_json(&h, kn_node_name(n));
        sb_fmt(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(kn_node_dtype(n)));
        for (int d = 0; d < kn_node_ndim(n); d++)
            sb_fmt(&h, "%s%lld", d ? "," : "", (long long)kn_node_dim(n, d));
        sb_fmt(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    sb_put(&h, "}");
    while (!h.oom && h.len % 8 != 0)
        sb_put(&h, " ");
    if (h.oom)
        st = kn_error_set(err, KN_ERR_OOM, "%s: out of memory building the checkpoint header", path);
    else if (h.len > HEADER_MAX)
        st = kn_error_set(err, KN_ERR_ARG, "%s: the header would be %zu bytes, more than the %llu MB a checkpoint "
                          "may have; use fewer parameters or shorter metadata", path, h.len,
                          (unsigned long long)(HEADER_MAX >> 20));
    if (st) {
        kn__free(h.p);
        kn__free(ps);
        return st;
    }

    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    uint32_t crc = crc_update(0, len8, 8);
    crc = crc_update(crc, h.p, h.len);
    for (int i = 0; i < np; i++)
        crc = crc_update(crc, kn_graph_param_data(g, ps[i]),
                         (uint64_t)kn_node_numel(ps[i]) * kn_dtype_size(kn_node_dtype(ps[i])));
    char digits[9];
    snprintf(digits, sizeof digits, "%08x", (unsigned)crc);
    memcpy(h.p + crc_at, digits, 8);

    kn__afile f;
    st = kn__afile_open(&f, path, err);
    if (!st)
        st = kn__afile_write(&f, len8, 8, err);
    if (!st)
        st = kn__afile_write(&f, h.p, h.len, err);
    for (int i = 0; i < np && !st; i++) {
        size_t bytes = (size_t)kn_node_numel(ps[i]) * kn_dtype_size(kn_node_dtype(ps[i]));
        if (bytes)
            st = kn__afile_write(&f, kn_graph_param_data(g, ps[i]), bytes, err);
    }
    if (!st)
        st = kn__afile_commit(&f, err);
    kn__free(h.p);
    kn__free(ps);
    return st;
}

/* ---- load ------------------------------------------------------------------------------------- */
typedef struct entry {
    const char *name;
    kn_dtype dtype;
    int ndim;
    int64_t shape[KN_MAX_DIMS];
    uint64_t begin, end;
    size_t order; /* position in the header, for messages in file order */
    bool used;
} entry;

typedef struct ckpt {
    const char *path;
    int fd;
    uint64_t file_size, data_len;
    unsigned char *head; /* 8 + header bytes */
    size_t head_len;
    kn__json json;
    const kn__json_node *meta; /* "__metadata__" or NULL */
    bool has_crc;
    uint32_t crc_stored;
    size_t crc_at; /* file offset of the 8 digits */
    unsigned char *data; /* staged data section, or NULL */
    entry *entries;
    int n_entries;
} ckpt;

static void ck_free(ckpt *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    kn__json_free(&c->json);
    kn__free(c->head);
    kn__free(c->data);
    kn__free(c->entries);
    c->head = c->data = NULL;
    c->entries = NULL;
}

/* Opens path, reads and parses the header, finds the checksum. */
static kn_status ck_open(ckpt *c, const char *path, kn_error *err)
{
    memset(c, 0, sizeof *c);
    c->path = path;
    c->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us: refused below */
    if (c->fd < 0) {
        int e = errno;
        return kn_error_set(err, KN_ERR_IO, "%s: cannot open the checkpoint: %s", path, strerror(e));
    }
    struct stat sb;
    if (fstat(c->fd, &sb) != 0) {
        int e = errno;
        return kn_error_set(err, KN_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode))
        return kn_error_set(err, KN_ERR_IO, "%s: not a regular file", path);
    c->file_size = (uint64_t)sb.st_size;
    if (c->file_size < 8)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: file is %llu bytes, too short for a safetensors file (at least "
                            "8): truncated?", path, (unsigned long long)c->file_size);
    unsigned char len8[8];
    size_t got;
    kn_status st = kn__read_fully(c->fd, len8, 8, &got, path, err);
    if (st)
        return st;
    if (got != 8)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: file shrank while being read", path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | len8[i];
    if (n > c->file_size - 8)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: header length %llu is larger than the rest of the file (%llu "
                            "bytes): truncated, or not a safetensors file", path, (unsigned long long)n,
                            (unsigned long long)(c->file_size - 8));
    if (n > HEADER_MAX)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: header length %llu is more than the %llu MB limit: corrupted, "
                            "or not a safetensors file", path, (unsigned long long)n,
                            (unsigned long long)(HEADER_MAX >> 20));
    c->head_len = 8 + (size_t)n;
    c->data_len = c->file_size - c->head_len;
    c->head = kn__alloc(c->head_len);
    if (!c->head)
        return kn_error_set(err, KN_ERR_OOM, "%s: out of memory for a %llu-byte header", path, (unsigned long long)n);
    memcpy(c->head, len8, 8);
    if ((st = kn__read_fully(c->fd, c->head + 8, (size_t)n, &got, path, err)))
        return st;
    if (got != n)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: file shrank while being read", path);
    char msg[512];
    st = kn__json_parse(&c->json, (const char *)c->head + 8, (size_t)n, msg, sizeof msg);
    if (st)
        return kn_error_set(err, st, "%s: the header is not valid JSON: %s (offsets count from the header start, "
                            "byte 8 of the file): corrupted, or not a safetensors file", path, msg);
    const kn__json_node *root = &c->json.nodes[0];
    if (root->type != KN__JSON_OBJECT)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: the header is not a JSON object: not a safetensors file", path);
    c->meta = kn__json_get(&c->json, root, "__metadata__");
    if (c->meta && c->meta->type != KN__JSON_OBJECT)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: \"__metadata__\" is not an object", path);
    const kn__json_node *crc = kn__json_get(&c->json, c->meta, CRC_KEY);
    if (crc) {
        bool ok = crc->type == KN__JSON_STRING && crc->raw_len == 8 && crc->str_len == 8;
        for (int i = 0; ok && i < 8; i++)
            ok = (crc->str[i] >= '0' && crc->str[i] <= '9') || (crc->str[i] >= 'a' && crc->str[i] <= 'f');
        if (!ok)
            return kn_error_set(err, KN_ERR_FORMAT, "%s: the \"" CRC_KEY "\" metadata is not 8 lowercase hex digits: "
                                "the file is corrupted", path);
        c->has_crc = true;
        c->crc_stored = (uint32_t)strtoul(crc->str, NULL, 16);
        c->crc_at = 8 + crc->raw_off;
    } else {
        /* A kiln file always has both keys: one without the other means a damaged key name,
         * which must not turn verification off. */
        for (const kn__json_node *m = kn__json_child(&c->json, c->meta); m; m = kn__json_next(&c->json, m))
            if (strncmp(m->key, "kiln.", 5) == 0)
                return kn_error_set(err, KN_ERR_FORMAT, "%s: kiln metadata (\"%.64s\") without the \"" CRC_KEY "\" "
                                    "checksum: the file is corrupted (or was edited by another tool: remove the "
                                    "kiln.* keys to load it unverified)", path, m->key);
    }
    return KN_OK;
}

/* Reads the data section (staged in memory when `stage`, else only checksummed) and verifies
 * the checksum when the file has one. */
static kn_status ck_read_data(ckpt *c, bool stage, kn_error *err)
{
    static const char zeros[8] = "00000000";
    uint32_t crc = 0;
    if (c->has_crc) {
        crc = crc_update(crc, c->head, c->crc_at);
        crc = crc_update(crc, zeros, 8);
        crc = crc_update(crc, c->head + c->crc_at + 8, c->head_len - c->crc_at - 8);
    }
    if (c->data_len > SIZE_MAX / 2)
        return kn_error_set(err, KN_ERR_OOM, "%s: data section of %llu bytes does not fit in memory", c->path,
                            (unsigned long long)c->data_len);
    size_t need = (size_t)c->data_len, bufsize = stage ? need : (need < (4u << 20) ? need : (4u << 20));
    unsigned char *buf = NULL;
    if (bufsize) {
        buf = kn__alloc(bufsize);
        if (!buf)
            return kn_error_set(err, KN_ERR_OOM, "%s: out of memory for %zu bytes of tensor data", c->path, bufsize);
    }
    kn_status st = KN_OK;
    size_t done = 0;
    while (done < need) {
        unsigned char *dst = stage ? buf + done : buf;
        size_t want = stage ? need - done : (need - done < bufsize ? need - done : bufsize), got;
        if ((st = kn__read_fully(c->fd, dst, want, &got, c->path, err)))
            break;
        if (c->has_crc)
            crc = crc_update(crc, dst, got);
        done += got;
        if (got < want) {
            st = kn_error_set(err, KN_ERR_FORMAT, "%s: file shrank while being read", c->path);
            break;
        }
    }
    if (!st) {
        unsigned char extra;
        size_t got;
        st = kn__read_fully(c->fd, &extra, 1, &got, c->path, err);
        if (!st && got)
            st = kn_error_set(err, KN_ERR_FORMAT, "%s: file grew while being read", c->path);
    }
    if (!st && c->has_crc && crc != c->crc_stored)
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: checksum mismatch: the file is corrupted or truncated (stored "
                          "%08x, computed %08x)", c->path, (unsigned)c->crc_stored, (unsigned)crc);
    if (st || !stage) {
        kn__free(buf);
        buf = NULL;
    }
    c->data = buf;
    return st;
}

static int cmp_entry_offset(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

static int cmp_entry_order(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    return (x->order > y->order) - (x->order < y->order);
}

static kn_status entry_fail(const ckpt *c, const char *name, const char *what, kn_error *err)
{
    return kn_error_set(err, KN_ERR_FORMAT, "%s: tensor \"%.200s\": %s: the file is corrupted or was not written "
                        "correctly", c->path, name, what);
}

/* Validates the metadata values and every tensor entry; leaves c->entries sorted by name. */
static kn_status ck_validate(ckpt *c, kn_error *err)
{
    for (const kn__json_node *m = kn__json_child(&c->json, c->meta); m; m = kn__json_next(&c->json, m))
        if (m->type != KN__JSON_STRING)
            return kn_error_set(err, KN_ERR_FORMAT, "%s: metadata \"%.64s\" is not a string (safetensors metadata "
                                "maps strings to strings)", c->path, m->key);
    const kn__json_node *root = &c->json.nodes[0];
    int n = root->count - (c->meta ? 1 : 0);
    c->entries = kn__calloc(n > 0 ? (size_t)n : 1, sizeof *c->entries);
    if (!c->entries)
        return kn_error_set(err, KN_ERR_OOM, "%s: out of memory for %d tensor entries", c->path, n);
    int k = 0;
    char why[256];
    for (const kn__json_node *t = kn__json_child(&c->json, root); t; t = kn__json_next(&c->json, t)) {
        if (t == c->meta)
            continue;
        entry *e = &c->entries[k];
        e->name = t->key;
        e->order = (size_t)k;
        k++;
        if (t->type != KN__JSON_OBJECT)
            return entry_fail(c, e->name, "the entry is not an object", err);
        const kn__json_node *dt = kn__json_get(&c->json, t, "dtype");
        const kn__json_node *shape = kn__json_get(&c->json, t, "shape");
        const kn__json_node *offs = kn__json_get(&c->json, t, "data_offsets");
        if (!dt || dt->type != KN__JSON_STRING)
            return entry_fail(c, e->name, "\"dtype\" is missing or not a string", err);
        if (!shape || shape->type != KN__JSON_ARRAY)
            return entry_fail(c, e->name, "\"shape\" is missing or not an array", err);
        if (!offs || offs->type != KN__JSON_ARRAY || offs->count != 2)
            return entry_fail(c, e->name, "\"data_offsets\" is missing or not an array of two integers", err);
        int d = 0;
        while (d < KN_DTYPE_COUNT && strcmp(st_dtype_names[d], dt->str) != 0)
            d++;
        if (d == KN_DTYPE_COUNT) {
            static const char *const other[] = {"BOOL", "I16", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2",
                                                "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"};
            for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
                if (strcmp(other[i], dt->str) == 0)
                    return kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: tensor \"%.200s\" has dtype %s, which kiln does "
                                        "not support (F32, F64, F16, BF16, I8, I32, I64, U8)", c->path, e->name,
                                        dt->str);
            snprintf(why, sizeof why, "unknown dtype \"%.32s\"", dt->str);
            return entry_fail(c, e->name, why, err);
        }
        e->dtype = (kn_dtype)d;
        if (shape->count > KN_MAX_DIMS)
            return kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: tensor \"%.200s\" has %d dimensions; kiln supports at "
                                "most %d", c->path, e->name, shape->count, KN_MAX_DIMS);
        e->ndim = shape->count;
        uint64_t numel = 1;
        int i = 0;
        for (const kn__json_node *s = kn__json_child(&c->json, shape); s; s = kn__json_next(&c->json, s), i++) {
            if (s->type != KN__JSON_INT || s->ival < 0)
                return entry_fail(c, e->name, "a dimension of \"shape\" is not a non-negative integer", err);
            e->shape[i] = s->ival;
            if (s->ival != 0 && numel > (uint64_t)INT64_MAX / (uint64_t)s->ival)
                return entry_fail(c, e->name, "the shape's element count overflows 64 bits", err);
            numel *= (uint64_t)s->ival;
        }
        size_t es = kn_dtype_size(e->dtype);
        if (numel > UINT64_MAX / es)
            return entry_fail(c, e->name, "the shape's byte size overflows 64 bits", err);
        const kn__json_node *b = kn__json_child(&c->json, offs), *en = kn__json_next(&c->json, b);
        if (b->type != KN__JSON_INT || en->type != KN__JSON_INT || b->ival < 0 || en->ival < b->ival)
            return entry_fail(c, e->name, "\"data_offsets\" must be two integers 0 <= begin <= end", err);
        e->begin = (uint64_t)b->ival;
        e->end = (uint64_t)en->ival;
        if (e->end > c->data_len) {
            snprintf(why, sizeof why, "data_offsets [%llu,%llu] run past the end of the data (%llu bytes): truncated?",
                     (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)c->data_len);
            return entry_fail(c, e->name, why, err);
        }
        if (e->end - e->begin != numel * es) {
            char sh[160];
            shape_str(e->ndim, e->shape, sh, sizeof sh);
            snprintf(why, sizeof why, "data_offsets [%llu,%llu] hold %llu bytes, but %s %s needs %llu",
                     (unsigned long long)e->begin, (unsigned long long)e->end,
                     (unsigned long long)(e->end - e->begin), dt->str, sh, (unsigned long long)(numel * es));
            return entry_fail(c, e->name, why, err);
        }
    }
    c->n_entries = k;
    /* The tensors must tile the data section: no overlap, no hole, nothing after the last. */
    qsort(c->entries, (size_t)k, sizeof *c->entries, cmp_entry_offset);
    uint64_t at = 0;
    for (int i = 0; i < k; i++) {
        const entry *e = &c->entries[i];
        if (e->begin < at)
            return kn_error_set(err, KN_ERR_FORMAT, "%s: tensors \"%.200s\" and \"%.200s\" overlap (bytes %llu..%llu "
                                "and %llu..%llu of the data): the file is corrupted", c->path, c->entries[i - 1].name,
                                e->name, (unsigned long long)c->entries[i - 1].begin,
                                (unsigned long long)c->entries[i - 1].end, (unsigned long long)e->begin,
                                (unsigned long long)e->end);
        if (e->begin > at)
            return kn_error_set(err, KN_ERR_FORMAT, "%s: bytes %llu..%llu of the data belong to no tensor (before "
                                "\"%.200s\"); safetensors forbids holes: the file is corrupted", c->path,
                                (unsigned long long)at, (unsigned long long)e->begin, e->name);
        at = e->end;
    }
    if (at != c->data_len)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: the data section has %llu bytes but the tensors cover %llu: "
                            "the file is corrupted, or has trailing data", c->path,
                            (unsigned long long)c->data_len, (unsigned long long)at);
    qsort(c->entries, (size_t)k, sizeof *c->entries, cmp_entry_name);
    return KN_OK;
}

/* The file's metadata (without the checksum) into a fresh kn_meta. */
static kn_status ck_meta(const ckpt *c, kn_meta *out, kn_error *err)
{
    memset(out, 0, sizeof *out);
    for (const kn__json_node *m = kn__json_child(&c->json, c->meta); m; m = kn__json_next(&c->json, m)) {
        if (strcmp(m->key, CRC_KEY) == 0)
            continue;
        kn_status st = KN_OK;
        if (strlen(m->key) > META_KEY_MAX)
            st = kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: metadata key \"%.64s...\" is longer than the %d bytes "
                              "kn_meta holds (pass meta = NULL to load without the metadata)", c->path, m->key,
                              META_KEY_MAX);
        else if (out->n >= KN_META_MAX && !kn_meta_get(out, m->key))
            st = kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: more than %d metadata entries, more than kn_meta holds "
                              "(pass meta = NULL to load without the metadata)", c->path, KN_META_MAX);
        else if (kn_meta_set(out, m->key, m->str) != KN_OK)
            st = kn_error_set(err, KN_ERR_OOM, "%s: out of memory copying the metadata", c->path);
        if (st) {
            kn_meta_clear(out);
            return st;
        }
    }
    return KN_OK;
}

static const entry *find_entry(const ckpt *c, const char *name)
{
    entry key = {.name = name};
    return bsearch(&key, c->entries, (size_t)c->n_entries, sizeof key, cmp_entry_name);
}

kn_status kn_checkpoint_load(kn_graph *g, const char *path, bool allow_extra, kn_meta *meta, kn_error *err)
{
    return kn_checkpoint_load_ex(g, path, allow_extra, NULL, meta, err);
}

kn_status kn_checkpoint_load_ex(kn_graph *g, const char *path, bool allow_extra, const char *skip_prefix, kn_meta *meta,
                                kn_error *err)
{
    if (!g || !path || !*path)
        return kn_error_set(err, KN_ERR_ARG, "kn_checkpoint_load: NULL graph or empty path");
    if (!host_little_endian())
        return kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: checkpoints need a little-endian host", path);
    kn_node **ps;
    int np;
    uint64_t total;
    kn_status st = graph_params(g, path, "load", &ps, &np, &total, err);
    if (st)
        return st;
    skip_prefixed(ps, &np, &total, skip_prefix);
    ckpt c;
    kn_meta tmp = {0};
    st = ck_open(&c, path, err);
    /* More data than the model's parameters means extra tensors (or a hole): only checksum
     * it then, so memory stays bounded by the model and the message says what is wrong. */
    if (!st)
        st = ck_read_data(&c, allow_extra || c.data_len <= total, err);
    if (!st)
        st = ck_validate(&c, err);
    char fs[160], ms[160];
    for (int i = 0; i < np && !st; i++) {
        kn_node *n = ps[i];
        entry *e = (entry *)find_entry(&c, kn_node_name(n));
        kn_node_shape_str(n, ms, sizeof ms);
        if (!e) {
            st = kn_error_set(err, KN_ERR_SHAPE, "%s: the model's parameter \"%.200s\" %s %s is not in the file: "
                              "checkpoint of a different model?", path, kn_node_name(n),
                              st_dtype_name(kn_node_dtype(n)), ms);
            break;
        }
        e->used = true;
        shape_str(e->ndim, e->shape, fs, sizeof fs);
        bool same_shape = e->ndim == kn_node_ndim(n);
        for (int d = 0; same_shape && d < e->ndim; d++)
            same_shape = e->shape[d] == kn_node_dim(n, d);
        if (e->dtype != kn_node_dtype(n))
            st = kn_error_set(err, KN_ERR_DTYPE, "%s: tensor %.200s is %s %s in the file but %s %s in the model: "
                              "checkpoint of a different model?", path, e->name, st_dtype_name(e->dtype), fs,
                              st_dtype_name(kn_node_dtype(n)), ms);
        else if (!same_shape)
            st = kn_error_set(err, KN_ERR_SHAPE, "%s: tensor %.200s has shape %s in the file but %s in the model: "
                              "checkpoint of a different model?", path, e->name, fs, ms);
    }
    if (!st && !allow_extra) {
        qsort(c.entries, (size_t)c.n_entries, sizeof *c.entries, cmp_entry_order);
        int extra = 0;
        const entry *first = NULL;
        for (int i = 0; i < c.n_entries; i++)
            if (!c.entries[i].used && extra++ == 0)
                first = &c.entries[i];
        if (first) {
            shape_str(first->ndim, first->shape, fs, sizeof fs);
            st = kn_error_set(err, KN_ERR_SHAPE, "%s: tensor \"%.200s\" %s %s in the file is not a parameter of the "
                              "model%s: checkpoint of a different model? (allow_extra ignores extra tensors)", path,
                              first->name, st_dtype_name(first->dtype), fs,
                              extra > 1 ? " (nor are other tensors after it)" : "");
        }
        qsort(c.entries, (size_t)c.n_entries, sizeof *c.entries, cmp_entry_name);
    }
    if (!st && meta)
        st = ck_meta(&c, &tmp, err);
    if (!st && !c.data && c.data_len) /* unreachable: unstaged data always has extra tensors */
        st = kn_error_set(err, KN_ERR_SHAPE, "%s: the file holds more data than the model's parameters", path);
    char why[512];
    if (!st && kn_graph_sync_params(g, why, sizeof why)) /* GPU plans upload them again */
        st = kn_error_set(err, KN_ERR_DEVICE, "%s: copying the parameters back from the GPU: %s", path, why);
    if (!st) {
        /* Everything checked: now, and only now, write the parameters. */
        for (int i = 0; i < np; i++) {
            const entry *e = find_entry(&c, kn_node_name(ps[i]));
            if (e->end > e->begin)
                memcpy(kn_graph_param_data(g, ps[i]), c.data + e->begin, (size_t)(e->end - e->begin));
        }
        if (meta) {
            kn_meta_clear(meta);
            *meta = tmp;
        }
    } else
        kn_meta_clear(&tmp);
    ck_free(&c);
    kn__free(ps);
    return st;
}

kn_status kn_checkpoint_read_meta(const char *path, kn_meta *meta, kn_error *err)
{
    if (!path || !*path || !meta)
        return kn_error_set(err, KN_ERR_ARG, "kn_checkpoint_read_meta: NULL or empty path, or NULL meta");
    ckpt c;
    kn_meta tmp = {0};
    kn_status st = ck_open(&c, path, err);
    if (!st)
        st = ck_read_data(&c, false, err);
    if (!st)
        st = ck_validate(&c, err);
    if (!st)
        st = ck_meta(&c, &tmp, err);
    if (!st) {
        kn_meta_clear(meta);
        *meta = tmp;
    }
    ck_free(&c);
    return st;
}
