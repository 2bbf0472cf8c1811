/* data.c — op test rows for load_batch: u8 tables with a lut and f32 tables, [N, F], [N, H, W]
 * and [N, C, H, W], without augmentation, with crop and flip together and each alone, a crop
 * wider than the image (mostly padding), repeated rows, odd sizes. The table (f32) or the lut
 * (u8) is a frozen parameter in most variants, so the kernel runs in the plan rather than in
 * constant folding; the rest are constants, folded with the same kernel. The result is a
 * gather: the f32 kernels must match the reference exactly. Rows outside the table at run
 * time and the equality with the host loader are checked in tests/test_load_batch.c. */
#include "op_rows.h"

typedef struct lb_case {
    kn_dtype dt;        /* table dtype */
    int ndim;           /* table dims, N first */
    int64_t shape[4];
    int64_t B;
    int crop;
    bool flip;
    bool folded;        /* every input a constant */
} lb_case;

static const lb_case cases[] = {
    {KN_U8, 2, {5, 7}, 6, 0, false, false},           /* [N, F] through the lut */
    {KN_F32, 2, {4, 13}, 5, 0, false, false},         /* [N, F] f32: a row copy */
    {KN_U8, 3, {6, 5, 7}, 7, 2, true, false},         /* [N, H, W], crop + flip */
    {KN_F32, 4, {4, 3, 6, 5}, 6, 1, true, false},     /* [N, C, H, W], crop + flip */
    {KN_U8, 4, {3, 2, 9, 8}, 5, 3, false, false},     /* crop only */
    {KN_F32, 3, {5, 7, 7}, 4, 0, true, false},        /* flip only */
    {KN_U8, 4, {4, 3, 5, 5}, 3, 0, false, true},      /* [N, C, H, W] without augmentation, folded */
    {KN_U8, 3, {2, 4, 4}, 4, 9, true, false},         /* crop wider than the image: mostly padding */
    {KN_F32, 4, {3, 1, 13, 1}, 5, 2, true, true},     /* W = 1, folded */
    {KN_U8, 2, {65, 1}, 13, 0, false, false},         /* F = 1 */
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

/* examples [B, 3]: rows with repeats, epochs 0..2, positions far apart (different draws) */
static kn_node *examples(kn_graph *g, const lb_case *c, int v)
{
    int64_t e[3 * 16];
    for (int64_t b = 0; b < c->B; b++) {
        e[3 * b] = (b * 7 + v) % c->shape[0];
        e[3 * b + 1] = (b + v) % 3;
        e[3 * b + 2] = b * 1009 + v;
    }
    return kn_graph_const(g, KN_I64, 2, (const int64_t[]){c->B, 3}, e);
}

static kn_node *lb_b(kn_graph *g, kn_dtype dt, int v)
{
    (void)dt; /* the table is u8 or f32 and the output f32 whatever the row's dtype */
    const lb_case *c = &cases[v];
    const int64_t n256 = 256;
    kn_node *table, *lut = NULL;
    if (c->dt == KN_U8) {
        table = kt_labels(g, KN_U8, c->ndim, c->shape, 256);
        lut = c->folded ? kt_const(g, KN_F32, 1, &n256, -2, 2) : kt_frozen(g, KN_F32, 1, &n256, -2, 2);
    } else {
        table = c->folded ? kt_const(g, KN_F32, c->ndim, c->shape, -2, 2)
                          : kt_frozen(g, KN_F32, c->ndim, c->shape, -2, 2);
    }
    return kn_graph_load_batch(g, table, examples(g, c, v), lut, c->crop, c->flip, 0x9E3779B97F4A7C15ull + (uint64_t)v,
                               -0.4242f);
}

static kn_node *bad_lb(kn_graph *g) /* crop on feature vectors */
{
    const lb_case c = {KN_F32, 2, {5, 7}, 3, 2, false, false};
    return kn_graph_load_batch(g, kt_const(g, KN_F32, 2, c.shape, -1, 1), examples(g, &c, 0), NULL, 2, false, 1, 0);
}

const op_row kt_rows_data[] = {
    {.op = KN_OP_LOAD_BATCH, .label = "load_batch", .build = lb_b, .n_variants = N_CASES, .bad = bad_lb,
     .bad_code = KN_ERR_ARG,
     .bad_msg = "load_batch: random crop and flip need image examples ([C, H, W] or [H, W]); table [5,7]",
     .tol = 1e-300 /* a gather: exact */},
};
const int kt_n_rows_data = sizeof kt_rows_data / sizeof kt_rows_data[0];
