/* memplan.c — the memory planner: one arena for every intermediate buffer and every step's
 * scratch (kernel workspace + float64 copies of a fallback step).
 *  1. Storage: each live node that computes a value owns a buffer, except views and updates
 *     (they share input 0's storage: a reshape keeps its source alive until the view's last
 *     read; an update writes the parameter in place), in-place nodes (their input's storage),
 *     and parameters, constants and folded values (outside the arena).
 *  2. Liveness: a buffer lives from the step that first writes it to the last step that reads
 *     anything stored in it. Inputs are written before the run and outputs are read after it,
 *     so both live for the whole plan. A step's scratch lives during that step only.
 *  3. Layout: greedy by size (largest first, TFLite's "greedy by size" heuristic): each buffer
 *     goes into the smallest gap, among the buffers already placed that are live at the same
 *     time, that fits it (best fit), or on top of them. Offsets and sizes are 64-byte
 *     multiples. Without reuse every buffer gets its own space (the layout before planning).
 * Not here: deciding what runs in place (inplace.c). kn__memplan_check verifies a layout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/alloc.h"
#include "passes.h"

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

static bool meet(const kn__buffer *a, const kn__buffer *b) { return a->first <= b->last && b->first <= a->last; }

void kn__memplan_free(kn__memplan *mp)
{
    if (!mp)
        return;
    kn__free(mp->bufs);
    kn__free(mp->scratch);
    memset(mp, 0, sizeof *mp);
}

typedef struct sort_key {
    size_t bytes;
    int first, index;
} sort_key;

static int by_size(const void *x, const void *y)
{
    const sort_key *a = x, *b = y;
    if (a->bytes != b->bytes)
        return a->bytes > b->bytes ? -1 : 1;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return a->index - b->index;
}

/* Greedy best fit; placed[] keeps the placed buffers sorted by offset. */
static kn_status layout_greedy(kn__memplan *mp)
{
    int nb = mp->n_bufs;
    sort_key *order = kn__alloc(sizeof(sort_key) * (size_t)(nb + 1));
    int *placed = kn__alloc(sizeof(int) * (size_t)(nb + 1));
    if (!order || !placed) {
        kn__free(order);
        kn__free(placed);
        return KN_ERR_OOM;
    }
    for (int i = 0; i < nb; i++)
        order[i] = (sort_key){mp->bufs[i].bytes, mp->bufs[i].first, i};
    qsort(order, (size_t)nb, sizeof(sort_key), by_size);
    int n_placed = 0;
    for (int k = 0; k < nb; k++) {
        kn__buffer *b = &mp->bufs[order[k].index];
        size_t end = 0, best = SIZE_MAX, best_gap = SIZE_MAX;
        for (int q = 0; q < n_placed; q++) {
            const kn__buffer *o = &mp->bufs[placed[q]];
            if (!meet(b, o))
                continue;
            if (o->offset > end && o->offset - end >= b->bytes && o->offset - end < best_gap) {
                best_gap = o->offset - end;
                best = end;
            }
            if (o->offset + o->bytes > end)
                end = o->offset + o->bytes;
        }
        b->offset = best != SIZE_MAX ? best : end;
        int at = n_placed;
        while (at > 0 && mp->bufs[placed[at - 1]].offset > b->offset) {
            placed[at] = placed[at - 1];
            at--;
        }
        placed[at] = order[k].index;
        n_placed++;
    }
    kn__free(order);
    kn__free(placed);
    return KN_OK;
}

kn_status kn__memplan_build(kn__ir *ir, const size_t *scratch, bool reuse, kn__memplan *mp)
{
    memset(mp, 0, sizeof *mp);
    int n = ir->n, n_pos = ir->n_live;
    int *last = kn__alloc(sizeof(int) * (size_t)(n + 1));
    int *buf_of = kn__alloc(sizeof(int) * (size_t)(n + 1));
    mp->scratch = kn__alloc(sizeof(int) * (size_t)(n_pos + 1));
    mp->bufs = kn__alloc(sizeof(kn__buffer) * (size_t)(n + n_pos + 1));
    if (!last || !buf_of || !mp->scratch || !mp->bufs) {
        kn__free(last);
        kn__free(buf_of);
        kn__memplan_free(mp);
        return KN_ERR_OOM;
    }
    kn__ir_last_use(ir, last);
    /* 1. storage and buffers with their liveness */
    for (int i = 0; i < n; i++) {
        kn__ir_node *v = &ir->nodes[i];
        int op = v->node->op;
        buf_of[i] = -1;
        v->storage = -1;
        if (!(v->flags & KN__IR_LIVE) || (v->flags & KN__IR_FOLDED) || op == KN_OP_PARAM || op == KN_OP_CONST)
            continue;
        int mine = last[i] > v->pos ? last[i] : v->pos;
        int r = i;
        if (kn__op_flags[op] & KN_OPF_ALIAS)
            r = ir->nodes[v->src[0]].storage;
        else if (v->flags & KN__IR_INPLACE)
            r = ir->nodes[v->src[v->inplace_src]].storage;
        v->storage = r;
        if (r < 0)
            continue;
        if (r == i) {
            kn__buffer *b = &mp->bufs[buf_of[i] = mp->n_bufs++];
            size_t bytes = kn__nbytes(v->node);
            b->owner = i;
            b->first = op == KN_OP_INPUT ? 0 : v->pos;
            b->last = mine;
            b->bytes = align64(bytes ? bytes : 1);
            if (op == KN_OP_INPUT)
                mp->input_bytes += b->bytes;
            else if (v->flags & KN__IR_OUTPUT)
                mp->output_bytes += b->bytes;
            mp->naive_bytes += b->bytes;
        } else if (mp->bufs[buf_of[r]].last < mine) {
            mp->bufs[buf_of[r]].last = mine;
        }
    }
    for (int p = 0; p < n_pos; p++) {
        mp->scratch[p] = -1;
        if (!scratch || !scratch[p])
            continue;
        kn__buffer *b = &mp->bufs[mp->scratch[p] = mp->n_bufs++];
        b->owner = -1;
        b->first = b->last = p;
        b->bytes = align64(scratch[p]);
        if (b->bytes > mp->scratch_bytes)
            mp->scratch_bytes = b->bytes;
    }
    mp->naive_bytes += mp->scratch_bytes;
    /* 2. layout */
    kn_status st = KN_OK;
    if (reuse) {
        st = layout_greedy(mp);
    } else {
        size_t at = 0;
        for (int k = 0; k < mp->n_bufs; k++)
            if (mp->bufs[k].owner >= 0) {
                mp->bufs[k].offset = at;
                at += mp->bufs[k].bytes;
            }
        for (int k = 0; k < mp->n_bufs; k++)
            if (mp->bufs[k].owner < 0)
                mp->bufs[k].offset = at; /* one scratch region, used by one step at a time */
    }
    /* 3. arena size, peak of live bytes, offsets of every node */
    size_t *delta = st ? NULL : kn__calloc((size_t)n_pos + 2, sizeof(size_t));
    if (!st && !delta)
        st = KN_ERR_OOM;
    if (st) {
        kn__free(last);
        kn__free(buf_of);
        kn__memplan_free(mp);
        return st;
    }
    for (int k = 0; k < mp->n_bufs; k++) {
        const kn__buffer *b = &mp->bufs[k];
        if (b->offset + b->bytes > mp->arena_bytes)
            mp->arena_bytes = b->offset + b->bytes;
        int l = b->last < n_pos ? b->last : n_pos;
        delta[b->first] += b->bytes;
        delta[l + 1] -= b->bytes; /* unsigned wrap-around cancels out in the running sum */
    }
    size_t live = 0;
    for (int p = 0; p <= n_pos; p++) {
        live += delta[p];
        if (live > mp->peak_bytes)
            mp->peak_bytes = live;
    }
    for (int i = 0; i < n; i++) {
        kn__ir_node *v = &ir->nodes[i];
        v->offset = v->storage >= 0 ? mp->bufs[buf_of[v->storage]].offset : 0;
    }
    kn__free(delta);
    kn__free(last);
    kn__free(buf_of);
    return KN_OK;
}

int kn__memplan_check(const kn__memplan *mp, char *msg, size_t msg_size)
{
    int bad = 0;
    if (msg && msg_size)
        msg[0] = 0;
    for (int a = 0; a < mp->n_bufs; a++) {
        const kn__buffer *x = &mp->bufs[a];
        bool ok = x->offset % 64 == 0 && x->bytes % 64 == 0 && x->offset + x->bytes <= mp->arena_bytes &&
                  x->first <= x->last;
        if (!ok && !bad++ && msg)
            snprintf(msg, msg_size, "buffer %d (node %d): offset %zu, %zu bytes, live %d..%d: misaligned or outside "
                     "the %zu-byte arena", a, x->owner, x->offset, x->bytes, x->first, x->last, mp->arena_bytes);
        for (int b = a + 1; b < mp->n_bufs; b++) {
            const kn__buffer *y = &mp->bufs[b];
            if (!meet(x, y) || x->offset >= y->offset + y->bytes || y->offset >= x->offset + x->bytes)
                continue;
            if (!bad++ && msg)
                snprintf(msg, msg_size, "buffers of nodes %d and %d are live together (%d..%d, %d..%d) and overlap "
                         "([%zu, %zu) and [%zu, %zu))", x->owner, y->owner, x->first, x->last, y->first, y->last,
                         x->offset, x->offset + x->bytes, y->offset, y->offset + y->bytes);
        }
    }
    return bad;
}
