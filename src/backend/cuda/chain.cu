/* chain.cu — the CUDA kernel of a fused elementwise chain (kn__chain, formed by the fusion pass
 * src/passes/fuse.c): one launch computes the whole chain, each thread carrying its element's
 * running value through the ops in registers, so the intermediates are never written to or
 * read back from device memory. External inputs are full-size or one element (stride 0). A
 * chain that ends in a sum or mean over every element reduces inside the same launch, with
 * reduce.cu's grouped reduction (cuda_reduce.cuh) and the same group size, so it adds in the
 * sum kernel's order; over 65,536 elements or more, in two launches split into the same
 * segments as the sum kernel's (the partials in the sum node's workspace). Each op is
 * elementwise.cu's own scalar code (elementwise_math.cuh, whose add/sub/mul/div cannot be
 * contracted into an FMA across two ops), so a fused chain gives the unfused ops' results bit
 * for bit. The op list is copied to shared memory once per block.
 * Not here: chains of other dtypes than f32, broadcasts of more than one element (the pass
 * forms neither). */
#include "cuda_reduce.cuh"
#include "elementwise_math.cuh"

/* The chain as the kernel reads it: per op its code, attributes and operands (-1 = the running
 * value, else an input slot); per input slot its pointer and element stride (0: one element). */
struct cu_chain {
    int n_ew; /* elementwise ops (the reducing last op, if any, is not among them) */
    struct {
        int op;
        float a, b;
        signed char in[2];
    } ops[KN__CHAIN_MAX];
    const float *src[KN_MAX_SRC];
    int64_t stride[KN_MAX_SRC];
};

/* The chain's value at element i. */
__device__ static inline float chain_at(const cu_chain &c, int64_t i)
{
    float r = 0.0f;
    for (int j = 0; j < c.n_ew; j++) {
        const int op = c.ops[j].op, x = c.ops[j].in[0], y = c.ops[j].in[1];
        float u = x < 0 ? r : c.src[x][i * c.stride[x]];
        if (kn__cu_is_binary(op)) {
            float v = y < 0 ? r : c.src[y][i * c.stride[y]];
            r = kn__cu_binary(op, u, v);
        } else {
            r = kn__cu_unary(op, u, c.ops[j].a, c.ops[j].b);
        }
    }
    return r;
}

/* Copies the launch's chain into shared memory (every thread must call it). */
__device__ static inline const cu_chain &chain_shared(const cu_chain &c)
{
    __shared__ cu_chain s;
    if (threadIdx.x == 0)
        s = c;
    __syncthreads();
    return s;
}

__global__ void chain_f32_kernel(int64_t n, cu_chain c, float *__restrict__ y)
{
    const cu_chain &s = chain_shared(c);
    KN_CU_GRID_LOOP(i, n)
    y[i] = chain_at(s, i);
}

/* y[0] = R over the chain's n values (R sum or mean), G threads as the sum kernel uses. */
template <int R, int G> __global__ void chain_reduce_f32_kernel(int64_t n, cu_chain c, float *__restrict__ y)
{
    const cu_chain &s = chain_shared(c);
    kn__cu_group_reduce<R, G>(
        1, n, y, [](int64_t) { return (int64_t)0; }, [&](int64_t, int64_t, int64_t j) { return chain_at(s, j); });
}

/* Pass 1 of a split reduction tail (cuda_reduce.cuh), as the sum kernel splits it. */
template <int R> __global__ void chain_split_f32_kernel(int64_t n, int64_t S, cu_chain c, float *__restrict__ part)
{
    const cu_chain &s = chain_shared(c);
    kn__cu_segment_reduce<R>(
        1, n, S, part, [](int64_t) { return (int64_t)0; }, [&](int64_t, int64_t, int64_t j) { return chain_at(s, j); });
}

template <int R> static kn_status chain_reduce_launch(const kn__kargs *a, const cu_chain &c, int64_t n)
{
    KN_CU_CTX(a, ctx);
    float *y = (float *)a->dst;
    const int64_t S = kn__cu_segments(1, n);
    if (S > 1) {
        if (!a->work)
            return kn__cu_fail(a, KN_ERR_DEVICE, "no workspace for the partial sums of a chain's split reduction");
        chain_split_f32_kernel<R><<<kn__cu_blocks(ctx, S, 1), KN_CU_THREADS, 0, ctx->stream>>>(n, S, c,
                                                                                               (float *)a->work);
        kn_status st = KN_CU_LAUNCHED(a, "chain_split_f32_kernel");
        if (st)
            return st;
        kn__cu_partials_launch<R>(ctx, 1, S, n, (const float *)a->work, y);
        return KN_CU_LAUNCHED(a, "kn__cu_partials_kernel");
    }
    if (kn__cu_reduce_group(n) == 32)
        chain_reduce_f32_kernel<R, 32><<<1, KN_CU_THREADS, 0, ctx->stream>>>(n, c, y);
    else
        chain_reduce_f32_kernel<R, KN_CU_THREADS><<<1, KN_CU_THREADS, 0, ctx->stream>>>(n, c, y);
    return KN_CU_LAUNCHED(a, "chain_reduce_f32_kernel");
}

static kn_status chain_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn__chain *ch = a->chain;
    if (!ch || ch->n_ops < 1 || ch->n_ops > KN__CHAIN_MAX)
        return kn__cu_fail(a, KN_ERR_DEVICE, "a chain step without a valid chain");
    const int last = ch->ops[ch->n_ops - 1].node->op;
    const bool reduce = last == KN_OP_SUM || last == KN_OP_MEAN;
    const int64_t m = ch->numel;
    cu_chain c;
    memset(&c, 0, sizeof c);
    c.n_ew = ch->n_ops - (reduce ? 1 : 0);
    for (int j = 0; j < c.n_ew; j++) {
        const kn_node *n = ch->ops[j].node;
        c.ops[j].op = n->op;
        c.ops[j].a = (float)n->af[0];
        c.ops[j].b = (float)n->af[1];
        for (int s = 0; s < 2; s++) {
            int in = ch->ops[j].in[s];
            c.ops[j].in[s] = (signed char)in;
            if (s >= n->nsrc || in < 0)
                continue;
            if (in >= KN_MAX_SRC || !a->src[in])
                return kn__cu_fail(a, KN_ERR_DEVICE, "a chain input without a device buffer");
            c.src[in] = (const float *)a->src[in];
            c.stride[in] = kn__numel(n->src[s]) == 1 && m != 1 ? 0 : 1;
        }
    }
    if (reduce)
        return last == KN_OP_SUM ? chain_reduce_launch<KN_CU_R_SUM>(a, c, m) : chain_reduce_launch<KN_CU_R_MEAN>(a, c, m);
    if (m == 0)
        return KN_OK;
    chain_f32_kernel<<<kn__cu_blocks(ctx, m, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(m, c, (float *)a->dst);
    return KN_CU_LAUNCHED(a, "chain_f32_kernel");
}

extern "C" void kn__cuda_register_chain(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.fn = chain_f32; /* the plan checks each member op with kn__cuda_supports */
    t[KN__CUDA_OP_CHAIN] = k;
}
