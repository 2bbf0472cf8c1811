/* fuzz_safetensors.c — libFuzzer harness for kiln checkpoints (safetensors files): each input
 * is written to a temporary file and read with kn_checkpoint_read_meta, then loaded into a
 * small fixed graph (F32 [2,3] "w", F32 [3] "b", F16 [3] "h", I64 scalar "step") with
 * kn_checkpoint_load, strictly and with allow_extra. Because a mutated kiln file nearly always
 * fails its CRC-32 first, the loads see a copy whose "kiln.crc32" digits (when present) were
 * recomputed, so the fuzzer reaches the entry validation behind the checksum. Checked: every
 * failure is a documented status with a message, leaves the graph's parameters and the
 * caller's kn_meta untouched; every success round-trips (save, load into a second graph: the
 * same bytes and metadata). */
#include "fuzz_common.h"

#include <zlib.h>

static const kn_status meta_allowed[] = {KN_ERR_FORMAT, KN_ERR_UNSUPPORTED, KN_ERR_OOM, KN_STATUS_COUNT};
static const kn_status load_allowed[] = {KN_ERR_FORMAT, KN_ERR_UNSUPPORTED, KN_ERR_SHAPE, KN_ERR_DTYPE,
                                         KN_ERR_OOM,    KN_STATUS_COUNT};

static kn_graph *model(void)
{
    kn_graph *g = kn_graph_new();
    if (!g)
        abort();
    kn_graph_param(g, "w", KN_F32, 2, (const int64_t[]){2, 3}, true);
    kn_graph_param(g, "b", KN_F32, 1, (const int64_t[]){3}, true);
    kn_graph_param(g, "h", KN_F16, 1, (const int64_t[]){3}, false);
    kn_graph_param(g, "step", KN_I64, 0, NULL, false);
    if (kn_graph_status(g) != KN_OK)
        abort();
    return g;
}

/* All parameter bytes of g, in node order, into buf (at most cap); returns the count. */
static size_t snapshot(kn_graph *g, unsigned char *buf, size_t cap)
{
    kn_node *ps[8];
    int n = kn_graph_params(g, false, ps, 8);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t b = (size_t)kn_node_numel(ps[i]) * kn_dtype_size(kn_node_dtype(ps[i]));
        if (at + b > cap)
            abort();
        memcpy(buf + at, kn_graph_param_data(g, ps[i]), b);
        at += b;
    }
    return at;
}

static void scribble(kn_graph *g, unsigned char v)
{
    kn_node *ps[8];
    int n = kn_graph_params(g, false, ps, 8);
    for (int i = 0; i < n; i++)
        memset(kn_graph_param_data(g, ps[i]), v, (size_t)kn_node_numel(ps[i]) * kn_dtype_size(kn_node_dtype(ps[i])));
}

/* If the header holds "kiln.crc32":"XXXXXXXX", rewrites the digits with the file's true
 * CRC-32 (computed with them set to '0', as the writer does). */
static void fix_crc(unsigned char *d, size_t size)
{
    if (size < 8)
        return;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | d[i];
    if (n > size - 8)
        return;
    static const char key[] = "\"kiln.crc32\"";
    unsigned char *p = memmem(d + 8, (size_t)n, key, sizeof key - 1), *end = d + 8 + n;
    if (!p)
        return;
    p += sizeof key - 1;
    while (p < end && (*p == ' ' || *p == ':' || *p == '\n' || *p == '\t' || *p == '\r'))
        p++;
    if (end - p < 10 || *p != '"' || p[9] != '"')
        return;
    p++;
    memcpy(p, "00000000", 8);
    uLong crc = crc32(0, Z_NULL, 0);
    for (size_t at = 0; at < size;) { /* zlib takes uInt lengths */
        uInt chunk = size - at > (1u << 30) ? 1u << 30 : (uInt)(size - at);
        crc = crc32(crc, d + at, chunk);
        at += chunk;
    }
    char hex[9];
    snprintf(hex, sizeof hex, "%08lx", (unsigned long)crc & 0xffffffffUL);
    memcpy(p, hex, 8);
}

static void check_meta(const kn_meta *m, kn_status st, const kn_error *e)
{
    if (m->n < 0 || m->n > KN_META_MAX)
        kf_fail("a kn_meta count out of range", st, e);
    for (int i = 0; i < m->n; i++)
        if (!m->keys[i] || !m->values[i] || strlen(m->keys[i]) > 63 || !strcmp(m->keys[i], "kiln.crc32"))
            kf_fail("a bad kn_meta entry", st, e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *path, *path2;
    static kn_graph *g, *g2;
    if (!path) {
        path = kf_tmp(".safetensors");
        path2 = kf_tmp("-resaved.safetensors");
        g = model();
        g2 = model();
    }
    kf_write(path, data, size);
    kn_error e = {0};
    kn_meta meta = {0};
    kn_status st = kn_checkpoint_read_meta(path, &meta, &e);
    kf_check_error(st, &e, meta_allowed);
    if (st == KN_OK)
        check_meta(&meta, st, &e);
    kn_meta_clear(&meta);

    unsigned char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fix_crc(copy, size);
    kf_write(path, copy, size);
    free(copy);

    unsigned char before[64], after[64];
    for (int extra = 0; extra < 2; extra++) {
        scribble(g, 0xA5);
        size_t nb = snapshot(g, before, sizeof before);
        kn_meta_set(&meta, "sentinel", "kept on error");
        memset(&e, 0, sizeof e);
        st = kn_checkpoint_load(g, path, extra, &meta, &e);
        kf_check_error(st, &e, load_allowed);
        if (st != KN_OK) {
            if (snapshot(g, after, sizeof after) != nb || memcmp(before, after, nb) != 0)
                kf_fail("a failed load changed the parameters", st, &e);
            if (meta.n != 1 || strcmp(kn_meta_get(&meta, "sentinel") ? kn_meta_get(&meta, "sentinel") : "",
                                      "kept on error") != 0)
                kf_fail("a failed load changed the caller's metadata", st, &e);
            kn_meta_clear(&meta);
            continue;
        }
        check_meta(&meta, st, &e);
        /* Round trip: save what was loaded, load it into a second graph, compare. */
        st = kn_checkpoint_save(g, path2, &meta, &e);
        if (st != KN_OK)
            kf_fail("saving a loaded checkpoint failed", st, &e);
        kn_meta meta2 = {0};
        scribble(g2, 0x5A);
        st = kn_checkpoint_load(g2, path2, false, &meta2, &e);
        if (st != KN_OK)
            kf_fail("loading a re-saved checkpoint failed", st, &e);
        nb = snapshot(g, before, sizeof before);
        if (snapshot(g2, after, sizeof after) != nb || memcmp(before, after, nb) != 0)
            kf_fail("the re-saved checkpoint holds other bytes", st, &e);
        for (int i = 0; i < meta.n; i++) {
            const char *v = kn_meta_get(&meta2, meta.keys[i]);
            if (strcmp(meta.keys[i], "kiln.version") != 0 && (!v || strcmp(v, meta.values[i]) != 0))
                kf_fail("the re-saved checkpoint lost metadata", st, &e);
        }
        kn_meta_clear(&meta2);
        kn_meta_clear(&meta);
    }
    return 0;
}
