/* test_model_b.c — end-to-end check of "model B" (a small MNIST-style CNN) against PyTorch:
 * builds the model with the public API only, loads the weights, batch and PyTorch's float64
 * loss and parameter gradients from tests/fixtures/model_b.bin (written by
 * tests/fixtures/make_model_b.py, which documents the format and how to regenerate it), and
 * checks the loss and every gradient: float32 on the CPU backend to a relative error < 1e-4,
 * float64 on the reference backend to < 1e-9. The relative error of a tensor is
 * max|kiln − torch| / max|torch|.
 * It also feeds the fixture reader corrupt copies of the file: a malformed fixture must give
 * a clear failure, never a crash. It does not test training steps or other models. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define FIXTURE_PATH "tests/fixtures/model_b.bin"
#define FX_MAX_TENSORS 64
#define FX_MAX_NAME 255

/* ---- fixture reader ----------------------------------------------------------------------- */

typedef struct fx_tensor {
    char name[FX_MAX_NAME + 1];
    kn_dtype dtype;
    int ndim;
    int64_t dims[KN_MAX_DIMS];
    int64_t numel;
    const unsigned char *data; /* borrowed from the file buffer; unaligned: read with memcpy */
} fx_tensor;

typedef struct fx_file {
    int count;
    fx_tensor t[FX_MAX_TENSORS];
} fx_file;

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static bool take(const unsigned char *buf, size_t size, size_t *pos, void *dst, size_t n)
{
    if (n > size - *pos)
        return false;
    memcpy(dst, buf + *pos, n);
    *pos += n;
    return true;
}

/* Parses a whole KNFX file held in buf. Every count, length and size is checked against the
 * bytes that remain before use; on failure returns false with the reason in err. */
static bool fx_parse(const unsigned char *buf, size_t size, fx_file *f, char *err, size_t errsz)
{
    size_t pos = 0;
    char magic[4];
    uint32_t version, count;
    f->count = 0;
    if (!take(buf, size, &pos, magic, 4) || memcmp(magic, "KNFX", 4) != 0) {
        snprintf(err, errsz, "bad magic (expected \"KNFX\"; file of %zu bytes)", size);
        return false;
    }
    if (!take(buf, size, &pos, &version, 4) || !take(buf, size, &pos, &count, 4)) {
        snprintf(err, errsz, "truncated header");
        return false;
    }
    if (version != 1) {
        snprintf(err, errsz, "unsupported version %u (this reader knows 1)", version);
        return false;
    }
    if (count > FX_MAX_TENSORS) {
        snprintf(err, errsz, "tensor count %u exceeds %d", count, FX_MAX_TENSORS);
        return false;
    }
    for (uint32_t i = 0; i < count; i++) {
        fx_tensor *t = &f->t[i];
        uint32_t name_len, dtype, ndim;
        if (!take(buf, size, &pos, &name_len, 4)) {
            snprintf(err, errsz, "tensor %u: truncated before its name length", i);
            return false;
        }
        if (name_len == 0 || name_len > FX_MAX_NAME) {
            snprintf(err, errsz, "tensor %u: name length %u outside 1..%d", i, name_len, FX_MAX_NAME);
            return false;
        }
        if (!take(buf, size, &pos, t->name, name_len)) {
            snprintf(err, errsz, "tensor %u: truncated name (%u bytes)", i, name_len);
            return false;
        }
        t->name[name_len] = 0;
        for (uint32_t k = 0; k < name_len; k++)
            if (t->name[k] < 0x21 || t->name[k] > 0x7e) {
                snprintf(err, errsz, "tensor %u: name has a non-printable byte 0x%02x", i,
                         (unsigned char)t->name[k]);
                return false;
            }
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(f->t[j].name, t->name) == 0) {
                snprintf(err, errsz, "tensor %u: duplicate name \"%s\"", i, t->name);
                return false;
            }
        if (!take(buf, size, &pos, &dtype, 4) || !take(buf, size, &pos, &ndim, 4)) {
            snprintf(err, errsz, "%s: truncated dtype/ndim", t->name);
            return false;
        }
        if (dtype != KN_F32 && dtype != KN_F64 && dtype != KN_I64) {
            snprintf(err, errsz, "%s: dtype code %u is not f32 (0), f64 (1) or i64 (6)", t->name, dtype);
            return false;
        }
        if (ndim > KN_MAX_DIMS) {
            snprintf(err, errsz, "%s: ndim %u exceeds %d", t->name, ndim, KN_MAX_DIMS);
            return false;
        }
        t->dtype = (kn_dtype)dtype;
        t->ndim = (int)ndim;
        t->numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (!take(buf, size, &pos, &t->dims[d], 8)) {
                snprintf(err, errsz, "%s: truncated dims", t->name);
                return false;
            }
            if (t->dims[d] < 0 || (t->dims[d] > 0 && t->numel > INT64_MAX / 8 / t->dims[d])) {
                snprintf(err, errsz, "%s: dim %d = %lld is negative or overflows", t->name, d,
                         (long long)t->dims[d]);
                return false;
            }
            t->numel *= t->dims[d];
        }
        size_t bytes = (size_t)t->numel * kn_dtype_size(t->dtype);
        if (bytes > size - pos) {
            snprintf(err, errsz, "%s: needs %zu data bytes, only %zu left", t->name, bytes, size - pos);
            return false;
        }
        t->data = buf + pos;
        pos += bytes;
        f->count++;
    }
    if (pos != size) {
        snprintf(err, errsz, "%zu unexpected bytes after the last tensor", size - pos);
        return false;
    }
    return true;
}

static unsigned char *read_file(const char *path, size_t *size, char *err, size_t errsz)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errsz, "cannot open %s (run from the repository root; regenerate with "
                 "/usr/bin/python3 tests/fixtures/make_model_b.py)", path);
        return NULL;
    }
    unsigned char *buf = NULL;
    long len = -1;
    if (fseek(fp, 0, SEEK_END) == 0)
        len = ftell(fp);
    if (len < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        snprintf(err, errsz, "cannot size %s", path);
    } else if (!(buf = malloc(len ? (size_t)len : 1))) {
        snprintf(err, errsz, "out of memory for %ld bytes", len);
    } else if (fread(buf, 1, (size_t)len, fp) != (size_t)len) {
        snprintf(err, errsz, "short read of %s", path);
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *size = buf ? (size_t)len : 0;
    return buf;
}

static const char *shape_str(int ndim, const int64_t *dims, char *buf, size_t size)
{
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && k < size; d++)
        k += (size_t)snprintf(buf + k, size - k, d ? ",%lld" : "%lld", (long long)dims[d]);
    if (k < size)
        snprintf(buf + k, size - k, "]");
    return buf;
}

/* The tensor called name with exactly this dtype and shape, or NULL after a failed CHECK. */
static const fx_tensor *fx_get(const fx_file *f, const char *name, kn_dtype dt, int ndim,
                               const int64_t *dims)
{
    for (int i = 0; i < f->count; i++) {
        const fx_tensor *t = &f->t[i];
        if (strcmp(t->name, name) != 0)
            continue;
        bool ok = t->dtype == dt && t->ndim == ndim;
        for (int d = 0; ok && d < ndim; d++)
            ok = t->dims[d] == dims[d];
        char want[128], got[128];
        CHECK(ok, "fixture tensor %s is %s %s, expected %s %s", name, kn_dtype_name(t->dtype),
              shape_str(t->ndim, t->dims, got, sizeof got), kn_dtype_name(dt),
              shape_str(ndim, dims, want, sizeof want));
        return ok ? t : NULL;
    }
    CHECK(0, "fixture has no tensor named %s", name);
    return NULL;
}

/* ---- model B --------------------------------------------------------------------------- */

enum { N_PARAMS = 8, BATCH = 8, CLASSES = 10 };

static const char *const param_names[N_PARAMS] = {
    "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
    "fc1.weight",   "fc1.bias",   "fc2.weight",   "fc2.bias",
};
static const int param_ndim[N_PARAMS] = {4, 1, 4, 1, 2, 1, 2, 1};
static const int64_t param_dims[N_PARAMS][4] = {
    {32, 1, 3, 3}, {32}, {64, 32, 3, 3}, {64}, {128, 3136}, {128}, {10, 128}, {10},
};
static const int64_t x_dims[4] = {BATCH, 1, 28, 28};
static const int64_t y_dims[1] = {BATCH};

typedef struct fixture {
    const fx_tensor *x, *y, *loss;
    const fx_tensor *param[N_PARAMS], *grad[N_PARAMS];
} fixture;

static bool fixture_bind(const fx_file *f, fixture *fx)
{
    bool ok = true;
    ok &= (fx->x = fx_get(f, "x", KN_F32, 4, x_dims)) != NULL;
    ok &= (fx->y = fx_get(f, "y", KN_I64, 1, y_dims)) != NULL;
    ok &= (fx->loss = fx_get(f, "loss", KN_F64, 0, NULL)) != NULL;
    for (int i = 0; i < N_PARAMS; i++) {
        char gname[64];
        snprintf(gname, sizeof gname, "grad.%s", param_names[i]);
        ok &= (fx->param[i] = fx_get(f, param_names[i], KN_F32, param_ndim[i], param_dims[i])) != NULL;
        ok &= (fx->grad[i] = fx_get(f, gname, KN_F64, param_ndim[i], param_dims[i])) != NULL;
    }
    if (ok && fx->y) {
        for (int64_t i = 0; i < BATCH; i++) {
            int64_t label;
            memcpy(&label, fx->y->data + i * 8, 8);
            CHECK(label >= 0 && label < CLASSES, "fixture label y[%lld] = %lld outside [0, %d)",
                  (long long)i, (long long)label, CLASSES);
            ok &= label >= 0 && label < CLASSES;
        }
    }
    return ok;
}

/* Conv2d(1→32, 3×3, pad 1) + ReLU → MaxPool 2 → Conv2d(32→64, 3×3, pad 1) + ReLU → MaxPool 2
 * → Flatten → Linear(3136→128) + ReLU → Linear(128→10) → softmax cross-entropy.
 * Returns the loss node (NULL on a build error, which stays recorded in g). */
static kn_node *build_model_b(kn_graph *g, kn_dtype dt, kn_node **x, kn_node **y, kn_node **p)
{
    *x = kn_graph_input(g, "x", dt, 4, x_dims);        /* [8, 1, 28, 28] */
    *y = kn_graph_input(g, "y", KN_I64, 1, y_dims);    /* [8] */
    for (int i = 0; i < N_PARAMS; i++)
        p[i] = kn_graph_param(g, param_names[i], dt, param_ndim[i], param_dims[i], true);
    const kn_conv2d_opts same = {.pad_h = 1, .pad_w = 1};
    kn_node *h = kn_graph_relu(g, kn_graph_conv2d(g, *x, p[0], p[1], &same)); /* [8,32,28,28] */
    h = kn_graph_max_pool2d(g, h, 2, 0, 0);                                   /* [8,32,14,14] */
    h = kn_graph_relu(g, kn_graph_conv2d(g, h, p[2], p[3], &same));           /* [8,64,14,14] */
    h = kn_graph_max_pool2d(g, h, 2, 0, 0);                                   /* [8,64,7,7] */
    h = kn_graph_flatten(g, h);                                               /* [8,3136] */
    h = kn_graph_relu(g, kn_graph_linear(g, h, p[4], p[5]));                  /* [8,128] */
    kn_node *logits = kn_graph_linear(g, h, p[6], p[7]);                      /* [8,10] */
    return kn_graph_softmax_cross_entropy(g, logits, *y);                     /* [] */
}

/* Per-tensor comparison: max|a − ref| / max|ref|, and the largest elementwise relative error
 * over elements with |ref| > 1e-3·max|ref| (informative: shows no element is badly off). */
typedef struct cmp {
    double rel, elem_rel;
} cmp;

static cmp compare(const double *a, const double *ref, int64_t n)
{
    double maxref = 0, maxdiff = 0, elem = 0;
    for (int64_t i = 0; i < n; i++) {
        maxref = fmax(maxref, fabs(ref[i]));
        double d = fabs(a[i] - ref[i]);
        maxdiff = (isnan(d) || d > maxdiff) ? d : maxdiff; /* NaN sticks */
    }
    for (int64_t i = 0; i < n; i++)
        if (fabs(ref[i]) > 1e-3 * maxref) {
            double r = fabs(a[i] - ref[i]) / fabs(ref[i]);
            elem = (isnan(r) || r > elem) ? r : elem;
        }
    cmp c = {maxref > 0 ? maxdiff / maxref : maxdiff, elem};
    return c;
}

static double *to_f64(const void *data, kn_dtype dt, int64_t n)
{
    double *out = malloc((size_t)n * sizeof(double));
    if (out && kn_convert(out, KN_F64, data, dt, n) != KN_OK) {
        free(out);
        out = NULL;
    }
    return out;
}

/* Builds model B in dtype dt, runs loss + all gradients on the backend and checks every value
 * against the fixture to relative error < tol. */
static void run_and_check(const fixture *fx, kn_dtype dt, kn_backend_kind backend, double tol,
                          const char *label)
{
    printf("\n== %s: model B in %s on the %s backend (tolerance %.0e) ==\n", label,
           kn_dtype_name(dt), backend == KN_BACKEND_REF ? "reference" : "CPU", tol);
    kn_graph *g = kn_graph_new();
    CHECK(g != NULL, "kn_graph_new failed");
    if (!g)
        return;
    kn_node *x, *y, *p[N_PARAMS], *grads[N_PARAMS] = {0};
    kn_node *loss = build_model_b(g, dt, &x, &y, p);
    if (loss)
        CHECK_OK(kn_graph_backward(g, loss, p, N_PARAMS, grads));
    CHECK(kn_graph_status(g) == KN_OK && loss, "building model B failed: %s: %s",
          kn_status_name(kn_graph_status(g)), kn_graph_error(g));
    kn_plan *plan = NULL;
    if (kn_graph_status(g) == KN_OK && loss) {
        /* Weights: the fixture's float32 values, converted exactly to dt. Param storage is
         * stable now that every parameter exists. */
        for (int i = 0; i < N_PARAMS; i++) {
            void *dst = kn_graph_param_data(g, p[i]);
            CHECK(dst != NULL, "no storage for parameter %s", param_names[i]);
            CHECK(grads[i] != NULL, "backward gave no gradient for %s", param_names[i]);
            float *w = malloc((size_t)fx->param[i]->numel * sizeof(float));
            CHECK(w != NULL, "out of memory");
            if (dst && w) {
                memcpy(w, fx->param[i]->data, (size_t)fx->param[i]->numel * sizeof(float));
                CHECK_OK(kn_convert(dst, dt, w, KN_F32, fx->param[i]->numel));
            }
            free(w);
        }
        kn_node *outs[1 + N_PARAMS] = {loss};
        for (int i = 0; i < N_PARAMS; i++)
            outs[1 + i] = grads[i];
        kn_plan_opts opts = {.backend = backend, .training = true};
        kn_status st = kn_plan_compile(&plan, g, outs, 1 + N_PARAMS, &opts);
        CHECK(st == KN_OK, "kn_plan_compile: %s: %s", kn_status_name(st), kn_plan_last_error());
    }
    if (plan) {
        void *xin = kn_plan_input_data(plan, x);
        CHECK(xin != NULL, "x is not an input of the plan");
        float *xf = malloc((size_t)fx->x->numel * sizeof(float));
        CHECK(xf != NULL, "out of memory");
        if (xin && xf) {
            memcpy(xf, fx->x->data, (size_t)fx->x->numel * sizeof(float));
            CHECK_OK(kn_convert(xin, dt, xf, KN_F32, fx->x->numel));
        }
        free(xf);
        CHECK_OK(kn_plan_set_input(plan, y, fx->y->data, (size_t)fx->y->numel * 8));
        kn_status st = kn_plan_run(plan);
        CHECK(st == KN_OK, "kn_plan_run: %s: %s", kn_status_name(st), kn_plan_error(plan));
        printf("plan: %d steps, %d on reference fallback, %.1f MFLOP\n", kn_plan_num_steps(plan),
               kn_plan_num_fallbacks(plan), kn_plan_flops(plan) / 1e6);
        if (st == KN_OK) {
            double torch_loss;
            memcpy(&torch_loss, fx->loss->data, 8);
            double kiln_loss = kn_plan_scalar(plan, loss);
            cmp c = compare(&kiln_loss, &torch_loss, 1);
            printf("%-20s %10s %12s %12s\n", "tensor", "elements", "rel error", "max elem rel");
            printf("%-20s %10d %12.3e %12.3e   (kiln %.12f, torch %.12f)\n", "loss", 1, c.rel,
                   c.elem_rel, kiln_loss, torch_loss);
            CHECK(c.rel < tol, "%s: loss relative error %.3e ≥ %.0e (kiln %.17g, torch %.17g)",
                  label, c.rel, tol, kiln_loss, torch_loss);
            double worst = c.rel;
            for (int i = 0; i < N_PARAMS; i++) {
                const fx_tensor *t = fx->grad[i];
                const void *gd = grads[i] ? kn_plan_data(plan, grads[i]) : NULL;
                CHECK(gd != NULL, "no value for the gradient of %s", param_names[i]);
                if (!gd)
                    continue;
                CHECK(kn_node_numel(grads[i]) == t->numel, "gradient of %s has %lld elements, "
                      "expected %lld", param_names[i], (long long)kn_node_numel(grads[i]),
                      (long long)t->numel);
                double *got = to_f64(gd, kn_node_dtype(grads[i]), t->numel);
                double *want = malloc((size_t)t->numel * sizeof(double));
                CHECK(got && want, "out of memory");
                if (got && want) {
                    memcpy(want, t->data, (size_t)t->numel * sizeof(double));
                    c = compare(got, want, t->numel);
                    printf("%-20s %10lld %12.3e %12.3e\n", t->name, (long long)t->numel, c.rel,
                           c.elem_rel);
                    CHECK(c.rel < tol, "%s: %s relative error %.3e ≥ %.0e", label, t->name, c.rel, tol);
                    worst = isnan(c.rel) || c.rel > worst ? c.rel : worst;
                }
                free(got);
                free(want);
            }
            printf("worst relative error: %.3e (tolerance %.0e)\n", worst, tol);
        }
    }
    kn_plan_free(plan);
    kn_graph_free(g);
}

/* ---- corrupt fixtures -------------------------------------------------------------------- */

/* Every corruption must be rejected with a message (and, under ASan, without a bad read). */
static void test_corrupt_fixtures(const unsigned char *good, size_t size)
{
    fx_file *f = malloc(sizeof *f);
    unsigned char *buf = malloc(size + 16);
    CHECK(f && buf, "out of memory");
    if (!f || !buf) {
        free(f);
        free(buf);
        return;
    }
    char err[256];
    int rejected = 0, cases = 0;

    /* Truncations: every length through the first header records, then some inside data. */
    size_t cuts[64 + 8];
    int ncuts = 0;
    for (size_t k = 0; k < 64 && k < size; k++)
        cuts[ncuts++] = k;
    for (int k = 1; k <= 8; k++)
        cuts[ncuts++] = size - size * (size_t)k / 9;
    for (int i = 0; i < ncuts; i++) {
        memcpy(buf, good, cuts[i]);
        cases++;
        rejected += !fx_parse(buf, cuts[i], f, err, sizeof err);
    }
    /* Trailing garbage. */
    memcpy(buf, good, size);
    memset(buf + size, 0xAB, 16);
    cases++;
    rejected += !fx_parse(buf, size + 16, f, err, sizeof err);

    /* Field corruptions of the first tensor record, which the generator writes first:
     * "x", name_len 1 at offset 12, name at 16, dtype at 17, ndim at 21, dims from 25. */
    struct { size_t off; uint64_t value; int width; const char *what; } bad[] = {
        {0, 0x58464E4Bu ^ 1, 4, "magic"},
        {4, 2, 4, "version"},
        {8, 1000, 4, "count too large"},
        {8, 0xFFFFFFFFu, 4, "count wraps"},
        {12, 0, 4, "empty name"},
        {12, 256, 4, "name too long"},
        {12, 0xFFFFFFF0u, 4, "name length wraps"},
        {16, 0x01, 1, "non-printable name"},
        {17, 99, 4, "unknown dtype"},
        {17, KN_F16, 4, "unsupported dtype"},
        {21, 9, 4, "ndim too large"},
        {21, 0xFFFFFFFFu, 4, "ndim wraps"},
        {25, (uint64_t)-1, 8, "negative dim"},
        {25, (uint64_t)1 << 62, 8, "dim overflows"},
        {25, (uint64_t)1 << 40, 8, "dim larger than the file"},
    };
    bool first_is_x = size > 25 + 8 && memcmp(good + 12, "\x01\0\0\0x", 5) == 0;
    CHECK(first_is_x, "the fixture's first tensor is not \"x\"; field corruptions skipped");
    for (size_t i = 0; first_is_x && i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(buf, good, size);
        if (bad[i].width == 4) {
            uint32_t v = (uint32_t)bad[i].value;
            memcpy(buf + bad[i].off, &v, 4);
        } else if (bad[i].width == 8) {
            memcpy(buf + bad[i].off, &bad[i].value, 8);
        } else {
            buf[bad[i].off] = (unsigned char)bad[i].value;
        }
        cases++;
        bool ok = fx_parse(buf, size, f, err, sizeof err);
        CHECK(!ok, "corrupt fixture (%s) was accepted", bad[i].what);
        rejected += !ok;
        if (!ok)
            printf("  corrupt (%s): %s\n", bad[i].what, err);
    }
    /* Two well-formed f32 scalars with the same name. */
    static const unsigned char dup[] = {
        'K', 'N', 'F', 'X', 1, 0, 0, 0, 2, 0, 0, 0,
        1, 0, 0, 0, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f,
        1, 0, 0, 0, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f,
    };
    cases++;
    bool dup_ok = fx_parse(dup, sizeof dup, f, err, sizeof err);
    CHECK(!dup_ok && strstr(err, "duplicate"), "a fixture with a duplicate name was accepted");
    rejected += !dup_ok;
    if (!dup_ok)
        printf("  corrupt (duplicate name): %s\n", err);
    /* ...and the same file with distinct names parses: the reader is not just rejecting all. */
    unsigned char two[sizeof dup];
    memcpy(two, dup, sizeof dup);
    two[33] = 'b'; /* the second name */
    bool two_ok = fx_parse(two, sizeof two, f, err, sizeof err);
    CHECK(two_ok && f->count == 2 && f->t[1].ndim == 0 && f->t[1].numel == 1,
          "a minimal two-scalar fixture was rejected: %s", err);
    CHECK(rejected == cases, "%d of %d corrupt fixtures were accepted", cases - rejected, cases);
    printf("corrupt fixtures: %d of %d rejected cleanly\n", rejected, cases);
    free(buf);
    free(f);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : FIXTURE_PATH;
    char err[512];
    if (!host_is_little_endian()) {
        fprintf(stderr, "test_model_b: the fixture is little-endian; this host is not\n");
        return 77;
    }
    size_t size = 0;
    unsigned char *buf = read_file(path, &size, err, sizeof err);
    CHECK(buf != NULL, "%s", err);
    if (!buf)
        return kt_finish("test_model_b");
    fx_file *f = malloc(sizeof *f);
    CHECK(f != NULL, "out of memory");
    bool parsed = f && fx_parse(buf, size, f, err, sizeof err);
    CHECK(parsed, "%s: malformed fixture: %s", path, err);
    fixture fx = {0};
    if (parsed && fixture_bind(f, &fx)) {
        printf("fixture %s: %d tensors, %zu bytes\n", path, f->count, size);
        run_and_check(&fx, KN_F32, KN_BACKEND_CPU, 1e-4, "float32/CPU");
        run_and_check(&fx, KN_F64, KN_BACKEND_REF, 1e-9, "float64/reference");
    }
    if (parsed)
        test_corrupt_fixtures(buf, size);
    free(f);
    free(buf);
    return kt_finish("test_model_b");
}
