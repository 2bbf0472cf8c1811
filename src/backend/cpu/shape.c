/* shape.c — CPU kernels of the data-movement ops: permute, concat, slice, pad. They move
 * elements by size (1, 2, 4 or 8 bytes), so one kernel serves every dtype, f16 and integers
 * included. Contiguous runs go through memcpy; a permute that moves the innermost dimension
 * is a tiled (cache-blocked) transpose; large copies are split over OpenMP threads.
 *
 * Not here: shape checks, gradients, the float64 reference (src/ops/shape.c); zero-copy
 * views (reshape: view.c). */
#include <string.h>

#include "../../core/core_internal.h"
#include "../backend.h"

#define PAR_BYTES (1 << 16) /* below this many bytes a copy stays on one thread */
#define TILE 32

static size_t esz(const kn_node *n) { return kn_dtype_size(n->dtype); }

/* ==== PERMUTE ============================================================================ */
/* The permute as k ≤ 8 dims in output order: size[d] and the input stride st[d] (elements),
 * with size-1 dims dropped and runs that stay adjacent in the input merged. */
typedef struct perm_plan {
    int k;
    int64_t size[KN_MAX_DIMS], st[KN_MAX_DIMS], ost[KN_MAX_DIMS];
} perm_plan;

static void perm_plan_make(const kn_node *n, perm_plan *p)
{
    const kn_node *x = n->src[0];
    int64_t xs[KN_MAX_DIMS], s = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        xs[d] = s;
        s *= x->shape[d];
    }
    p->k = 0;
    for (int d = 0; d < n->ndim; d++) {
        int64_t sz = n->shape[d], st = xs[n->ai[d]];
        if (sz == 1)
            continue;
        if (p->k > 0 && p->st[p->k - 1] == st * sz) { /* previous dim is this one's outer run */
            p->size[p->k - 1] *= sz;
            p->st[p->k - 1] = st;
            continue;
        }
        p->size[p->k] = sz;
        p->st[p->k] = st;
        p->k++;
    }
    s = 1;
    for (int d = p->k - 1; d >= 0; d--) {
        p->ost[d] = s;
        s *= p->size[d];
    }
}

/* Input offset of output "row" r over dims [0, k) except skip0/skip1 (−1 = none), and the
 * matching output offset. */
static void perm_offsets(const perm_plan *p, int64_t r, int skip0, int skip1, int64_t *in, int64_t *out)
{
    int64_t i = 0, o = 0;
    for (int d = p->k - 1; d >= 0; d--) {
        if (d == skip0 || d == skip1)
            continue;
        int64_t c = r % p->size[d];
        r /= p->size[d];
        i += c * p->st[d];
        o += c * p->ost[d];
    }
    *in = i;
    *out = o;
}

/* Tiled transpose: output dim q has input stride 1, the last output dim L has input stride
 * sl. Each work item is (outer index, block of q). */
#define DEFINE_TRANSPOSE(T)                                                                         \
    static void transpose_##T(const perm_plan *p, int q, const T *restrict in, T *restrict out,      \
                              int64_t outer, bool par)                                            \
    {                                                                                             \
        int L = p->k - 1;                                                                         \
        int64_t nq = p->size[q], nl = p->size[L], sl = p->st[L], oq = p->ost[q];                  \
        int64_t nbq = (nq + TILE - 1) / TILE, items = outer * nbq;                                \
        _Pragma("omp parallel for schedule(static) if(par)")                                      \
        for (int64_t w = 0; w < items; w++) {                                                     \
            int64_t ib, ob;                                                                       \
            perm_offsets(p, w / nbq, q, L, &ib, &ob);                                             \
            int64_t q0 = (w % nbq) * TILE, q1 = q0 + TILE < nq ? q0 + TILE : nq;                  \
            for (int64_t l0 = 0; l0 < nl; l0 += TILE) {                                           \
                int64_t l1 = l0 + TILE < nl ? l0 + TILE : nl;                                     \
                for (int64_t iq = q0; iq < q1; iq++) {                                            \
                    const T *src = in + ib + iq;                                                  \
                    T *dst = out + ob + iq * oq;                                                  \
                    for (int64_t il = l0; il < l1; il++)                                          \
                        dst[il] = src[il * sl];                                                   \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
    }
DEFINE_TRANSPOSE(uint8_t)
DEFINE_TRANSPOSE(uint16_t)
DEFINE_TRANSPOSE(uint32_t)
DEFINE_TRANSPOSE(uint64_t)

static kn_status permute_cpu(const kn__kargs *a)
{
    const kn_node *n = a->node;
    size_t es = esz(n);
    int64_t total = kn__numel(n);
    if (total == 0)
        return KN_OK;
    bool par = (size_t)total * es >= PAR_BYTES;
    perm_plan p;
    perm_plan_make(n, &p);
    if (p.k == 0 || p.st[p.k - 1] == 1) { /* innermost run stays contiguous: row copies */
        int64_t len = p.k ? p.size[p.k - 1] : total, rows = len ? total / len : 0;
        const char *in = a->src[0];
        char *out = a->dst;
#pragma omp parallel for schedule(static) if(par)
        for (int64_t r = 0; r < rows; r++) {
            int64_t ib, ob;
            perm_offsets(&p, r, p.k - 1, -1, &ib, &ob);
            memcpy(out + (size_t)ob * es, in + (size_t)ib * es, (size_t)len * es);
        }
        return KN_OK;
    }
    int q = 0;
    while (p.st[q] != 1) /* the input's innermost dim: exists since numel > 1 here */
        q++;
    int64_t outer = total / (p.size[q] * p.size[p.k - 1]);
    switch (es) {
    case 1: transpose_uint8_t(&p, q, a->src[0], a->dst, outer, par); break;
    case 2: transpose_uint16_t(&p, q, a->src[0], a->dst, outer, par); break;
    case 4: transpose_uint32_t(&p, q, a->src[0], a->dst, outer, par); break;
    default: transpose_uint64_t(&p, q, a->src[0], a->dst, outer, par); break;
    }
    return KN_OK;
}

/* ==== CONCAT ============================================================================= */
static kn_status concat_cpu(const kn__kargs *a)
{
    const kn_node *n = a->node;
    int axis = (int)n->ai[0], ns = n->nsrc;
    size_t es = esz(n);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= n->shape[d];
    for (int d = axis + 1; d < n->ndim; d++)
        inner *= n->shape[d];
    size_t row = (size_t)(n->shape[axis] * inner) * es; /* bytes of one output row */
    size_t len[KN_MAX_SRC], off[KN_MAX_SRC], o = 0;
    for (int i = 0; i < ns; i++) {
        len[i] = (size_t)(n->src[i]->shape[axis] * inner) * es;
        off[i] = o;
        o += len[i];
    }
    char *out = a->dst;
    int64_t items = outer * ns;
    bool par = (size_t)kn__numel(n) * es >= PAR_BYTES;
#pragma omp parallel for schedule(static) if(par)
    for (int64_t w = 0; w < items; w++) {
        int64_t r = w / ns;
        int i = (int)(w % ns);
        if (len[i])
            memcpy(out + (size_t)r * row + off[i], (const char *)a->src[i] + (size_t)r * len[i], len[i]);
    }
    return KN_OK;
}

/* ==== SLICE ============================================================================== */
static kn_status slice_cpu(const kn__kargs *a)
{
    const kn_node *n = a->node, *x = n->src[0];
    int axis = (int)n->ai[0];
    size_t es = esz(n);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= n->shape[d];
    for (int d = axis + 1; d < n->ndim; d++)
        inner *= n->shape[d];
    size_t len = (size_t)(n->shape[axis] * inner) * es, in_row = (size_t)(x->shape[axis] * inner) * es;
    size_t start = (size_t)(n->ai[1] * inner) * es;
    const char *in = a->src[0];
    char *out = a->dst;
    if (!len)
        return KN_OK;
    bool par = (size_t)kn__numel(n) * es >= PAR_BYTES && outer > 1;
#pragma omp parallel for schedule(static) if(par)
    for (int64_t r = 0; r < outer; r++)
        memcpy(out + (size_t)r * len, in + (size_t)r * in_row + start, len);
    return KN_OK;
}

/* ==== PAD ================================================================================ */
#define DEFINE_FILL(T)                                                      \
    static void fill_##T(void *dst, int64_t n, const void *pattern)         \
    {                                                                       \
        T v;                                                                \
        memcpy(&v, pattern, sizeof v);                                      \
        T *d = dst;                                                         \
        for (int64_t i = 0; i < n; i++)                                     \
            d[i] = v;                                                       \
    }
DEFINE_FILL(uint8_t)
DEFINE_FILL(uint16_t)
DEFINE_FILL(uint32_t)
DEFINE_FILL(uint64_t)

static void fill(void *dst, int64_t n, const void *pattern, size_t es)
{
    switch (es) {
    case 1: fill_uint8_t(dst, n, pattern); break;
    case 2: fill_uint16_t(dst, n, pattern); break;
    case 4: fill_uint32_t(dst, n, pattern); break;
    default: fill_uint64_t(dst, n, pattern); break;
    }
}

static kn_status pad_cpu(const kn__kargs *a)
{
    const kn_node *n = a->node, *x = n->src[0];
    size_t es = esz(n);
    if (n->ndim == 0) {
        memcpy(a->dst, a->src[0], es);
        return KN_OK;
    }
    uint64_t pattern = 0; /* the fill value in the node's dtype */
    kn__store_f64(&pattern, n->dtype, 0, n->af[0]);
    int k = n->ndim, L = k - 1;
    int64_t xs[KN_MAX_DIMS], s = 1;
    for (int d = k - 1; d >= 0; d--) {
        xs[d] = s;
        s *= x->shape[d];
    }
    int64_t olen = n->shape[L], xlen = x->shape[L], lo = n->ai[2 * L], hi = n->ai[2 * L + 1];
    int64_t rows = olen ? kn__numel(n) / olen : 0;
    const char *in = a->src[0];
    char *out = a->dst;
    bool par = (size_t)kn__numel(n) * es >= PAR_BYTES;
#pragma omp parallel for schedule(static) if(par)
    for (int64_t r = 0; r < rows; r++) {
        char *dst = out + (size_t)(r * olen) * es;
        int64_t rem = r, ioff = 0;
        bool inside = true;
        for (int d = L - 1; d >= 0; d--) {
            int64_t c = rem % n->shape[d] - n->ai[2 * d];
            rem /= n->shape[d];
            inside = inside && c >= 0 && c < x->shape[d];
            ioff += c * xs[d];
        }
        if (!inside) {
            fill(dst, olen, &pattern, es);
            continue;
        }
        fill(dst, lo, &pattern, es);
        memcpy(dst + (size_t)lo * es, in + (size_t)ioff * es, (size_t)xlen * es);
        fill(dst + (size_t)(lo + xlen) * es, hi, &pattern, es);
    }
    return KN_OK;
}

/* Data movement is dtype-blind: every dtype runs here, not only f32. */
static bool any_dtype(const kn_node *n)
{
    (void)n;
    return true;
}

void kn__cpu_register_shape(kn__backend_kernel *t)
{
    t[KN_OP_PERMUTE] = (kn__backend_kernel){.fn = permute_cpu, .supports = any_dtype};
    t[KN_OP_CONCAT] = (kn__backend_kernel){.fn = concat_cpu, .supports = any_dtype};
    t[KN_OP_SLICE] = (kn__backend_kernel){.fn = slice_cpu, .supports = any_dtype};
    t[KN_OP_PAD] = (kn__backend_kernel){.fn = pad_cpu, .supports = any_dtype};
}
