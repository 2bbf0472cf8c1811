/* quant.cu — CUDA kernels of the quantisation family (src/ops/quant.c), f32 activations:
 *
 * FAKE_QUANT (quantisation-aware training): per channel along the axis (or per tensor) the
 *   range [lo, hi] of the values, then every value quantised and dequantised with the
 *   channel's scale and zero point — kn__fq_params / kn__fq_value of src/ops/quant_internal.h,
 *   the very arithmetic of the reference and the CPU kernel, so the GPU rounds alike. One block
 *   per channel: the range in a fixed tree (min/max do not depend on order; NaN is skipped as
 *   the CPU's comparisons skip it), then the block writes the channel. Its gradient is the
 *   straight-through dy (no kernel).
 *
 * QLINEAR and QCONV2D (int8 inference): one int8 GEMM per group on dp4a (four byte products
 *   per instruction, int32 accumulation), acc[ch][pos] = Σ_k w[ch][k] · xs(pos, k). A qlinear
 *   is the 1×1 convolution of a 1×1 image with one "image" per row, so both ops share every
 *   kernel. Three launches per call:
 *   1. weights: each output channel's row repacked as words of 4 k (k ordered kh, kw, channel;
 *      channels padded to 4 with zero weights), Σ_k w, the channel's s·s_w, and the check of
 *      the quantisation parameters (KN_ERR_RANGE through the data-error record, the CPU's
 *      message);
 *   2. input: quantised with kn__q_u8 (the CPU's rounding) and shifted to s8, xs = q − 128, into
 *      a channel-last plane [N][H][W][G][channels padded to 4], so 4 consecutive k are one
 *      aligned word (an implicit GEMM: no im2col);
 *   3. the GEMM: 64 channels × 64 positions per tile, 8 words of K per step through shared
 *      memory, 4 × 4 outputs per thread. corr = (128 − zp)·Σ_k w makes acc + corr = Σ (q − zp)·w
 *      exactly (int32 holds it: K ≤ KN_Q_MAX_K); the epilogue is fmaf((float)(acc + corr),
 *      s·s_w, bias), the CPU kernel's vfmadd on the same integers, then the fused ReLU. A fused
 *      2×2 max pool orders the positions as the 4 members of each pooled output, so each
 *      thread's 4 columns are one window: the max is taken on the integers (the dequantisation
 *      is monotonic), as the CPU does.
 *   Padding is the zero point, as on the CPU: it adds nothing to the sum.
 * Not here: tensor-core int8 (mma.sync / cuBLASLt IMMA); several blocks per channel in
 * fake_quant (a per-tensor fake_quant of a large activation is one block's work). */
#include "cuda_kern_util.cuh"

extern "C" {
#include "ops/conv_internal.h"
#include "ops/quant_internal.h"
}

__global__ void fake_quant_f32_kernel(int64_t pre, int64_t C, int64_t post, bool asym, const float *__restrict__ x,
                                      float *__restrict__ y)
{
    __shared__ float s_lo[KN_CU_THREADS], s_hi[KN_CU_THREADS];
    const int64_t count = pre * post;
    for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
        float lo = INFINITY, hi = -INFINITY;
        for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
            float v = x[((j / post) * C + c) * post + j % post];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        s_lo[threadIdx.x] = lo;
        s_hi[threadIdx.x] = hi;
        __syncthreads();
        for (int s = KN_CU_THREADS / 2; s > 0; s >>= 1) {
            if ((int)threadIdx.x < s) {
                float l = s_lo[threadIdx.x + s], h = s_hi[threadIdx.x + s];
                s_lo[threadIdx.x] = l < s_lo[threadIdx.x] ? l : s_lo[threadIdx.x];
                s_hi[threadIdx.x] = h > s_hi[threadIdx.x] ? h : s_hi[threadIdx.x];
            }
            __syncthreads();
        }
        float scale;
        int zp;
        kn__fq_params(asym, s_lo[0], s_hi[0], &scale, &zp);
        const float inv = kn__q_inv(scale);
        for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
            int64_t k = ((j / post) * C + c) * post + j % post;
            y[k] = kn__fq_value(x[k], asym, scale, inv, zp);
        }
        __syncthreads(); /* s_lo/s_hi are reused by the block's next channel */
    }
}

static kn_status fake_quant_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    int64_t pre, C, post;
    kn__fq_dims(n, &pre, &C, &post);
    if (kn__numel(n) == 0)
        return KN_OK;
    fake_quant_f32_kernel<<<kn__cu_blocks(ctx, C, 1), KN_CU_THREADS, 0, ctx->stream>>>(
        pre, C, post, n->ai[1] != 0, (const float *)a->src[0], (float *)a->dst);
    return KN_CU_LAUNCHED(a, "fake_quant_f32_kernel");
}

/* ---- QLINEAR and QCONV2D ------------------------------------------------------------------ */

#define QT_CH 64  /* output channels per GEMM tile */
#define QT_POS 64 /* positions per GEMM tile */
#define QT_KW 8   /* words (4 k each) per step of the K loop */

/* The int8 product seen as a convolution (a qlinear: N = rows, C = in, a 1×1 image and kernel). */
struct qgeom {
    int64_t N, C, H, W, G, Cg, O, Og, KH, KW, sh, sw, ph, pw, dh, dw;
    int64_t OH, OW;  /* the convolution's output (before a fused pool) */
    int64_t PH, PW;  /* the node's output extent (pooled or not) */
    int64_t CW;      /* words of channels per group and pixel: Cg padded to 4, / 4 */
    int64_t KG;      /* words per weight row: KH·KW·CW */
    int64_t P;       /* GEMM columns: positions, or 4 per pooled output */
    bool pool, relu;
};

/* Workspace: the data-error record, then the repacked weights [O][KG] words, Σ-corrections
 * [O] int, scales [O] float, the quantised input [N][H][W][G][CW] words. */
struct qwork {
    size_t wq, corr, scale, xs, total;
};

static size_t q_up(size_t a) { return (a + 255) / 256 * 256; }

static qgeom qgeom_of(const kn_node *n)
{
    qgeom q = {};
    if (n->op == KN_OP_QLINEAR) {
        const kn_node *w = n->src[KN_Q_W];
        q.O = q.Og = w->shape[0];
        q.C = q.Cg = w->shape[1];
        q.N = q.O ? kn__numel(n) / q.O : 0;
        q.H = q.W = q.G = q.KH = q.KW = q.sh = q.sw = q.dh = q.dw = 1;
        q.OH = q.OW = q.PH = q.PW = 1;
    } else {
        kn__conv_geom c = kn__conv_geom_of(n);
        q.N = c.N, q.C = c.C, q.H = c.H, q.W = c.W, q.G = c.G, q.Cg = c.Cg, q.O = c.O, q.Og = c.Og;
        q.KH = c.KH, q.KW = c.KW, q.sh = c.sh, q.sw = c.sw, q.ph = c.ph, q.pw = c.pw, q.dh = c.dh, q.dw = c.dw;
        q.OH = kn__conv_out(c.H, c.KH, c.sh, c.ph, c.dh);
        q.OW = kn__conv_out(c.W, c.KW, c.sw, c.pw, c.dw);
        q.PH = n->shape[2];
        q.PW = n->shape[3];
        q.pool = n->ai[KN_Q_POOL] != 0;
    }
    q.relu = n->ai[KN_Q_RELU] != 0;
    q.CW = (q.Cg + 3) / 4;
    q.KG = q.KH * q.KW * q.CW;
    q.P = q.pool ? q.N * q.PH * q.PW * 4 : q.N * q.OH * q.OW;
    return q;
}

static qwork qwork_of(const qgeom &q)
{
    qwork w;
    w.wq = KN_CUDA_DERR_BYTES;
    w.corr = w.wq + q_up((size_t)(q.O * q.KG) * 4);
    w.scale = w.corr + q_up((size_t)q.O * 4);
    w.xs = w.scale + q_up((size_t)q.O * 4);
    w.total = w.xs + (size_t)(q.N * q.H * q.W * q.G * q.CW) * 4;
    return w;
}

static size_t qgemm_workspace(const kn_node *n) { return qwork_of(qgeom_of(n)).total; }

/* The input's zero point, and 1/s; unusable parameters give 0 and 1 (the weights kernel
 * reports them), so no kernel ever rounds a NaN into an index. */
__device__ static inline int q_zero_point(const float *xq) { return kn__q_params_ok(xq[0], xq[1]) ? (int)xq[1] : 0; }
__device__ static inline float q_inv_scale(const float *xq)
{
    return kn__q_params_ok(xq[0], xq[1]) ? kn__q_inv(xq[0]) : 1.0f;
}

/* Launch 1: one block per output channel o: its row as words of 4 k (k = (kh·KW + kw)·4·CW +
 * channel, zero weights for the padded channels), corr[o] = (128 − zp)·Σ w, scale[o] = s·s_w[o],
 * and the parameter checks (record: 0 = the input's scale and zero point, 1 + o = weight scale
 * o; the smallest wins, as the CPU checks them in that order). */
__global__ void qweights_kernel(qgeom q, const int8_t *__restrict__ w, const float *__restrict__ ws,
                                const float *__restrict__ xq, int *__restrict__ wq, int *__restrict__ corr,
                                float *__restrict__ scale, kn__cuda_derr *err)
{
    __shared__ double scratch[32];
    const int zp = q_zero_point(xq);
    const int64_t CB = q.CW * 4; /* bytes of channels per kernel tap */
    for (int64_t o = blockIdx.x; o < q.O; o += gridDim.x) {
        int sum = 0;
        for (int64_t k = threadIdx.x; k < q.KG; k += blockDim.x) {
            unsigned word = 0;
            for (int t = 0; t < 4; t++) {
                int64_t kb = 4 * k + t, c = kb % CB, r = kb / CB, kw = r % q.KW, kh = r / q.KW;
                int v = c < q.Cg ? w[((o * q.Cg + c) * q.KH + kh) * q.KW + kw] : 0;
                sum += v;
                word |= ((unsigned)v & 0xFFu) << (8 * t);
            }
            wq[o * q.KG + k] = (int)word;
        }
        const int total = (int)kn__cu_block_sum_f64(sum, scratch); /* exact: |Σw| ≤ 127·KN_Q_MAX_K */
        if (threadIdx.x == 0) {
            corr[o] = (128 - zp) * total;
            scale[o] = __fmul_rn(xq[0], ws[o]);
            if (!kn__q_wscale_ok(ws[o]))
                kn__cu_derr_set(err, KN_CUDA_DERR_QPARAMS, 1 + o);
            if (o == 0 && !kn__q_params_ok(xq[0], xq[1]))
                kn__cu_derr_set(err, KN_CUDA_DERR_QPARAMS, 0);
        }
    }
}

/* Launch 2: x [N][C][H][W] f32 → xs [N][H][W][G][CW] words of 4 channels, q − 128 as s8 (the
 * padded channels 0: their weights are 0). */
__global__ void qinput_kernel(qgeom q, const float *__restrict__ x, const float *__restrict__ xq,
                              int *__restrict__ xs)
{
    const float inv = q_inv_scale(xq);
    const int zp = q_zero_point(xq);
    const int64_t words = q.N * q.H * q.W * q.G * q.CW;
    KN_CU_GRID_LOOP(i, words) {
        int64_t c4 = i % q.CW, g = i / q.CW % q.G, pix = i / (q.CW * q.G);
        int64_t wi = pix % q.W, h = pix / q.W % q.H, n = pix / (q.W * q.H);
        unsigned word = 0;
        for (int t = 0; t < 4; t++) {
            int64_t c = c4 * 4 + t;
            if (c < q.Cg) {
                int v = kn__q_u8(x[((n * q.C + g * q.Cg + c) * q.H + h) * q.W + wi], inv, zp) - 128;
                word |= ((unsigned)v & 0xFFu) << (8 * t);
            }
        }
        xs[i] = (int)word;
    }
}

/* GEMM column p → image n and conv output position (oh, ow). */
__device__ static inline void q_position(const qgeom &q, int64_t p, int64_t *n, int64_t *oh, int64_t *ow)
{
    if (q.pool) {
        int64_t pp = p / 4, sub = p % 4, r = pp % (q.PH * q.PW);
        *n = pp / (q.PH * q.PW);
        *oh = 2 * (r / q.PW) + sub / 2;
        *ow = 2 * (r % q.PW) + sub % 2;
    } else {
        int64_t r = p % (q.OH * q.OW);
        *n = p / (q.OH * q.OW);
        *oh = r / q.OW;
        *ow = r % q.OW;
    }
}

__device__ static inline float q_dequant(int acc, float s, float b, bool relu)
{
    float v = fmaf((float)acc, s, b);
    return relu && !(v > 0) ? 0.0f : v;
}

/* Launch 3: tiles of QT_CH channels (of one group) × QT_POS positions, grid-stride. Thread t
 * loads row/column t / 4, words 2·(t % 4) and the next (so 4 threads read 32 contiguous bytes
 * of a row), and computes channels 4·(t / 16) .. +3 × positions 4·(t % 16) .. +3. */
__global__ void qgemm_kernel(qgeom q, const int *__restrict__ wq, const int *__restrict__ xs,
                             const int *__restrict__ corr, const float *__restrict__ scale,
                             const float *__restrict__ bias, const float *__restrict__ xq, float *__restrict__ y)
{
    __shared__ int sw[QT_KW][QT_CH + 1], sx[QT_KW][QT_POS + 1];
    const int t = threadIdx.x, tx = t % 16, ty = t / 16, lane = t / 4, lw = (t % 4) * 2;
    const int pad = (int)(((unsigned)(q_zero_point(xq) - 128) & 0xFFu) * 0x01010101u); /* the zero point, shifted */
    const int64_t ch_tiles = (q.Og + QT_CH - 1) / QT_CH, pos_tiles = (q.P + QT_POS - 1) / QT_POS;
    const int64_t tiles = q.G * ch_tiles * pos_tiles;
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
        const int64_t pt = tile % pos_tiles, ct = tile / pos_tiles % ch_tiles, g = tile / pos_tiles / ch_tiles;
        const int64_t c0 = ct * QT_CH, p0 = pt * QT_POS;
        const bool w_ok = c0 + lane < q.Og;
        const int *wrow = wq + (g * q.Og + (w_ok ? c0 + lane : 0)) * q.KG;
        const bool x_ok = p0 + lane < q.P;
        int64_t n = 0, ih0 = 0, iw0 = 0;
        if (x_ok) {
            int64_t oh, ow;
            q_position(q, p0 + lane, &n, &oh, &ow);
            ih0 = oh * q.sh - q.ph;
            iw0 = ow * q.sw - q.pw;
        }
        int acc[4][4] = {};
        for (int64_t k0 = 0; k0 < q.KG; k0 += QT_KW) {
            for (int i = 0; i < 2; i++) {
                const int64_t k = k0 + lw + i;
                const bool k_ok = k < q.KG;
                sw[lw + i][lane] = w_ok && k_ok ? wrow[k] : 0;
                int v = 0;
                if (x_ok && k_ok) {
                    int64_t c = k % q.CW, r = k / q.CW, kw = r % q.KW, kh = r / q.KW;
                    int64_t ih = ih0 + kh * q.dh, iw = iw0 + kw * q.dw;
                    v = ih >= 0 && ih < q.H && iw >= 0 && iw < q.W
                            ? xs[((n * q.H + ih) * q.W + iw) * q.G * q.CW + g * q.CW + c]
                            : pad;
                }
                sx[lw + i][lane] = v;
            }
            __syncthreads();
#pragma unroll
            for (int k = 0; k < QT_KW; k++) {
                int a[4], b[4];
                for (int i = 0; i < 4; i++) {
                    a[i] = sw[k][ty * 4 + i];
                    b[i] = sx[k][tx * 4 + i];
                }
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++)
                        acc[i][j] = __dp4a(a[i], b[j], acc[i][j]);
            }
            __syncthreads();
        }
        const int64_t pq = p0 + tx * 4;
        for (int i = 0; i < 4; i++) {
            const int64_t oc = c0 + ty * 4 + i;
            if (oc >= q.Og || pq >= q.P)
                break;
            const int64_t o = g * q.Og + oc;
            const float s = scale[o], b = bias ? bias[o] : 0.0f;
            if (q.pool) { /* the 4 columns are one 2×2 window */
                int m01 = acc[i][0] > acc[i][1] ? acc[i][0] : acc[i][1];
                int m23 = acc[i][2] > acc[i][3] ? acc[i][2] : acc[i][3];
                int64_t pp = pq / 4, img = q.PH * q.PW;
                y[((pp / img) * q.O + o) * img + pp % img] = q_dequant((m01 > m23 ? m01 : m23) + corr[o], s, b, q.relu);
                continue;
            }
            for (int j = 0; j < 4 && pq + j < q.P; j++) {
                int64_t p = pq + j, img = q.OH * q.OW;
                y[((p / img) * q.O + o) * img + p % img] = q_dequant(acc[i][j] + corr[o], s, b, q.relu);
            }
        }
    }
}

static kn_status qgemm_f32(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    const qgeom q = qgeom_of(n);
    if (kn__numel(n) == 0)
        return KN_OK;
    const qwork wk = qwork_of(q);
    char *work = (char *)a->work;
    int *wq = (int *)(work + wk.wq), *corr = (int *)(work + wk.corr), *xs = (int *)(work + wk.xs);
    float *scale = (float *)(work + wk.scale);
    const float *xq = (const float *)a->src[KN_Q_XQ];
    const float *bias = n->nsrc > KN_Q_BIAS ? (const float *)a->src[KN_Q_BIAS] : NULL;
    kn_status st = kn__cu_derr_reset(a, ctx);
    if (st)
        return st;
    qweights_kernel<<<kn__cu_blocks(ctx, q.O, 1), KN_CU_THREADS, 0, ctx->stream>>>(
        q, (const int8_t *)a->src[KN_Q_W], (const float *)a->src[KN_Q_WSCALE], xq, wq, corr, scale,
        (kn__cuda_derr *)a->work);
    if ((st = KN_CU_LAUNCHED(a, "qweights_kernel")))
        return st;
    qinput_kernel<<<kn__cu_blocks(ctx, q.N * q.H * q.W * q.G * q.CW, KN_CU_THREADS), KN_CU_THREADS, 0,
                    ctx->stream>>>(q, (const float *)a->src[KN_Q_X], xq, xs);
    if ((st = KN_CU_LAUNCHED(a, "qinput_kernel")))
        return st;
    int64_t tiles = q.G * ((q.Og + QT_CH - 1) / QT_CH) * ((q.P + QT_POS - 1) / QT_POS);
    qgemm_kernel<<<kn__cu_blocks(ctx, tiles, 1), KN_CU_THREADS, 0, ctx->stream>>>(q, wq, xs, corr, scale, bias, xq,
                                                                                   (float *)a->dst);
    return KN_CU_LAUNCHED(a, "qgemm_kernel");
}

extern "C" void kn__cuda_register_quant(kn__backend_kernel *t)
{
    kn__backend_kernel k = {};
    k.fn = fake_quant_f32;
    k.supports = kn__cu_f32_only;
    t[KN_OP_FAKE_QUANT] = k;
    k.fn = qgemm_f32;
    k.workspace = qgemm_workspace;
    k.supports = kn__q_supported;
    t[KN_OP_QLINEAR] = k;
    t[KN_OP_QCONV2D] = k;
}
