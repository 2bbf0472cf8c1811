/* shape.cu — CUDA kernels of the data-movement ops, any dtype (moved as 1/2/4/8-byte words):
 * reshape (a copy when the plan did not alias it), expand, permute, slice, pad (fill value
 * converted to the dtype on the host by kn_convert, as the reference stores it), concat (one
 * scatter launch per input, each output element written once); and embedding (gather of
 * weight rows, f32 weight, any integer index dtype) with its backward (one thread per column
 * adds dy's rows in position order: deterministic, no atomics; slow when few columns and many
 * indices). Indices outside [0, V) leave a data-error record (cuda_kern_check.h).
 * Not here: strided views without copies (the plan decides what to alias). */
#include <string.h>

#include "cuda_kern_util.cuh"

/* Output index i → input offset base + Σ (idx[d] − lo[d])·st[d]; with pad, a coordinate
 * outside [0, in_dim[d]) gives the fill value. SCATTER reverses the roles: input element i
 * (dims = the input's) goes to that offset in the output. */
struct sdesc {
    int nd;
    int pad;
    int64_t dim[KN_MAX_DIMS], st[KN_MAX_DIMS], lo[KN_MAX_DIMS], in_dim[KN_MAX_DIMS];
    int64_t base;
    uint64_t fill; /* the fill value's bits in the dtype (low bytes) */
};

template <typename T, bool SCATTER>
__global__ void move_kernel(int64_t n, const T *__restrict__ x, T *__restrict__ y, sdesc s)
{
    T fill;
    memcpy(&fill, &s.fill, sizeof(T));
    KN_CU_GRID_LOOP(i, n)
    {
        int64_t rem = i, off = s.base;
        bool inside = true;
        for (int d = s.nd - 1; d >= 0; d--) {
            int64_t k = rem % s.dim[d] - s.lo[d];
            rem /= s.dim[d];
            if (s.pad && (k < 0 || k >= s.in_dim[d]))
                inside = false;
            off += k * s.st[d];
        }
        if (SCATTER)
            y[off] = x[i];
        else
            y[i] = inside ? x[off] : fill;
    }
}

template <bool SCATTER>
static kn_status move(const kn__kargs *a, const kn__cuda_ctx *ctx, int64_t n, const void *x, void *y, size_t es,
                      const sdesc *s)
{
    if (n == 0)
        return KN_OK;
    unsigned blocks = kn__cu_blocks(ctx, n, KN_CU_THREADS);
    switch (es) {
    case 1: move_kernel<uint8_t, SCATTER><<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(n, (const uint8_t *)x, (uint8_t *)y, *s); break;
    case 2: move_kernel<uint16_t, SCATTER><<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(n, (const uint16_t *)x, (uint16_t *)y, *s); break;
    case 4: move_kernel<uint32_t, SCATTER><<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(n, (const uint32_t *)x, (uint32_t *)y, *s); break;
    case 8: move_kernel<uint64_t, SCATTER><<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(n, (const uint64_t *)x, (uint64_t *)y, *s); break;
    default: return kn__cu_fail(a, KN_ERR_UNSUPPORTED, "element size not 1, 2, 4 or 8 bytes");
    }
    return KN_CU_LAUNCHED(a, "move_kernel");
}

static void strides_of(int nd, const int64_t *shape, int64_t *st)
{
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        st[d] = s;
        s *= shape[d];
    }
}

static void desc_init(sdesc *s, const kn_node *out)
{
    memset(s, 0, sizeof *s);
    s->nd = out->ndim;
    for (int d = 0; d < out->ndim; d++)
        s->dim[d] = out->shape[d];
}

static kn_status shape_any(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node, *x = n->src[0];
    size_t es = kn_dtype_size(n->dtype);
    int64_t total = kn__numel(n), xs[KN_MAX_DIMS];
    strides_of(x->ndim, x->shape, xs);
    sdesc s;
    desc_init(&s, n);
    switch (n->op) {
    case KN_OP_RESHAPE:
        if (a->dst == a->src[0] || total == 0)
            return KN_OK;
        return kn__cu_check(a, cudaMemcpyAsync(a->dst, a->src[0], (size_t)total * es, cudaMemcpyDeviceToDevice,
                                               ctx->stream),
                            "cudaMemcpyAsync (reshape)");
    case KN_OP_EXPAND:
        kn__broadcast_strides(n->ndim, n->shape, x->ndim, x->shape, s.st);
        break;
    case KN_OP_PERMUTE:
        for (int d = 0; d < n->ndim; d++)
            s.st[d] = xs[n->ai[d]];
        break;
    case KN_OP_SLICE:
        for (int d = 0; d < n->ndim; d++)
            s.st[d] = xs[d];
        s.base = n->ai[1] * xs[n->ai[0]];
        break;
    case KN_OP_PAD: {
        s.pad = 1;
        for (int d = 0; d < n->ndim; d++) {
            s.st[d] = xs[d];
            s.lo[d] = n->ai[2 * d];
            s.in_dim[d] = x->shape[d];
        }
        double v = n->af[0];
        kn_convert(&s.fill, n->dtype, &v, KN_F64, 1);
        break;
    }
    default: { /* concat: each input scattered into its slab of the output */
        int axis = (int)n->ai[0];
        int64_t os[KN_MAX_DIMS], at = 0;
        strides_of(n->ndim, n->shape, os);
        for (int i = 0; i < n->nsrc; i++) {
            const kn_node *xi = n->src[i];
            sdesc c;
            desc_init(&c, xi);
            for (int d = 0; d < n->ndim; d++)
                c.st[d] = os[d];
            c.base = at * os[axis];
            kn_status st = move<true>(a, ctx, kn__numel(xi), a->src[i], a->dst, es, &c);
            if (st)
                return st;
            at += xi->shape[axis];
        }
        return KN_OK;
    }
    }
    return move<false>(a, ctx, total, a->src[0], a->dst, es, &s);
}

/* Every input and the output of one dtype with a 1/2/4/8-byte element. */
static bool shape_supports(const kn_node *n)
{
    size_t es = kn_dtype_size(n->dtype);
    if (es != 1 && es != 2 && es != 4 && es != 8)
        return false;
    for (int i = 0; i < n->nsrc; i++)
        if (n->src[i]->dtype != n->dtype)
            return false;
    return true;
}

/* ---- embedding ------------------------------------------------------------------------------ */

__global__ void embedding_f32_kernel(int64_t count, int64_t V, int64_t D, const float *__restrict__ w,
                                     const void *idx, int idt, float *__restrict__ y, kn__cuda_derr *err)
{
    KN_CU_GRID_LOOP(t, count * D)
    {
        int64_t i = t / D, j = t % D, r = kn__cu_index(idx, idt, i);
        if (r < 0 || r >= V) {
            if (j == 0)
                kn__cu_derr_set(err, KN_CUDA_DERR_INDEX, i);
            y[t] = NAN;
        } else {
            y[t] = w[r * D + j];
        }
    }
}

static kn_status embedding_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node, *w = n->src[0], *idx = n->src[1];
    int64_t V = w->shape[0], D = w->shape[1], count = kn__numel(idx);
    kn_status st = kn__cu_derr_reset(a, ctx);
    if (st || count * D == 0)
        return st;
    embedding_f32_kernel<<<kn__cu_blocks(ctx, count * D, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        count, V, D, (const float *)a->src[0], a->src[1], idx->dtype, (float *)a->dst, (kn__cuda_derr *)a->work);
    return KN_CU_LAUNCHED(a, "embedding_f32_kernel");
}

/* dw[r, j] = Σ_{i: idx[i] = r} dy[i, j], i ascending: one thread owns column j. */
__global__ void embedding_bwd_f32_kernel(int64_t count, int64_t V, int64_t D, const void *idx, int idt,
                                         const float *__restrict__ dy, float *__restrict__ dw, kn__cuda_derr *err)
{
    KN_CU_GRID_LOOP(j, D)
    {
        for (int64_t r = 0; r < V; r++)
            dw[r * D + j] = 0.0f;
        for (int64_t i = 0; i < count; i++) {
            int64_t r = kn__cu_index(idx, idt, i);
            if (r < 0 || r >= V) {
                if (j == 0)
                    kn__cu_derr_set(err, KN_CUDA_DERR_INDEX, i);
                continue;
            }
            dw[r * D + j] += dy[i * D + j];
        }
    }
}

static kn_status embedding_bwd_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node, *idx = n->src[0];
    int64_t V = n->shape[0], D = n->shape[1], count = kn__numel(idx);
    kn_status st = kn__cu_derr_reset(a, ctx);
    if (st || V * D == 0)
        return st;
    embedding_bwd_f32_kernel<<<kn__cu_blocks(ctx, D, 64), 64, 0, ctx->stream>>>(
        count, V, D, a->src[0], idx->dtype, (const float *)a->src[1], (float *)a->dst, (kn__cuda_derr *)a->work);
    return KN_CU_LAUNCHED(a, "embedding_bwd_f32_kernel");
}

extern "C" void kn__cuda_register_shape(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.fn = shape_any;
    k.supports = shape_supports;
    t[KN_OP_RESHAPE] = t[KN_OP_EXPAND] = t[KN_OP_PERMUTE] = t[KN_OP_SLICE] = t[KN_OP_PAD] = t[KN_OP_CONCAT] = k;
    k.fn = embedding_f32;
    k.supports = kn__cu_f32_only; /* f32 weight and output; the indices are integers */
    k.workspace = kn__cu_derr_workspace;
    t[KN_OP_EMBEDDING] = k;
    k.fn = embedding_bwd_f32;
    t[KN_OP_EMBEDDING_BWD] = k;
}
