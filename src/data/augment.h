/* augment.h — the loader's augmentation as pure functions of (seed, epoch, position in the
 * epoch), written once for C and CUDA (KN_HD): the batch loader (loader.c), the load_batch
 * op's CPU kernel and its CUDA kernel all call these, so a batch gathered and augmented on
 * the GPU equals the one the loader makes on the host, bit for bit.
 *
 * An example at position pos of epoch e draws one Philox block (seed, stream
 * KN__STREAM_AUGMENT + e, block pos): word 0 the crop's row offset, word 1 its column offset
 * (each in [-pad, pad]), word 2 the flip (probability 0.5). Output pixel (c, i, j) reads
 * source pixel (c, i + oy, (flip ? W-1-j : j) + ox), or the padding value outside the image. */
#ifndef KN_DATA_AUGMENT_H
#define KN_DATA_AUGMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/philox.h"

/* Philox streams: the loader's shuffle uses stream = epoch (small numbers); augmentation and
 * the train/validation split use streams far away from those. */
#define KN__STREAM_AUGMENT ((uint64_t)1 << 62)
#define KN__STREAM_SPLIT ((uint64_t)3 << 62)

typedef struct kn__augment {
    int oy, ox; /* crop window offset */
    bool flip;  /* horizontal flip */
} kn__augment;

/* The augmentation of the example at position pos of epoch `epoch` (crop_pad 0: no crop). */
KN_HD kn__augment kn__augment_draw(uint64_t seed, uint64_t epoch, uint64_t pos, int crop_pad, bool hflip)
{
    kn__augment a = {0, 0, false};
    uint32_t w[4];
    kn__philox4x32(seed, KN__STREAM_AUGMENT + epoch, pos, w);
    const int p = crop_pad > 0 ? crop_pad : 0;
    if (p > 0) { /* (double)u · (2p+1), truncated: the same arithmetic on every backend */
        a.oy = (int)((double)kn__u32_to_unit(w[0]) * (double)(2 * p + 1)) - p;
        a.ox = (int)((double)kn__u32_to_unit(w[1]) * (double)(2 * p + 1)) - p;
        if (a.oy > p)
            a.oy = p;
        if (a.ox > p)
            a.ox = p;
    }
    if (hflip)
        a.flip = kn__u32_to_unit(w[2]) < 0.5f;
    return a;
}

/* Index within an example [C, H, W] of the source of output element (c, i, j), or -1 for
 * padding. */
KN_HD int64_t kn__augment_source(kn__augment a, int H, int W, int c, int i, int j)
{
    int si = i + a.oy, sj = (a.flip ? W - 1 - j : j) + a.ox;
    if (si < 0 || si >= H || sj < 0 || sj >= W)
        return -1;
    return ((int64_t)c * H + si) * W + sj;
}

#endif
