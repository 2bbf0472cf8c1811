/* random.c — float32 CPU kernel for dropout. One Philox block gives four words, so the loop
 * walks blocks of four elements (each thread its own range of blocks) and draws exactly the
 * words kn__philox_word(seed, stream, i) gives the reference kernel: same mask on every
 * backend and any thread count. In inference plans it is a copy.
 * Not here: storing the mask (the gradient redraws it from the same key). */
#include <string.h>

#include "../../core/philox.h"
#include "../backend.h"

#define PAR_MIN 8192 /* elements below which threading costs more than it gains */

static kn_status dropout_f32(const kn__kargs *k)
{
    const kn_node *n = k->node;
    const float *x = k->src[0];
    float *y = k->dst;
    const int64_t m = kn__numel(n);
    if (!k->training) {
        if (m)
            memcpy(y, x, (size_t)m * sizeof(float));
        return KN_OK;
    }
    const double p = n->af[0];
    const float scale = (float)(1.0 / (1.0 - p));
    const uint64_t seed = k->seed, stream = ((uint64_t)n->ai[0] << 32) + k->step;
    const int64_t blocks = (m + 3) / 4;
#pragma omp parallel for schedule(static) if (m >= PAR_MIN)
    for (int64_t blk = 0; blk < blocks; blk++) {
        uint32_t w[4];
        kn__philox4x32(seed, stream, (uint64_t)blk, w);
        int64_t first = blk * 4, len = m - first < 4 ? m - first : 4;
        for (int64_t j = 0; j < len; j++)
            y[first + j] = kn__u32_to_unit(w[j]) >= p ? x[first + j] * scale : 0.0f;
    }
    return KN_OK;
}

void kn__cpu_register_random(kn__backend_kernel *t)
{
    t[KN_OP_DROPOUT] = (kn__backend_kernel){.fn = dropout_f32};
}
