/* shape.c — the data-movement ops that change a tensor's layout by copying: permute
 * (transpose), concat, slice (split) and pad; flatten is a builder over reshape. Each op:
 * builder, shape check, gradient rule (the inverse movement), FLOP count (0: they move data,
 * they do no arithmetic) and a plain float64 reference kernel that walks every output
 * element by multi-index.
 *
 * Not here: views that share storage (reshape, expand: view.c), strided slices (step ≠ 1),
 * reflect/replicate padding. The optimised kernels are in src/backend/cpu/shape.c.
 *
 * Every op works on any dtype (integer tensors are moved like floats; only floats get
 * gradients). Attribute slots:
 *   PERMUTE  ai[0..ndim-1] = perm: output dim d is input dim perm[d]
 *   CONCAT   ai[0] = axis (normalised by check to 0..ndim-1)
 *   SLICE    ai[0] = axis, ai[1] = start, ai[2] = stop (normalised by the builder:
 *            0 ≤ start ≤ stop ≤ dim, step 1)
 *   PAD      ai[2i], ai[2i+1] = elements added before / after dim i (≥ 0); af[0] = fill value */
#include <stdio.h>
#include <string.h>

#include "../core/core_internal.h"
#include "op_table.h"

/* Element size as a reference kernel sees it: floats are float64 there. */
static size_t ref_esz(kn_dtype dt) { return kn_dtype_is_float(dt) ? 8 : kn_dtype_size(dt); }

/* Row-major strides (in elements) of a node's shape. */
static void strides_of(const kn_node *n, int64_t *st)
{
    int64_t s = 1;
    for (int d = n->ndim - 1; d >= 0; d--) {
        st[d] = s;
        s *= n->shape[d];
    }
}

/* Multi-index of flat element i of a node's shape. */
static void unravel(const kn_node *n, int64_t i, int64_t *idx)
{
    for (int d = n->ndim - 1; d >= 0; d--) {
        int64_t k = n->shape[d] ? n->shape[d] : 1;
        idx[d] = i % k;
        i /= k;
    }
}

static double no_flops(const kn_node *n)
{
    (void)n;
    return 0;
}

/* ==== PERMUTE ============================================================================ */
kn_node *kn_graph_permute(kn_graph *g, kn_node *x, const int *perm)
{
    if (!g || !x)
        return NULL;
    if (!perm && x->ndim > 0) {
        kn__fail(g, KN_ERR_ARG, "permute: perm is NULL for input %s", kn__shp(x));
        return NULL;
    }
    kn_node *n = kn__node_new(g, KN_OP_PERMUTE, 1, &x);
    if (!n)
        return NULL;
    for (int d = 0; d < x->ndim; d++)
        n->ai[d] = perm[d];
    return kn__node_finish(g, n);
}

kn_node *kn_graph_transpose(kn_graph *g, kn_node *x, int dim0, int dim1)
{
    if (!g || !x)
        return NULL;
    int a = kn__axis(dim0, x->ndim), b = kn__axis(dim1, x->ndim);
    if (a < 0 || b < 0) {
        kn__fail(g, KN_ERR_ARG, "transpose: dims %d and %d for input %s, each must be in [-%d, %d)", dim0, dim1,
                 kn__shp(x), x->ndim, x->ndim);
        return NULL;
    }
    int perm[KN_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        perm[d] = d;
    perm[a] = b;
    perm[b] = a;
    return kn_graph_permute(g, x, perm);
}

static kn_status permute_check(kn_graph *g, kn_node *n)
{
    const kn_node *x = n->src[0];
    bool seen[KN_MAX_DIMS] = {0};
    for (int d = 0; d < x->ndim; d++) {
        int64_t p = n->ai[d];
        if (p < 0 || p >= x->ndim || seen[p]) {
            char b[64] = "", *c = b;
            for (int k = 0; k < x->ndim; k++)
                c += snprintf(c, sizeof b - (size_t)(c - b), k ? ",%lld" : "%lld", (long long)n->ai[k]);
            return kn__fail(g, KN_ERR_ARG, "permute: perm (%s) for input %s is not a permutation of 0..%d", b,
                            kn__shp(x), x->ndim - 1);
        }
        seen[p] = true;
    }
    n->dtype = x->dtype;
    n->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++)
        n->shape[d] = x->shape[n->ai[d]];
    return KN_OK;
}

static kn_status permute_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0]) {
        int inv[KN_MAX_DIMS];
        for (int d = 0; d < n->ndim; d++)
            inv[n->ai[d]] = d;
        dx[0] = kn_graph_permute(g, dy, inv);
    }
    return kn_graph_status(g);
}

static kn_status permute_ref(const kn__kargs *a)
{
    const kn_node *n = a->node, *x = n->src[0];
    size_t es = ref_esz(n->dtype);
    int64_t xs[KN_MAX_DIMS], idx[KN_MAX_DIMS];
    strides_of(x, xs);
    int64_t total = kn__numel(n);
    for (int64_t i = 0; i < total; i++) {
        unravel(n, i, idx);
        int64_t off = 0;
        for (int d = 0; d < n->ndim; d++)
            off += idx[d] * xs[n->ai[d]];
        memcpy((char *)a->dst + (size_t)i * es, (const char *)a->src[0] + (size_t)off * es, es);
    }
    return KN_OK;
}

const kn__op_info kn__opdef_PERMUTE = {
    .check = permute_check, .grad = permute_grad, .flops = no_flops, .ref = permute_ref};

/* ==== CONCAT ============================================================================= */
kn_node *kn_graph_concat(kn_graph *g, kn_node *const *xs, int n, int axis)
{
    if (!g)
        return NULL;
    if (!xs || n < 1 || n > KN_MAX_SRC) {
        kn__fail(g, KN_ERR_ARG, "concat: %d inputs, expected 1 to %d", xs ? n : 0, KN_MAX_SRC);
        return NULL;
    }
    kn_node *node = kn__node_new(g, KN_OP_CONCAT, n, xs);
    if (!node)
        return NULL;
    node->ai[0] = axis;
    return kn__node_finish(g, node);
}

static kn_status concat_check(kn_graph *g, kn_node *n)
{
    const kn_node *x0 = n->src[0];
    int axis = kn__axis((int)n->ai[0], x0->ndim);
    if (axis < 0)
        return kn__fail(g, KN_ERR_ARG, "concat: axis %lld is out of range for input 0 %s", (long long)n->ai[0],
                        kn__shp(x0));
    int64_t total = 0;
    for (int i = 0; i < n->nsrc; i++) {
        const kn_node *x = n->src[i];
        if (x->dtype != x0->dtype)
            return kn__fail(g, KN_ERR_DTYPE, "concat: input %d has dtype %s, input 0 %s, they must match", i,
                            kn_dtype_name(x->dtype), kn_dtype_name(x0->dtype));
        bool ok = x->ndim == x0->ndim;
        for (int d = 0; ok && d < x0->ndim; d++)
            ok = d == axis || x->shape[d] == x0->shape[d];
        if (!ok)
            return kn__fail(g, KN_ERR_SHAPE,
                            "concat: input %d has shape %s, input 0 %s; all dims but axis %d must match", i,
                            kn__shp(x), kn__shp(x0), axis);
        total += x->shape[axis];
    }
    n->ai[0] = axis;
    n->dtype = x0->dtype;
    kn__set_shape(n, x0->ndim, x0->shape);
    n->shape[axis] = total;
    return KN_OK;
}

static kn_status concat_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    int axis = (int)n->ai[0];
    int64_t off = 0;
    for (int i = 0; i < n->nsrc; i++) {
        int64_t k = n->src[i]->shape[axis];
        if (need[i])
            dx[i] = kn_graph_slice(g, dy, axis, off, off + k);
        off += k;
    }
    return kn_graph_status(g);
}

static kn_status concat_ref(const kn__kargs *a)
{
    const kn_node *n = a->node;
    int axis = (int)n->ai[0];
    size_t es = ref_esz(n->dtype);
    int64_t idx[KN_MAX_DIMS], total = kn__numel(n);
    for (int64_t i = 0; i < total; i++) {
        unravel(n, i, idx);
        int s = 0;
        int64_t pos = idx[axis];
        while (pos >= n->src[s]->shape[axis]) /* find the input holding this coordinate */
            pos -= n->src[s++]->shape[axis];
        const kn_node *x = n->src[s];
        int64_t xs[KN_MAX_DIMS], off = 0;
        strides_of(x, xs);
        for (int d = 0; d < n->ndim; d++)
            off += (d == axis ? pos : idx[d]) * xs[d];
        memcpy((char *)a->dst + (size_t)i * es, (const char *)a->src[s] + (size_t)off * es, es);
    }
    return KN_OK;
}

const kn__op_info kn__opdef_CONCAT = {
    .check = concat_check, .grad = concat_grad, .flops = no_flops, .ref = concat_ref};

/* ==== SLICE ============================================================================== */
kn_node *kn_graph_slice(kn_graph *g, kn_node *x, int axis, int64_t start, int64_t stop)
{
    kn_node *n = kn__node_new(g, KN_OP_SLICE, 1, &x);
    if (!n)
        return NULL;
    int ax = kn__axis(axis, x->ndim);
    if (ax >= 0) {
        int64_t dim = x->shape[ax];
        if (start < 0)
            start += dim;
        if (stop < 0)
            stop += dim;
    }
    n->ai[0] = ax >= 0 ? ax : axis;
    n->ai[1] = start;
    n->ai[2] = stop;
    return kn__node_finish(g, n);
}

kn_status kn_graph_split(kn_graph *g, kn_node *x, int axis, const int64_t *sizes, int n, kn_node **out)
{
    if (!g)
        return KN_ERR_ARG;
    for (int i = 0; out && i < n; i++)
        out[i] = NULL;
    if (!x)
        return g->status ? g->status : kn__fail(g, KN_ERR_ARG, "split: the input is NULL");
    if (!sizes || !out || n < 1)
        return kn__fail(g, KN_ERR_ARG, "split: %d pieces for input %s, expected >= 1 (and non-NULL sizes and out)",
                        n, kn__shp(x));
    int ax = kn__axis(axis, x->ndim);
    if (ax < 0)
        return kn__fail(g, KN_ERR_ARG, "split: axis %d is out of range for input %s", axis, kn__shp(x));
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0)
            return kn__fail(g, KN_ERR_ARG, "split: piece %d has size %lld, sizes must be >= 0", i,
                            (long long)sizes[i]);
        sum += sizes[i];
    }
    if (sum != x->shape[ax])
        return kn__fail(g, KN_ERR_ARG, "split: sizes sum to %lld, input %s has %lld along axis %d",
                        (long long)sum, kn__shp(x), (long long)x->shape[ax], ax);
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        out[i] = kn_graph_slice(g, x, ax, off, off + sizes[i]);
        off += sizes[i];
        if (!out[i]) {
            for (int k = 0; k < n; k++)
                out[k] = NULL;
            return kn_graph_status(g);
        }
    }
    return KN_OK;
}

static kn_status slice_check(kn_graph *g, kn_node *n)
{
    const kn_node *x = n->src[0];
    int64_t axis = n->ai[0], start = n->ai[1], stop = n->ai[2];
    if (axis < 0 || axis >= x->ndim)
        return kn__fail(g, KN_ERR_ARG, "slice: axis %lld is out of range for input %s", (long long)axis,
                        kn__shp(x));
    if (start < 0 || stop > x->shape[axis] || start > stop)
        return kn__fail(g, KN_ERR_ARG,
                        "slice: range %lld..%lld of axis %lld of input %s, need 0 <= start <= stop <= %lld "
                        "(after negative values count from the end)",
                        (long long)start, (long long)stop, (long long)axis, kn__shp(x),
                        (long long)x->shape[axis]);
    n->dtype = x->dtype;
    kn__set_shape(n, x->ndim, x->shape);
    n->shape[axis] = stop - start;
    return KN_OK;
}

static kn_status slice_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (need[0]) {
        const kn_node *x = n->src[0];
        int64_t pads[2 * KN_MAX_DIMS] = {0};
        int axis = (int)n->ai[0];
        pads[2 * axis] = n->ai[1];
        pads[2 * axis + 1] = x->shape[axis] - n->ai[2];
        dx[0] = kn_graph_pad(g, dy, pads, 0.0);
    }
    return kn_graph_status(g);
}

static kn_status slice_ref(const kn__kargs *a)
{
    const kn_node *n = a->node, *x = n->src[0];
    int axis = (int)n->ai[0];
    size_t es = ref_esz(n->dtype);
    int64_t xs[KN_MAX_DIMS], idx[KN_MAX_DIMS], total = kn__numel(n);
    strides_of(x, xs);
    for (int64_t i = 0; i < total; i++) {
        unravel(n, i, idx);
        idx[axis] += n->ai[1];
        int64_t off = 0;
        for (int d = 0; d < n->ndim; d++)
            off += idx[d] * xs[d];
        memcpy((char *)a->dst + (size_t)i * es, (const char *)a->src[0] + (size_t)off * es, es);
    }
    return KN_OK;
}

const kn__op_info kn__opdef_SLICE = {.check = slice_check, .grad = slice_grad, .flops = no_flops, .ref = slice_ref};

/* ==== PAD ================================================================================ */
kn_node *kn_graph_pad(kn_graph *g, kn_node *x, const int64_t *pads, double value)
{
    if (!g || !x)
        return NULL;
    if (!pads && x->ndim > 0) {
        kn__fail(g, KN_ERR_ARG, "pad: pads is NULL for input %s", kn__shp(x));
        return NULL;
    }
    kn_node *n = kn__node_new(g, KN_OP_PAD, 1, &x);
    if (!n)
        return NULL;
    for (int i = 0; i < 2 * x->ndim; i++)
        n->ai[i] = pads[i];
    n->af[0] = value;
    return kn__node_finish(g, n);
}

static kn_status pad_check(kn_graph *g, kn_node *n)
{
    const kn_node *x = n->src[0];
    n->dtype = x->dtype;
    n->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) {
        int64_t lo = n->ai[2 * d], hi = n->ai[2 * d + 1];
        if (lo < 0 || hi < 0)
            return kn__fail(g, KN_ERR_ARG, "pad: pads (%lld, %lld) of dim %d of input %s, pads must be >= 0",
                            (long long)lo, (long long)hi, d, kn__shp(x));
        if (lo > INT64_MAX / 4 || hi > INT64_MAX / 4 - lo)
            return kn__fail(g, KN_ERR_RANGE, "pad: pads (%lld, %lld) of dim %d are too large", (long long)lo,
                            (long long)hi, d);
        n->shape[d] = x->shape[d] + lo + hi;
    }
    return KN_OK;
}

static kn_status pad_grad(kn_graph *g, kn_node *n, kn_node *dy, kn_node **dx, const bool *need)
{
    if (!need[0])
        return kn_graph_status(g);
    kn_node *r = dy;
    for (int d = 0; d < n->ndim && r; d++)
        if (n->ai[2 * d] || n->ai[2 * d + 1])
            r = kn_graph_slice(g, r, d, n->ai[2 * d], n->ai[2 * d] + n->src[0]->shape[d]);
    dx[0] = r;
    return kn_graph_status(g);
}

static kn_status pad_ref(const kn__kargs *a)
{
    const kn_node *n = a->node, *x = n->src[0];
    kn_dtype rdt = kn_dtype_is_float(n->dtype) ? KN_F64 : n->dtype; /* dtype the ref sees */
    size_t es = ref_esz(n->dtype);
    int64_t xs[KN_MAX_DIMS], idx[KN_MAX_DIMS], total = kn__numel(n);
    strides_of(x, xs);
    for (int64_t i = 0; i < total; i++) {
        unravel(n, i, idx);
        int64_t off = 0;
        bool inside = true;
        for (int d = 0; d < n->ndim; d++) {
            int64_t k = idx[d] - n->ai[2 * d];
            inside = inside && k >= 0 && k < x->shape[d];
            off += k * xs[d];
        }
        if (inside)
            memcpy((char *)a->dst + (size_t)i * es, (const char *)a->src[0] + (size_t)off * es, es);
        else
            kn__store_f64(a->dst, rdt, i, n->af[0]);
    }
    return KN_OK;
}

const kn__op_info kn__opdef_PAD = {.check = pad_check, .grad = pad_grad, .flops = no_flops, .ref = pad_ref};

/* ==== flatten (a reshape) ================================================================ */
kn_node *kn_graph_flatten(kn_graph *g, kn_node *x)
{
    if (!g || !x)
        return NULL;
    if (x->ndim < 1) {
        kn__fail(g, KN_ERR_SHAPE, "flatten: input %s is 0-d, expected [N, ...]", kn__shp(x));
        return NULL;
    }
    int64_t shape[2] = {x->shape[0], 1};
    for (int d = 1; d < x->ndim; d++)
        shape[1] *= x->shape[d];
    return kn_graph_reshape(g, x, 2, shape);
}
