/* idx.c — the IDX reader (MNIST, Fashion-MNIST, KMNIST, ...): an image file (magic
 * 0x00000803: u8, 3 dims) and a label file (magic 0x00000801: u8, 1 dim), plain or gzip
 * (zlib's gzread reads both, so compression is detected by content). Every header field is
 * validated and the file must hold exactly the declared bytes. It deliberately reads only the
 * u8 element type with these two shapes, which is what the MNIST family uses; other IDX
 * element types are reported as unsupported. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "core/alloc.h"
#include "data_internal.h"

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static gzFile idx_open(const char *path, kn_error *err)
{
    if (!path) {
        kn_error_set(err, KN_ERR_ARG, "IDX reader: NULL file path");
        return NULL;
    }
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        kn_error_set(err, KN_ERR_IO, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(f, 1 << 17);
    return f;
}

/* Reads up to `want` bytes; *got says how many arrived. A gzip stream that simply ends early
 * is a short read with *cut set, not an error; corrupt compressed data is an error. */
static kn_status read_some(gzFile f, const char *path, void *dst, size_t want, size_t *got, bool *cut,
                           kn_error *err)
{
    *got = 0;
    *cut = false;
    while (*got < want) {
        size_t chunk = want - *got;
        if (chunk > (1u << 30))
            chunk = 1u << 30;
        int r = gzread(f, (unsigned char *)dst + *got, (unsigned)chunk);
        if (r < 0) {
            int zerr = 0;
            const char *msg = gzerror(f, &zerr);
            if (zerr == Z_BUF_ERROR) { /* "unexpected end of file": a truncated .gz */
                *cut = true;
                return KN_OK;
            }
            if (zerr == Z_ERRNO)
                return kn_error_set(err, KN_ERR_IO, "%s: read failed: %s", path, strerror(errno));
            size_t plen = strlen(path); /* gzerror prefixes the path */
            if (!strncmp(msg, path, plen) && !strncmp(msg + plen, ": ", 2))
                msg += plen + 2;
            return kn_error_set(err, KN_ERR_FORMAT, "%s: corrupt gzip data (%s); download the file again", path,
                                msg);
        }
        if (r == 0) { /* end of data; zlib reports a stream cut short only through gzerror */
            int zerr = 0;
            gzerror(f, &zerr);
            *cut = zerr == Z_BUF_ERROR;
            return KN_OK;
        }
        *got += (size_t)r;
    }
    return KN_OK;
}

/* Reads exactly `want` bytes of `what` into a new buffer. The buffer grows while data arrives,
 * so a header that claims terabytes over a short file fails as truncated, not out of memory. */
static kn_status read_payload(gzFile f, const char *path, const char *what, size_t want, unsigned char **out,
                              kn_error *err)
{
    *out = NULL;
    size_t cap = want < ((size_t)1 << 20) ? want : ((size_t)1 << 20), got = 0;
    bool cut = false;
    unsigned char *buf = kn__alloc(cap);
    if (!buf)
        return kn_error_set(err, KN_ERR_OOM, "%s: out of memory allocating %zu bytes for %s", path, cap, what);
    for (;;) {
        size_t n = 0;
        kn_status st = read_some(f, path, buf + got, cap - got, &n, &cut, err);
        if (st) {
            kn__free(buf);
            return st;
        }
        got += n;
        if (got < cap || cap == want || cut)
            break;
        size_t ncap = cap > want / 2 ? want : cap * 2;
        unsigned char *nb = kn__realloc(buf, got, ncap);
        if (!nb) {
            kn__free(buf);
            return kn_error_set(err, KN_ERR_OOM, "%s: out of memory allocating %zu bytes for %s", path, ncap, what);
        }
        buf = nb;
        cap = ncap;
    }
    if (got < want) {
        kn__free(buf);
        return kn_error_set(err, KN_ERR_FORMAT,
                            "%s: truncated: expected %zu bytes of %s, found %zu; the file is incomplete, "
                            "download it again",
                            path, want, what, got);
    }
    /* Anything after the declared data means the header's counts do not describe the file. */
    unsigned char tail[4096];
    size_t extra = 0, n = 0;
    do {
        kn_status st = read_some(f, path, tail, sizeof tail, &n, &cut, err);
        if (st) {
            kn__free(buf);
            return st;
        }
        extra += n;
    } while (n == sizeof tail && extra < ((size_t)1 << 30));
    if (cut && !extra) {
        kn__free(buf);
        return kn_error_set(err, KN_ERR_FORMAT,
                            "%s: truncated: the gzip stream ends before its end marker (the %zu bytes of %s "
                            "arrived, but the file is incomplete); download it again",
                            path, want, what);
    }
    if (extra) {
        kn__free(buf);
        return kn_error_set(err, KN_ERR_FORMAT,
                            "%s: %zu%s bytes after the %zu bytes of %s the header declares; the header's "
                            "counts do not match the file",
                            path, extra, n == sizeof tail ? "+" : "", want, what);
    }
    *out = buf;
    return KN_OK;
}

/* Reads and checks the magic and dimensions of an IDX file; dims[] gets ndim sizes. */
static kn_status read_header(gzFile f, const char *path, uint32_t magic, int ndim, uint32_t *dims, kn_error *err)
{
    unsigned char h[16];
    size_t want = 4 + 4 * (size_t)ndim, got = 0;
    bool cut;
    kn_status st = read_some(f, path, h, 4, &got, &cut, err);
    if (st)
        return st;
    if (got < 4)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: truncated: the IDX header needs %zu bytes, found %zu", path,
                            want, got);
    uint32_t m = be32(h);
    const char *kind = magic == IDX_MAGIC_IMAGES ? "image" : "label";
    if (m != magic) {
        if (m == IDX_MAGIC_IMAGES || m == IDX_MAGIC_LABELS)
            return kn_error_set(err, KN_ERR_FORMAT,
                                "%s: this is an IDX %s file (magic 0x%08x), but an IDX %s file (magic 0x%08x) "
                                "was expected; are the image and label files swapped?",
                                path, m == IDX_MAGIC_IMAGES ? "image" : "label", m, kind, magic);
        unsigned type = (m >> 8) & 0xff, nd = m & 0xff;
        bool idx_type = type == 0x08 || type == 0x09 || type == 0x0B || type == 0x0C || type == 0x0D || type == 0x0E;
        if ((m >> 16) == 0 && idx_type && nd >= 1)
            return kn_error_set(err, KN_ERR_UNSUPPORTED,
                                "%s: IDX element type 0x%02x with %u dims (magic 0x%08x) is not supported; kiln "
                                "reads u8 %s files (magic 0x%08x)",
                                path, type, nd, m, kind, magic);
        return kn_error_set(err, KN_ERR_FORMAT,
                            "%s: bad magic number 0x%08x: not an IDX %s file (expected 0x%08x, plain or "
                            "gzip-compressed)",
                            path, m, kind, magic);
    }
    st = read_some(f, path, h + 4, want - 4, &got, &cut, err);
    if (st)
        return st;
    if (got < want - 4)
        return kn_error_set(err, KN_ERR_FORMAT, "%s: truncated: the IDX header needs %zu bytes, found %zu", path,
                            want, got + 4);
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(h + 4 + 4 * i);
        if (dims[i] == 0 || dims[i] > INT32_MAX)
            return kn_error_set(err, KN_ERR_FORMAT, "%s: IDX dimension %d is %u; it must be in 1..%d", path, i,
                                dims[i], INT32_MAX);
    }
    return KN_OK;
}

kn_status kn_dataset_load_idx(kn_dataset **out, const char *images_path, const char *labels_path, kn_error *err)
{
    if (!out)
        return kn_error_set(err, KN_ERR_ARG, "kn_dataset_load_idx: NULL output pointer");
    *out = NULL;
    uint32_t idim[3] = {0}, ldim[1] = {0};
    unsigned char *labels = NULL, *pixels = NULL;
    kn_dataset *ds = NULL;
    gzFile fl = NULL, fi = idx_open(images_path, err);
    if (!fi)
        return err ? err->status : KN_ERR_IO;
    kn_status st = read_header(fi, images_path, IDX_MAGIC_IMAGES, 3, idim, err);
    if (st)
        goto done;
    fl = idx_open(labels_path, err);
    if (!fl) {
        st = err ? err->status : KN_ERR_IO;
        goto done;
    }
    if ((st = read_header(fl, labels_path, IDX_MAGIC_LABELS, 1, ldim, err)))
        goto done;
    if (ldim[0] != idim[0]) {
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: %u labels but %s has %u images; the files do not belong together",
                          labels_path, ldim[0], images_path, idim[0]);
        goto done;
    }
    size_t npix = kn__mul_size(kn__mul_size(idim[0], idim[1]), idim[2]);
    if (npix == SIZE_MAX || npix > (size_t)INT64_MAX) {
        st = kn_error_set(err, KN_ERR_FORMAT, "%s: %u images of %ux%u pixels overflow the address space", images_path,
                          idim[0], idim[1], idim[2]);
        goto done;
    }
    if ((st = read_payload(fi, images_path, "image data", npix, &pixels, err)))
        goto done;
    if ((st = read_payload(fl, labels_path, "label data", ldim[0], &labels, err)))
        goto done;
    int64_t shape[3] = {1, idim[1], idim[2]};
    if ((st = kn__dataset_new(&ds, idim[0], 3, shape, KN_U8, false, images_path, err)))
        goto done;
    ds->x = pixels; /* read_payload sized it exactly */
    pixels = NULL;
    for (uint32_t i = 0; i < ldim[0]; i++)
        ds->y[i] = labels[i]; /* u8: always in [0, 256) */
    kn__dataset_set_classes(ds, 10);
    kn__dataset_set_name(ds, kn__path_base(images_path));
done:
    kn__free(pixels);
    kn__free(labels);
    if (fi)
        gzclose(fi);
    if (fl)
        gzclose(fl);
    if (st)
        kn_dataset_free(ds);
    else
        *out = ds;
    return st;
}
