/* reduce.c — float32 CPU kernels for sum, mean, max, min, argmax and maxmin_bwd.
 * The input's dims are first merged into alternating groups of reduced and kept dims
 * (e.g. conv bias gradient [N,C,H,W] over {0,2,3} → [N | C | H·W]). If the innermost group
 * is reduced, each output is a contiguous-row reduction; if it is kept, whole output rows
 * are accumulated with vector loops. Outputs are split over OpenMP threads; every output is
 * computed by one thread in a fixed order, so results do not depend on the thread count.
 * Contiguous sums keep 16 lane-wise partial sums (vectorised, fixed order). */
#include <math.h>
#include <string.h>

#include "../../ops/broadcast.h"
#include "../backend.h"

#define PAR_MIN 32768

typedef struct groups {
    int n;
    int64_t size[KN_MAX_DIMS], stride[KN_MAX_DIMS];
    bool red[KN_MAX_DIMS];
} groups;

static void make_groups(const kn_node *x, uint32_t mask, groups *gr)
{
    gr->n = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (x->shape[d] == 1)
            continue;
        bool r = (mask >> d) & 1u;
        if (gr->n && gr->red[gr->n - 1] == r) {
            gr->size[gr->n - 1] *= x->shape[d];
        } else {
            gr->red[gr->n] = r;
            gr->size[gr->n] = x->shape[d];
            gr->n++;
        }
    }
    int64_t s = 1;
    for (int i = gr->n - 1; i >= 0; i--) {
        gr->stride[i] = s;
        s *= gr->size[i];
    }
}

/* Offset of the idx-th combination of the groups flagged `red` (outermost first), skipping
 * group `skip`. */
static int64_t group_offset(const groups *gr, bool red, int skip, int64_t idx)
{
    int64_t off = 0;
    for (int i = gr->n - 1; i >= 0; i--) {
        if (gr->red[i] != red || i == skip)
            continue;
        off += (idx % gr->size[i]) * gr->stride[i];
        idx /= gr->size[i];
    }
    return off;
}

static int64_t group_count(const groups *gr, bool red, int skip)
{
    int64_t c = 1;
    for (int i = 0; i < gr->n; i++)
        if (gr->red[i] == red && i != skip)
            c *= gr->size[i];
    return c;
}

#define LANES 16

/* lanes[j] += Σ row[i] over i ≡ j (mod LANES): independent partial sums that vectorise
 * without -ffast-math and add up in an order fixed by the shape alone. */
static inline void sum_lanes(float *restrict lanes, const float *restrict row, int64_t L)
{
    int64_t i = 0;
    for (; i + LANES <= L; i += LANES)
#pragma omp simd
        for (int j = 0; j < LANES; j++)
            lanes[j] += row[i + j];
    for (int j = 0; i < L; i++, j++)
        lanes[j] += row[i];
}

static kn_status reduce_f32(const kn__kargs *k)
{
    const kn_node *n = k->node, *x = n->src[0];
    const float *in = k->src[0];
    float *out = k->dst;
    int op = n->op;
    groups gr;
    make_groups(x, (uint32_t)n->ai[0], &gr);
    int64_t m = kn__numel(n), total = kn__numel(x);
    int64_t rcount = group_count(&gr, true, -1);
    float init = op == KN_OP_MAX ? -INFINITY : op == KN_OP_MIN ? INFINITY : 0.0f;
    float scale = op == KN_OP_MEAN ? (rcount ? 1.0f / (float)rcount : NAN) : 1.0f;
    if (gr.n == 0 || !gr.red[gr.n - 1]) {
        /* innermost group kept (or nothing to reduce): accumulate rows of length L */
        int last = gr.n - 1;
        int64_t L = gr.n ? gr.size[last] : 1;
        int64_t P = gr.n ? group_count(&gr, false, last) : 1;
#pragma omp parallel for schedule(static) if (total >= PAR_MIN && P > 1)
        for (int64_t p = 0; p < P; p++) {
            float *o = out + p * L;
            int64_t base = gr.n ? group_offset(&gr, false, last, p) : 0;
            for (int64_t j = 0; j < L; j++)
                o[j] = init;
            for (int64_t r = 0; r < rcount; r++) {
                const float *row = in + base + group_offset(&gr, true, -1, r);
                if (op == KN_OP_MAX)
                    for (int64_t j = 0; j < L; j++)
                        o[j] = row[j] > o[j] ? row[j] : o[j];
                else if (op == KN_OP_MIN)
                    for (int64_t j = 0; j < L; j++)
                        o[j] = row[j] < o[j] ? row[j] : o[j];
                else
                    for (int64_t j = 0; j < L; j++)
                        o[j] += row[j];
            }
            if (op == KN_OP_MEAN)
                for (int64_t j = 0; j < L; j++)
                    o[j] *= scale;
        }
        (void)m;
        return KN_OK;
    }
    /* innermost group reduced: each output reduces contiguous rows of length L */
    int last = gr.n - 1;
    int64_t L = gr.size[last], R = group_count(&gr, true, last);
#pragma omp parallel for schedule(static) if (total >= PAR_MIN && m > 1)
    for (int64_t o = 0; o < m; o++) {
        int64_t base = group_offset(&gr, false, -1, o);
        float acc = init, lanes[LANES] = {0};
        for (int64_t r = 0; r < R; r++) {
            const float *row = in + base + group_offset(&gr, true, last, r);
            if (op == KN_OP_MAX)
                for (int64_t j = 0; j < L; j++)
                    acc = row[j] > acc ? row[j] : acc;
            else if (op == KN_OP_MIN)
                for (int64_t j = 0; j < L; j++)
                    acc = row[j] < acc ? row[j] : acc;
            else
                sum_lanes(lanes, row, L);
        }
        if (op == KN_OP_SUM || op == KN_OP_MEAN)
            for (int j = 0; j < LANES; j++)
                acc += lanes[j];
        out[o] = acc * scale;
    }
    return KN_OK;
}

static kn_status argmax_f32(const kn__kargs *k)
{
    const kn_node *x = k->node->src[0];
    int axis = (int)k->node->ai[0];
    int64_t outer = 1, inner = 1, len = x->shape[axis];
    for (int d = 0; d < axis; d++)
        outer *= x->shape[d];
    for (int d = axis + 1; d < x->ndim; d++)
        inner *= x->shape[d];
    const float *in = k->src[0];
    int64_t *out = k->dst;
#pragma omp parallel for schedule(static) if (outer * len * inner >= PAR_MIN)
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *p = in + o * len * inner + i;
            int64_t best = 0;
            float bv = p[0];
            for (int64_t j = 1; j < len; j++)
                if (p[j * inner] > bv) {
                    bv = p[j * inner];
                    best = j;
                }
            out[o * inner + i] = best;
        }
    return KN_OK;
}

static size_t maxmin_bwd_ws(const kn_node *n) { return (size_t)kn__numel(n->src[1]) * sizeof(float); }

static kn_status maxmin_bwd_f32(const kn__kargs *k)
{
    const kn_node *n = k->node, *x = n->src[0];
    int64_t ks[KN_MAX_DIMS], os[KN_MAX_DIMS];
    uint32_t mask = (uint32_t)n->ai[0];
    for (int d = 0; d < x->ndim; d++)
        ks[d] = (mask >> d) & 1u ? 1 : x->shape[d];
    kn__broadcast_strides(x->ndim, x->shape, x->ndim, ks, os);
    const float *in = k->src[0], *y = k->src[1], *dy = k->src[2];
    float *dx = k->dst, *count = k->work;
    int64_t m = kn__numel(n->src[1]), total = kn__numel(x);
    memset(count, 0, (size_t)m * sizeof(float));
    for (int64_t i = 0; i < total; i++) {
        int64_t o = kn__offset_of(x->ndim, x->shape, os, i);
        count[o] += in[i] == y[o];
    }
#pragma omp parallel for schedule(static) if (total >= PAR_MIN)
    for (int64_t i = 0; i < total; i++) {
        int64_t o = kn__offset_of(x->ndim, x->shape, os, i);
        dx[i] = in[i] == y[o] ? dy[o] / count[o] : 0.0f;
    }
    return KN_OK;
}

void kn__cpu_register_reduce(kn__backend_kernel *t)
{
    t[KN_OP_SUM] = t[KN_OP_MEAN] = t[KN_OP_MAX] = t[KN_OP_MIN] = (kn__backend_kernel){.fn = reduce_f32};
    t[KN_OP_ARGMAX] = (kn__backend_kernel){.fn = argmax_f32};
    t[KN_OP_MAXMIN_BWD] = (kn__backend_kernel){.fn = maxmin_bwd_f32, .workspace = maxmin_bwd_ws};
}
