/* graph.c — the graph object: node arena, first-error recording, leaves (inputs, params,
 * constants), the contiguous parameter buffer and its initialisers, node queries. Op builders
 * live in src/ops/<family>.c; autodiff in autodiff.c. */
#include <stdio.h>
#include <string.h>

#include "../core/alloc.h"
#include "../core/core_internal.h"
#include "../ops/op_table.h"
#include "graph_internal.h"

/* Leaves have no check, grad or kernel: the plan binds their storage directly. */
const kn__op_info kn__opdef_INPUT = {0};
const kn__op_info kn__opdef_PARAM = {0};
const kn__op_info kn__opdef_CONST = {0};

struct kn__arena_chunk {
    kn__arena_chunk *next;
    size_t used, size;
    _Alignas(64) unsigned char data[];
};

void *kn__graph_arena(kn_graph *g, size_t bytes)
{
    bytes = (bytes + 63) & ~(size_t)63;
    kn__arena_chunk *c = g->arena;
    if (!c || c->size - c->used < bytes) {
        size_t size = bytes > 65536 ? bytes : 65536;
        kn__arena_chunk *n = kn__alloc(sizeof(kn__arena_chunk) + size);
        if (!n)
            return NULL;
        n->next = g->arena;
        n->used = 0;
        n->size = size;
        g->arena = c = n;
    }
    void *p = c->data + c->used;
    c->used += bytes;
    memset(p, 0, bytes);
    return p;
}

kn_graph *kn_graph_new(void)
{
    kn_graph *g = kn__calloc(1, sizeof(kn_graph));
    if (g)
        g->seed = 0x6b696c6eu; /* "kiln" */
    return g;
}

void kn_graph_free(kn_graph *g)
{
    if (!g)
        return;
    for (kn__arena_chunk *c = g->arena, *n; c; c = n) {
        n = c->next;
        kn__free(c);
    }
    kn__free(g->nodes);
    kn__free(g->param_data);
    kn__free(g->grads);
    kn__free(g);
}

kn_status kn_graph_status(const kn_graph *g) { return g ? g->status : KN_ERR_ARG; }
const char *kn_graph_error(const kn_graph *g) { return g ? g->msg : "no graph"; }
void kn_graph_clear_error(kn_graph *g)
{
    if (g) {
        g->status = KN_OK;
        g->msg[0] = 0;
    }
}
void kn_graph_set_seed(kn_graph *g, uint64_t seed) { if (g) g->seed = seed; }
uint64_t kn_graph_seed(const kn_graph *g) { return g ? g->seed : 0; }

kn_status kn__fail(kn_graph *g, kn_status code, const char *fmt, ...)
{
    if (g && g->status == KN_OK) {
        g->status = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->msg, sizeof g->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int64_t kn__numel(const kn_node *n)
{
    int64_t k = 1;
    for (int i = 0; i < n->ndim; i++)
        k *= n->shape[i];
    return k;
}

size_t kn__nbytes(const kn_node *n) { return (size_t)kn__numel(n) * kn_dtype_size(n->dtype); }

char *kn__shape_str(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = 0;
    k += (size_t)snprintf(buf + k, size - k, "[");
    for (int i = 0; i < ndim && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < size)
        snprintf(buf + k, size - k, "]");
    return buf;
}

const char *kn__shp(const kn_node *n)
{
    static _Thread_local char bufs[6][128];
    static _Thread_local int next;
    char *b = bufs[next];
    next = (next + 1) % 6;
    return kn__shape_str(n->ndim, n->shape, b, sizeof bufs[0]);
}

int kn__axis(int axis, int ndim)
{
    if (axis < 0)
        axis += ndim;
    return (axis < 0 || axis >= ndim) ? -1 : axis;
}

void kn__set_shape(kn_node *n, int ndim, const int64_t *shape)
{
    n->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        n->shape[i] = shape[i];
}

bool kn__same_shape(const kn_node *a, const kn_node *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

static kn_node *push_node(kn_graph *g, int op)
{
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 256;
        kn_node **nn = kn__realloc(g->nodes, (size_t)g->cap_nodes * sizeof(kn_node *),
                                   (size_t)cap * sizeof(kn_node *));
        if (!nn) {
            kn__fail(g, KN_ERR_OOM, "%s: out of memory growing the node list", kn__op_names[op]);
            return NULL;
        }
        g->nodes = nn;
        g->cap_nodes = cap;
    }
    kn_node *n = kn__graph_arena(g, sizeof(kn_node));
    if (!n) {
        kn__fail(g, KN_ERR_OOM, "%s: out of memory for a node", kn__op_names[op]);
        return NULL;
    }
    n->id = g->n_nodes;
    n->op = op;
    n->graph = g;
    n->name = "";
    g->nodes[g->n_nodes++] = n;
    return n;
}

kn_node *kn__node_new(kn_graph *g, int op, int nsrc, kn_node *const *src)
{
    if (!g)
        return NULL;
    for (int i = 0; i < nsrc; i++)
        if (!src[i])
            return NULL;
    if (nsrc < kn__op_min_src[op] || nsrc > kn__op_max_src[op]) {
        kn__fail(g, KN_ERR_ARG, "%s: got %d inputs, expected %d to %d", kn__op_names[op], nsrc,
                 kn__op_min_src[op], kn__op_max_src[op]);
        return NULL;
    }
    for (int i = 0; i < nsrc; i++) {
        if (src[i]->graph != g) {
            kn__fail(g, KN_ERR_ARG, "%s: input %d belongs to another graph", kn__op_names[op], i);
            return NULL;
        }
    }
    kn_node *n = push_node(g, op);
    if (!n)
        return NULL;
    n->nsrc = nsrc;
    for (int i = 0; i < nsrc; i++)
        n->src[i] = src[i];
    return n;
}

kn_node *kn__node_finish(kn_graph *g, kn_node *n)
{
    if (!n)
        return NULL;
    const kn__op_info *info = kn__op_table[n->op];
    kn_status st = info->check ? info->check(g, n) : KN_OK;
    if (st == KN_OK) {
        int64_t k = 1;
        for (int i = 0; i < n->ndim; i++) {
            if (n->shape[i] < 0 || (n->shape[i] && k > INT64_MAX / 16 / n->shape[i])) {
                st = kn__fail(g, KN_ERR_RANGE, "%s: output shape %s is too large", kn__op_names[n->op],
                              kn__shp(n));
                break;
            }
            k *= n->shape[i];
        }
    }
    if (st != KN_OK) {
        if (g->status == KN_OK) /* a check that forgot to say why */
            kn__fail(g, st, "%s: invalid call", kn__op_names[n->op]);
        if (g->n_nodes && g->nodes[g->n_nodes - 1] == n)
            g->n_nodes--;
        return NULL;
    }
    return n;
}

static kn_node *leaf(kn_graph *g, int op, const char *name, kn_dtype dt, int ndim, const int64_t *shape)
{
    if (!g)
        return NULL;
    const char *what = kn__op_names[op];
    if (kn_dtype_size(dt) == 0) {
        kn__fail(g, KN_ERR_DTYPE, "%s %s: invalid dtype %d", what, name ? name : "", (int)dt);
        return NULL;
    }
    if (ndim < 0 || ndim > KN_MAX_DIMS || (ndim > 0 && !shape)) {
        kn__fail(g, KN_ERR_ARG, "%s %s: %d dimensions, expected 0 to %d", what, name ? name : "", ndim,
                 KN_MAX_DIMS);
        return NULL;
    }
    int64_t k = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] && k > INT64_MAX / 16 / shape[i])) {
            char b[160];
            kn__fail(g, KN_ERR_SHAPE, "%s %s: shape %s has a negative or too large dimension", what,
                     name ? name : "", kn__shape_str(ndim, shape, b, sizeof b));
            return NULL;
        }
        k *= shape[i];
    }
    kn_node *n = push_node(g, op);
    if (!n)
        return NULL;
    n->dtype = dt;
    kn__set_shape(n, ndim, shape);
    if (name && *name) {
        char *s = kn__graph_arena(g, strlen(name) + 1);
        if (!s) {
            g->n_nodes--;
            kn__fail(g, KN_ERR_OOM, "%s %s: out of memory", what, name);
            return NULL;
        }
        strcpy(s, name);
        n->name = s;
    }
    return n;
}

kn_node *kn_graph_input(kn_graph *g, const char *name, kn_dtype dt, int ndim, const int64_t *shape)
{
    return leaf(g, KN_OP_INPUT, name, dt, ndim, shape);
}

kn_node *kn_graph_param(kn_graph *g, const char *name, kn_dtype dt, int ndim, const int64_t *shape,
                        bool trainable)
{
    kn_node *n = leaf(g, KN_OP_PARAM, name, dt, ndim, shape);
    if (!n)
        return NULL;
    size_t bytes = (kn__nbytes(n) + 63) & ~(size_t)63;
    if (g->param_bytes + bytes > g->param_cap) {
        size_t cap = g->param_cap ? g->param_cap : 4096;
        while (cap < g->param_bytes + bytes)
            cap *= 2;
        void *p = kn__realloc(g->param_data, g->param_bytes, cap);
        if (!p) {
            g->n_nodes--;
            kn__fail(g, KN_ERR_OOM, "param %s: out of memory for %zu bytes of parameters", n->name, cap);
            return NULL;
        }
        g->param_data = p;
        g->param_cap = cap;
    }
    n->param_offset = g->param_bytes;
    if (bytes)
        memset((char *)g->param_data + g->param_bytes, 0, bytes);
    g->param_bytes += bytes;
    if (trainable)
        n->flags |= KN_NODE_TRAINABLE;
    return n;
}

kn_node *kn_graph_const(kn_graph *g, kn_dtype dt, int ndim, const int64_t *shape, const void *data)
{
    kn_node *n = leaf(g, KN_OP_CONST, NULL, dt, ndim, shape);
    if (!n)
        return NULL;
    size_t bytes = kn__nbytes(n);
    n->const_data = kn__graph_arena(g, bytes ? bytes : 1);
    if (!n->const_data) {
        g->n_nodes--;
        kn__fail(g, KN_ERR_OOM, "const: out of memory for %zu bytes", bytes);
        return NULL;
    }
    if (data)
        memcpy(n->const_data, data, bytes);
    return n;
}

kn_node *kn_graph_scalar(kn_graph *g, kn_dtype dt, double value)
{
    kn_node *n = kn_graph_const(g, dt, 0, NULL, NULL);
    if (n)
        kn__store_f64(n->const_data, dt, 0, value);
    return n;
}

kn_node *kn__scalar_like(kn_graph *g, const kn_node *like, double v)
{
    return kn_graph_scalar(g, like->dtype, v);
}

kn_status kn__graph_params_to_host(kn_graph *g, char *msg, size_t size)
{
    if (!g || !g->param_holder)
        return KN_OK;
    char local[256];
    kn_status st = g->param_pull(g->param_holder, msg ? msg : local, msg ? size : sizeof local);
    g->param_holder = NULL; /* even on failure: the device copy is unusable then */
    return st;
}

kn_status kn_graph_sync_params(kn_graph *g, char *msg, size_t size)
{
    if (msg && size)
        msg[0] = 0;
    return g ? kn__graph_params_to_host(g, msg, size) : KN_ERR_ARG;
}

void *kn_graph_param_data(kn_graph *g, const kn_node *n)
{
    if (!g || !n || n->graph != g || n->op != KN_OP_PARAM)
        return NULL;
    if (g->param_holder && kn__graph_params_to_host(g, NULL, 0) != KN_OK)
        return NULL;
    return (char *)g->param_data + n->param_offset;
}

kn_status kn_graph_param_tensor(kn_graph *g, const kn_node *n, kn_tensor **out)
{
    void *p = kn_graph_param_data(g, n);
    if (!p || !out)
        return KN_ERR_ARG;
    return kn_tensor_wrap(out, p, n->dtype, n->ndim, n->shape);
}

int kn_graph_params(kn_graph *g, bool trainable_only, kn_node **out, int max)
{
    int k = 0;
    for (int i = 0; g && i < g->n_nodes; i++) {
        kn_node *n = g->nodes[i];
        if (n->op != KN_OP_PARAM || (trainable_only && !(n->flags & KN_NODE_TRAINABLE)))
            continue;
        if (out && k < max)
            out[k] = n;
        k++;
    }
    return k;
}

size_t kn_graph_param_bytes(const kn_graph *g) { return g ? g->param_bytes : 0; }

kn_node *kn_graph_find(kn_graph *g, const char *name)
{
    for (int i = 0; g && name && i < g->n_nodes; i++)
        if (strcmp(g->nodes[i]->name, name) == 0)
            return g->nodes[i];
    return NULL;
}

kn_status kn_graph_param_init(kn_graph *g, kn_node *p, kn_init how, double a, double b)
{
    if (!g || !p || p->graph != g || p->op != KN_OP_PARAM)
        return KN_ERR_ARG;
    kn_tensor *t;
    kn_status st = kn_graph_param_tensor(g, p, &t);
    if (st)
        return st;
    /* The stream comes from the parameter's name (FNV-1a), so the same model gets the same
     * initial values in any graph that holds it; unnamed params use their node id. */
    uint64_t stream = 0x1000000ull + (uint64_t)p->id;
    if (p->name[0]) {
        stream = 0xcbf29ce484222325ull;
        for (const char *c = p->name; *c; c++)
            stream = (stream ^ (unsigned char)*c) * 0x100000001b3ull;
    }
    switch (how) {
    case KN_INIT_ZEROS: st = kn_tensor_fill(t, 0); break;
    case KN_INIT_ONES: st = kn_tensor_fill(t, 1); break;
    case KN_INIT_CONST: st = kn_tensor_fill(t, a); break;
    case KN_INIT_UNIFORM: st = kn_tensor_fill_uniform(t, g->seed, stream, a, b); break;
    case KN_INIT_NORMAL: st = kn_tensor_fill_normal(t, g->seed, stream, a, b); break;
    case KN_INIT_KAIMING_UNIFORM: {
        int64_t fan_in = p->ndim > 0 && p->shape[0] ? kn__numel(p) / p->shape[0] : 1;
        double bound = 1.0 / sqrt((double)(fan_in ? fan_in : 1));
        st = kn_tensor_fill_uniform(t, g->seed, stream, -bound, bound);
        break;
    }
    default: st = KN_ERR_ARG;
    }
    kn_tensor_free(t);
    return st;
}

kn_dtype kn_node_dtype(const kn_node *n) { return n ? n->dtype : KN_F32; }
int kn_node_ndim(const kn_node *n) { return n ? n->ndim : 0; }
int64_t kn_node_dim(const kn_node *n, int i)
{
    if (!n)
        return 0;
    i = kn__axis(i, n->ndim);
    return i < 0 ? 0 : n->shape[i];
}
int64_t kn_node_numel(const kn_node *n) { return n ? kn__numel(n) : 0; }
const char *kn_node_name(const kn_node *n) { return n ? n->name : ""; }
const char *kn_node_op_name(const kn_node *n) { return n ? kn__op_names[n->op] : "?"; }
int kn_node_id(const kn_node *n) { return n ? n->id : -1; }
char *kn_node_shape_str(const kn_node *n, char *buf, size_t size)
{
    if (!buf || !size)
        return buf;
    if (!n) {
        snprintf(buf, size, "(null)");
        return buf;
    }
    return kn__shape_str(n->ndim, n->shape, buf, size);
}
