/* update_group.c — the plan side of the multi-tensor optimizer update: which consecutive
 * update steps of a CUDA plan may run as one launch (kn__cuda_update_joins), and the device
 * table of chunks that launch walks (kn__cuda_update_table). A training step ends with one
 * update per parameter, all after the gradient-norm guard, so they are consecutive in the
 * plan; plan_cuda.c groups each run of them that joins and launches optim.cu's multi-tensor
 * kernel once, in the first member's place. That is safe because an update writes only its
 * parameter and state (in place, the output aliases the parameter) and the memory plan keeps
 * every member's gradient alive up to the member's own position, which is later.
 * Plain C on the CUDA runtime's C API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/alloc.h"
#include "cuda_internal.h"
#include "cuda_kernels.h"

/* The buffers an update reads and writes: param (written), grad (read), state (written). */
typedef struct span {
    const char *lo, *hi;
} span;

static span span_of(const void *p, int64_t numel)
{
    span s = {(const char *)p, (const char *)p + (size_t)numel * sizeof(float)};
    return s;
}

static bool overlap(span a, span b) { return a.lo < b.hi && b.lo < a.hi; }

/* Slots of the state buffers: SGD (p, g, lr[, buf]); Adam (p, g, lr, t, m, v). */
static int state_slots(const kn_node *n, int *first)
{
    if (n->op == KN_OP_ADAM_UPDATE) {
        *first = 4;
        return 2;
    }
    *first = 3;
    return n->nsrc > 3 ? 1 : 0;
}

/* Whether a and b touch a common buffer that either of them writes. */
static bool conflict(const kn__kargs *a, const kn__kargs *b)
{
    int64_t na = kn__numel(a->node), nb = kn__numel(b->node);
    int fa, fb, sa = state_slots(a->node, &fa), sb = state_slots(b->node, &fb);
    span wa[3] = {span_of(a->src[0], na)}, wb[3] = {span_of(b->src[0], nb)};
    for (int k = 0; k < sa; k++)
        wa[1 + k] = span_of(a->src[fa + k], na);
    for (int k = 0; k < sb; k++)
        wb[1 + k] = span_of(b->src[fb + k], nb);
    span ga = span_of(a->src[1], na), gb = span_of(b->src[1], nb);
    for (int i = 0; i <= sa; i++) {
        if (overlap(wa[i], gb))
            return true;
        for (int j = 0; j <= sb; j++)
            if (overlap(wa[i], wb[j]))
                return true;
    }
    for (int j = 0; j <= sb; j++)
        if (overlap(wb[j], ga))
            return true;
    return false;
}

/* Same op, attributes, lr and t (same buffers), same state; f32 and in place. */
static bool same_settings(const kn__kargs *a, const kn__kargs *b)
{
    const kn_node *x = a->node, *y = b->node;
    if (x->op != y->op || x->nsrc != y->nsrc || memcmp(x->af, y->af, sizeof x->af) || x->ai[0] != y->ai[0])
        return false;
    if (a->src[2] != b->src[2] || x->src[2]->dtype != y->src[2]->dtype)
        return false;
    if (x->op == KN_OP_ADAM_UPDATE && (a->src[3] != b->src[3] || x->src[3]->dtype != y->src[3]->dtype))
        return false;
    return true;
}

static bool groupable(const kn__kargs *a)
{
    const kn_node *n = a->node;
    if ((n->op != KN_OP_SGD_UPDATE && n->op != KN_OP_ADAM_UPDATE) || n->dtype != KN_F32 || a->dst != a->src[0])
        return false;
    for (int i = 0; i < n->nsrc; i++)
        if (!a->src[i])
            return false;
    return true;
}

bool kn__cuda_update_joins(const kn__kargs *members, int n, const kn__kargs *b)
{
    if (!groupable(b))
        return false;
    if (n == 0)
        return true;
    if (!same_settings(&members[0], b))
        return false;
    for (int k = 0; k < n; k++)
        if (conflict(&members[k], b))
            return false;
    return true;
}

kn_status kn__cuda_update_table(kn__group *g, int device, cudaStream_t s, char *msg, size_t size)
{
    g->table = NULL;
    g->n_chunks = 0;
    for (int k = 0; k < g->n; k++)
        g->n_chunks += (kn__numel(g->members[k].node) + KN_CUDA_UPDATE_CHUNK - 1) / KN_CUDA_UPDATE_CHUNK;
    if (g->n_chunks == 0)
        return KN_OK;
    size_t bytes = (size_t)g->n_chunks * sizeof(kn__cuda_update_chunk);
    kn__cuda_update_chunk *host = kn__alloc(bytes);
    if (!host) {
        snprintf(msg, size, "out of memory for a %zu-byte update table", bytes);
        return KN_ERR_OOM;
    }
    int64_t c = 0;
    for (int k = 0; k < g->n; k++) {
        const kn__kargs *a = &g->members[k];
        int first, ns = state_slots(a->node, &first);
        int64_t numel = kn__numel(a->node);
        for (int64_t at = 0; at < numel; at += KN_CUDA_UPDATE_CHUNK, c++) {
            kn__cuda_update_chunk *ch = &host[c];
            ch->p = (float *)a->src[0] + at;
            ch->g = (const float *)a->src[1] + at;
            ch->s1 = ns > 0 ? (float *)a->src[first] + at : NULL;
            ch->s2 = ns > 1 ? (float *)a->src[first + 1] + at : NULL;
            ch->n = numel - at < KN_CUDA_UPDATE_CHUNK ? numel - at : KN_CUDA_UPDATE_CHUNK;
        }
    }
    void *dev = NULL;
    kn_status st = kn__cuda_malloc(device, bytes, &dev, msg, size);
    if (!st)
        st = kn__cuda_status(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, s), "uploading an update table",
                             msg, size);
    if (!st) /* host is pageable and freed next */
        st = kn__cuda_status(cudaStreamSynchronize(s), "uploading an update table", msg, size);
    kn__free(host);
    if (st) {
        kn__cuda_free(device, dev);
        return st;
    }
    g->table = dev;
    return KN_OK;
}
