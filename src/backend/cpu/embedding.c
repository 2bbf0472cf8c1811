/* embedding.c — float32 CPU kernels for the embedding lookup and its scatter-add backward.
 * Both first validate every index (one cheap serial pass, so an error names the first bad
 * position and nothing is half-written), then copy/add whole D-float rows. The backward is
 * deterministic without atomics: each thread owns a contiguous range of vocabulary rows and
 * adds, in index order, only the contributions that land there.
 * Not here: sorting indices for huge vocabularies, sparse (row-list) gradients. */
#include <omp.h>
#include <string.h>

#include "../backend.h"

#define PAR_MIN 32768 /* floats moved below which threads cost more than they save */

/* Position of the first index outside [0, V), or -1. */
static int64_t first_bad(const void *idx, kn_dtype dt, int64_t count, int64_t V)
{
    for (int64_t i = 0; i < count; i++) {
        int64_t r = kn__index_at(idx, dt, i);
        if (r < 0 || r >= V)
            return i;
    }
    return -1;
}

static kn_status emb_f32(const kn__kargs *a)
{
    const kn_node *n = a->node, *w = n->src[0], *idx = n->src[1];
    int64_t V = w->shape[0], D = w->shape[1], count = kn__numel(idx);
    const float *W = a->src[0];
    float *y = a->dst;
    int64_t bad = first_bad(a->src[1], idx->dtype, count, V);
    if (bad >= 0)
        return kn__kerr(a, "embedding: index %lld at position %lld is outside [0, %lld)",
                        (long long)kn__index_at(a->src[1], idx->dtype, bad), (long long)bad, (long long)V);
#pragma omp parallel for schedule(static) if (count * D > PAR_MIN)
    for (int64_t i = 0; i < count; i++) {
        int64_t r = kn__index_at(a->src[1], idx->dtype, i);
        memcpy(y + i * D, W + r * D, sizeof(float) * (size_t)D);
    }
    return KN_OK;
}

static kn_status emb_bwd_f32(const kn__kargs *a)
{
    const kn_node *n = a->node, *idx = n->src[0];
    int64_t V = n->shape[0], D = n->shape[1], count = kn__numel(idx);
    const float *dy = a->src[1];
    float *dw = a->dst;
    const void *ix = a->src[0];
    kn_dtype dt = idx->dtype;
    int64_t bad = first_bad(ix, dt, count, V);
    if (bad >= 0)
        return kn__kerr(a, "embedding_bwd: index %lld at position %lld is outside [0, %lld)",
                        (long long)kn__index_at(ix, dt, bad), (long long)bad, (long long)V);
#pragma omp parallel if ((count + V) * D > PAR_MIN)
    {
        int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t v0 = V * t / T, v1 = V * (t + 1) / T; /* this thread's rows */
        memset(dw + v0 * D, 0, sizeof(float) * (size_t)((v1 - v0) * D));
        for (int64_t i = 0; i < count; i++) {
            int64_t r = kn__index_at(ix, dt, i);
            if (r < v0 || r >= v1)
                continue;
            float *restrict o = dw + r * D;
            const float *restrict g = dy + i * D;
#pragma omp simd
            for (int64_t j = 0; j < D; j++)
                o[j] += g[j];
        }
    }
    return KN_OK;
}

void kn__cpu_register_embedding(kn__backend_kernel *t)
{
    t[KN_OP_EMBEDDING] = (kn__backend_kernel){.fn = emb_f32};
    t[KN_OP_EMBEDDING_BWD] = (kn__backend_kernel){.fn = emb_bwd_f32};
}
