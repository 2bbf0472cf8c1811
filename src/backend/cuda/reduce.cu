/* reduce.cu — CUDA kernels of the reductions, f32: sum, mean, max, min over any set of axes
 * (ai[0] bitmask), argmax over one axis (i64 result) and maxmin_bwd (the gradient of max/min,
 * split evenly between ties). Deterministic: a fixed group of threads (a warp when the
 * reduced extent is small, a block otherwise) reduces one output in a fixed tree order, no
 * atomics; a few outputs over many items each split into fixed segments reduced in two
 * launches (cuda_reduce.cuh). NaN rules of the reference: max/min skip NaN (v > acc is false
 * for NaN), argmax keeps the first strict maximum (and index 0 when x[0] is NaN).
 * Not here: mixed-precision accumulation (f32 in, f32 accumulate), reductions of f16/bf16. */
#include "cuda_reduce.cuh"

/* Input offsets: output index o walks the kept dims, reduced index j walks the reduced dims
 * (innermost last, so a reduction over the last axis reads contiguously). */
struct kn__cu_rdesc {
    int nk, nr;
    int64_t kdim[KN_MAX_DIMS], kstride[KN_MAX_DIMS];
    int64_t rdim[KN_MAX_DIMS], rstride[KN_MAX_DIMS];
};

__device__ static inline int64_t walk(int64_t i, int nd, const int64_t *dim, const int64_t *stride)
{
    int64_t off = 0;
    for (int d = nd - 1; d >= 0; d--) {
        off += (i % dim[d]) * stride[d];
        i /= dim[d];
    }
    return off;
}

static void make_rdesc(const kn_node *x, uint32_t mask, kn__cu_rdesc *r, int64_t *kept, int64_t *reduced)
{
    int64_t stride[KN_MAX_DIMS], s = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        stride[d] = s;
        s *= x->shape[d];
    }
    r->nk = r->nr = 0;
    *kept = *reduced = 1;
    for (int d = 0; d < x->ndim; d++) {
        if ((mask >> d) & 1u) {
            r->rdim[r->nr] = x->shape[d];
            r->rstride[r->nr++] = stride[d];
            *reduced *= x->shape[d];
        } else {
            r->kdim[r->nk] = x->shape[d];
            r->kstride[r->nk++] = stride[d];
            *kept *= x->shape[d];
        }
    }
}

/* G threads per output (cuda_reduce.cuh's grouped reduction); r walks the input. */
template <int R, int G>
__global__ void reduce_f32_kernel(int64_t outs, int64_t count, const float *__restrict__ x, float *__restrict__ y,
                                  kn__cu_rdesc r)
{
    kn__cu_group_reduce<R, G>(
        outs, count, y, [&](int64_t o) { return walk(o, r.nk, r.kdim, r.kstride); },
        [&](int64_t, int64_t base, int64_t j) { return x[base + walk(j, r.nr, r.rdim, r.rstride)]; });
}

/* Pass 1 of a split reduction (cuda_reduce.cuh): a block group per segment. */
template <int R>
__global__ void reduce_split_kernel(int64_t outs, int64_t count, int64_t S, const float *__restrict__ x,
                                    float *__restrict__ part, kn__cu_rdesc r)
{
    kn__cu_segment_reduce<R>(
        outs, count, S, part, [&](int64_t o) { return walk(o, r.nk, r.kdim, r.kstride); },
        [&](int64_t, int64_t base, int64_t j) { return x[base + walk(j, r.nr, r.rdim, r.rstride)]; });
}

static size_t reduce_ws(const kn_node *n)
{
    kn__cu_rdesc r;
    int64_t outs, count;
    make_rdesc(n->src[0], (uint32_t)n->ai[0], &r, &outs, &count);
    return kn__cu_split_workspace(outs, count);
}

template <int R> static kn_status reduce_launch(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node, *x = n->src[0];
    kn__cu_rdesc r;
    int64_t outs, count;
    make_rdesc(x, (uint32_t)n->ai[0], &r, &outs, &count);
    if (outs == 0)
        return KN_OK;
    const float *in = (const float *)a->src[0];
    float *out = (float *)a->dst;
    const int64_t S = kn__cu_segments(outs, count);
    if (S > 1) {
        if (!a->work)
            return kn__cu_fail(a, KN_ERR_DEVICE, "no workspace for the partial sums of a split reduction");
        float *part = (float *)a->work;
        reduce_split_kernel<R><<<kn__cu_blocks(ctx, outs * S, 1), KN_CU_THREADS, 0, ctx->stream>>>(outs, count, S, in,
                                                                                                   part, r);
        kn_status st = KN_CU_LAUNCHED(a, "reduce_split_kernel");
        if (st)
            return st;
        kn__cu_partials_launch<R>(ctx, outs, S, count, part, out);
        return KN_CU_LAUNCHED(a, "kn__cu_partials_kernel");
    }
    if (kn__cu_reduce_group(count) == 32) {
        unsigned blocks = kn__cu_blocks(ctx, outs, KN_CU_THREADS / 32);
        reduce_f32_kernel<R, 32><<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(outs, count, in, out, r);
    } else {
        unsigned blocks = kn__cu_blocks(ctx, outs, 1);
        reduce_f32_kernel<R, KN_CU_THREADS><<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(outs, count, in, out, r);
    }
    return KN_CU_LAUNCHED(a, "reduce_f32_kernel");
}

static kn_status reduce_f32(const kn__kargs *a)
{
    switch (a->node->op) {
    case KN_OP_SUM: return reduce_launch<KN_CU_R_SUM>(a);
    case KN_OP_MEAN: return reduce_launch<KN_CU_R_MEAN>(a);
    case KN_OP_MAX: return reduce_launch<KN_CU_R_MAX>(a);
    case KN_OP_MIN: return reduce_launch<KN_CU_R_MIN>(a);
    default: return kn__cu_fail(a, KN_ERR_UNSUPPORTED, "not a reduction");
    }
}

/* ---- argmax over one axis: one thread per (outer, inner), the reference's loop ------------- */

__global__ void argmax_f32_kernel(int64_t outer, int64_t len, int64_t inner, const float *__restrict__ x,
                                  int64_t *__restrict__ y)
{
    KN_CU_GRID_LOOP(t, outer * inner)
    {
        int64_t o = t / inner, i = t % inner;
        const float *row = x + o * len * inner + i;
        int64_t best = 0;
        float bv = row[0];
        for (int64_t j = 1; j < len; j++) {
            float v = row[j * inner];
            if (v > bv) {
                bv = v;
                best = j;
            }
        }
        y[t] = best;
    }
}

static kn_status argmax_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *x = a->node->src[0];
    int axis = (int)a->node->ai[0];
    int64_t outer = 1, inner = 1, len = x->shape[axis];
    for (int d = 0; d < axis; d++)
        outer *= x->shape[d];
    for (int d = axis + 1; d < x->ndim; d++)
        inner *= x->shape[d];
    if (outer * inner == 0)
        return KN_OK;
    argmax_f32_kernel<<<kn__cu_blocks(ctx, outer * inner, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        outer, len, inner, (const float *)a->src[0], (int64_t *)a->dst);
    return KN_CU_LAUNCHED(a, "argmax_f32_kernel");
}

static bool argmax_supports(const kn_node *n) { return n->src[0]->dtype == KN_F32 && n->dtype == KN_I64; }

/* ---- maxmin_bwd(x, y_keepdims, dy_keepdims) ------------------------------------------------- */

/* count[o] = #{x == y[o]} over output o's group: the grouped sum of reduce_f32_kernel. */
template <int G>
__global__ void tie_count_kernel(int64_t outs, int64_t count, const float *__restrict__ x,
                                 const float *__restrict__ y, float *__restrict__ ties, kn__cu_rdesc r)
{
    kn__cu_group_reduce<KN_CU_R_SUM, G>(
        outs, count, ties, [&](int64_t o) { return walk(o, r.nk, r.kdim, r.kstride); },
        [&](int64_t o, int64_t base, int64_t j) {
            return x[base + walk(j, r.nr, r.rdim, r.rstride)] == y[o] ? 1.0f : 0.0f;
        });
}

/* dx[i] = x[i] == y[o(i)] ? dy[o(i)] / count[o(i)] : 0, with o(i) from the broadcast strides. */
__global__ void maxmin_route_kernel(int64_t n, const float *__restrict__ x, const float *__restrict__ y,
                                    const float *__restrict__ dy, const float *__restrict__ ties,
                                    float *__restrict__ dx, int nd, kn__cu_rdesc s)
{
    /* s.kdim = x's shape, s.kstride = the output strides (0 on reduced dims) */
    KN_CU_GRID_LOOP(i, n)
    {
        int64_t o = walk(i, nd, s.kdim, s.kstride);
        dx[i] = x[i] == y[o] ? dy[o] / ties[o] : 0.0f;
    }
}

static size_t maxmin_bwd_ws(const kn_node *n) { return (size_t)kn__numel(n->src[1]) * sizeof(float); }

static kn_status maxmin_bwd_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node, *x = n->src[0];
    uint32_t mask = (uint32_t)n->ai[0];
    kn__cu_rdesc r;
    int64_t outs, count;
    make_rdesc(x, mask, &r, &outs, &count);
    int64_t total = kn__numel(x);
    if (total == 0)
        return KN_OK;
    float *ties = (float *)a->work;
    if (!ties)
        return kn__cu_fail(a, KN_ERR_DEVICE, "no workspace for the tie counts");
    const float *in = (const float *)a->src[0], *y = (const float *)a->src[1], *dy = (const float *)a->src[2];
    if (kn__cu_reduce_group(count) == 32)
        tie_count_kernel<32><<<kn__cu_blocks(ctx, outs, KN_CU_THREADS / 32), KN_CU_THREADS, 0, ctx->stream>>>(
            outs, count, in, y, ties, r);
    else
        tie_count_kernel<KN_CU_THREADS><<<kn__cu_blocks(ctx, outs, 1), KN_CU_THREADS, 0, ctx->stream>>>(
            outs, count, in, y, ties, r);
    kn_status st = KN_CU_LAUNCHED(a, "tie_count_kernel");
    if (st)
        return st;
    kn__cu_rdesc s;
    int64_t ks[KN_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        ks[d] = (mask >> d) & 1u ? 1 : x->shape[d];
        s.kdim[d] = x->shape[d];
    }
    kn__broadcast_strides(x->ndim, x->shape, x->ndim, ks, s.kstride);
    s.nk = x->ndim;
    s.nr = 0;
    maxmin_route_kernel<<<kn__cu_blocks(ctx, total, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        total, in, y, dy, ties, (float *)a->dst, x->ndim, s);
    return KN_CU_LAUNCHED(a, "maxmin_route_kernel");
}

extern "C" void kn__cuda_register_reduce(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.supports = kn__cu_f32_only;
    k.fn = reduce_f32;
    k.workspace = reduce_ws;
    t[KN_OP_SUM] = t[KN_OP_MEAN] = t[KN_OP_MAX] = t[KN_OP_MIN] = k;
    k.workspace = NULL;
    k.fn = argmax_f32;
    k.supports = argmax_supports;
    t[KN_OP_ARGMAX] = k;
    k.fn = maxmin_bwd_f32;
    k.supports = kn__cu_f32_only;
    k.workspace = maxmin_bwd_ws;
    t[KN_OP_MAXMIN_BWD] = k;
}
