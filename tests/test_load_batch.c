/* test_load_batch.c — the load_batch op (kn_graph_load_batch) beyond its op test rows
 * (tests/ops/data.c compares its kernels with the reference on fixed examples):
 *   - the batches it gathers equal, bit for bit, the ones kn_loader_next makes for the same
 *     rows, positions and epoch (kn_batch.rows / .first / .epoch), for u8 and f32 data sets of
 *     [C, H, W], [H, W] and [F] examples, with crop 2 + flip and without, over two shuffled
 *     epochs with a short last batch, on the CPU and reference backends; the table, lut and
 *     padding made exactly as kn_loader_new makes them (kn__normalise);
 *   - a row outside the table fails the run with KN_ERR_RANGE naming the row, the example and
 *     N, and the same plan runs again once the rows are fixed;
 *   - bad calls fail at build time with the right status and message (dtypes, shapes, lut
 *     present or missing, attributes, crop/flip on feature vectors); NULL inputs pass through.
 * Not here: the CUDA kernel (tests/gpu/test_cuda_ops.c has its rows, bad rows included). */
#include <math.h>
#include <stdlib.h>

#include "data/data_internal.h"
#include "util.h"

/* ---- equality with the loader ------------------------------------------------------------ */

typedef struct lb_plan {
    kn_graph *g;
    kn_plan *p;
    kn_node *ex, *out;
    int64_t n; /* examples per batch */
} lb_plan;

/* A plan gathering n examples from ds as the loader with opts would (the table holds ds's x,
 * normalised if f32; u8 goes through the lut). */
static bool lb_plan_new(lb_plan *lp, const kn_dataset *ds, const kn_loader_opts *o, int64_t n, kn_backend_kind be)
{
    memset(lp, 0, sizeof *lp);
    lp->n = n;
    lp->g = kn_graph_new();
    float scale = o->scale == 0 ? 1 : o->scale, std = o->std == 0 ? 1 : o->std;
    int64_t ex = kn_dataset_example_size(ds), shape[4] = {ds->n};
    for (int d = 0; d < ds->ndim; d++)
        shape[d + 1] = ds->shape[d];
    float bytes[256], lut[256], zero = 0, pad;
    for (int v = 0; v < 256; v++)
        bytes[v] = (float)v;
    kn__normalise(bytes, 256, scale, o->mean, std, lut);
    kn__normalise(&zero, 1, scale, o->mean, std, &pad);
    kn_node *table, *lutn = NULL;
    if (ds->dtype == KN_U8) {
        table = kn_graph_const(lp->g, KN_U8, ds->ndim + 1, shape, ds->x);
        lutn = kn_graph_const(lp->g, KN_F32, 1, (const int64_t[]){256}, lut);
    } else {
        float *xn = malloc(sizeof(float) * (size_t)(ds->n * ex));
        CHECK(xn != NULL, "out of memory");
        if (!xn)
            return false;
        kn__normalise(ds->x, ds->n * ex, scale, o->mean, std, xn);
        table = kn_graph_const(lp->g, KN_F32, ds->ndim + 1, shape, xn);
        free(xn);
    }
    lp->ex = kn_graph_input(lp->g, "examples", KN_I64, 2, (const int64_t[]){n, 3});
    lp->out = kn_graph_load_batch(lp->g, table, lp->ex, lutn, o->crop_pad, o->hflip, o->seed, pad);
    CHECK(lp->out, "load_batch build failed: %s", kn_graph_error(lp->g));
    if (!lp->out)
        return false;
    kn_plan_opts po = {.backend = be};
    kn_status st = kn_plan_compile(&lp->p, lp->g, &lp->out, 1, &po);
    CHECK(st == KN_OK, "compile: %s", kn_plan_last_error());
    return st == KN_OK;
}

static void lb_plan_free(lb_plan *lp)
{
    kn_plan_free(lp->p);
    kn_graph_free(lp->g);
    memset(lp, 0, sizeof *lp);
}

/* A data set of n examples of shape[0..ndim) with values spread over the whole byte range (u8)
 * or over [-3, 300) (f32). */
static kn_dataset *make_ds(kn_dtype dt, int64_t n, int ndim, const int64_t *shape)
{
    kn_dataset *ds = NULL;
    kn_error err = {0};
    kn_status st = kn__dataset_new(&ds, n, ndim, shape, dt, true, "synthetic", &err);
    CHECK(st == KN_OK, "kn__dataset_new: %s", err.msg);
    if (st)
        return NULL;
    int64_t total = n * kn_dataset_example_size(ds);
    for (int64_t i = 0; i < total; i++) {
        uint64_t h = (uint64_t)i * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
        if (dt == KN_U8)
            ((uint8_t *)ds->x)[i] = (uint8_t)(h >> 7);
        else
            ((float *)ds->x)[i] = -3.0f + (float)(h % 30300) * 0.01f;
    }
    for (int64_t i = 0; i < n; i++)
        ds->y[i] = (int32_t)(i % 10);
    kn__dataset_set_classes(ds, 10);
    return ds;
}

/* Two shuffled epochs of ds through the loader and through load_batch plans (one for full
 * batches, one for the short last batch): every batch equal bit for bit. */
static void match_loader(kn_dtype dt, int ndim, const int64_t *shape, int crop, bool flip, kn_backend_kind be)
{
    const int64_t N = 23;
    const int batch = 6; /* 3 full batches and one of 5 */
    char what[128];
    snprintf(what, sizeof what, "%s %s example dims %d, crop %d, flip %d", be == KN_BACKEND_CPU ? "cpu" : "ref",
             kn_dtype_name(dt), ndim, crop, flip);
    kn_dataset *ds = make_ds(dt, N, ndim, shape);
    if (!ds)
        return;
    kn_loader_opts o = {.batch = batch, .shuffle = true, .seed = 0xC0FFEE1234ull, .crop_pad = crop, .hflip = flip};
    if (dt == KN_U8) {
        o.scale = 1.0f / 255;
        o.mean = 0.2860f;
        o.std = 0.3530f;
    } else {
        o.scale = 0.5f;
        o.mean = 1.5f;
        o.std = 7.0f;
    }
    kn_loader *l = NULL, *lr = NULL;
    kn_error err = {0};
    CHECK_OK(kn_loader_new(&l, ds, NULL, 0, &o, &err));
    kn_loader_opts orows = o;
    orows.rows_only = true;
    CHECK_OK(kn_loader_new(&lr, ds, NULL, 0, &orows, &err));
    lb_plan full, last;
    bool ok = lb_plan_new(&full, ds, &o, batch, be);
    ok = lb_plan_new(&last, ds, &o, N % batch, be) && ok;
    const int64_t ex = kn_dataset_example_size(ds);
    int batches = 0, differing = 0;
    bool augmented_somewhere = false;
    for (int epoch = 0; ok && l && lr && epoch < 2; epoch++) {
        CHECK_OK(kn_loader_start_epoch(l, epoch));
        CHECK_OK(kn_loader_start_epoch(lr, epoch));
        kn_batch b, br;
        while (kn_loader_next(l, &b)) {
            bool has_r = kn_loader_next(lr, &br);
            CHECK(has_r && br.x == NULL && br.n == b.n && br.first == b.first && br.epoch == b.epoch &&
                      memcmp(br.rows, b.rows, sizeof(int64_t) * (size_t)b.n) == 0,
                  "%s: the rows-only loader's batch %lld differs", what, (long long)b.index);
            lb_plan *lp = b.n == full.n ? &full : &last;
            CHECK(b.n == lp->n, "%s: batch of %lld examples", what, (long long)b.n);
            if (b.n != lp->n)
                continue;
            int64_t e[3 * 6];
            for (int64_t i = 0; i < b.n; i++) {
                e[3 * i] = b.rows[i];
                e[3 * i + 1] = b.epoch;
                e[3 * i + 2] = b.first + i;
            }
            CHECK_OK(kn_plan_set_input(lp->p, lp->ex, e, sizeof(int64_t) * 3 * (size_t)b.n));
            kn_status st = kn_plan_run(lp->p);
            CHECK(st == KN_OK, "%s: run: %s", what, kn_plan_error(lp->p));
            const float *y = kn_plan_data(lp->p, lp->out);
            if (st || !y)
                continue;
            batches++;
            int64_t bad = -1;
            for (int64_t i = 0; i < b.n * ex && bad < 0; i++)
                if (memcmp(&y[i], &b.x[i], sizeof(float)) != 0)
                    bad = i;
            differing += bad >= 0;
            CHECK(bad < 0, "%s: epoch %d batch %lld element %lld: load_batch %.9g, loader %.9g", what, epoch,
                  (long long)b.index, (long long)bad, bad >= 0 ? y[bad] : 0.0, bad >= 0 ? b.x[bad] : 0.0);
            /* the loader's output is not simply the row: augmentation really happened */
            for (int64_t i = 0; (crop || flip) && i < b.n; i++) {
                float plain[1024];
                if (dt == KN_U8) {
                    for (int64_t k = 0; k < ex && k < 1024; k++)
                        plain[k] = ((const uint8_t *)ds->x)[b.rows[i] * ex + k];
                } else {
                    memcpy(plain, (const float *)ds->x + b.rows[i] * ex, sizeof(float) * (size_t)ex);
                }
                float scale = o.scale, std = o.std;
                kn__normalise(plain, ex, scale, o.mean, std, plain);
                augmented_somewhere |= memcmp(plain, b.x + i * ex, sizeof(float) * (size_t)ex) != 0;
            }
        }
    }
    CHECK(batches == 8 && differing == 0, "%s: %d batches compared, %d differ", what, batches, differing);
    CHECK(!(crop || flip) || augmented_somewhere, "%s: no example was augmented", what);
    lb_plan_free(&full);
    lb_plan_free(&last);
    kn_loader_free(l);
    kn_loader_free(lr);
    kn_dataset_free(ds);
}

static void test_match_loader(void)
{
    const kn_backend_kind bes[2] = {KN_BACKEND_CPU, KN_BACKEND_REF};
    const int64_t chw[3] = {3, 7, 6}, hw[2] = {9, 8}, f[1] = {17};
    for (int bi = 0; bi < 2; bi++)
        for (int di = 0; di < 2; di++) {
            kn_dtype dt = di ? KN_F32 : KN_U8;
            for (int aug = 0; aug < 2; aug++) {
                match_loader(dt, 3, chw, aug ? 2 : 0, aug, bes[bi]);
                match_loader(dt, 2, hw, aug ? 2 : 0, aug, bes[bi]);
            }
            match_loader(dt, 1, f, 0, false, bes[bi]);
            match_loader(dt, 3, chw, 1, false, bes[bi]); /* crop alone */
            match_loader(dt, 2, hw, 0, true, bes[bi]);   /* flip alone */
        }
}

/* ---- rows outside the table -------------------------------------------------------------- */

static void range(kn_backend_kind be, kn_dtype dt)
{
    const char *bn = be == KN_BACKEND_CPU ? "cpu" : "ref";
    enum { N = 5, H = 3, W = 4, B = 4 };
    kn_graph *g = kn_graph_new();
    uint8_t tu[N * H * W];
    float tf[N * H * W], lut[256];
    for (int i = 0; i < N * H * W; i++) {
        tu[i] = (uint8_t)i;
        tf[i] = (float)i;
    }
    for (int v = 0; v < 256; v++)
        lut[v] = (float)v;
    const int64_t tshape[3] = {N, H, W};
    kn_node *table = kn_graph_const(g, dt, 3, tshape, dt == KN_U8 ? (const void *)tu : (const void *)tf);
    kn_node *lutn = dt == KN_U8 ? kn_graph_const(g, KN_F32, 1, (const int64_t[]){256}, lut) : NULL;
    kn_node *ex = kn_graph_input(g, "examples", KN_I64, 2, (const int64_t[]){B, 3});
    kn_node *y = kn_graph_load_batch(g, table, ex, lutn, 1, true, 99, -1.0f);
    CHECK(y, "build failed: %s", kn_graph_error(g));
    kn_plan *p = NULL;
    kn_plan_opts o = {.backend = be};
    CHECK_OK(kn_plan_compile(&p, g, &y, 1, &o));
    const int64_t good[B][3] = {{0, 0, 0}, {4, 0, 1}, {2, 1, 2}, {4, 1, 3}};
    const int64_t bad[B][3] = {{0, 0, 0}, {4, 0, 1}, {5, 1, 2}, {9, 1, 3}};
    const int64_t neg[B][3] = {{0, 0, 0}, {-1, 0, 1}, {2, 1, 2}, {4, 1, 3}};
    const struct {
        const int64_t (*e)[3];
        kn_status want;
        const char *msg;
    } runs[] = {
        {good, KN_OK, ""},
        {bad, KN_ERR_RANGE, "load_batch: row 5 of example 2 is outside the table's rows [0, 5)"},
        {neg, KN_ERR_RANGE, "load_batch: row -1 of example 1 is outside the table's rows [0, 5)"},
        {good, KN_OK, ""},
    };
    for (int r = 0; p && r < 4; r++) {
        CHECK_OK(kn_plan_set_input(p, ex, runs[r].e, sizeof good));
        kn_status st = kn_plan_run(p);
        CHECK(st == runs[r].want, "%s %s run %d: status %s, expected %s (%s)", bn, kn_dtype_name(dt), r,
              kn_status_name(st), kn_status_name(runs[r].want), kn_plan_error(p));
        CHECK(strstr(kn_plan_error(p), runs[r].msg) != NULL, "%s %s run %d: message \"%s\" lacks \"%s\"", bn,
              kn_dtype_name(dt), r, kn_plan_error(p), runs[r].msg);
        if (st == KN_OK) { /* every value is from its example's row, or the padding */
            const float *out = kn_plan_data(p, y);
            int wrong = 0;
            for (int b = 0; out && b < B; b++)
                for (int k = 0; k < H * W; k++) {
                    float v = out[b * H * W + k];
                    int64_t row = good[b][0];
                    wrong += !(v == -1.0f || (v >= (float)(row * H * W) && v < (float)((row + 1) * H * W)));
                }
            CHECK(out && wrong == 0, "%s %s run %d: %d values from the wrong rows", bn, kn_dtype_name(dt), r, wrong);
        }
    }
    kn_plan_free(p);
    kn_graph_free(g);
}

/* ---- bad calls --------------------------------------------------------------------------- */

static void bad_call(int which, kn_status want, const char *msg)
{
    kn_graph *g = kn_graph_new();
    const int64_t n256 = 256, n255 = 255;
    kn_node *u8 = kn_graph_const(g, KN_U8, 4, (const int64_t[]){4, 1, 5, 5}, NULL);
    kn_node *f32 = kn_graph_const(g, KN_F32, 3, (const int64_t[]){4, 5, 5}, NULL);
    kn_node *u8_feat = kn_graph_const(g, KN_U8, 2, (const int64_t[]){4, 25}, NULL);
    kn_node *f32_feat = kn_graph_const(g, KN_F32, 2, (const int64_t[]){4, 25}, NULL);
    kn_node *i32 = kn_graph_const(g, KN_I32, 2, (const int64_t[]){4, 5}, NULL);
    kn_node *rank1 = kn_graph_const(g, KN_F32, 1, (const int64_t[]){4}, NULL);
    kn_node *rank5 = kn_graph_const(g, KN_F32, 5, (const int64_t[]){2, 1, 1, 2, 2}, NULL);
    kn_node *ex = kn_graph_input(g, "ex", KN_I64, 2, (const int64_t[]){2, 3});
    kn_node *ex_i32 = kn_graph_input(g, "ex_i32", KN_I32, 2, (const int64_t[]){2, 3});
    kn_node *ex_2 = kn_graph_input(g, "ex_2", KN_I64, 2, (const int64_t[]){2, 2});
    kn_node *ex_1d = kn_graph_input(g, "ex_1d", KN_I64, 1, (const int64_t[]){3});
    kn_node *lut = kn_graph_const(g, KN_F32, 1, &n256, NULL);
    kn_node *lut_f64 = kn_graph_const(g, KN_F64, 1, &n256, NULL);
    kn_node *lut_255 = kn_graph_const(g, KN_F32, 1, &n255, NULL);
    const struct {
        kn_node *table, *ex, *lut;
        int crop;
        bool flip;
    } c[] = {
        {i32, ex, NULL, 0, false},     {rank1, ex, NULL, 0, false},   {rank5, ex, NULL, 0, false},
        {f32, ex_i32, NULL, 0, false}, {f32, ex_2, NULL, 0, false},   {f32, ex_1d, NULL, 0, false},
        {u8, ex, NULL, 0, false},      {f32, ex, lut, 0, false},      {u8, ex, lut_f64, 0, false},
        {u8, ex, lut_255, 0, false},   {u8, ex, lut, -1, false},      {u8, ex, lut, 65537, false},
        {u8_feat, ex, lut, 0, true},   {f32_feat, ex, NULL, 1, false},
    };
    kn_node *y = kn_graph_load_batch(g, c[which].table, c[which].ex, c[which].lut, c[which].crop, c[which].flip, 0, 0);
    CHECK(y == NULL, "bad call %d returned a node", which);
    CHECK(kn_graph_status(g) == want, "bad call %d: status %s, expected %s (%s)", which,
          kn_status_name(kn_graph_status(g)), kn_status_name(want), kn_graph_error(g));
    CHECK(strstr(kn_graph_error(g), msg) != NULL, "bad call %d: message \"%s\" lacks \"%s\"", which,
          kn_graph_error(g), msg);
    kn_graph_free(g);
}

static void test_bad_calls(void)
{
    bad_call(0, KN_ERR_DTYPE, "load_batch: table [4,5] has dtype i32, expected u8 (bytes, with a lut) or f32");
    bad_call(1, KN_ERR_SHAPE, "load_batch: table has shape [4], expected 2 to 4 dimensions");
    bad_call(2, KN_ERR_SHAPE, "load_batch: table has shape [2,1,1,2,2], expected 2 to 4 dimensions");
    bad_call(3, KN_ERR_DTYPE, "load_batch: examples have dtype i32, expected i64 [B, 3]");
    bad_call(4, KN_ERR_SHAPE, "load_batch: examples have shape [2,2], expected [B, 3]");
    bad_call(5, KN_ERR_SHAPE, "load_batch: examples have shape [3], expected [B, 3]");
    bad_call(6, KN_ERR_ARG, "load_batch: a u8 table needs a lut");
    bad_call(7, KN_ERR_ARG, "load_batch: an f32 table is already normalised: pass no lut");
    bad_call(8, KN_ERR_DTYPE, "load_batch: lut has dtype f64, expected f32 [256]");
    bad_call(9, KN_ERR_SHAPE, "load_batch: lut has shape [255], expected [256]");
    bad_call(10, KN_ERR_ARG, "load_batch: crop_pad -1 is outside 0..65536");
    bad_call(11, KN_ERR_ARG, "load_batch: crop_pad 65537 is outside 0..65536");
    bad_call(12, KN_ERR_ARG, "load_batch: random crop and flip need image examples ([C, H, W] or [H, W]); "
                             "table [4,25] has examples of shape [25]");
    bad_call(13, KN_ERR_ARG, "load_batch: random crop and flip need image examples");

    /* a NULL input passes through silently; the output's shape and dtype when all is well */
    kn_graph *g = kn_graph_new();
    kn_node *ex = kn_graph_input(g, "ex", KN_I64, 2, (const int64_t[]){7, 3});
    CHECK(kn_graph_load_batch(g, NULL, ex, NULL, 0, false, 0, 0) == NULL && kn_graph_status(g) == KN_OK,
          "NULL table: status %s", kn_status_name(kn_graph_status(g)));
    CHECK(kn_graph_load_batch(NULL, NULL, NULL, NULL, 0, false, 0, 0) == NULL, "NULL graph");
    kn_node *t = kn_graph_const(g, KN_U8, 4, (const int64_t[]){10, 3, 8, 9}, NULL);
    kn_node *lut = kn_graph_const(g, KN_F32, 1, (const int64_t[]){256}, NULL);
    kn_node *y = kn_graph_load_batch(g, t, ex, lut, 65536, true, UINT64_MAX, 0.5f);
    CHECK(y && kn_node_dtype(y) == KN_F32 && kn_node_ndim(y) == 4 && kn_node_dim(y, 0) == 7 && kn_node_dim(y, 1) == 3 &&
              kn_node_dim(y, 2) == 8 && kn_node_dim(y, 3) == 9,
          "load_batch [10,3,8,9] by [7,3]: %s", kn_graph_error(g));
    kn_graph_free(g);
}

int main(void)
{
    test_bad_calls();
    for (int i = 0; i < 2; i++) {
        range(i ? KN_BACKEND_REF : KN_BACKEND_CPU, KN_U8);
        range(i ? KN_BACKEND_REF : KN_BACKEND_CPU, KN_F32);
    }
    test_match_loader();
    return kt_finish("test_load_batch");
}
