/* npy.c — the NumPy .npy reader for data sets: format versions 1.0, 2.0 and 3.0, a header
 * dict with 'descr' (bool, signed/unsigned integers of 1-8 bytes, f2/f4/f8, any byte order),
 * 'fortran_order' and 'shape'. Inputs x become f32 (u8 stays u8), labels y must be integers
 * in [0, 2^31 - 1). It deliberately reads only C-ordered plain arrays: Fortran order, structured
 * or object dtypes, strings and .npz archives are reported as unsupported. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "data_internal.h"

#define NPY_MAX_HEADER (1u << 20)
#define NPY_MAX_DIMS 8

typedef struct npy_info {
    char kind;     /* 'b' bool, 'i' signed, 'u' unsigned, 'f' float */
    int size;      /* bytes per element */
    bool swap;     /* stored in the other byte order than this machine's */
    int ndim;
    int64_t shape[NPY_MAX_DIMS];
    int64_t numel;
    char descr[32];
} npy_info;

static bool host_little(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* ---- header parsing --------------------------------------------------------------------- */

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool accept(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool parse_str(cursor *c, char *out, size_t cap)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return false;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (n + 1 >= cap)
            return false;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return false;
    c->p++;
    out[n] = 0;
    return true;
}

static bool parse_word(cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && !memcmp(c->p, w, n)) {
        c->p += n;
        return true;
    }
    return false;
}

static kn_status parse_shape(cursor *c, npy_info *in, const char *path, kn_error *err)
{
    if (!accept(c, '('))
        return kn_error_set(err, KN_ERR_FORMAT, "%s: npy header: 'shape' is not a tuple", path);
    in->ndim = 0;
    for (;;) {
        if (accept(c, ')'))
            return KN_OK;
        skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return kn_error_set(err, KN_ERR_FORMAT, "%s: npy header: 'shape' holds something other than "
                                                    "non-negative integers", path);
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return kn_error_set(err, KN_ERR_FORMAT, "%s: npy header: a 'shape' entry overflows", path);
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') /* Python 2 long */
            c->p++;
        if (in->ndim == NPY_MAX_DIMS)
            return kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: arrays of more than %d dims are not supported", path,
                                NPY_MAX_DIMS);
        in->shape[in->ndim++] = v;
        if (!accept(c, ',')) {
            if (accept(c, ')'))
                return KN_OK;
            return kn_error_set(err, KN_ERR_FORMAT, "%s: npy header: malformed 'shape' tuple", path);
        }
    }
}

static kn_status parse_descr(const char *d, npy_info *in, const char *path, kn_error *err)
{
    snprintf(in->descr, sizeof in->descr, "%s", d);
    char order = d[0];
    const char *k = d + 1; /* the kind character, after the byte order */
    if (order != '<' && order != '>' && order != '|' && order != '=')
        order = '=', k = d; /* no byte order character: native */
    char kind = *k; /* '\0' for an empty descr: rejected below as unsupported */
    int size = 0;
    const char *s = kind ? k + 1 : k;
    while (*s >= '0' && *s <= '9' && size < 100)
        size = size * 10 + (*s++ - '0');
    bool ok = !*s && ((kind == 'b' && size == 1) || ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 ||
                                                                                        size == 4 || size == 8)) ||
                      (kind == 'f' && (size == 2 || size == 4 || size == 8)));
    if (!ok)
        return kn_error_set(err, KN_ERR_UNSUPPORTED,
                            "%s: npy dtype '%s' is not supported; use bool, int8..int64, uint8..uint64, float16, "
                            "float32 or float64 (e.g. np.save(path, a.astype(np.float32)))",
                            path, in->descr);
    in->kind = kind;
    in->size = size;
    in->swap = size > 1 && ((order == '<' && !host_little()) || (order == '>' && host_little()));
    return KN_OK;
}

static kn_status parse_header(const char *h, size_t len, npy_info *in, const char *path, kn_error *err)
{
    cursor c = {h, h + len};
    bool have_descr = false, have_order = false, have_shape = false;
    char key[32], val[32];
    kn_status st;
    if (!accept(&c, '{'))
        return kn_error_set(err, KN_ERR_FORMAT, "%s: npy header is not a dict: '%.40s'", path, h);
    for (;;) {
        if (accept(&c, '}'))
            break;
        if (!parse_str(&c, key, sizeof key) || !accept(&c, ':'))
            return kn_error_set(err, KN_ERR_FORMAT, "%s: npy header: malformed dict near '%.30s'", path, c.p);
        if (!strcmp(key, "descr")) {
            skip_ws(&c);
            if (c.p < c.end && *c.p == '[')
                return kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: structured npy dtypes are not supported; save a "
                                                             "plain numeric array", path);
            if (!parse_str(&c, val, sizeof val))
                return kn_error_set(err, KN_ERR_FORMAT, "%s: npy header: 'descr' is not a string", path);
            if ((st = parse_descr(val, in, path, err)))
                return st;
            have_descr = true;
        } else if (!strcmp(key, "fortran_order")) {
            bool f;
            if (parse_word(&c, "True"))
                f = true;
            else if (parse_word(&c, "False"))
                f = false;
            else
                return kn_error_set(err, KN_ERR_FORMAT, "%s: npy header: 'fortran_order' is not True or False", path);
            if (f)
                return kn_error_set(err, KN_ERR_UNSUPPORTED,
                                    "%s: Fortran-ordered arrays are not supported; save a C-ordered copy with "
                                    "np.save(path, np.ascontiguousarray(a))",
                                    path);
            have_order = true;
        } else if (!strcmp(key, "shape")) {
            if ((st = parse_shape(&c, in, path, err)))
                return st;
            have_shape = true;
        } else {
            return kn_error_set(err, KN_ERR_FORMAT, "%s: npy header has an unknown key '%s'", path, key);
        }
        if (!accept(&c, ',')) {
            if (accept(&c, '}'))
                break;
            return kn_error_set(err, KN_ERR_FORMAT, "%s: npy header: malformed dict near '%.30s'", path, c.p);
        }
    }
    if (!have_descr || !have_order || !have_shape)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: npy header lacks '%s'", path,
                            !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    in->numel = 1;
    for (int i = 0; i < in->ndim; i++) {
        if (in->shape[i] != 0 && in->numel > INT64_MAX / in->shape[i] / in->size)
            return kn_error_set(err, KN_ERR_FORMAT, "%s: npy shape overflows the address space", path);
        in->numel *= in->shape[i];
    }
    return KN_OK;
}

/* Opens path, parses its header, and checks that the rest of the file is exactly the data. */
static kn_status npy_open(const char *path, FILE **out, npy_info *in, kn_error *err)
{
    *out = NULL;
    memset(in, 0, sizeof *in);
    if (!path)
        return kn_error_set(err, KN_ERR_ARG, "npy reader: NULL file path");
    FILE *f = fopen(path, "rb");
    if (!f)
        return kn_error_set(err, KN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    kn_status st = KN_OK;
    char *h = NULL;
    struct stat s;
    unsigned char pre[12];
    if (fstat(fileno(f), &s) != 0 || !S_ISREG(s.st_mode)) {
        st = kn_error_set(err, KN_ERR_IO, "%s: not a regular file", path);
        goto done;
    }
    size_t got = fread(pre, 1, 10, f);
    if (got < 6 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: not a .npy file (no \\x93NUMPY magic)%s", path,
                          got >= 2 && pre[0] == 'P' && pre[1] == 'K' ? "; it looks like an .npz archive: unzip it "
                                                                       "first" : "");
        goto done;
    }
    if (got < 10) {
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: truncated npy preamble (%zu of 10 bytes)", path, got);
        goto done;
    }
    int major = pre[6], minor = pre[7];
    size_t hlen, pre_len = 10;
    if (major == 1) {
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            st = kn_error_set(err, KN_ERR_FORMAT, "%s: truncated npy preamble", path);
            goto done;
        }
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        pre_len = 12;
    } else {
        st = kn_error_set(err, KN_ERR_UNSUPPORTED, "%s: npy format version %d.%d is not supported (1.0, 2.0, 3.0 are)",
                          path, major, minor);
        goto done;
    }
    if (hlen == 0 || hlen > NPY_MAX_HEADER) {
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: npy header length %zu is implausible (1..%u)", path, hlen,
                          NPY_MAX_HEADER);
        goto done;
    }
    if ((uint64_t)s.st_size < pre_len + hlen) {
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: truncated: the npy header needs %zu bytes, the file has %lld",
                          path, pre_len + hlen, (long long)s.st_size);
        goto done;
    }
    if (!(h = kn__alloc(hlen + 1))) {
        st = kn_error_set(err, KN_ERR_OOM, "%s: out of memory", path);
        goto done;
    }
    if (fread(h, 1, hlen, f) != hlen) {
        st = kn_error_set(err, KN_ERR_IO, "%s: read failed in the npy header", path);
        goto done;
    }
    h[hlen] = 0;
    if (memchr(h, 0, hlen)) {
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: npy header contains a NUL byte", path);
        goto done;
    }
    if ((st = parse_header(h, hlen, in, path, err)))
        goto done;
    uint64_t have = (uint64_t)s.st_size - pre_len - hlen, want = (uint64_t)in->numel * (uint64_t)in->size;
    if (have < want)
        st = kn_error_set(err, KN_ERR_FORMAT,
                          "%s: truncated: expected %llu bytes of %s data for the shape in the header, found %llu",
                          path, (unsigned long long)want, in->descr, (unsigned long long)have);
    else if (have > want)
        st = kn_error_set(err, KN_ERR_FORMAT,
                          "%s: %llu bytes of data, but the header's shape and dtype %s describe %llu; the file "
                          "is not a single .npy array",
                          path, (unsigned long long)have, in->descr, (unsigned long long)want);
done:
    kn__free(h);
    if (st)
        fclose(f);
    else
        *out = f;
    return st;
}

/* ---- element conversion ----------------------------------------------------------------- */

static void load_bytes(unsigned char *dst, const unsigned char *src, int size, bool swap)
{
    size = size > 8 ? 8 : size; /* element sizes are 1..8 (validated when parsing the header) */
    for (int i = 0; i < size; i++)
        dst[i] = src[swap ? size - 1 - i : i];
}

static double elem_f64(const unsigned char *p, const npy_info *in)
{
    unsigned char b[8];
    load_bytes(b, p, in->size, in->swap);
    switch (in->kind) {
    case 'b':
        return b[0] != 0;
    case 'f':
        if (in->size == 2) {
            uint16_t h;
            memcpy(&h, b, 2);
            return kn_f16_to_f32(h);
        }
        if (in->size == 4) {
            float v;
            memcpy(&v, b, 4);
            return v;
        } else {
            double v;
            memcpy(&v, b, 8);
            return v;
        }
    case 'i':
        switch (in->size) {
        case 1: return (int8_t)b[0];
        case 2: { int16_t v; memcpy(&v, b, 2); return v; }
        case 4: { int32_t v; memcpy(&v, b, 4); return v; }
        default: { int64_t v; memcpy(&v, b, 8); return (double)v; }
        }
    default:
        switch (in->size) {
        case 1: return b[0];
        case 2: { uint16_t v; memcpy(&v, b, 2); return v; }
        case 4: { uint32_t v; memcpy(&v, b, 4); return v; }
        default: { uint64_t v; memcpy(&v, b, 8); return (double)v; }
        }
    }
}

/* An integer element as int64; *ok is false when it does not fit. */
static int64_t elem_i64(const unsigned char *p, const npy_info *in, bool *ok)
{
    unsigned char b[8];
    load_bytes(b, p, in->size, in->swap);
    *ok = true;
    if (in->kind == 'u' && in->size == 8) {
        uint64_t v;
        memcpy(&v, b, 8);
        *ok = v <= (uint64_t)INT64_MAX;
        return (int64_t)(v & (uint64_t)INT64_MAX);
    }
    if (in->kind == 'i' && in->size == 8) {
        int64_t v;
        memcpy(&v, b, 8);
        return v;
    }
    return (int64_t)elem_f64(p, in); /* exact for every narrower integer type */
}

/* Streams the data of f through a bounce buffer, calling the converter per chunk. */
typedef struct reader {
    FILE *f;
    const char *path;
    unsigned char *buf;
    size_t cap;
} reader;

static kn_status read_chunk(reader *r, size_t bytes, kn_error *err)
{
    if (fread(r->buf, 1, bytes, r->f) != bytes)
        return kn_error_set(err, KN_ERR_IO, "%s: read failed: %s", r->path,
                            ferror(r->f) ? strerror(errno) : "the file shrank while it was read");
    return KN_OK;
}

kn_status kn_dataset_load_npy(kn_dataset **out, const char *x_path, const char *y_path, kn_error *err)
{
    if (!out)
        return kn_error_set(err, KN_ERR_ARG, "kn_dataset_load_npy: NULL output pointer");
    *out = NULL;
    FILE *fx = NULL, *fy = NULL;
    npy_info ix, iy;
    kn_dataset *ds = NULL;
    reader r = {0};
    kn_status st = npy_open(x_path, &fx, &ix, err);
    if (st)
        goto done;
    if ((st = npy_open(y_path, &fy, &iy, err)))
        goto done;
    if (ix.ndim < 1) {
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: x is a scalar; it must have shape [n, ...]", x_path);
        goto done;
    }
    if (ix.ndim > 4) {
        st = kn_error_set(err, KN_ERR_UNSUPPORTED,
                          "%s: x has %d dims; examples may have at most 3 ([n, C, H, W]); reshape it", x_path, ix.ndim);
        goto done;
    }
    if (iy.kind != 'i' && iy.kind != 'u') {
        st = kn_error_set(err, KN_ERR_FORMAT,
                          "%s: labels y have dtype '%s'; they must be integers (np.save(path, y.astype(np.int64)))",
                          y_path, iy.descr);
        goto done;
    }
    if (!(iy.ndim == 1 || (iy.ndim == 2 && iy.shape[1] == 1)) || iy.shape[0] != ix.shape[0]) {
        char sh[96] = "";
        for (int i = 0, o = 0; i < iy.ndim && o < (int)sizeof sh - 24; i++)
            o += snprintf(sh + o, sizeof sh - (size_t)o, "%s%lld", i ? ", " : "", (long long)iy.shape[i]);
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: labels y have shape (%s); %s has %lld examples, so y must have "
                                              "shape (%lld,)",
                          y_path, sh, x_path, (long long)ix.shape[0], (long long)ix.shape[0]);
        goto done;
    }
    int64_t shape[3] = {1, 1, 1};
    int ndim = ix.ndim == 1 ? 1 : ix.ndim - 1;
    for (int i = 1; i < ix.ndim; i++)
        shape[i - 1] = ix.shape[i];
    bool u8 = ix.kind == 'u' && ix.size == 1;
    if ((st = kn__dataset_new(&ds, ix.shape[0], ndim, shape, u8 ? KN_U8 : KN_F32, true, x_path, err)))
        goto done;
    r.cap = (size_t)1 << 20;
    if (!(r.buf = kn__alloc(r.cap))) {
        st = kn_error_set(err, KN_ERR_OOM, "%s: out of memory", x_path);
        goto done;
    }
    /* x */
    r.f = fx;
    r.path = x_path;
    size_t per = r.cap / (size_t)ix.size;
    for (int64_t i0 = 0; i0 < ix.numel && !st; i0 += (int64_t)per) {
        size_t cnt = (size_t)(ix.numel - i0 < (int64_t)per ? ix.numel - i0 : (int64_t)per);
        if ((st = read_chunk(&r, cnt * (size_t)ix.size, err)))
            break;
        if (u8) {
            memcpy((unsigned char *)ds->x + i0, r.buf, cnt);
        } else {
            float *dst = (float *)ds->x + i0;
            for (size_t k = 0; k < cnt; k++)
                dst[k] = (float)elem_f64(r.buf + k * (size_t)ix.size, &ix);
        }
    }
    /* y */
    r.f = fy;
    r.path = y_path;
    per = r.cap / (size_t)iy.size;
    for (int64_t i0 = 0; i0 < iy.numel && !st; i0 += (int64_t)per) {
        size_t cnt = (size_t)(iy.numel - i0 < (int64_t)per ? iy.numel - i0 : (int64_t)per);
        if ((st = read_chunk(&r, cnt * (size_t)iy.size, err)))
            break;
        for (size_t k = 0; k < cnt; k++) {
            bool ok;
            int64_t v = elem_i64(r.buf + k * (size_t)iy.size, &iy, &ok);
            if (!ok || v < 0 || v >= INT32_MAX) {
                st = kn_error_set(err, KN_ERR_FORMAT, "%s: label y[%lld] = %lld is out of range; labels must be in "
                                                      "[0, 2^31 - 1)",
                                  y_path, (long long)(i0 + (int64_t)k), ok ? (long long)v : -1LL);
                break;
            }
            ds->y[i0 + (int64_t)k] = (int32_t)v;
        }
    }
    if (!st) {
        kn__dataset_set_classes(ds, 1);
        kn__dataset_set_name(ds, kn__path_base(x_path));
    }
done:
    kn__free(r.buf);
    if (fx)
        fclose(fx);
    if (fy)
        fclose(fy);
    if (st)
        kn_dataset_free(ds);
    else
        *out = ds;
    return st;
}
