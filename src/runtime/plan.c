/* plan.c — compiles a graph into a plan and runs it. Compile: mark the nodes the outputs need
 * (optimizer updates run when they are among the outputs), keep creation order (topological), pick
 * a kernel per node (backend kernel, else the float64 reference on converted copies), lay out
 * all intermediate buffers, conversion copies and one shared workspace in a single arena.
 * Run: refresh parameter addresses if the graph's parameter buffer moved, then call the
 * kernels in order. No allocation happens while running.
 * Not here yet (later issues): buffer reuse by liveness, fusion, parallel sub-graphs. */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "../backend/backend.h"
#include "../core/alloc.h"
#include "../core/core_internal.h"
#include "kiln/plan.h"

typedef struct plan_step {
    kn_node *node;
    kn__kernel_fn fn;
    kn__kargs args;
    bool fallback;            /* reference kernel on float64 copies */
    void *orig_src[KN_MAX_SRC];
    void *orig_dst;
} plan_step;

struct kn_plan {
    kn_graph *graph;
    kn_plan_opts opts;
    size_t *offset;       /* per node id: arena offset, or SIZE_MAX */
    int n_ids;
    plan_step *steps;
    int n_steps, n_fallbacks;
    unsigned char *arena;
    size_t arena_bytes;
    const void *param_base; /* graph->param_data when addresses were resolved */
    uint64_t step_count;
    double flops;
    char msg[1024];
};

static _Thread_local char last_error[1024];

const char *kn_plan_last_error(void) { return last_error; }

static kn_status compile_fail(kn_plan *p, kn_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static kn_status compile_fail(kn_plan *p, kn_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    kn_plan_free(p);
    return st;
}

void kn_plan_free(kn_plan *p)
{
    if (!p)
        return;
    kn__free(p->offset);
    kn__free(p->steps);
    kn__free(p->arena);
    kn__free(p);
}

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

/* Address of node id's value, given the arena and graph storage. */
static void *node_addr(kn_plan *p, const kn_node *n)
{
    if (n->op == KN_OP_PARAM)
        return (char *)p->graph->param_data + n->param_offset;
    if (n->op == KN_OP_CONST)
        return n->const_data;
    if ((kn__op_flags[n->op] & KN_OPF_ALIAS))
        return node_addr(p, n->src[0]);
    return p->offset[n->id] == SIZE_MAX ? NULL : p->arena + p->offset[n->id];
}

/* (Re)computes every address the steps use; called at compile and when params moved. */
static void resolve(kn_plan *p)
{
    for (int s = 0; s < p->n_steps; s++) {
        plan_step *st = &p->steps[s];
        kn_node *n = st->node;
        for (int i = 0; i < n->nsrc; i++)
            st->orig_src[i] = node_addr(p, n->src[i]);
        st->orig_dst = node_addr(p, n);
        for (int i = 0; i < n->nsrc; i++)
            if (!st->fallback || !kn_dtype_is_float(n->src[i]->dtype))
                st->args.src[i] = st->orig_src[i];
        if (!st->fallback || !kn_dtype_is_float(n->dtype))
            st->args.dst = st->orig_dst;
    }
    p->param_base = p->graph->param_data;
}

static bool is_f64_ready(const kn_node *n)
{
    if (kn_dtype_is_float(n->dtype) && n->dtype != KN_F64)
        return false;
    for (int i = 0; i < n->nsrc; i++)
        if (kn_dtype_is_float(n->src[i]->dtype) && n->src[i]->dtype != KN_F64)
            return false;
    return true;
}

kn_status kn_plan_compile(kn_plan **out, kn_graph *g, kn_node *const *outputs, int n_outputs,
                          const kn_plan_opts *opts)
{
    last_error[0] = 0;
    if (!out)
        return KN_ERR_ARG;
    *out = NULL;
    if (!g || n_outputs < 0 || (n_outputs > 0 && !outputs)) {
        snprintf(last_error, sizeof last_error, "plan: NULL graph or outputs");
        return KN_ERR_ARG;
    }
    if (g->status) {
        snprintf(last_error, sizeof last_error, "plan: the graph has a build error: %s", g->msg);
        return g->status;
    }
    kn_plan *p = kn__calloc(1, sizeof(kn_plan));
    if (!p)
        return compile_fail(NULL, KN_ERR_OOM, "plan: out of memory");
    p->graph = g;
    if (opts)
        p->opts = *opts;
    if (p->opts.backend == KN_BACKEND_CUDA)
        return compile_fail(p, KN_ERR_UNSUPPORTED,
                            "plan: the CUDA backend is not wired into plans yet; use --device cpu");
    if (p->opts.backend != KN_BACKEND_CPU && p->opts.backend != KN_BACKEND_REF)
        return compile_fail(p, KN_ERR_ARG, "plan: unknown backend %d", (int)p->opts.backend);
    int n_ids = p->n_ids = g->n_nodes;
    bool *need = kn__calloc((size_t)n_ids, sizeof(bool));
    p->offset = kn__alloc((size_t)n_ids * sizeof(size_t));
    p->steps = kn__calloc((size_t)n_ids, sizeof(plan_step));
    if (!need || !p->offset || !p->steps) {
        kn__free(need);
        return compile_fail(p, KN_ERR_OOM, "plan: out of memory for %d nodes", n_ids);
    }
    for (int i = 0; i < n_ids; i++)
        p->offset[i] = SIZE_MAX;
    for (int i = 0; i < n_outputs; i++) {
        if (!outputs[i] || outputs[i]->graph != g) {
            kn__free(need);
            return compile_fail(p, KN_ERR_ARG, "plan: output %d is NULL or from another graph", i);
        }
        need[outputs[i]->id] = true;
    }
    /* Creation order is topological, so one backward sweep marks every dependency. */
    for (int id = n_ids - 1; id >= 0; id--)
        if (need[id])
            for (int s = 0; s < g->nodes[id]->nsrc; s++)
                need[g->nodes[id]->src[s]->id] = true;

    /* Lay out buffers and pick kernels. */
    size_t arena = 0, copies = 0, work = 0;
    for (int id = 0; id < n_ids; id++) {
        kn_node *n = g->nodes[id];
        unsigned fl = kn__op_flags[n->op];
        if (!need[id] || n->op == KN_OP_PARAM || n->op == KN_OP_CONST)
            continue;
        if (!(fl & KN_OPF_ALIAS)) {
            p->offset[id] = arena;
            arena += align64(kn__nbytes(n) ? kn__nbytes(n) : 1);
        }
        if (fl & KN_OPF_LEAF)
            continue;
        p->flops += kn__op_table[n->op]->flops ? kn__op_table[n->op]->flops(n) : 0;
        if ((fl & KN_OPF_ALIAS) && !(fl & KN_OPF_MUTATES))
            continue; /* a pure view: no kernel */
        plan_step *st = &p->steps[p->n_steps++];
        st->node = n;
        const kn__backend_kernel *k = NULL;
        if (p->opts.backend == KN_BACKEND_CPU && kn__cpu_supports(n))
            k = kn__cpu_kernel(n->op);
        size_t ws = 0;
        if (k) {
            st->fn = k->fn;
            ws = k->workspace ? k->workspace(n) : 0;
        } else {
            st->fn = kn__op_table[n->op]->ref;
            ws = kn__op_table[n->op]->ref_workspace ? kn__op_table[n->op]->ref_workspace(n) : 0;
            st->fallback = !is_f64_ready(n);
            if (st->fallback) {
                p->n_fallbacks++;
                /* float64 copies of every floating input and of the output */
                for (int i = 0; i < n->nsrc; i++)
                    if (kn_dtype_is_float(n->src[i]->dtype))
                        copies += align64((size_t)kn__numel(n->src[i]) * 8 + 1);
                if (kn_dtype_is_float(n->dtype))
                    copies += align64((size_t)kn__numel(n) * 8 + 1);
            }
        }
        if (!st->fn) {
            kn__free(need);
            return compile_fail(p, KN_ERR_UNSUPPORTED, "plan: op %s has no kernel", kn__op_names[n->op]);
        }
        if (ws > work)
            work = ws;
    }
    kn__free(need);
    size_t copy_off = arena;
    arena += copies;
    size_t work_off = arena;
    arena += align64(work + 1);
    p->arena_bytes = arena;
    p->arena = kn__alloc(arena);
    if (!p->arena)
        return compile_fail(p, KN_ERR_OOM, "plan: out of memory for a %zu-byte arena", arena);
    memset(p->arena, 0, arena);

    /* Second pass: float64 fallback copies sit after all node buffers, in step order. */
    size_t cursor = copy_off;
    for (int s = 0; s < p->n_steps; s++) {
        plan_step *st = &p->steps[s];
        kn_node *n = st->node;
        st->args.node = n;
        st->args.work = p->arena + work_off;
        st->args.seed = g->seed;
        st->args.training = p->opts.training;
        st->args.threads = p->opts.threads;
        st->args.err = p->msg;
        st->args.err_size = sizeof p->msg;
        if (!st->fallback)
            continue;
        for (int i = 0; i < n->nsrc; i++) {
            if (!kn_dtype_is_float(n->src[i]->dtype))
                continue;
            st->args.src[i] = p->arena + cursor;
            cursor += align64((size_t)kn__numel(n->src[i]) * 8 + 1);
        }
        if (kn_dtype_is_float(n->dtype)) {
            st->args.dst = p->arena + cursor;
            cursor += align64((size_t)kn__numel(n) * 8 + 1);
        }
    }
    resolve(p);
    *out = p;
    return KN_OK;
}

static void refresh(kn_plan *p)
{
    if (p->graph->param_data != p->param_base)
        resolve(p);
}

kn_status kn_plan_run(kn_plan *p)
{
    if (!p)
        return KN_ERR_ARG;
    p->msg[0] = 0;
    refresh(p);
    if (p->opts.threads > 0)
        omp_set_num_threads(p->opts.threads);
    for (int s = 0; s < p->n_steps; s++) {
        plan_step *st = &p->steps[s];
        kn_node *n = st->node;
        st->args.step = p->step_count;
        if (st->fallback)
            for (int i = 0; i < n->nsrc; i++)
                if (kn_dtype_is_float(n->src[i]->dtype))
                    kn_convert(st->args.src[i], KN_F64, st->orig_src[i], n->src[i]->dtype, kn__numel(n->src[i]));
        kn_status rc = st->fn(&st->args);
        if (rc) {
            char inner[sizeof p->msg];
            memcpy(inner, p->msg, sizeof inner);
            snprintf(p->msg, sizeof p->msg, "%s (node %d%s%s): %s", kn__op_names[n->op], n->id,
                     n->name[0] ? " " : "", n->name, inner[0] ? inner : kn_status_name(rc));
            return rc;
        }
        if (st->fallback) {
            if (kn__op_flags[n->op] & KN_OPF_MUTATES)
                for (int i = 0; i < n->nsrc; i++)
                    if (kn_dtype_is_float(n->src[i]->dtype))
                        kn_convert(st->orig_src[i], n->src[i]->dtype, st->args.src[i], KN_F64, kn__numel(n->src[i]));
            if (kn_dtype_is_float(n->dtype))
                kn_convert(st->orig_dst, n->dtype, st->args.dst, KN_F64, kn__numel(n));
        }
    }
    p->step_count++;
    return KN_OK;
}

static bool in_plan(const kn_plan *p, const kn_node *n)
{
    return p && n && n->graph == p->graph && n->id < p->n_ids;
}

kn_status kn_plan_set_input(kn_plan *p, const kn_node *input, const void *data, size_t bytes)
{
    void *dst = kn_plan_input_data(p, input);
    if (!dst) {
        if (p)
            snprintf(p->msg, sizeof p->msg, "set_input: node %s is not an input of this plan",
                     input ? input->name : "(null)");
        return KN_ERR_ARG;
    }
    if (bytes != kn__nbytes(input) || (!data && bytes)) {
        snprintf(p->msg, sizeof p->msg, "set_input: input %s %s %s needs %zu bytes, got %zu", input->name,
                 kn_dtype_name(input->dtype), kn__shp(input), kn__nbytes(input), bytes);
        return KN_ERR_SHAPE;
    }
    memcpy(dst, data, bytes);
    return KN_OK;
}

void *kn_plan_input_data(kn_plan *p, const kn_node *input)
{
    if (!in_plan(p, input) || input->op != KN_OP_INPUT || p->offset[input->id] == SIZE_MAX)
        return NULL;
    return p->arena + p->offset[input->id];
}

const void *kn_plan_data(kn_plan *p, const kn_node *n)
{
    if (!in_plan(p, n))
        return NULL;
    refresh(p);
    if (n->op == KN_OP_PARAM || n->op == KN_OP_CONST)
        return node_addr(p, n);
    if ((kn__op_flags[n->op] & KN_OPF_ALIAS)) {
        const kn_node *r = n;
        while (kn__op_flags[r->op] & KN_OPF_ALIAS)
            r = r->src[0];
        if (r->op != KN_OP_PARAM && r->op != KN_OP_CONST && p->offset[r->id] == SIZE_MAX)
            return NULL;
        return node_addr(p, n);
    }
    return p->offset[n->id] == SIZE_MAX ? NULL : p->arena + p->offset[n->id];
}

kn_status kn_plan_tensor(kn_plan *p, const kn_node *n, kn_tensor **out)
{
    const void *d = kn_plan_data(p, n);
    if (!d || !out)
        return KN_ERR_ARG;
    return kn_tensor_wrap(out, (void *)d, n->dtype, n->ndim, n->shape);
}

double kn_plan_scalar(kn_plan *p, const kn_node *n)
{
    const void *d = kn_plan_data(p, n);
    return d ? kn__load_f64(d, n->dtype, 0) : NAN;
}

const char *kn_plan_error(const kn_plan *p) { return p ? p->msg : "no plan"; }
size_t kn_plan_arena_bytes(const kn_plan *p) { return p ? p->arena_bytes : 0; }
int kn_plan_num_steps(const kn_plan *p) { return p ? p->n_steps : 0; }
int kn_plan_num_fallbacks(const kn_plan *p) { return p ? p->n_fallbacks : 0; }
uint64_t kn_plan_step_count(const kn_plan *p) { return p ? p->step_count : 0; }
void kn_plan_set_step_count(kn_plan *p, uint64_t s) { if (p) p->step_count = s; }
double kn_plan_flops(const kn_plan *p) { return p ? p->flops : 0; }
