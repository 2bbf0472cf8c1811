/* optim.cu — CUDA kernels of the optimizer updates, f32 parameter/gradient/state (lr and t of
 * any float dtype, read on the device so a schedule can change them between runs of a CUDA
 * graph): SGD (momentum, Nesterov, weight decay) and Adam/AdamW, the CPU kernels' arithmetic
 * (src/backend/cpu/optim.c: per-step scalars in double, rounded to f32 once). In place: the
 * parameter and the state buffers are written where they are; the output is the parameter
 * (copied to dst when the plan gives a separate buffer). A non-finite lr skips the update
 * (the numerical guard); Adam with t < 1 skips it too and leaves a data-error record
 * (cuda_kern_check.h) for the plan's KN_ERR_RANGE.
 * Multi-tensor form: a CUDA plan runs a run of consecutive updates with the same optimizer
 * settings (update_group.c) as ONE launch over a table of chunks of up to
 * KN_CUDA_UPDATE_CHUNK elements of every member's parameter, gradient and state; each element
 * gets the very arithmetic of the one-parameter kernel (sgd_element, adam_element), so a
 * grouped update is bit-identical to one launch per parameter. */
#include "cuda_kern_util.cuh"

/* One SGD element, the CPU's order: g = grad + wd·p; buf = mu·buf + g; g = nesterov ? g + mu·buf
 * : buf; returns the new p. variant 0: no momentum, 1: momentum, 2: Nesterov. */
__device__ __forceinline__ float sgd_element(float pi, float gi, float *bi, float lr, float mu, float wd, int variant)
{
    if (variant == 0)
        return pi - lr * (gi + wd * pi);
    if (variant == 1) {
        float b = mu * *bi + (gi + wd * pi);
        *bi = b;
        return pi - lr * b;
    }
    float g = gi + wd * pi;
    float b = mu * *bi + g;
    *bi = b;
    return pi - lr * (g + mu * b);
}

__global__ void sgd_f32_kernel(int64_t n, float *__restrict__ p, const float *__restrict__ grad,
                               float *__restrict__ buf, const void *lr_p, int lr_dt, float mu, float wd, int variant,
                               float *__restrict__ out)
{
    const float lr = (float)kn__cu_load(lr_p, lr_dt, 0);
    const bool skip = !isfinite(lr); /* checked after rounding to f32, as the CPU kernel does */
    KN_CU_GRID_LOOP(i, n)
    {
        float pi = p[i];
        if (!skip) {
            pi = sgd_element(pi, grad[i], variant ? &buf[i] : NULL, lr, mu, wd, variant);
            p[i] = pi;
        }
        if (out != p)
            out[i] = pi;
    }
}

/* The multi-tensor form: block b takes chunks b, b + gridDim.x, ...; s1 = momentum buffer. */
__global__ void sgd_multi_f32_kernel(const kn__cuda_update_chunk *__restrict__ chunks, int64_t n_chunks,
                                     const void *lr_p, int lr_dt, float mu, float wd, int variant)
{
    const float lr = (float)kn__cu_load(lr_p, lr_dt, 0);
    if (!isfinite(lr))
        return;
    for (int64_t c = blockIdx.x; c < n_chunks; c += gridDim.x) {
        const kn__cuda_update_chunk k = chunks[c];
        for (int64_t i = threadIdx.x; i < k.n; i += blockDim.x)
            k.p[i] = sgd_element(k.p[i], k.g[i], variant ? &k.s1[i] : NULL, lr, mu, wd, variant);
    }
}

static int sgd_variant(const kn_node *n) { return n->af[0] == 0 ? 0 : n->ai[0] ? 2 : 1; }

static kn_status sgd_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t m = kn__numel(n);
    if (m == 0)
        return KN_OK;
    sgd_f32_kernel<<<kn__cu_blocks(ctx, m, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        m, (float *)a->src[0], (const float *)a->src[1], n->nsrc > 3 ? (float *)a->src[3] : NULL, a->src[2],
        n->src[2]->dtype, (float)n->af[0], (float)n->af[1], sgd_variant(n), (float *)a->dst);
    return KN_CU_LAUNCHED(a, "sgd_f32_kernel");
}

struct adam_hp {
    double b1, b2, eps, wd;
    int adamw;
};

/* Adam's per-step scalars, in double as the CPU computes them, rounded to f32 once. */
struct adam_step_scalars {
    float step, inv_bc2, decay, l2;
    int skip;
};

/* Computed by thread 0 into shared memory, once per block; every thread gets them. */
__device__ static adam_step_scalars adam_scalars(const void *lr_p, int lr_dt, const void *t_p, int t_dt,
                                                 const adam_hp &hp, kn__cuda_derr *err)
{
    __shared__ adam_step_scalars s;
    if (threadIdx.x == 0) {
        double lr = kn__cu_load(lr_p, lr_dt, 0), t = kn__cu_load(t_p, t_dt, 0);
        int skip = !isfinite(lr);
        if (!(t >= 1)) {
            skip = 1;
            if (blockIdx.x == 0)
                kn__cu_derr_set(err, KN_CUDA_DERR_STEP, 0);
        }
        s.skip = skip;
        s.step = (float)(lr / (1 - pow(hp.b1, t)));
        s.inv_bc2 = (float)(1 / sqrt(1 - pow(hp.b2, t)));
        s.decay = hp.adamw ? (float)(1 - lr * hp.wd) : 1.0f;
        s.l2 = hp.adamw ? 0.0f : (float)hp.wd;
    }
    __syncthreads();
    return s;
}

/* One Adam/AdamW element: updates m and v in place, returns the new p. */
__device__ __forceinline__ float adam_element(float pi, float gi, float *mp, float *vp, const adam_step_scalars &s,
                                              const adam_hp &hp)
{
    const float fb1 = (float)hp.b1, fb2 = (float)hp.b2, c1 = (float)(1 - hp.b1), c2 = (float)(1 - hp.b2);
    const float eps = (float)hp.eps;
    float g = gi + s.l2 * pi;
    pi *= s.decay;
    float mi = fb1 * *mp + c1 * g;
    float vi = fb2 * *vp + c2 * g * g;
    *mp = mi;
    *vp = vi;
    return pi - s.step * mi / (sqrtf(vi) * s.inv_bc2 + eps);
}

__global__ void adam_f32_kernel(int64_t n, float *__restrict__ p, const float *__restrict__ grad,
                                float *__restrict__ m, float *__restrict__ v, const void *lr_p, int lr_dt,
                                const void *t_p, int t_dt, adam_hp hp, float *__restrict__ out, kn__cuda_derr *err)
{
    const adam_step_scalars s = adam_scalars(lr_p, lr_dt, t_p, t_dt, hp, err);
    KN_CU_GRID_LOOP(i, n)
    {
        float pi = p[i];
        if (!s.skip) {
            pi = adam_element(pi, grad[i], &m[i], &v[i], s, hp);
            p[i] = pi;
        }
        if (out != p)
            out[i] = pi;
    }
}

/* The multi-tensor form; s1 = exp_avg, s2 = exp_avg_sq. */
__global__ void adam_multi_f32_kernel(const kn__cuda_update_chunk *__restrict__ chunks, int64_t n_chunks,
                                      const void *lr_p, int lr_dt, const void *t_p, int t_dt, adam_hp hp,
                                      kn__cuda_derr *err)
{
    const adam_step_scalars s = adam_scalars(lr_p, lr_dt, t_p, t_dt, hp, err);
    if (s.skip)
        return;
    for (int64_t c = blockIdx.x; c < n_chunks; c += gridDim.x) {
        const kn__cuda_update_chunk k = chunks[c];
        for (int64_t i = threadIdx.x; i < k.n; i += blockDim.x)
            k.p[i] = adam_element(k.p[i], k.g[i], &k.s1[i], &k.s2[i], s, hp);
    }
}

static adam_hp adam_hp_of(const kn_node *n)
{
    adam_hp hp;
    hp.b1 = n->af[0];
    hp.b2 = n->af[1];
    hp.eps = n->af[2];
    hp.wd = n->af[3];
    hp.adamw = (int)n->ai[0];
    return hp;
}

static kn_status adam_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t numel = kn__numel(n);
    kn_status st = kn__cu_derr_reset(a, ctx);
    if (st)
        return st;
    /* at least one block even for an empty parameter, so t is still checked */
    adam_f32_kernel<<<kn__cu_blocks(ctx, numel, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        numel, (float *)a->src[0], (const float *)a->src[1], (float *)a->src[4], (float *)a->src[5], a->src[2],
        n->src[2]->dtype, a->src[3], n->src[3]->dtype, adam_hp_of(n), (float *)a->dst, (kn__cuda_derr *)a->work);
    return KN_CU_LAUNCHED(a, "adam_f32_kernel");
}

/* A group of updates (a->group, built by update_group.c): one launch over its chunk table.
 * The members share the op, its attributes, lr and t (update_group.c checks), so the first
 * member's node and arguments stand for all. */
static kn_status updates_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn__group *g = a->group;
    if (!g || !g->table)
        return kn__cu_fail(a, KN_ERR_DEVICE, "a grouped update without its chunk table");
    const kn_node *n = a->node;
    const kn__cuda_update_chunk *chunks = (const kn__cuda_update_chunk *)g->table;
    unsigned blocks = kn__cu_blocks(ctx, g->n_chunks, 1);
    if (n->op == KN_OP_SGD_UPDATE) {
        if (g->n_chunks == 0)
            return KN_OK;
        sgd_multi_f32_kernel<<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(chunks, g->n_chunks, a->src[2],
                                                                        n->src[2]->dtype, (float)n->af[0],
                                                                        (float)n->af[1], sgd_variant(n));
        return KN_CU_LAUNCHED(a, "sgd_multi_f32_kernel");
    }
    if (n->op != KN_OP_ADAM_UPDATE)
        return kn__cu_fail(a, KN_ERR_UNSUPPORTED, "not an optimizer update");
    kn_status st = kn__cu_derr_reset(a, ctx);
    if (st)
        return st;
    adam_multi_f32_kernel<<<blocks, KN_CU_THREADS, 0, ctx->stream>>>(chunks, g->n_chunks, a->src[2], n->src[2]->dtype,
                                                                     a->src[3], n->src[3]->dtype, adam_hp_of(n),
                                                                     (kn__cuda_derr *)a->work);
    return KN_CU_LAUNCHED(a, "adam_multi_f32_kernel");
}

/* The param, grad and state must be f32; lr and t may be any float type (as on the CPU). */
static bool optim_supports(const kn_node *n)
{
    for (int i = 0; i < n->nsrc; i++)
        if (i != 2 && !(n->op == KN_OP_ADAM_UPDATE && i == 3) && n->src[i]->dtype != KN_F32)
            return false;
    return n->dtype == KN_F32;
}

extern "C" void kn__cuda_register_optim(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.supports = optim_supports;
    k.fn = sgd_f32;
    t[KN_OP_SGD_UPDATE] = k;
    k.fn = adam_f32;
    k.workspace = kn__cu_derr_workspace;
    t[KN_OP_ADAM_UPDATE] = k;
    k.fn = updates_f32; /* the plan calls it for groups it formed; workspace: the first member's */
    k.supports = NULL;
    k.workspace = NULL;
    t[KN__CUDA_OP_UPDATES] = k;
}
