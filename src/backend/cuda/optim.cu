/* optim.cu — CUDA kernels of the optimizer updates, f32 parameter/gradient/state (lr and t of
 * any float dtype, read on the device so a schedule can change them between runs of a CUDA
 * graph): SGD (momentum, Nesterov, weight decay) and Adam/AdamW, the CPU kernels' arithmetic
 * (src/backend/cpu/optim.c: per-step scalars in double, rounded to f32 once). In place: the
 * parameter and the state buffers are written where they are; the output is the parameter
 * (copied to dst when the plan gives a separate buffer). A non-finite lr skips the update
 * (the numerical guard); Adam with t < 1 skips it too and leaves a data-error record
 * (cuda_kern_check.h) for the plan's KN_ERR_RANGE.
 * Not here: the multi-tensor update over the flat parameter buffer (needs the plan to group
 * update nodes; one launch per parameter for now). */
#include "cuda_kern_util.cuh"

/* g = grad + wd·p; buf = mu·buf + g; g = nesterov ? g + mu·buf : buf; p -= lr·g */
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
            if (variant == 0) { /* no momentum */
                pi -= lr * (grad[i] + wd * pi);
            } else if (variant == 1) { /* momentum */
                float b = mu * buf[i] + (grad[i] + wd * pi);
                buf[i] = b;
                pi -= lr * b;
            } else { /* Nesterov */
                float g = grad[i] + wd * pi;
                float b = mu * buf[i] + g;
                buf[i] = b;
                pi -= lr * (g + mu * b);
            }
            p[i] = pi;
        }
        if (out != p)
            out[i] = pi;
    }
}

static kn_status sgd_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t m = kn__numel(n);
    if (m == 0)
        return KN_OK;
    int variant = n->af[0] == 0 ? 0 : n->ai[0] ? 2 : 1;
    sgd_f32_kernel<<<kn__cu_blocks(ctx, m, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        m, (float *)a->src[0], (const float *)a->src[1], n->nsrc > 3 ? (float *)a->src[3] : NULL, a->src[2],
        n->src[2]->dtype, (float)n->af[0], (float)n->af[1], variant, (float *)a->dst);
    return KN_CU_LAUNCHED(a, "sgd_f32_kernel");
}

struct adam_hp {
    double b1, b2, eps, wd;
    int adamw;
};

__global__ void adam_f32_kernel(int64_t n, float *__restrict__ p, const float *__restrict__ grad,
                                float *__restrict__ m, float *__restrict__ v, const void *lr_p, int lr_dt,
                                const void *t_p, int t_dt, adam_hp hp, float *__restrict__ out, kn__cuda_derr *err)
{
    /* the per-step scalars once per block, in double as the CPU computes them */
    __shared__ float s_step, s_inv_bc2, s_decay, s_l2;
    __shared__ int s_skip;
    if (threadIdx.x == 0) {
        double lr = kn__cu_load(lr_p, lr_dt, 0), t = kn__cu_load(t_p, t_dt, 0);
        int skip = !isfinite(lr);
        if (!(t >= 1)) {
            skip = 1;
            if (blockIdx.x == 0)
                kn__cu_derr_set(err, KN_CUDA_DERR_STEP, 0);
        }
        s_skip = skip;
        s_step = (float)(lr / (1 - pow(hp.b1, t)));
        s_inv_bc2 = (float)(1 / sqrt(1 - pow(hp.b2, t)));
        s_decay = hp.adamw ? (float)(1 - lr * hp.wd) : 1.0f;
        s_l2 = hp.adamw ? 0.0f : (float)hp.wd;
    }
    __syncthreads();
    const bool skip = s_skip;
    const float step = s_step, inv_bc2 = s_inv_bc2, decay = s_decay, l2 = s_l2;
    const float fb1 = (float)hp.b1, fb2 = (float)hp.b2, c1 = (float)(1 - hp.b1), c2 = (float)(1 - hp.b2);
    const float eps = (float)hp.eps;
    KN_CU_GRID_LOOP(i, n)
    {
        float pi = p[i];
        if (!skip) {
            float g = grad[i] + l2 * pi;
            pi *= decay;
            float mi = fb1 * m[i] + c1 * g;
            float vi = fb2 * v[i] + c2 * g * g;
            m[i] = mi;
            v[i] = vi;
            pi = pi - step * mi / (sqrtf(vi) * inv_bc2 + eps);
            p[i] = pi;
        }
        if (out != p)
            out[i] = pi;
    }
}

static kn_status adam_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t numel = kn__numel(n);
    kn_status st = kn__cu_derr_reset(a, ctx);
    if (st)
        return st;
    adam_hp hp;
    hp.b1 = n->af[0];
    hp.b2 = n->af[1];
    hp.eps = n->af[2];
    hp.wd = n->af[3];
    hp.adamw = (int)n->ai[0];
    /* at least one block even for an empty parameter, so t is still checked */
    adam_f32_kernel<<<kn__cu_blocks(ctx, numel, KN_CU_THREADS), KN_CU_THREADS, 0, ctx->stream>>>(
        numel, (float *)a->src[0], (const float *)a->src[1], (float *)a->src[4], (float *)a->src[5], a->src[2],
        n->src[2]->dtype, a->src[3], n->src[3]->dtype, hp, (float *)a->dst, (kn__cuda_derr *)a->work);
    return KN_CU_LAUNCHED(a, "adam_f32_kernel");
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
}
