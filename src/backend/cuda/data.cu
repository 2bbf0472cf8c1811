/* data.cu — the CUDA kernel of load_batch (src/ops/data.c): the loader's batch gathered from a
 * table resident on the device, one thread per output element. Each thread draws its
 * example's crop and flip with src/data/augment.h (host-device, the loader's own code: Philox
 * and integer arithmetic, the same on every backend) and reads one byte through the lut or
 * one f32: no other float arithmetic, so the batch is the loader's bit for bit. A row outside
 * [0, N) leaves a data-error record (cuda_kern_check.h; the smallest bad example wins) and NaN
 * in that example's outputs.
 * Not here: one draw per example shared through shared memory (the draw is ten Philox rounds;
 * the gather is memory-bound anyway), vectorised u8 loads. */
#include "cuda_kern_util.cuh"

#include "data/augment.h"
#include "ops/load_batch.h"

/* y[b, k] for every b < B, k < per: per = C·H·W elements per example (H, W unused without
 * augmentation, as for [N, F] tables). Exactly one of tu (u8, with lut) and tf (f32) is set. */
__global__ void load_batch_f32_kernel(int64_t total, int64_t per, int64_t N, int H, int W,
                                      const uint8_t *__restrict__ tu, const float *__restrict__ tf,
                                      const float *__restrict__ lut, const int64_t *__restrict__ ex, uint64_t seed,
                                      int crop, bool flip, float pad, float *__restrict__ y, kn__cuda_derr *err)
{
    const bool augment = crop > 0 || flip;
    KN_CU_GRID_LOOP(t, total)
    {
        const int64_t b = t / per, k = t - b * per, r = ex[3 * b];
        if (r < 0 || r >= N) {
            if (k == 0)
                kn__cu_derr_set(err, KN_CUDA_DERR_INDEX, b);
            y[t] = NAN;
            continue;
        }
        int64_t from = k;
        if (augment) {
            const kn__augment a = kn__augment_draw(seed, (uint64_t)ex[3 * b + 1], (uint64_t)ex[3 * b + 2], crop, flip);
            const int64_t hw = (int64_t)H * W;
            const int c = (int)(k / hw), i = (int)(k % hw / W), j = (int)(k % W);
            from = kn__augment_source(a, H, W, c, i, j);
        }
        if (from < 0)
            y[t] = pad;
        else
            y[t] = tu ? lut[tu[r * per + from]] : tf[r * per + from];
    }
}

static kn_status load_batch_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node, *t = n->src[0];
    const kn__load_batch_geom G = kn__load_batch_geom_of(n);
    const int64_t N = G.N, B = G.B, per = G.per;
    kn_status st = kn__cu_derr_reset(a, ctx);
    if (st || B * per == 0)
        return st;
    const bool u8 = t->dtype == KN_U8;
    load_batch_f32_kernel<<<kn__cu_blocks(ctx, B * per, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        B * per, per, N, G.H, G.W, u8 ? (const uint8_t *)a->src[0] : NULL, u8 ? NULL : (const float *)a->src[0],
        u8 ? (const float *)a->src[2] : NULL, (const int64_t *)a->src[1], G.seed, G.crop, G.flip, (float)n->af[0],
        (float *)a->dst, (kn__cuda_derr *)a->work);
    return KN_CU_LAUNCHED(a, "load_batch_f32_kernel");
}

extern "C" void kn__cuda_register_data(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.fn = load_batch_f32;
    k.supports = kn__cu_f32_only; /* f32 output, lut and f32 table; a u8 table is not a float */
    k.workspace = kn__cu_derr_workspace;
    t[KN_OP_LOAD_BATCH] = k;
}
