/* data.c — float32 CPU kernel of load_batch (src/ops/data.c): each example of the batch is
 * gathered from its table row, through the lut for a u8 table, and cropped/flipped with the
 * draw of src/data/augment.h — the loader's own code, so the batch is the loader's bit for
 * bit. Rows are validated first (one serial pass: the error names the first bad example and
 * nothing is half-written), then the examples are filled in parallel, one per iteration.
 * Not here: shuffling or labels (the caller's), other augmentations. */
#include <string.h>

#include "../../data/augment.h"
#include "../../ops/load_batch.h"
#include "../backend.h"

#define PAR_MIN 32768 /* floats written below which threads cost more than they save */

static kn_status load_batch_f32(const kn__kargs *a)
{
    const kn_node *n = a->node, *t = n->src[0];
    const kn__load_batch_geom G = kn__load_batch_geom_of(n);
    const int64_t N = G.N, B = G.B, per = G.per;
    const int C = G.C, H = G.H, W = G.W;
    const float pad = (float)n->af[0];
    const int64_t *ex = a->src[1];
    const uint8_t *tu = t->dtype == KN_U8 ? a->src[0] : NULL;
    const float *tf = t->dtype == KN_U8 ? NULL : a->src[0];
    const float *lut = n->nsrc > 2 ? a->src[2] : NULL;
    float *y = a->dst;
    for (int64_t b = 0; b < B; b++)
        if (ex[3 * b] < 0 || ex[3 * b] >= N)
            return kn__kerr(a, "load_batch: row %lld of example %lld is outside the table's rows [0, %lld)",
                            (long long)ex[3 * b], (long long)b, (long long)N);
#pragma omp parallel for schedule(static) if (B * per > PAR_MIN)
    for (int64_t b = 0; b < B; b++) {
        const int64_t r = ex[3 * b];
        float *restrict o = y + b * per;
        const uint8_t *xu = tu ? tu + r * per : NULL;
        const float *xf = tf ? tf + r * per : NULL;
        if (!G.augment) {
            if (xu)
                for (int64_t k = 0; k < per; k++)
                    o[k] = lut[xu[k]];
            else if (per)
                memcpy(o, xf, sizeof(float) * (size_t)per);
            continue;
        }
        const kn__augment aug =
            kn__augment_draw(G.seed, (uint64_t)ex[3 * b + 1], (uint64_t)ex[3 * b + 2], G.crop, G.flip);
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    int64_t from = kn__augment_source(aug, H, W, c, i, j);
                    o[((int64_t)c * H + i) * W + j] = from < 0 ? pad : xu ? lut[xu[from]] : xf[from];
                }
    }
    return KN_OK;
}

void kn__cpu_register_data(kn__backend_kernel *t)
{
    t[KN_OP_LOAD_BATCH] = (kn__backend_kernel){.fn = load_batch_f32};
}
