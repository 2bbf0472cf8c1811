/* test_data.c — data sets and the loader. Every reader (IDX plain and gzip, CIFAR-10/100,
 * .npy, CSV) is fed small synthetic files written into a temporary directory: good files
 * must round-trip their values, and a corpus of bad ones (truncations, bad magic, mismatched
 * counts, bad headers, ragged rows, ...) must fail with the right status and a message that
 * names the problem. kn_dataset_open is tested on directories and on a fake system data root
 * (missing-data messages), the loader on coverage, determinism, foreground/background
 * equality, augmentation and normalisation, with out-of-memory injection throughout. The real
 * Fashion-MNIST is checked when /usr/share/datasets/fashion-mnist is installed. */
#define _GNU_SOURCE /* mkdtemp, setenv, nftw */
#include <ftw.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "data/data_internal.h"
#include "util.h"

static char tmp[256];

static const char *P(const char *name)
{
    static char bufs[8][512];
    static int at;
    char *b = bufs[at++ & 7];
    snprintf(b, 512, "%s/%s", tmp, name);
    return b;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    if (len)
        fwrite(data, 1, len, f);
    fclose(f);
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile f = gzopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    gzwrite(f, data, (unsigned)len);
    gzclose(f);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

static void mkdir_p(const char *p) { mkdir(p, 0755); }

static void expect(kn_status st, const kn_error *e, kn_status want, const char *needle, const char *what)
{
    CHECK(st == want, "%s: got %s (%s), want %s", what, kn_status_name(st), st ? e->msg : "", kn_status_name(want));
    if (needle && st != KN_OK)
        CHECK(strstr(e->msg, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what, e->msg, needle);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* ---- IDX -------------------------------------------------------------------------------- */

static uint8_t pix(int64_t i, int64_t j) { return (uint8_t)((i * 37 + j * 11 + 5) & 0xff); }

/* An IDX image file of n images rows x cols; returns its length. */
static size_t idx_images(unsigned char *buf, uint32_t n, uint32_t rows, uint32_t cols)
{
    put_be32(buf, 0x803);
    put_be32(buf + 4, n);
    put_be32(buf + 8, rows);
    put_be32(buf + 12, cols);
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < rows * cols; j++)
            buf[16 + (size_t)i * rows * cols + j] = pix(i, j);
    return 16 + (size_t)n * rows * cols;
}

static size_t idx_labels(unsigned char *buf, uint32_t n, int mod)
{
    put_be32(buf, 0x801);
    put_be32(buf + 4, n);
    for (uint32_t i = 0; i < n; i++)
        buf[8 + i] = (unsigned char)((2 * i) % (uint32_t)mod);
    return 8 + n;
}

static void check_idx_values(const kn_dataset *ds, int64_t n, int64_t rows, int64_t cols, int mod, const char *what)
{
    CHECK(ds && ds->n == n && ds->ndim == 3 && ds->shape[0] == 1 && ds->shape[1] == rows && ds->shape[2] == cols &&
              ds->dtype == KN_U8,
          "%s: shape", what);
    if (!ds)
        return;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < rows * cols; j++)
            bad += ((uint8_t *)ds->x)[i * rows * cols + j] != pix(i, j);
        bad += ds->y[i] != (2 * i) % mod;
    }
    CHECK(bad == 0, "%s: %d values differ", what, bad);
    CHECK(ds->classes == (mod > 10 ? mod : 10), "%s: classes %d", what, ds->classes);
    CHECK(kn_dataset_example_size(ds) == rows * cols, "%s: example size", what);
}

static void test_idx(void)
{
    static unsigned char im[16 + 7 * 4 * 3], lb[8 + 7], bad[64 + 16 + 7 * 12];
    size_t nim = idx_images(im, 7, 4, 3), nlb = idx_labels(lb, 7, 13);
    kn_dataset *ds = NULL;
    kn_error e = {0};
    kn_status st;

    write_file(P("im"), im, nim);
    write_file(P("lb"), lb, nlb);
    CHECK_OK(kn_dataset_load_idx(&ds, P("im"), P("lb"), &e));
    check_idx_values(ds, 7, 4, 3, 13, "plain IDX");
    CHECK(ds && !strcmp(ds->name, "im"), "name from the file");
    kn_dataset_free(ds);

    write_gz(P("im.gz"), im, nim);
    write_gz(P("lb.gz"), lb, nlb);
    CHECK_OK(kn_dataset_load_idx(&ds, P("im.gz"), P("lb.gz"), &e));
    check_idx_values(ds, 7, 4, 3, 13, "gzip IDX");
    kn_dataset_free(ds);
    CHECK_OK(kn_dataset_load_idx(&ds, P("im.gz"), P("lb"), &e));
    check_idx_values(ds, 7, 4, 3, 13, "gzip images + plain labels");
    kn_dataset_free(ds);
    idx_labels(lb, 7, 3);
    write_file(P("lb3"), lb, nlb);
    CHECK_OK(kn_dataset_load_idx(&ds, P("im"), P("lb3"), &e));
    check_idx_values(ds, 7, 4, 3, 3, "classes at least 10");
    kn_dataset_free(ds);

    /* truncated image files, plain and gzip, at many points */
    const size_t cuts[] = {0, 2, 4, 9, 15, 16, 17, 16 + 12, 16 + 41, nim - 1};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        char what[64];
        snprintf(what, sizeof what, "images truncated to %zu bytes", cuts[c]);
        write_file(P("cut"), im, cuts[c]);
        st = kn_dataset_load_idx(&ds, P("cut"), P("lb"), &e);
        expect(st, &e, KN_ERR_FORMAT, "truncated", what);
        CHECK(ds == NULL, "%s: no data set", what);
        if (cuts[c] >= 16) {
            char want[128];
            snprintf(want, sizeof want, "expected 84 bytes of image data, found %zu", cuts[c] - 16);
            expect(st, &e, KN_ERR_FORMAT, want, what);
        }
        write_gz(P("cut.gz"), im, cuts[c]);
        st = kn_dataset_load_idx(&ds, P("cut.gz"), P("lb"), &e);
        expect(st, &e, KN_ERR_FORMAT, "truncated", "gzip of a truncated file");
    }
    /* truncated labels */
    for (size_t cut = 0; cut < nlb; cut += 3) {
        write_file(P("cutl"), lb, cut);
        expect(kn_dataset_load_idx(&ds, P("im"), P("cutl"), &e), &e, KN_ERR_FORMAT, "truncated", "labels truncated");
    }
    /* a truncated gzip stream (compressed bytes cut off) */
    {
        size_t glen = 0;
        unsigned char *g = read_all(P("im.gz"), &glen);
        write_file(P("gzcut"), g, glen / 2);
        expect(kn_dataset_load_idx(&ds, P("gzcut"), P("lb"), &e), &e, KN_ERR_FORMAT, "truncated", "cut gzip stream");
        write_file(P("gztail"), g, glen - 4); /* all data, but no gzip trailer */
        expect(kn_dataset_load_idx(&ds, P("gztail"), P("lb"), &e), &e, KN_ERR_FORMAT, "end marker", "gzip trailer");
        /* corrupt compressed data: flip bytes in the middle of the deflate stream */
        for (size_t i = 12; i < glen - 8; i++)
            g[i] ^= 0x5a;
        write_file(P("gzbad"), g, glen);
        st = kn_dataset_load_idx(&ds, P("gzbad"), P("lb"), &e);
        CHECK(st == KN_ERR_FORMAT && ds == NULL, "corrupt gzip: %s (%s)", kn_status_name(st), e.msg);
        free(g);
    }
    /* trailing bytes */
    memcpy(bad, im, nim);
    memset(bad + nim, 7, 5);
    write_file(P("trail"), bad, nim + 5);
    expect(kn_dataset_load_idx(&ds, P("trail"), P("lb"), &e), &e, KN_ERR_FORMAT, "5 bytes after", "trailing bytes");
    /* bad magic; swapped files; other IDX element types */
    memcpy(bad, im, nim);
    put_be32(bad, 0x12345678);
    write_file(P("magic"), bad, nim);
    expect(kn_dataset_load_idx(&ds, P("magic"), P("lb"), &e), &e, KN_ERR_FORMAT, "bad magic number 0x12345678",
           "bad magic");
    expect(kn_dataset_load_idx(&ds, P("lb"), P("im"), &e), &e, KN_ERR_FORMAT, "swapped", "swapped files");
    put_be32(bad, 0x00000D03);
    write_file(P("float"), bad, nim);
    expect(kn_dataset_load_idx(&ds, P("float"), P("lb"), &e), &e, KN_ERR_UNSUPPORTED, "0x0d", "float IDX");
    /* label count != image count */
    unsigned char lb6[8 + 6];
    idx_labels(lb6, 6, 10);
    write_file(P("lb6"), lb6, sizeof lb6);
    expect(kn_dataset_load_idx(&ds, P("im"), P("lb6"), &e), &e, KN_ERR_FORMAT, "6 labels but", "count mismatch");
    CHECK(strstr(e.msg, "has 7 images") != NULL, "count message: %s", e.msg);
    /* zero dimension; a huge declared count over a small file fails as truncated, not OOM */
    memcpy(bad, im, nim);
    put_be32(bad + 8, 0);
    write_file(P("zero"), bad, nim);
    expect(kn_dataset_load_idx(&ds, P("zero"), P("lb"), &e), &e, KN_ERR_FORMAT, "dimension 1 is 0", "zero rows");
    memcpy(bad, im, nim);
    put_be32(bad + 4, 2000000000u);
    write_file(P("huge"), bad, nim);
    unsigned char lbh[8];
    put_be32(lbh, 0x801);
    put_be32(lbh + 4, 2000000000u);
    write_file(P("lbh"), lbh, 8);
    expect(kn_dataset_load_idx(&ds, P("huge"), P("lbh"), &e), &e, KN_ERR_FORMAT, "truncated", "huge count");
    /* missing files */
    expect(kn_dataset_load_idx(&ds, P("nope"), P("lb"), &e), &e, KN_ERR_IO, "nope: cannot open", "missing file");
    expect(kn_dataset_load_idx(&ds, P("im"), P("nope"), &e), &e, KN_ERR_IO, "cannot open", "missing labels");
    write_file(P("cut"), im, 50);
    kn_dataset_load_idx(&ds, P("cut"), P("lb"), &e);
    printf("  e.g. %s\n", e.msg);
    expect(kn_dataset_load_idx(NULL, P("im"), P("lb"), &e), &e, KN_ERR_ARG, NULL, "NULL out");

    /* out-of-memory at every allocation: a clean status and nothing leaked */
    for (long k = 1; k < 50; k++) {
        kt_oom_install(k);
        st = kn_dataset_load_idx(&ds, P("im.gz"), P("lb.gz"), &e);
        long live = kt_oom_live();
        kn_dataset_free(ds);
        kt_oom_remove();
        if (st == KN_OK)
            break;
        CHECK(st == KN_ERR_OOM && ds == NULL && live == 0, "IDX OOM at %ld: %s, %ld live", k, kn_status_name(st),
              live);
    }
}

/* ---- CIFAR ------------------------------------------------------------------------------ */

static size_t cifar_file(unsigned char *buf, int first, int n, bool c100)
{
    size_t rec = c100 ? 3074 : 3073;
    for (int r = 0; r < n; r++) {
        unsigned char *p = buf + (size_t)r * rec;
        int i = first + r;
        if (c100) {
            p[0] = (unsigned char)(i % 20);
            p[1] = (unsigned char)((i * 7) % 100);
        } else {
            p[0] = (unsigned char)(i % 10);
        }
        for (int j = 0; j < 3072; j++)
            p[rec - 3072 + (size_t)j] = pix(i, j);
    }
    return (size_t)n * rec;
}

static void test_cifar(void)
{
    static unsigned char buf[4 * 3074];
    kn_dataset *ds = NULL;
    kn_error e = {0};
    write_file(P("c1.bin"), buf, cifar_file(buf, 0, 3, false));
    write_file(P("c2.bin"), buf, cifar_file(buf, 3, 2, false));
    const char *paths[2] = {P("c1.bin"), P("c2.bin")};
    CHECK_OK(kn_dataset_load_cifar(&ds, paths, 2, false, &e));
    CHECK(ds && ds->n == 5 && ds->ndim == 3 && ds->shape[0] == 3 && ds->shape[1] == 32 && ds->shape[2] == 32 &&
              ds->classes == 10 && ds->dtype == KN_U8,
          "CIFAR-10 shape");
    int bad = 0;
    for (int i = 0; ds && i < 5; i++) {
        bad += ds->y[i] != i % 10;
        for (int j = 0; j < 3072; j++)
            bad += ((uint8_t *)ds->x)[i * 3072 + j] != pix(i, j);
    }
    CHECK(bad == 0, "CIFAR-10 values: %d differ", bad);
    kn_dataset_free(ds);

    write_file(P("c100.bin"), buf, cifar_file(buf, 0, 4, true));
    const char *p100 = P("c100.bin");
    CHECK_OK(kn_dataset_load_cifar(&ds, &p100, 1, true, &e));
    CHECK(ds && ds->n == 4 && ds->classes == 100, "CIFAR-100 shape");
    bad = 0;
    for (int i = 0; ds && i < 4; i++) {
        bad += ds->y[i] != (i * 7) % 100; /* fine labels */
        bad += ((uint8_t *)ds->x)[i * 3072 + 100] != pix(i, 100);
    }
    CHECK(bad == 0, "CIFAR-100 fine labels and pixels");
    kn_dataset_free(ds);

    /* size not a multiple of the record */
    size_t n = cifar_file(buf, 0, 2, false);
    write_file(P("short.bin"), buf, n - 1);
    const char *ps = P("short.bin");
    expect(kn_dataset_load_cifar(&ds, &ps, 1, false, &e), &e, KN_ERR_FORMAT, "not a multiple of the 3073-byte",
           "CIFAR size");
    printf("  e.g. %s\n", e.msg);
    /* CIFAR-100 file read as CIFAR-10 */
    expect(kn_dataset_load_cifar(&ds, &p100, 1, false, &e), &e, KN_ERR_FORMAT, "CIFAR-100", "CIFAR-100 as 10");
    /* label out of range */
    cifar_file(buf, 0, 2, false);
    buf[3073] = 10;
    write_file(P("lab.bin"), buf, 2 * 3073);
    const char *pl = P("lab.bin");
    expect(kn_dataset_load_cifar(&ds, &pl, 1, false, &e), &e, KN_ERR_FORMAT, "record 1 has label 10", "CIFAR label");
    write_file(P("empty.bin"), buf, 0);
    const char *pe = P("empty.bin");
    expect(kn_dataset_load_cifar(&ds, &pe, 1, false, &e), &e, KN_ERR_FORMAT, "empty", "CIFAR empty");
    const char *pm = P("missing.bin");
    expect(kn_dataset_load_cifar(&ds, &pm, 1, false, &e), &e, KN_ERR_IO, "cannot open", "CIFAR missing");
    expect(kn_dataset_load_cifar(&ds, paths, 0, false, &e), &e, KN_ERR_ARG, NULL, "CIFAR no paths");
}

/* ---- npy -------------------------------------------------------------------------------- */

/* Writes an .npy file with the given header dict (padded as numpy does) and raw data. */
static void write_npy_ver(const char *path, int major, const char *dict, const void *data, size_t len)
{
    unsigned char buf[1024];
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t hlen = dl + 1;
    while ((pre + hlen) % 64)
        hlen++;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    if (major == 1) {
        buf[8] = (unsigned char)hlen;
        buf[9] = (unsigned char)(hlen >> 8);
    } else {
        buf[8] = (unsigned char)hlen;
        buf[9] = (unsigned char)(hlen >> 8);
        buf[10] = buf[11] = 0;
    }
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', hlen - dl - 1);
    buf[pre + hlen - 1] = '\n';
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, pre + hlen, f);
    if (len)
        fwrite(data, 1, len, f);
    fclose(f);
}

static void write_npy(const char *path, const char *dict, const void *data, size_t len)
{
    write_npy_ver(path, 1, dict, data, len);
}

static void test_npy(void)
{
    kn_dataset *ds = NULL;
    kn_error e = {0};
    float xf[4 * 2 * 3];
    for (int i = 0; i < 24; i++)
        xf[i] = (float)i * 0.25f - 3.0f;
    int64_t y8[4] = {0, 4, 2, 1};
    write_npy(P("x.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2, 3), }", xf, sizeof xf);
    write_npy(P("y.npy"), "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", y8, sizeof y8);
    CHECK_OK(kn_dataset_load_npy(&ds, P("x.npy"), P("y.npy"), &e));
    CHECK(ds && ds->n == 4 && ds->ndim == 2 && ds->shape[0] == 2 && ds->shape[1] == 3 && ds->dtype == KN_F32 &&
              ds->classes == 5,
          "npy f4 shape/classes");
    CHECK(ds && !memcmp(ds->x, xf, sizeof xf) && ds->y[1] == 4 && ds->y[3] == 1, "npy f4 values");
    kn_dataset_free(ds);

    /* u1 stays u8; 1-D per example; version 2.0; key order and spacing differ */
    uint8_t xu[3 * 5];
    for (int i = 0; i < 15; i++)
        xu[i] = (uint8_t)(i * 17);
    int32_t y4[3] = {2, 0, 1};
    write_npy_ver(P("xu.npy"), 2, "{'shape':(3,5),'fortran_order':False,'descr':'|u1'}", xu, sizeof xu);
    write_npy_ver(P("y4.npy"), 3, "{\"descr\": \"<i4\", \"fortran_order\": False, \"shape\": (3,)}", y4, sizeof y4);
    CHECK_OK(kn_dataset_load_npy(&ds, P("xu.npy"), P("y4.npy"), &e));
    CHECK(ds && ds->dtype == KN_U8 && ds->ndim == 1 && ds->shape[0] == 5 && !memcmp(ds->x, xu, 15) &&
              ds->classes == 3 && ds->y[0] == 2,
          "npy u1");
    kn_dataset_free(ds);

    /* f8 and big-endian f4 and i2 become f32; labels u1, shape (n, 1), [n, C, H, W] */
    double xd[3 * 2] = {1.5, -2.25, 3e10, 0, 1e-3, 7};
    uint8_t yu[3] = {0, 1, 1};
    write_npy(P("xd.npy"), "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 1, 1, 2), }", xd, sizeof xd);
    write_npy(P("yu.npy"), "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 1), }", yu, sizeof yu);
    CHECK_OK(kn_dataset_load_npy(&ds, P("xd.npy"), P("yu.npy"), &e));
    bool okd = ds && ds->ndim == 3 && ds->shape[2] == 2;
    for (int i = 0; okd && i < 6; i++)
        okd = ((float *)ds->x)[i] == (float)xd[i];
    CHECK(okd, "npy f8 -> f32, 3 example dims");
    kn_dataset_free(ds);
    unsigned char be[3 * 2 * 4];
    for (int i = 0; i < 6; i++) {
        float v = (float)xd[i];
        uint32_t u;
        memcpy(&u, &v, 4);
        put_be32(be + 4 * i, u);
    }
    write_npy(P("xbe.npy"), "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 2), }", be, sizeof be);
    CHECK_OK(kn_dataset_load_npy(&ds, P("xbe.npy"), P("yu.npy"), &e));
    CHECK(ds && ((float *)ds->x)[1] == -2.25f && ((float *)ds->x)[2] == 3e10f, "npy big-endian f4");
    kn_dataset_free(ds);
    int16_t xs[3] = {-7, 300, 0};
    write_npy(P("xs.npy"), "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }", xs, sizeof xs);
    CHECK_OK(kn_dataset_load_npy(&ds, P("xs.npy"), P("yu.npy"), &e));
    CHECK(ds && ds->ndim == 1 && ds->shape[0] == 1 && ((float *)ds->x)[0] == -7.0f && ((float *)ds->x)[1] == 300.0f,
          "npy i2 -> f32, 1-D x");
    kn_dataset_free(ds);

    /* bad inputs */
    expect(kn_dataset_load_npy(&ds, P("im"), P("y.npy"), &e), &e, KN_ERR_FORMAT, "not a .npy file", "npy magic");
    write_npy(P("fo.npy"), "{'descr': '<f4', 'fortran_order': True, 'shape': (4, 2, 3), }", xf, sizeof xf);
    expect(kn_dataset_load_npy(&ds, P("fo.npy"), P("y.npy"), &e), &e, KN_ERR_UNSUPPORTED, "Fortran", "fortran");
    printf("  e.g. %s\n", e.msg);
    write_npy(P("tr.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2, 3), }", xf, sizeof xf - 5);
    expect(kn_dataset_load_npy(&ds, P("tr.npy"), P("y.npy"), &e), &e, KN_ERR_FORMAT,
           "truncated: expected 96 bytes of <f4 data for the shape in the header, found 91", "npy truncated data");
    write_npy(P("long.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2, 3), }", xf, sizeof xf);
    {
        size_t len = 0;
        unsigned char *b = read_all(P("long.npy"), &len);
        write_file(P("hcut.npy"), b, 40); /* header cut off */
        b[8] = 0xff; /* header length beyond the file */
        b[9] = 0x7f;
        write_file(P("hlen.npy"), b, len);
        free(b);
    }
    expect(kn_dataset_load_npy(&ds, P("hcut.npy"), P("y.npy"), &e), &e, KN_ERR_FORMAT, "truncated", "npy cut header");
    expect(kn_dataset_load_npy(&ds, P("hlen.npy"), P("y.npy"), &e), &e, KN_ERR_FORMAT, "header needs", "npy hlen");
    const char *bad_headers[] = {
        "['descr', '<f4']",
        "{'descr': '<f4', 'fortran_order': False}",
        "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (4, 2, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4, x, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2, 3) 'extra': 1}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2, 3), 'color': 'red'}",
        "{'descr': <f4, 'fortran_order': False, 'shape': (4, 2, 3), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 2), }",
    };
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        write_npy(P("bh.npy"), bad_headers[i], xf, sizeof xf);
        kn_status st = kn_dataset_load_npy(&ds, P("bh.npy"), P("y.npy"), &e);
        CHECK(st == KN_ERR_FORMAT && ds == NULL, "bad npy header %zu (%s): %s %s", i, bad_headers[i],
              kn_status_name(st), e.msg);
    }
    write_npy(P("c8.npy"), "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", xf, 24);
    expect(kn_dataset_load_npy(&ds, P("c8.npy"), P("yu.npy"), &e), &e, KN_ERR_UNSUPPORTED, "'<c8'", "complex");
    write_npy(P("st.npy"), "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", xf, 12);
    expect(kn_dataset_load_npy(&ds, P("st.npy"), P("yu.npy"), &e), &e, KN_ERR_UNSUPPORTED, "structured", "struct");
    write_npy_ver(P("v4.npy"), 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2, 3), }", xf, sizeof xf);
    {
        size_t len = 0;
        unsigned char *b = read_all(P("v4.npy"), &len);
        b[6] = 4;
        write_file(P("v4.npy"), b, len);
        free(b);
    }
    expect(kn_dataset_load_npy(&ds, P("v4.npy"), P("y.npy"), &e), &e, KN_ERR_UNSUPPORTED, "version 4.0", "npy v4");
    write_npy(P("yf.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", xf, 16);
    expect(kn_dataset_load_npy(&ds, P("x.npy"), P("yf.npy"), &e), &e, KN_ERR_FORMAT, "must be integers", "float y");
    int64_t yneg[4] = {0, 1, -1, 2};
    write_npy(P("yn.npy"), "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", yneg, sizeof yneg);
    expect(kn_dataset_load_npy(&ds, P("x.npy"), P("yn.npy"), &e), &e, KN_ERR_FORMAT, "y[2] = -1", "negative y");
    int64_t ybig[4] = {0, 1, (int64_t)1 << 31, 2};
    write_npy(P("yb.npy"), "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", ybig, sizeof ybig);
    expect(kn_dataset_load_npy(&ds, P("x.npy"), P("yb.npy"), &e), &e, KN_ERR_FORMAT, "2^31", "y >= 2^31");
    expect(kn_dataset_load_npy(&ds, P("x.npy"), P("y4.npy"), &e), &e, KN_ERR_FORMAT, "shape (3)", "n mismatch");
    write_npy(P("trail.npy"), "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", ybig, sizeof ybig);
    {
        FILE *f = fopen(P("trail.npy"), "ab");
        fputc(1, f);
        fclose(f);
    }
    expect(kn_dataset_load_npy(&ds, P("x.npy"), P("trail.npy"), &e), &e, KN_ERR_FORMAT, "bytes of data", "trail");
    write_npy(P("x0.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", xf, 4);
    expect(kn_dataset_load_npy(&ds, P("x0.npy"), P("y.npy"), &e), &e, KN_ERR_FORMAT, "scalar", "scalar x");
    write_npy(P("x5.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 1, 2, 3, 1), }", xf, sizeof xf);
    expect(kn_dataset_load_npy(&ds, P("x5.npy"), P("y.npy"), &e), &e, KN_ERR_UNSUPPORTED, "at most 3", "5-D x");

    for (long k = 1; k < 50; k++) {
        kt_oom_install(k);
        kn_status st = kn_dataset_load_npy(&ds, P("x.npy"), P("y.npy"), &e);
        long live = kt_oom_live();
        kn_dataset_free(ds);
        kt_oom_remove();
        if (st == KN_OK)
            break;
        CHECK(st == KN_ERR_OOM && live == 0, "npy OOM at %ld: %s, %ld live", k, kn_status_name(st), live);
    }
}

/* ---- CSV -------------------------------------------------------------------------------- */

static kn_status csv(const char *text, int label_column, kn_dataset **ds, kn_error *e)
{
    write_file(P("t.csv"), text, strlen(text));
    return kn_dataset_load_csv(ds, P("t.csv"), label_column, e);
}

static void test_csv(void)
{
    kn_dataset *ds = NULL;
    kn_error e = {0};
    CHECK_OK(csv("a, b ,label\n1,2,0\n3.5,-4e2,2\n\n-0.125, 7 ,1\n", -1, &ds, &e));
    CHECK(ds && ds->n == 3 && ds->ndim == 1 && ds->shape[0] == 2 && ds->dtype == KN_F32 && ds->classes == 3,
          "CSV shape");
    const float want[6] = {1, 2, 3.5f, -400, -0.125f, 7};
    CHECK(ds && !memcmp(ds->x, want, sizeof want) && ds->y[0] == 0 && ds->y[1] == 2 && ds->y[2] == 1, "CSV values");
    kn_dataset_free(ds);
    /* no header, label first, CRLF, no final newline, BOM */
    CHECK_OK(csv("\xEF\xBB\xBF" "4,1.5,2.5\r\n0,3,4", 0, &ds, &e));
    CHECK(ds && ds->n == 2 && ds->shape[0] == 2 && ds->y[0] == 4 && ds->y[1] == 0 && ((float *)ds->x)[1] == 2.5f &&
              ds->classes == 5,
          "CSV label first, CRLF");
    kn_dataset_free(ds);
    CHECK_OK(csv("1,7,2\n3,8,4\n", -2, &ds, &e));
    CHECK(ds && ds->y[0] == 7 && ds->y[1] == 8 && ((float *)ds->x)[1] == 2 && ((float *)ds->x)[2] == 3,
          "CSV middle label column");
    kn_dataset_free(ds);

    expect(csv("a,b,c\n1,2,0\n3,4\n5,6,1\n", -1, &ds, &e), &e, KN_ERR_FORMAT, "line 3 has 2 fields but line 1 has 3",
           "ragged");
    printf("  e.g. %s\n", e.msg);
    expect(csv("1,2,0\n3,4,1,9\n", -1, &ds, &e), &e, KN_ERR_FORMAT, "line 2 has 4 fields", "ragged long");
    expect(csv("1,2,0\n3,4,1\n5,abc,1\n", -1, &ds, &e), &e, KN_ERR_FORMAT, "line 3, field 2: 'abc' is not a number",
           "non-numeric");
    printf("  e.g. %s\n", e.msg);
    expect(csv("x,y\n1,2\n\n3,,1\n", -1, &ds, &e), &e, KN_ERR_FORMAT, "line 4", "empty field");
    expect(csv("1,2,0\n1,\"2\",0\n", -1, &ds, &e), &e, KN_ERR_FORMAT, "quoted", "quoted");
    expect(csv("1,2,0.5\n", -1, &ds, &e), &e, KN_ERR_FORMAT, "line 1: the label", "fractional label");
    expect(csv("h1,h2\n1,2\n3,-1\n", -1, &ds, &e), &e, KN_ERR_FORMAT, "line 3", "negative label");
    expect(csv("1,2,0\n", 3, &ds, &e), &e, KN_ERR_ARG, "label column 3", "label column range");
    expect(csv("1,2,0\n", -4, &ds, &e), &e, KN_ERR_ARG, "label column -4", "label column range (negative)");
    expect(csv("a,b,c\n", -1, &ds, &e), &e, KN_ERR_FORMAT, "no data rows", "only a header");
    expect(csv("", -1, &ds, &e), &e, KN_ERR_FORMAT, "no data rows", "empty");
    expect(csv("5\n6\n", -1, &ds, &e), &e, KN_ERR_FORMAT, "at least one feature", "one column");
    expect(kn_dataset_load_csv(&ds, P("none.csv"), -1, &e), &e, KN_ERR_IO, "cannot open", "missing CSV");
    CHECK(ds == NULL, "no data set after errors");

    for (long k = 1; k < 50; k++) {
        kt_oom_install(k);
        kn_status st = csv("a,b,label\n1,2,0\n3.5,-4e2,2\n", -1, &ds, &e);
        long live = kt_oom_live();
        kn_dataset_free(ds);
        kt_oom_remove();
        if (st == KN_OK)
            break;
        CHECK(st == KN_ERR_OOM && live == 0, "CSV OOM at %ld: %s, %ld live", k, kn_status_name(st), live);
    }
}

/* ---- kn_dataset_open -------------------------------------------------------------------- */

static void make_idx_dir(const char *dir, bool gz, bool with_test)
{
    static unsigned char im[16 + 9 * 16], lb[8 + 9];
    char p[600];
    mkdir_p(dir);
    const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                            "t10k-labels-idx1-ubyte"};
    for (int i = 0; i < (with_test ? 4 : 2); i++) {
        uint32_t n = i < 2 ? 9 : 5;
        size_t len = i % 2 == 0 ? idx_images(im, n, 4, 4) : idx_labels(lb, n, 10);
        snprintf(p, sizeof p, "%s/%s%s", dir, names[i], gz ? ".gz" : "");
        if (gz)
            write_gz(p, i % 2 == 0 ? im : lb, len);
        else
            write_file(p, i % 2 == 0 ? im : lb, len);
    }
}

static void test_open(void)
{
    kn_dataset *tr = NULL, *te = NULL;
    kn_error e = {0};
    char d[600], sys[600];
    snprintf(sys, sizeof sys, "%s/sys", tmp);
    mkdir_p(sys);
    unsetenv("KILN_DATA");

    /* a directory of gzipped IDX files */
    snprintf(d, sizeof d, "%s/mydata", tmp);
    make_idx_dir(d, true, true);
    CHECK_OK(kn_dataset_open(d, &tr, &te, &e));
    CHECK(tr && te && tr->n == 9 && te->n == 5 && tr->shape[1] == 4 && !strcmp(tr->name, "mydata/train") &&
              !strcmp(te->name, "mydata/test"),
          "IDX directory: %s", tr ? tr->name : "-");
    kn_dataset_free(tr);
    kn_dataset_free(te);
    /* trailing slash, and test not wanted */
    snprintf(d, sizeof d, "%s/mydata/", tmp);
    CHECK_OK(kn_dataset_open(d, &tr, NULL, &e));
    CHECK(tr && tr->n == 9 && !strcmp(tr->name, "mydata/train"), "test = NULL");
    kn_dataset_free(tr);

    /* fashion-mnist under $KILN_DATA (plain files) */
    char kd[600];
    snprintf(kd, sizeof kd, "%s/kdata", tmp);
    mkdir_p(kd);
    snprintf(d, sizeof d, "%s/fashion-mnist", kd);
    make_idx_dir(d, false, true);
    setenv("KILN_DATA", kd, 1);
    CHECK_OK(kn__dataset_open_in("fashion-mnist", sys, &tr, &te, &e));
    CHECK(tr && te && tr->n == 9 && !strcmp(tr->name, "fashion-mnist/train") && !strcmp(te->name, "fashion-mnist/test"),
          "KILN_DATA/fashion-mnist");
    kn_dataset_free(tr);
    kn_dataset_free(te);
    /* the system root is searched after KILN_DATA */
    snprintf(d, sizeof d, "%s/mnist", sys);
    make_idx_dir(d, true, true);
    CHECK_OK(kn__dataset_open_in("mnist", sys, &tr, &te, &e));
    CHECK(tr && !strcmp(tr->name, "mnist/train"), "system root mnist");
    kn_dataset_free(tr);
    kn_dataset_free(te);
    unsetenv("KILN_DATA");

    /* missing data sets say how to get them */
    kn_status st = kn__dataset_open_in("fashion-mnist", sys, &tr, &te, &e);
    expect(st, &e, KN_ERR_IO, "Fashion-MNIST not found in", "missing fashion-mnist");
    expect(st, &e, KN_ERR_IO, "sudo apt-get install dataset-fashion-mnist", "install hint");
    expect(st, &e, KN_ERR_IO, "--data DIR", "--data hint");
    CHECK(tr == NULL && te == NULL, "nothing returned");
    printf("  e.g. %s\n", e.msg);
    snprintf(d, sizeof d, "%s/sys2", tmp);
    expect(kn__dataset_open_in("mnist", d, &tr, &te, &e), &e, KN_ERR_IO, "$KILN_DATA/mnist", "missing mnist");
    expect(kn__dataset_open_in("cifar-10", d, &tr, &te, &e), &e, KN_ERR_IO, "cifar-10-binary.tar.gz", "missing cifar");
    snprintf(d, sizeof d, "%s/no/such/dir", tmp);
    expect(kn_dataset_open(d, &tr, &te, &e), &e, KN_ERR_IO, "no such directory", "missing directory");
    expect(kn_dataset_open(P("im"), &tr, &te, &e), &e, KN_ERR_IO, "not a directory", "a file");
    snprintf(d, sizeof d, "%s/emptydir", tmp);
    mkdir_p(d);
    expect(kn_dataset_open(d, &tr, &te, &e), &e, KN_ERR_IO, "holds no data set", "empty directory");
    snprintf(d, sizeof d, "%s/partial", tmp);
    make_idx_dir(d, false, false);
    expect(kn_dataset_open(d, &tr, &te, &e), &e, KN_ERR_IO, "t10k-images-idx3-ubyte[.gz] is missing", "partial");
    CHECK_OK(kn_dataset_open(d, &tr, NULL, &e)); /* the train split alone is enough when test is not wanted */
    kn_dataset_free(tr);
    expect(kn_dataset_open(NULL, &tr, &te, &e), &e, KN_ERR_ARG, NULL, "NULL spec");
    /* a broken file inside a recognised directory reports that file */
    snprintf(d, sizeof d, "%s/broken", tmp);
    make_idx_dir(d, false, true);
    char f[700];
    snprintf(f, sizeof f, "%s/t10k-labels-idx1-ubyte", d);
    write_file(f, "\0\0\x08\x01\0\0\0\x05\1\2", 10);
    expect(kn_dataset_open(d, &tr, &te, &e), &e, KN_ERR_FORMAT, "t10k-labels-idx1-ubyte: truncated", "broken file");
    CHECK(tr == NULL && te == NULL, "nothing returned on a broken test split");

    /* CIFAR-10 inside the tarball's subdirectory, CIFAR-100, npy, CSV */
    static unsigned char buf[3 * 3074];
    snprintf(d, sizeof d, "%s/c10", tmp);
    mkdir_p(d);
    snprintf(f, sizeof f, "%s/c10/cifar-10-batches-bin", tmp);
    mkdir_p(f);
    for (int i = 1; i <= 6; i++) {
        snprintf(f, sizeof f, i <= 5 ? "%s/c10/cifar-10-batches-bin/data_batch_%d.bin"
                                     : "%s/c10/cifar-10-batches-bin/test_batch.bin", tmp, i);
        write_file(f, buf, cifar_file(buf, i * 2, 2, false));
    }
    CHECK_OK(kn_dataset_open(d, &tr, &te, &e));
    CHECK(tr && te && tr->n == 10 && te->n == 2 && tr->classes == 10 && tr->y[2] == 4, "CIFAR-10 directory");
    kn_dataset_free(tr);
    kn_dataset_free(te);
    snprintf(d, sizeof d, "%s/c100", tmp);
    mkdir_p(d);
    snprintf(f, sizeof f, "%s/train.bin", d);
    write_file(f, buf, cifar_file(buf, 0, 3, true));
    snprintf(f, sizeof f, "%s/test.bin", d);
    write_file(f, buf, cifar_file(buf, 0, 1, true));
    CHECK_OK(kn_dataset_open(d, &tr, &te, &e));
    CHECK(tr && te && tr->n == 3 && tr->classes == 100, "CIFAR-100 directory");
    kn_dataset_free(tr);
    kn_dataset_free(te);
    snprintf(d, sizeof d, "%s/npyset", tmp);
    mkdir_p(d);
    size_t len = 0;
    unsigned char *b;
    const char *pairs[4][2] = {{"x.npy", "x_train.npy"}, {"y.npy", "y_train.npy"}, {"xd.npy", "x_test.npy"},
                               {"yu.npy", "y_test.npy"}};
    for (int i = 0; i < 4; i++) {
        b = read_all(P(pairs[i][0]), &len);
        snprintf(f, sizeof f, "%s/%s", d, pairs[i][1]);
        write_file(f, b, len);
        free(b);
    }
    CHECK_OK(kn_dataset_open(d, &tr, &te, &e));
    CHECK(tr && te && tr->n == 4 && te->n == 3 && !strcmp(tr->name, "npyset/train"), "npy directory");
    kn_dataset_free(tr);
    kn_dataset_free(te);
    snprintf(d, sizeof d, "%s/csvset", tmp);
    mkdir_p(d);
    snprintf(f, sizeof f, "%s/train.csv", d);
    write_file(f, "a,b,y\n1,2,0\n3,4,1\n", 18);
    expect(kn_dataset_open(d, &tr, &te, &e), &e, KN_ERR_IO, "test.csv is missing", "CSV directory without test");
    snprintf(f, sizeof f, "%s/test.csv", d);
    write_file(f, "5,6,1\n", 6);
    CHECK_OK(kn_dataset_open(d, &tr, &te, &e));
    CHECK(tr && te && tr->n == 2 && te->n == 1 && te->y[0] == 1, "CSV directory");
    kn_dataset_free(tr);
    kn_dataset_free(te);

    for (long k = 1; k < 50; k++) {
        snprintf(d, sizeof d, "%s/mydata", tmp);
        kt_oom_install(k);
        st = kn_dataset_open(d, &tr, &te, &e);
        long live = kt_oom_live();
        kn_dataset_free(tr);
        kn_dataset_free(te);
        kt_oom_remove();
        if (st == KN_OK)
            break;
        CHECK(st == KN_ERR_OOM && live == 0, "open OOM at %ld: %s, %ld live", k, kn_status_name(st), live);
    }
}

/* ---- loader ----------------------------------------------------------------------------- */

enum { LN = 103, LC = 2, LH = 5, LW = 6, LEX = LC * LH * LW };
static uint8_t lx[LN * LEX];
static int32_t ly[LN];

static kn_dataset loader_ds(void)
{
    for (int i = 0; i < LN; i++) {
        ly[i] = i; /* the label identifies the example */
        for (int j = 0; j < LEX; j++)
            lx[i * LEX + j] = pix(i, j);
    }
    kn_dataset ds = {.n = LN, .ndim = 3, .shape = {LC, LH, LW}, .dtype = KN_U8, .x = lx, .y = ly, .classes = LN};
    snprintf(ds.name, sizeof ds.name, "synthetic");
    return ds;
}

/* Runs one epoch; writes the labels in order into ys (n of them); returns the batch count. */
static int64_t run_epoch(kn_loader *l, int epoch, int32_t *ys, int64_t *n, int64_t *last_n)
{
    kn_loader_start_epoch(l, epoch);
    kn_batch b;
    int64_t nb = 0;
    *n = 0;
    while (kn_loader_next(l, &b)) {
        CHECK(b.index == nb, "batch index %lld, expected %lld", (long long)b.index, (long long)nb);
        for (int64_t i = 0; i < b.n; i++)
            ys[(*n)++] = b.y[i];
        *last_n = b.n;
        nb++;
    }
    return nb;
}

static bool each_once(const int32_t *ys, int64_t n, int64_t total)
{
    static int seen[LN];
    memset(seen, 0, sizeof seen);
    for (int64_t i = 0; i < n; i++) {
        if (ys[i] < 0 || ys[i] >= total || seen[ys[i]]++)
            return false;
    }
    return n == total;
}

static void test_loader_order(void)
{
    kn_dataset ds = loader_ds();
    kn_error e = {0};
    kn_loader *l = NULL;
    int32_t ys[LN], ys2[LN];
    int64_t n = 0, last = 0;
    for (int bg = 0; bg < 2; bg++) {
        kn_loader_opts o = {.batch = 10, .background = bg};
        CHECK_OK(kn_loader_new(&l, &ds, NULL, 0, &o, &e));
        CHECK(kn_loader_num_batches(l) == 11 && kn_loader_size(l) == LN, "batches/size");
        CHECK(run_epoch(l, 0, ys, &n, &last) == 11 && last == 3 && each_once(ys, n, LN), "unshuffled epoch, bg=%d", bg);
        bool ident = true;
        for (int i = 0; i < LN; i++)
            ident &= ys[i] == i;
        CHECK(ident, "no shuffle keeps the order");
        kn_loader_free(l);

        o.shuffle = true;
        o.seed = 42;
        CHECK_OK(kn_loader_new(&l, &ds, NULL, 0, &o, &e));
        CHECK(run_epoch(l, 3, ys, &n, &last) == 11 && last == 3 && each_once(ys, n, LN), "shuffled epoch, bg=%d", bg);
        ident = true;
        for (int i = 0; i < LN; i++)
            ident &= ys[i] == i;
        CHECK(!ident, "shuffle changes the order");
        run_epoch(l, 3, ys2, &n, &last);
        CHECK(!memcmp(ys, ys2, sizeof ys), "same seed and epoch, same order");
        run_epoch(l, 4, ys2, &n, &last);
        CHECK(each_once(ys2, n, LN) && memcmp(ys, ys2, sizeof ys), "another epoch, another order");
        kn_loader_free(l);
        /* a second loader with the same seed reproduces epoch 3; another seed does not */
        CHECK_OK(kn_loader_new(&l, &ds, NULL, 0, &o, &e));
        run_epoch(l, 3, ys2, &n, &last);
        CHECK(!memcmp(ys, ys2, sizeof ys), "order depends only on (seed, epoch)");
        kn_loader_free(l);
        o.seed = 43;
        CHECK_OK(kn_loader_new(&l, &ds, NULL, 0, &o, &e));
        run_epoch(l, 3, ys2, &n, &last);
        CHECK(memcmp(ys, ys2, sizeof ys), "another seed, another order");
        kn_loader_free(l);

        /* drop_last */
        o.drop_last = true;
        CHECK_OK(kn_loader_new(&l, &ds, NULL, 0, &o, &e));
        CHECK(kn_loader_num_batches(l) == 10 && kn_loader_size(l) == 100, "drop_last counts");
        CHECK(run_epoch(l, 0, ys, &n, &last) == 10 && n == 100 && last == 10, "drop_last epoch");
        static int seen[LN];
        memset(seen, 0, sizeof seen);
        bool once = true;
        for (int i = 0; i < n; i++)
            once &= seen[ys[i]]++ == 0;
        CHECK(once, "drop_last: no repeats");
        kn_loader_free(l);

        /* a subset of indices; batch larger than the subset */
        const int64_t sub[5] = {5, 99, 7, 0, 42};
        o = (kn_loader_opts){.batch = 64, .shuffle = true, .seed = 1, .background = bg};
        CHECK_OK(kn_loader_new(&l, &ds, sub, 5, &o, &e));
        CHECK(kn_loader_num_batches(l) == 1 && kn_loader_size(l) == 5, "subset counts");
        run_epoch(l, 0, ys, &n, &last);
        int sum = 0;
        for (int i = 0; i < n; i++)
            sum += ys[i];
        CHECK(n == 5 && sum == 5 + 99 + 7 + 0 + 42, "subset covered");
        kn_loader_free(l);
        o.drop_last = true;
        CHECK_OK(kn_loader_new(&l, &ds, sub, 5, &o, &e));
        kn_batch b;
        CHECK(kn_loader_num_batches(l) == 0 && !kn_loader_next(l, &b), "drop_last of a short subset: no batch");
        kn_loader_free(l);
        o.drop_last = false;
        CHECK_OK(kn_loader_new(&l, &ds, sub, 0, &o, &e));
        CHECK(kn_loader_num_batches(l) == 0 && !kn_loader_next(l, &b), "empty subset");
        kn_loader_free(l);

        /* next before start_epoch runs epoch 0; a restart mid-epoch; free mid-epoch */
        o = (kn_loader_opts){.batch = 7, .shuffle = true, .seed = 9, .background = bg};
        CHECK_OK(kn_loader_new(&l, &ds, NULL, 0, &o, &e));
        CHECK(kn_loader_next(l, &b) && b.index == 0 && b.n == 7, "implicit epoch 0");
        int32_t first[7];
        memcpy(first, b.y, sizeof first);
        kn_loader_next(l, &b);
        kn_loader_next(l, &b);
        run_epoch(l, 0, ys, &n, &last);
        CHECK(!memcmp(first, ys, sizeof first) && each_once(ys, n, LN), "restart mid-epoch gives the full epoch");
        kn_loader_start_epoch(l, 1);
        kn_loader_next(l, &b); /* freed with the worker mid-epoch */
        kn_loader_free(l);
    }
}

/* Finds a crop offset and flip that turn example `src` into `out`; false when none does. */
static bool explains(const float *out, int src, int pad, bool may_flip, float scale, float mean, float std, bool *flipped)
{
    for (int oy = -pad; oy <= pad; oy++)
        for (int ox = -pad; ox <= pad; ox++)
            for (int fl = 0; fl <= (may_flip ? 1 : 0); fl++) {
                bool ok = true;
                for (int c = 0; c < LC && ok; c++)
                    for (int i = 0; i < LH && ok; i++)
                        for (int j = 0; j < LW && ok; j++) {
                            int si = i + oy, sj = (fl ? LW - 1 - j : j) + ox;
                            float raw = (si < 0 || si >= LH || sj < 0 || sj >= LW)
                                            ? 0.0f
                                            : (float)lx[src * LEX + (c * LH + si) * LW + sj];
                            ok = out[(c * LH + i) * LW + j] == (raw * scale - mean) / std;
                        }
                if (ok) {
                    *flipped = fl;
                    return true;
                }
            }
    return false;
}

static void test_loader_values(void)
{
    kn_dataset ds = loader_ds();
    kn_error e = {0};
    kn_loader *l = NULL, *fg = NULL, *bgl = NULL;
    kn_batch b, bb;

    /* normalisation */
    kn_loader_opts o = {.batch = 16, .scale = 1.0f / 255, .mean = 0.5f, .std = 0.25f};
    CHECK_OK(kn_loader_new(&l, &ds, NULL, 0, &o, &e));
    int bad = 0;
    while (kn_loader_next(l, &b))
        for (int64_t i = 0; i < b.n; i++)
            for (int j = 0; j < LEX; j++)
                bad += !kt_close(b.x[i * LEX + j], (pix(b.y[i], j) / 255.0 - 0.5) / 0.25, 1e-6, 1e-6);
    CHECK(bad == 0, "normalisation: %d values off", bad);
    kn_loader_free(l);
    o = (kn_loader_opts){.batch = 16}; /* scale 0 and std 0 mean 1 */
    CHECK_OK(kn_loader_new(&l, &ds, NULL, 0, &o, &e));
    kn_loader_next(l, &b);
    CHECK(b.x[LEX + 3] == pix(1, 3), "raw values with default scale and std");
    kn_loader_free(l);

    /* augmentation: each output is the zero-padded source shifted by at most pad, maybe flipped */
    o = (kn_loader_opts){.batch = 8, .shuffle = true, .seed = 5, .scale = 1.0f / 255, .mean = 0.1f, .std = 0.3f,
                         .crop_pad = 2, .hflip = true};
    CHECK_OK(kn_loader_new(&l, &ds, NULL, 0, &o, &e));
    int unexplained = 0, flips = 0, total = 0, shifted = 0;
    float lo = (0 - 0.1f) / 0.3f, hi = (1 - 0.1f) / 0.3f;
    for (int ep = 0; ep < 3; ep++) {
        kn_loader_start_epoch(l, ep);
        while (kn_loader_next(l, &b))
            for (int64_t i = 0; i < b.n; i++) {
                bool fl = false;
                const float *out = b.x + i * LEX;
                for (int j = 0; j < LEX; j++)
                    bad += !(out[j] >= lo - 1e-6f && out[j] <= hi + 1e-6f);
                if (!explains(out, b.y[i], 2, true, o.scale, o.mean, o.std, &fl))
                    unexplained++;
                flips += fl;
                total++;
                bool same = true;
                for (int j = 0; j < LEX; j++)
                    same &= out[j] == (lx[b.y[i] * LEX + j] * o.scale - o.mean) / o.std;
                shifted += !same;
            }
    }
    CHECK(bad == 0, "augmented values out of range: %d", bad);
    CHECK(unexplained == 0, "%d augmented examples are not a crop/flip of their source", unexplained);
    CHECK(total == 3 * LN && flips > total / 4 && flips < 3 * total / 4, "flip rate %d of %d", flips, total);
    CHECK(shifted > total / 2, "augmentation changed only %d of %d examples", shifted, total);
    kn_loader_free(l);
    o.hflip = false;
    CHECK_OK(kn_loader_new(&l, &ds, NULL, 0, &o, &e));
    kn_loader_next(l, &b);
    bool fl = true;
    CHECK(explains(b.x, b.y[0], 2, false, o.scale, o.mean, o.std, &fl) && !fl, "crop without flip");
    kn_loader_free(l);
    o.hflip = true;
    o.crop_pad = 0;
    CHECK_OK(kn_loader_new(&l, &ds, NULL, 0, &o, &e));
    unexplained = 0;
    while (kn_loader_next(l, &b))
        for (int64_t i = 0; i < b.n; i++)
            unexplained += !explains(b.x + i * LEX, b.y[i], 0, true, o.scale, o.mean, o.std, &fl);
    CHECK(unexplained == 0, "flip only: %d unexplained", unexplained);
    kn_loader_free(l);

    /* foreground and background give bit-identical batches, epoch after epoch */
    o = (kn_loader_opts){.batch = 9, .shuffle = true, .seed = 77, .scale = 1.0f / 255, .mean = 0.2f, .std = 0.7f,
                         .crop_pad = 1, .hflip = true};
    CHECK_OK(kn_loader_new(&fg, &ds, NULL, 0, &o, &e));
    o.background = true;
    CHECK_OK(kn_loader_new(&bgl, &ds, NULL, 0, &o, &e));
    int diff = 0, batches = 0;
    for (int ep = 0; ep < 4; ep++) {
        kn_loader_start_epoch(fg, ep);
        kn_loader_start_epoch(bgl, ep);
        for (;;) {
            bool a = kn_loader_next(fg, &b), c = kn_loader_next(bgl, &bb);
            if (a != c) {
                diff++;
                break;
            }
            if (!a)
                break;
            batches++;
            diff += b.n != bb.n || b.index != bb.index || memcmp(b.x, bb.x, (size_t)b.n * LEX * sizeof(float)) ||
                    memcmp(b.y, bb.y, (size_t)b.n * sizeof(int32_t));
            if (ep == 2 && b.index == 4) /* restart epoch 2 in the middle, on both */
                break;
        }
    }
    CHECK(diff == 0 && batches > 40, "foreground vs background: %d differences over %d batches", diff, batches);
    kn_loader_free(fg);
    kn_loader_free(bgl);

    /* f32 data sets */
    float fx[6 * 4];
    int32_t fy[6] = {0, 1, 2, 0, 1, 2};
    for (int i = 0; i < 24; i++)
        fx[i] = (float)i - 10;
    kn_dataset fds = {.n = 6, .ndim = 1, .shape = {4}, .dtype = KN_F32, .x = fx, .y = fy, .classes = 3};
    o = (kn_loader_opts){.batch = 4, .scale = 2, .mean = 1, .std = 4};
    CHECK_OK(kn_loader_new(&l, &fds, NULL, 0, &o, &e));
    kn_loader_next(l, &b);
    CHECK(b.x[5] == (fx[5] * 2 - 1) / 4 && b.n == 4, "f32 normalisation");
    kn_loader_next(l, &b);
    CHECK(b.n == 2 && b.y[1] == 2 && b.x[7] == (fx[23] * 2 - 1) / 4, "f32 last partial batch");
    kn_loader_free(l);

    /* bad arguments */
    o = (kn_loader_opts){.batch = 0};
    expect(kn_loader_new(&l, &ds, NULL, 0, &o, &e), &e, KN_ERR_ARG, "batch size 0", "batch 0");
    CHECK(l == NULL, "no loader on error");
    o.batch = 4;
    o.std = -1;
    expect(kn_loader_new(&l, &ds, NULL, 0, &o, &e), &e, KN_ERR_ARG, "std", "negative std");
    o.std = 0;
    o.crop_pad = 2;
    expect(kn_loader_new(&l, &fds, NULL, 0, &o, &e), &e, KN_ERR_ARG, "image examples", "crop on features");
    o.crop_pad = -1;
    expect(kn_loader_new(&l, &ds, NULL, 0, &o, &e), &e, KN_ERR_ARG, "crop_pad", "negative pad");
    o.crop_pad = 0;
    const int64_t badidx[2] = {3, LN};
    expect(kn_loader_new(&l, &ds, badidx, 2, &o, &e), &e, KN_ERR_RANGE, "indices[1] = 103", "index out of range");
    expect(kn_loader_new(&l, NULL, NULL, 0, &o, &e), &e, KN_ERR_ARG, NULL, "NULL data set");
    expect(kn_loader_new(&l, &ds, NULL, 0, NULL, &e), &e, KN_ERR_ARG, NULL, "NULL options");
    CHECK(kn_loader_start_epoch(NULL, 0) == KN_ERR_ARG && !kn_loader_next(NULL, &b) && kn_loader_num_batches(NULL) == 0,
          "NULL loader");
    kn_loader_free(NULL);
    kn_dataset_free(NULL);

    /* OOM in kn_loader_new: clean failure; a working loader allocates nothing per batch */
    for (int bg = 0; bg < 2; bg++) {
        o = (kn_loader_opts){.batch = 10, .shuffle = true, .crop_pad = 1, .hflip = true, .background = bg};
        for (long k = 1; k < 20; k++) {
            kt_oom_install(k);
            kn_status st = kn_loader_new(&l, &ds, NULL, 0, &o, &e);
            if (st == KN_OK) {
                long before = kt_oom_count();
                for (int ep = 0; ep < 2; ep++) {
                    kn_loader_start_epoch(l, ep);
                    while (kn_loader_next(l, &b)) {
                    }
                }
                CHECK(kt_oom_count() == before, "loader allocated %ld times while running",
                      kt_oom_count() - before);
                kn_loader_free(l);
                CHECK(kt_oom_live() == 0, "loader leaked %ld blocks", kt_oom_live());
                kt_oom_remove();
                break;
            }
            CHECK(st == KN_ERR_OOM && l == NULL && kt_oom_live() == 0, "loader OOM at %ld: %s, %ld live", k,
                  kn_status_name(st), kt_oom_live());
            kt_oom_remove();
        }
    }
}

static void test_split(void)
{
    int64_t *tr = NULL, *va = NULL, *tr2 = NULL, *va2 = NULL;
    CHECK_OK(kn_split_indices(100, 20, 7, &tr, &va));
    int seen[100] = {0};
    for (int i = 0; i < 80; i++)
        seen[tr[i]]++;
    for (int i = 0; i < 20; i++)
        seen[va[i]]++;
    bool ok = true;
    for (int i = 0; i < 100; i++)
        ok &= seen[i] == 1;
    CHECK(ok, "split covers 0..n-1 once");
    CHECK_OK(kn_split_indices(100, 20, 7, &tr2, &va2));
    CHECK(!memcmp(tr, tr2, 80 * sizeof(int64_t)) && !memcmp(va, va2, 20 * sizeof(int64_t)), "split deterministic");
    kn_free(tr2);
    kn_free(va2);
    CHECK_OK(kn_split_indices(100, 20, 8, &tr2, &va2));
    CHECK(memcmp(va, va2, 20 * sizeof(int64_t)), "another seed, another split");
    kn_free(tr);
    kn_free(va);
    kn_free(tr2);
    kn_free(va2);
    CHECK(kn_split_indices(10, 11, 0, &tr, &va) == KN_ERR_ARG && kn_split_indices(-1, 0, 0, &tr, &va) == KN_ERR_ARG,
          "split bad arguments");
    CHECK_OK(kn_split_indices(5, 0, 0, &tr, &va));
    kn_free(tr);
    kn_free(va);
    CHECK_OK(kn_split_indices(5, 5, 0, &tr, &va));
    kn_free(tr);
    kn_free(va);
    /* the shuffle is unbiased enough: position of element 0 over many seeds */
    int pos0[4] = {0};
    for (uint64_t s = 0; s < 4000; s++) {
        int64_t a[4] = {0, 1, 2, 3};
        kn__shuffle(a, 4, s, 0);
        for (int i = 0; i < 4; i++)
            pos0[i] += a[i] == 0;
    }
    CHECK(pos0[0] > 850 && pos0[1] > 850 && pos0[2] > 850 && pos0[3] > 850, "shuffle uniformity %d %d %d %d",
          pos0[0], pos0[1], pos0[2], pos0[3]);
}

/* ---- the real Fashion-MNIST ------------------------------------------------------------- */

static void test_fashion_mnist(void)
{
    struct stat s;
    if (stat("/usr/share/datasets/fashion-mnist", &s) != 0) {
        printf("  SKIPPED the real Fashion-MNIST check: /usr/share/datasets/fashion-mnist is not installed "
               "(sudo apt-get install dataset-fashion-mnist)\n");
        return;
    }
    unsetenv("KILN_DATA");
    kn_dataset *tr = NULL, *te = NULL;
    kn_error e = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kn_status st = kn_dataset_open("fashion-mnist", &tr, &te, &e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(st == KN_OK, "open fashion-mnist: %s", e.msg);
    if (st)
        return;
    CHECK(tr->n == 60000 && te->n == 10000, "Fashion-MNIST sizes %lld %lld", (long long)tr->n, (long long)te->n);
    CHECK(tr->ndim == 3 && tr->shape[0] == 1 && tr->shape[1] == 28 && tr->shape[2] == 28 && te->shape[2] == 28,
          "Fashion-MNIST shape");
    CHECK(tr->classes == 10 && te->classes == 10, "Fashion-MNIST classes");
    CHECK(!strcmp(tr->name, "fashion-mnist/train") && !strcmp(te->name, "fashion-mnist/test"), "names");
    int64_t count[10] = {0};
    for (int64_t i = 0; i < tr->n; i++)
        count[tr->y[i]]++;
    bool bal = true;
    for (int c = 0; c < 10; c++)
        bal &= count[c] == 6000;
    CHECK(bal, "6000 training examples per class");
    double sum = 0;
    for (int64_t i = 0; i < tr->n * 784; i++)
        sum += ((uint8_t *)tr->x)[i];
    double mean = sum / (tr->n * 784.0) / 255.0;
    CHECK(mean > 0.27 && mean < 0.30, "mean pixel %.4f (expected about 0.286)", mean);
    printf("  Fashion-MNIST: %lld + %lld examples read in %.2f s, mean pixel %.4f\n", (long long)tr->n,
           (long long)te->n, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), mean);
    /* one augmented epoch through the background loader */
    kn_loader *l = NULL;
    kn_loader_opts o = {.batch = 128, .shuffle = true, .seed = 1, .scale = 1.0f / 255, .mean = 0.286f, .std = 0.353f,
                        .crop_pad = 2, .hflip = true, .background = true};
    CHECK_OK(kn_loader_new(&l, tr, NULL, 0, &o, &e));
    kn_batch b;
    int64_t n = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (kn_loader_next(l, &b))
        n += b.n;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(n == 60000 && kn_loader_num_batches(l) == 469, "one epoch of Fashion-MNIST");
    printf("  loader: one augmented epoch of 60000 in %.3f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    kn_loader_free(l);
    kn_dataset_free(tr);
    kn_dataset_free(te);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/kiln-test-data-XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_idx();
    test_cifar();
    test_npy();
    test_csv();
    test_open();
    test_loader_order();
    test_loader_values();
    test_split();
    test_fashion_mnist();
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return kt_finish("test_data");
}
