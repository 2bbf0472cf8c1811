/* philox.h — Philox4x32-10 (Salmon et al., SC'11), the counter-based RNG behind parameter
 * init and dropout. Pure function of (key, counter): any backend, thread or order of calls
 * gives the same numbers. Shared by C and CUDA through KN_HD. */
#ifndef KN_CORE_PHILOX_H
#define KN_CORE_PHILOX_H

#include <stdint.h>

#include "hd.h"

KN_HD void kn__philox_round(uint32_t c[4], const uint32_t k[2])
{
    uint64_t p0 = (uint64_t)0xD2511F53u * c[0];
    uint64_t p1 = (uint64_t)0xCD9E8D57u * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t n0 = hi1 ^ c[1] ^ k[0];
    uint32_t n2 = hi0 ^ c[3] ^ k[1];
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
}

/* counter = (block, stream) as four 32-bit words; key = seed. */
KN_HD void kn__philox4x32(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4])
{
    uint32_t c[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
    uint32_t k[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int r = 0; r < 10; r++) {
        kn__philox_round(c, k);
        if (r < 9) {
            k[0] += 0x9E3779B9u;
            k[1] += 0xBB67AE85u;
        }
    }
    out[0] = c[0];
    out[1] = c[1];
    out[2] = c[2];
    out[3] = c[3];
}

/* The i-th 32-bit word of a stream. */
KN_HD uint32_t kn__philox_word(uint64_t seed, uint64_t stream, uint64_t i)
{
    uint32_t o[4];
    kn__philox4x32(seed, stream, i >> 2, o);
    return o[i & 3];
}

/* A 32-bit word to a uniform number in (0, 1) with 24 bits, exactly representable in f32. */
KN_HD float kn__u32_to_unit(uint32_t u)
{
    return ((float)(u >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

#endif
