/* broadcast.h — NumPy broadcasting rules and strided iteration helpers shared by the
 * elementwise families (reference and CPU kernels). Shapes align at the last dimension; a
 * dimension of size 1 (or a missing leading one) stretches to the other's size. */
#ifndef KN_OPS_BROADCAST_H
#define KN_OPS_BROADCAST_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/core.h"

/* Broadcast shape of a and b into out (ndim max(na, nb)); false if they do not broadcast. */
static inline bool kn__broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int *nout,
                                       int64_t *out)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = i - (n - na), ib = i - (n - nb);
        int64_t da = ia >= 0 ? sa[ia] : 1, db = ib >= 0 ? sb[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return false;
        out[i] = da == 1 ? db : da;
    }
    *nout = n;
    return true;
}

/* Element strides of a contiguous input of shape (nin, sin) seen through output shape
 * (nout, sout): 0 on broadcast (stretched or missing) dimensions. */
static inline void kn__broadcast_strides(int nout, const int64_t *sout, int nin, const int64_t *sin,
                                         int64_t *strides)
{
    int64_t s = 1;
    for (int i = nout - 1; i >= 0; i--) {
        int j = i - (nout - nin);
        if (j < 0 || (sin[j] == 1 && sout[i] != 1)) {
            strides[i] = 0;
        } else {
            strides[i] = s;
        }
        if (j >= 0)
            s *= sin[j];
    }
}

/* Offset (in elements) of flat output index i under the given strides. */
static inline int64_t kn__offset_of(int nout, const int64_t *sout, const int64_t *strides, int64_t i)
{
    int64_t off = 0;
    for (int d = nout - 1; d >= 0; d--) {
        off += (i % sout[d]) * strides[d];
        i /= sout[d];
    }
    return off;
}

#endif
