/* data.c — LOAD_BATCH(table, examples, [lut]) → f32 [B, ...]: the batch the host loader
 * (src/data/loader.c) makes, gathered inside a plan from a table of examples resident on the
 * device, so a trainer can keep its training set on the GPU and hand the plan only rows.
 *
 * table u8 or f32 [N, ...] ([N, F], [N, H, W] or [N, C, H, W]; normally a graph constant);
 * examples i64 [B, 3]: per example its row in the table, its epoch and its position in the
 * epoch (both taken as uint64, as the loader passes them); lut f32 [256], present iff the
 * table is u8: the normalised value of each byte (an f32 table is already normalised).
 * Without crop and flip out[b] = value(table[row]), value(x) = lut ? lut[x] : x. With them,
 * a = kn__augment_draw(seed, epoch, position, crop_pad, hflip) and out[b, c, i, j] =
 * value(table[row, kn__augment_source(a, H, W, c, i, j)]), or pad where that is -1 (C = 1 for
 * [N, H, W]). The draw and the source index come from src/data/augment.h, which the loader and
 * every kernel share: the only float operation is the lookup, so batches agree bit for bit.
 * A row outside [0, N) fails the run with KN_ERR_RANGE naming the row, the example and N.
 * Not here: shuffling (the caller picks the rows), labels (an ordinary gather), other
 * augmentations. No gradient: it is data.
 *
 * Attributes: ai[0] = crop_pad (0..65536), ai[1] = hflip (0/1), ai[2] = seed (uint64 bits),
 * af[0] = pad (the normalised value of a zero pixel). */
#include <string.h>

#include "../data/augment.h"
#include "load_batch.h"
#include "op_table.h"

static kn_status lb_check(kn_graph *g, kn_node *n)
{
    const kn_node *t = n->src[0], *ex = n->src[1], *lut = n->nsrc > 2 ? n->src[2] : NULL;
    if (t->dtype != KN_U8 && t->dtype != KN_F32)
        return kn__fail(g, KN_ERR_DTYPE, "load_batch: table %s has dtype %s, expected u8 (bytes, with a lut) or f32",
                        kn__shp(t), kn_dtype_name(t->dtype));
    if (t->ndim < 2 || t->ndim > 4)
        return kn__fail(g, KN_ERR_SHAPE,
                        "load_batch: table has shape %s, expected 2 to 4 dimensions ([N, F], [N, H, W] or "
                        "[N, C, H, W])",
                        kn__shp(t));
    if (ex->dtype != KN_I64)
        return kn__fail(g, KN_ERR_DTYPE,
                        "load_batch: examples have dtype %s, expected i64 [B, 3] (row, epoch, position)",
                        kn_dtype_name(ex->dtype));
    if (ex->ndim != 2 || ex->shape[1] != 3)
        return kn__fail(g, KN_ERR_SHAPE, "load_batch: examples have shape %s, expected [B, 3] (row, epoch, position)",
                        kn__shp(ex));
    if (t->dtype == KN_U8 && !lut)
        return kn__fail(g, KN_ERR_ARG,
                        "load_batch: a u8 table needs a lut (f32 [256], the normalised value of each byte)");
    if (t->dtype == KN_F32 && lut)
        return kn__fail(g, KN_ERR_ARG, "load_batch: an f32 table is already normalised: pass no lut");
    if (lut && lut->dtype != KN_F32)
        return kn__fail(g, KN_ERR_DTYPE, "load_batch: lut has dtype %s, expected f32 [256]", kn_dtype_name(lut->dtype));
    if (lut && (lut->ndim != 1 || lut->shape[0] != 256))
        return kn__fail(g, KN_ERR_SHAPE, "load_batch: lut has shape %s, expected [256]", kn__shp(lut));
    int64_t crop = n->ai[0], flip = n->ai[1];
    if (crop < 0 || crop > 65536)
        return kn__fail(g, KN_ERR_ARG, "load_batch: crop_pad %lld is outside 0..65536", (long long)crop);
    if (flip != 0 && flip != 1)
        return kn__fail(g, KN_ERR_ARG, "load_batch: hflip %lld, expected 0 or 1", (long long)flip);
    if ((crop > 0 || flip) && t->ndim < 3)
        return kn__fail(g, KN_ERR_ARG,
                        "load_batch: random crop and flip need image examples ([C, H, W] or [H, W]); table %s has "
                        "examples of shape [%lld]",
                        kn__shp(t), (long long)t->shape[1]);
    if (t->ndim >= 3 && (t->shape[t->ndim - 1] > INT32_MAX / 2 || t->shape[t->ndim - 2] > INT32_MAX / 2 ||
                         (t->ndim == 4 && t->shape[1] > INT32_MAX)))
        return kn__fail(g, KN_ERR_SHAPE, "load_batch: table %s has image dimensions too large", kn__shp(t));
    int64_t per = 1; /* elements per example */
    for (int d = 1; d < t->ndim; d++)
        per *= t->shape[d];
    if (per > 0 && ex->shape[0] > INT64_MAX / per)
        return kn__fail(g, KN_ERR_SHAPE, "load_batch: %lld examples of %lld elements overflow", (long long)ex->shape[0],
                        (long long)per);
    n->dtype = KN_F32;
    n->ndim = t->ndim;
    n->shape[0] = ex->shape[0];
    for (int d = 1; d < t->ndim; d++)
        n->shape[d] = t->shape[d];
    return KN_OK;
}

kn_node *kn_graph_load_batch(kn_graph *g, kn_node *table, kn_node *examples, kn_node *lut, int crop_pad, bool hflip,
                             uint64_t seed, float pad)
{
    kn_node *s[3] = {table, examples, lut};
    kn_node *n = kn__node_new(g, KN_OP_LOAD_BATCH, lut ? 3 : 2, s);
    if (!n)
        return NULL;
    n->ai[0] = crop_pad;
    n->ai[1] = hflip;
    memcpy(&n->ai[2], &seed, sizeof seed); /* the bits; read back as (uint64_t)ai[2] */
    n->af[0] = pad;
    return kn__node_finish(g, n);
}

static double lb_flops(const kn_node *n) { (void)n; return 0; } /* a gather: memory only */

/* ---- reference kernel (float64: an f32 table and the lut arrive as doubles, a u8 table as bytes) ---- */
static kn_status lb_ref(const kn__kargs *a)
{
    const kn_node *n = a->node, *t = n->src[0];
    const kn__load_batch_geom G = kn__load_batch_geom_of(n);
    const int64_t N = G.N, B = G.B, per = G.per;
    const int H = G.H, W = G.W;
    const int64_t *ex = a->src[1];
    const uint8_t *tu = t->dtype == KN_U8 ? a->src[0] : NULL;
    const double *tf = t->dtype == KN_U8 ? NULL : a->src[0];
    const double *lut = n->nsrc > 2 ? a->src[2] : NULL;
    double *y = a->dst;
    for (int64_t b = 0; b < B; b++) {
        const int64_t r = ex[3 * b];
        if (r < 0 || r >= N)
            return kn__kerr(a, "load_batch: row %lld of example %lld is outside the table's rows [0, %lld)",
                            (long long)r, (long long)b, (long long)N);
        kn__augment aug = {0, 0, false};
        if (G.augment)
            aug = kn__augment_draw(G.seed, (uint64_t)ex[3 * b + 1], (uint64_t)ex[3 * b + 2], G.crop, G.flip);
        for (int64_t k = 0; k < per; k++) {
            int64_t from = k;
            if (G.augment) {
                int c = (int)(k / ((int64_t)H * W)), i = (int)(k / W % H), j = (int)(k % W);
                from = kn__augment_source(aug, H, W, c, i, j);
            }
            y[b * per + k] = from < 0 ? n->af[0] : tu ? lut[tu[r * per + from]] : tf[r * per + from];
        }
    }
    return KN_OK;
}

const kn__op_info kn__opdef_LOAD_BATCH = {.check = lb_check, .flops = lb_flops, .ref = lb_ref};
