/* chain.c (CPU) — runs a fused chain of elementwise ops (kn__chain, built by the fusion pass)
 * as one step: the running value is computed a cache-sized block at a time in a stack buffer,
 * each op applied in turn over the block, the last writing dst — or, for a chain ending in a
 * sum/mean over every element, accumulated into reduce.c's 16 lane-wise partial sums. Each op
 * is the very expression of its own kernel (binary.c, unary.c, activation.c via
 * activation_math.h) on float32 values stored between ops, and the sum adds in reduce.c's
 * order, so a chain computes the same bits as its ops run one by one — without writing and
 * re-reading the intermediates. Elementwise chains split blocks over OpenMP threads; a
 * reducing chain runs on one thread, as reduce.c's full reduction does.
 * Not here: broadcasting other than of one-element inputs (the pass does not form such chains). */
#include <math.h>
#include <string.h>

#include "../../ops/activation_math.h"
#include "../backend.h"

#define BLOCK 2048     /* floats of the running value per block (8 KiB: stays in L1) */
#define LANES 16       /* reduce.c's partial sums */
#define PAR_MIN 32768

bool kn__cpu_chain_op_ok(int op)
{
    switch (op) {
    case KN_OP_ADD: case KN_OP_SUB: case KN_OP_MUL: case KN_OP_DIV: case KN_OP_POW:
    case KN_OP_NEG: case KN_OP_EXP: case KN_OP_LOG: case KN_OP_SQRT: case KN_OP_ABS: case KN_OP_CLAMP:
    case KN_OP_SCALE:
    case KN_OP_RELU: case KN_OP_LEAKY_RELU: case KN_OP_SIGMOID: case KN_OP_TANH: case KN_OP_GELU: case KN_OP_SILU:
        return true;
    default:
        return false;
    }
}

/* o[i] = EXPR(u, v) with u, v the operands' element i (stride 0: a one-element input) */
#define BIN(EXPR)                                                        \
    for (int64_t i = 0; i < len; i++) {                                  \
        float u = x[i * sx], v = y[i * sy];                              \
        o[i] = (EXPR);                                                   \
    }
#define UN(EXPR)                                                         \
    for (int64_t i = 0; i < len; i++) {                                  \
        float v = x[i * sx];                                             \
        o[i] = (EXPR);                                                   \
    }
#define ACT(F) UN(F(v, a, b))

static void apply(int op, const kn_node *n, float *o, const float *x, int64_t sx, const float *y, int64_t sy,
                  int64_t len)
{
    const float a = (float)n->af[0], b = (float)n->af[1];
    switch (op) {
    case KN_OP_ADD: BIN(u + v); break;
    case KN_OP_SUB: BIN(u - v); break;
    case KN_OP_MUL: BIN(u * v); break;
    case KN_OP_DIV: BIN(u / v); break;
    case KN_OP_POW: BIN(powf(u, v)); break;
    case KN_OP_NEG: UN(-v); break;
    case KN_OP_EXP: UN(expf(v)); break;
    case KN_OP_LOG: UN(logf(v)); break;
    case KN_OP_SQRT: UN(sqrtf(v)); break;
    case KN_OP_ABS: UN(fabsf(v)); break;
    case KN_OP_CLAMP: UN(v < a ? a : (v > b ? b : v)); break;
    case KN_OP_SCALE: UN(a * v + b); break;
    case KN_OP_RELU: ACT(kn__relu_f32); break;
    case KN_OP_LEAKY_RELU: ACT(kn__leaky_relu_f32); break;
    case KN_OP_SIGMOID: ACT(kn__sigmoid_f32); break;
    case KN_OP_TANH: ACT(kn__tanh_f32); break;
    case KN_OP_GELU: ACT(kn__gelu_f32); break;
    case KN_OP_SILU: ACT(kn__silu_f32); break;
    default: break;
    }
}

/* The elementwise ops over block [b0, b0 + len): the running value in buf; the last
 * elementwise op writes out (buf, or dst + b0). */
static void block(const kn__kargs *k, int n_ew, int64_t b0, int64_t len, float *buf, float *out)
{
    const kn__chain *c = k->chain;
    for (int j = 0; j < n_ew; j++) {
        const kn_node *n = c->ops[j].node;
        int64_t sx = 1, sy = 0;
        const float *x = NULL, *y = NULL;
        for (int s = 0; s < n->nsrc; s++) {
            int in = c->ops[j].in[s];
            const float *p;
            int64_t st;
            if (in < 0) {
                p = buf, st = 1;
            } else {
                bool one = kn__numel(n->src[s]) == 1 && c->numel != 1;
                p = (const float *)k->src[in] + (one ? 0 : b0), st = one ? 0 : 1;
            }
            if (s == 0)
                x = p, sx = st;
            else
                y = p, sy = st;
        }
        apply(n->op, n, j == n_ew - 1 ? out : buf, x, sx, y, sy, len);
    }
}

kn_status kn__cpu_chain_run(const kn__kargs *k)
{
    const kn__chain *c = k->chain;
    const int64_t m = c->numel;
    int last = c->ops[c->n_ops - 1].node->op;
    bool reduce = last == KN_OP_SUM || last == KN_OP_MEAN;
    int n_ew = c->n_ops - (reduce ? 1 : 0);
    float *dst = k->dst;
    if (!reduce) {
        const int64_t blocks = (m + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if (m >= PAR_MIN)
        for (int64_t t = 0; t < blocks; t++) {
            float buf[BLOCK];
            int64_t b0 = t * BLOCK, len = m - b0 < BLOCK ? m - b0 : BLOCK;
            block(k, n_ew, b0, len, buf, dst + b0);
        }
        return KN_OK;
    }
    float buf[BLOCK], lanes[LANES] = {0};
    for (int64_t b0 = 0; b0 < m; b0 += BLOCK) {
        int64_t len = m - b0 < BLOCK ? m - b0 : BLOCK, i = 0;
        block(k, n_ew, b0, len, buf, buf);
        for (; i + LANES <= len; i += LANES) /* BLOCK is a multiple of LANES: reduce.c's order */
#pragma omp simd
            for (int j = 0; j < LANES; j++)
                lanes[j] += buf[i + j];
        for (int j = 0; i < len; i++, j++)
            lanes[j] += buf[i];
    }
    float acc = 0.0f;
    for (int j = 0; j < LANES; j++)
        acc += lanes[j];
    float scale = last == KN_OP_MEAN ? (m ? 1.0f / (float)m : NAN) : 1.0f;
    dst[0] = acc * scale;
    return KN_OK;
}
