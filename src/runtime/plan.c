/* plan.c — compiles a graph into a plan and runs it. Compile: build the plan-level IR of the
 * graph (src/passes), keep what the outputs need (optimizer updates run when they are among
 * the outputs), run the passes of the pipeline (docs/passes.md: CSE, constant folding, each
 * followed by dead-node removal; fusion; then in-place reuse and the memory planner), pick a kernel
 * per remaining node (backend kernel, else the float64 reference on converted copies), and
 * allocate the one arena the planner laid out. Run: refresh parameter addresses if the
 * graph's parameter buffer moved, then call the kernels in order. No allocation happens while
 * running. Not here: the passes themselves (src/passes/), parallel sub-graphs, the device side
 * of CUDA plans (src/backend/cuda/plan_cuda.c through plan_device.h). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backend/cpu/sgemm.h"
#include "../core/alloc.h"
#include "../core/core_internal.h"
#include "../passes/passes.h"
#include "plan_device.h"

typedef struct plan_step {
    int v;                    /* IR index */
    kn__kernel_fn fn;
    kn__kargs args;
    bool fallback;            /* reference kernel on float64 copies */
    kn__epilogue epi;         /* fused batch norm / activation (args.epi points here when used) */
    void *orig_src[KN_MAX_SRC];
    void *orig_dst;
    double seconds;           /* opts.profile: time in this step over the profiled runs */
} plan_step;

struct kn_plan {
    kn_graph *graph;
    kn_plan_opts opts;
    unsigned passes;      /* KN_PASS_* that ran */
    kn__ir ir;
    kn__memplan mem;
    plan_step *steps;
    int n_steps, n_fallbacks;
    unsigned char *arena;
    size_t arena_bytes;
    const void *param_base; /* graph->param_data when addresses were resolved */
    uint64_t step_count;
    uint64_t profiled_runs;   /* opts.profile: runs since compiling or kn_plan_reset_profile */
    double flops;
    kn__cuda_plan *dev;   /* KN_BACKEND_CUDA: the device side (plan_device.h) */
    bool pending;         /* a kn_plan_run_async run not yet waited for */
    size_t param_bytes;   /* graph->param_bytes at compile */
    char msg[1024];
};

static _Thread_local char last_error[1024];

const char *kn_plan_last_error(void) { return last_error; }

/* Whether a CUDA plan runs node n on the device (the fusion pass asks before fusing). */
static bool runs_on_cuda(const kn_node *n)
{
    size_t ws;
    return kn__cuda_step_supported(n, &ws);
}

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
    kn__cuda_plan_free(p->dev); /* first: it hands the parameters back to the host */
    kn__ir_free(&p->ir);
    kn__memplan_free(&p->mem);
    kn__free(p->steps);
    kn__free(p->arena);
    kn__free(p);
}

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

const void *kn__plan_addr(const kn_plan *p, int i)
{
    i = kn__ir_rep(&p->ir, i);
    const kn__ir_node *v = &p->ir.nodes[i];
    const kn_node *n = v->node;
    if (v->flags & KN__IR_FOLDED)
        return v->value;
    if (n->op == KN_OP_PARAM)
        return (char *)p->graph->param_data + n->param_offset;
    if (n->op == KN_OP_CONST)
        return n->const_data;
    if (!(v->flags & KN__IR_LIVE))
        return NULL;
    if (kn__op_flags[n->op] & KN_OPF_ALIAS)
        return kn__plan_addr(p, v->src[0]);
    return v->storage >= 0 ? p->arena + v->offset : NULL;
}

const kn__ir *kn__plan_ir(const kn_plan *p) { return p ? &p->ir : NULL; }
const kn__memplan *kn__plan_memplan(const kn_plan *p) { return p ? &p->mem : NULL; }
const unsigned char *kn__plan_arena(const kn_plan *p) { return p ? p->arena : NULL; }

/* (Re)computes every address the steps use; called at compile and when params moved. */
static void resolve(kn_plan *p)
{
    for (int s = 0; s < p->n_steps; s++) {
        plan_step *st = &p->steps[s];
        const kn__ir_node *v = &p->ir.nodes[st->v];
        const kn_node *n = kn__ir_exec(v);
        for (int i = 0; i < v->nsrc; i++) /* the IR's inputs: a chain's are its external inputs */
            st->orig_src[i] = (void *)kn__plan_addr(p, v->src[i]);
        st->orig_dst = (void *)kn__plan_addr(p, st->v);
        for (int i = 0; i < v->nsrc; i++)
            if (!st->fallback || !kn_dtype_is_float(n->src[i]->dtype))
                st->args.src[i] = st->orig_src[i];
        if (!st->fallback || !kn_dtype_is_float(n->dtype))
            st->args.dst = st->orig_dst;
        if (v->fused_bn >= 0) { /* (x, gamma, beta, running_mean, running_var) */
            const kn__ir_node *bn = &p->ir.nodes[v->fused_bn];
            st->epi.bn_gamma = kn__plan_addr(p, bn->src[1]);
            st->epi.bn_beta = kn__plan_addr(p, bn->src[2]);
            st->epi.bn_mean = kn__plan_addr(p, bn->src[3]);
            st->epi.bn_var = kn__plan_addr(p, bn->src[4]);
        }
    }
    p->param_base = p->graph->param_data;
}

/* The passes to run: opts->passes, else KILN_PASSES, else all. false on a bad KILN_PASSES. */
static bool pick_passes(unsigned requested, unsigned *out)
{
    if (requested) {
        *out = requested & KN_PASS_ALL;
        return true;
    }
    const char *env = getenv("KILN_PASSES");
    *out = KN_PASS_ALL;
    if (!env || !*env || !strcmp(env, "all"))
        return true;
    *out = 0;
    if (!strcmp(env, "none"))
        return true;
    static const char *const names[] = {"dce", "cse", "fold", "inplace", "memplan", "fuse"}; /* bit order */
    for (const char *s = env; *s;) {
        size_t len = strcspn(s, ",");
        bool found = false;
        for (unsigned k = 0; k < sizeof names / sizeof names[0]; k++)
            if (len == strlen(names[k]) && !strncmp(s, names[k], len)) {
                *out |= 1u << k;
                found = true;
            }
        if (!found)
            return false;
        s += len + (s[len] == ',');
    }
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
    if ((unsigned)p->opts.backend > KN_BACKEND_AUTO)
        return compile_fail(p, KN_ERR_ARG, "plan: unknown backend %d", (int)p->opts.backend);
    char dev_msg[512];
    kn_status dst = kn_device_resolve(&p->opts.backend, &p->opts.device, dev_msg, sizeof dev_msg);
    if (dst)
        return compile_fail(p, dst, "plan: %s", dev_msg);
    bool cuda = p->opts.backend == KN_BACKEND_CUDA;
    if (cuda && p->opts.debug_numerics)
        return compile_fail(p, KN_ERR_UNSUPPORTED,
                            "plan: debug_numerics checks every value on the host: use the CPU backend "
                            "(--device cpu) to find where a NaN starts");
    /* A CUDA plan's host side (folding, fallback steps) uses the CPU kernels. */
    kn_backend_kind host_backend = cuda ? KN_BACKEND_CPU : p->opts.backend;
    /* libraries the CPU kernels load on first use (BLIS) are loaded now, not in a step */
    if (!cuda)
        (void)kn__blis_sgemm_available();
    p->param_bytes = g->param_bytes;
    if (!pick_passes(p->opts.passes, &p->passes))
        return compile_fail(p, KN_ERR_ARG,
                            "plan: KILN_PASSES='%s': expected none, all, or a comma list of dce, cse, fold, "
                            "fuse, inplace, memplan", getenv("KILN_PASSES"));
    char why[256];
    kn_status st = kn__ir_build(&p->ir, g, outputs, n_outputs, host_backend, p->opts.training, why, sizeof why);
    if (st)
        return compile_fail(p, st, "%s", why);

    /* The pipeline (docs/passes.md). The first sweep defines the plan: the outputs' cone. */
    kn__ir *ir = &p->ir;
    kn__pass_dce(ir);
    for (int i = 0; i < ir->n; i++)
        ir->cone += (ir->nodes[i].flags & KN__IR_LIVE) != 0;
    bool dce = p->passes & KN_PASS_DCE;
    if (p->passes & KN_PASS_CSE) {
        if (kn__pass_cse(ir) < 0)
            return compile_fail(p, KN_ERR_OOM, "plan: out of memory in common-subexpression elimination");
        ir->n_dead += dce ? kn__pass_dce(ir) : 0;
    }
    if (p->passes & KN_PASS_FOLD) {
        if (p->opts.threads > 0)
            omp_set_num_threads(p->opts.threads); /* fold with the thread count runs use */
        if (kn__pass_fold(ir) < 0)
            return compile_fail(p, KN_ERR_OOM, "plan: out of memory in constant folding");
        ir->n_dead += dce ? kn__pass_dce(ir) : 0;
        kn__ir_drop_dead_values(ir);
    }
    /* CUDA plans: chains (chain.cu) and linear → relu (cuBLASLt's epilogue) only */
    if ((p->passes & KN_PASS_FUSE) && kn__pass_fuse(ir, !p->opts.debug_numerics, cuda ? runs_on_cuda : NULL) < 0)
        return compile_fail(p, KN_ERR_OOM, "plan: out of memory in fusion");
    kn__ir_schedule(ir);

    /* Steps and their kernels; scratch per position (workspace + float64 copies). */
    int n_pos = ir->n_live;
    p->steps = kn__calloc((size_t)(n_pos ? n_pos : 1), sizeof(plan_step));
    size_t *scratch = kn__calloc((size_t)(n_pos ? n_pos : 1), sizeof(size_t));
    size_t *work_of = kn__calloc((size_t)(n_pos ? n_pos : 1), sizeof(size_t));
    if (!p->steps || !scratch || !work_of) {
        kn__free(scratch);
        kn__free(work_of);
        return compile_fail(p, KN_ERR_OOM, "plan: out of memory for %d steps", n_pos);
    }
    for (int i = 0; i < ir->n; i++) {
        const kn__ir_node *v = &ir->nodes[i];
        const kn_node *n = kn__ir_exec(v);
        unsigned fl = kn__op_flags[n->op];
        if (!(v->flags & KN__IR_LIVE) || (v->flags & KN__IR_FOLDED) || (fl & KN_OPF_LEAF))
            continue;
        p->flops += kn__op_table[n->op]->flops ? kn__op_table[n->op]->flops(n) : 0;
        for (int k = 0; k < 2 + (v->chain ? v->chain->n_ops - 1 : 0); k++) { /* fused ops still compute */
            int f = k == 0 ? v->fused_bn : k == 1 ? v->fused_act : -1;
            const kn_node *fn = k >= 2 ? v->chain->ops[k - 2].node : f >= 0 ? ir->nodes[f].node : NULL;
            p->flops += fn && kn__op_table[fn->op]->flops ? kn__op_table[fn->op]->flops(fn) : 0;
        }
        if (kn__ir_is_view(v))
            continue; /* no kernel */
        plan_step *stp = &p->steps[p->n_steps++];
        stp->v = i;
        size_t ws = 0;
        if (v->chain) {
            stp->fn = kn__cpu_chain_run; /* a stack block buffer: no workspace */
            stp->args.chain = v->chain;
        } else if (kn__pick_kernel(n, host_backend, &stp->fn, &ws, &stp->fallback)) {
            kn__free(scratch);
            kn__free(work_of);
            return compile_fail(p, KN_ERR_UNSUPPORTED, "plan: op %s has no kernel", kn__op_names[n->op]);
        }
        work_of[v->pos] = ws;
        scratch[v->pos] = ws ? align64(ws) : 0;
        if (stp->fallback) {
            p->n_fallbacks++;
            scratch[v->pos] += kn__fallback_copy_bytes(n);
        }
        size_t cws = 0; /* the device arena has the host layout: room for either scratch */
        if (cuda && kn__cuda_step_supported(n, &cws) && align64(cws) > scratch[v->pos])
            scratch[v->pos] = align64(cws);
    }
    if (p->opts.debug_numerics)
        p->passes &= ~KN_PASS_INPLACE; /* keep inputs intact so the check can tell where a NaN began */
    if (p->passes & KN_PASS_INPLACE) {
        if (kn__pass_inplace(ir) < 0) {
            kn__free(scratch);
            kn__free(work_of);
            return compile_fail(p, KN_ERR_OOM, "plan: out of memory in in-place reuse");
        }
    }
    st = kn__memplan_build(ir, scratch, p->passes & KN_PASS_MEMPLAN, &p->mem);
    kn__free(scratch);
    if (st) {
        kn__free(work_of);
        return compile_fail(p, st, "plan: out of memory in the memory planner");
    }
    p->arena_bytes = p->mem.arena_bytes ? p->mem.arena_bytes : 64;
    /* on CUDA the arena is the staging area the device copies from and to: whole pages, so
     * that it can be pinned without touching anyone else's memory */
    p->arena = cuda ? kn__alloc_pages(p->arena_bytes) : kn__alloc(p->arena_bytes);
    if (!p->arena) {
        kn__free(work_of);
        return compile_fail(p, KN_ERR_OOM, "plan: out of memory for a %zu-byte arena", p->arena_bytes);
    }
    memset(p->arena, 0, p->arena_bytes);

    /* Kernel arguments; a step's scratch holds its workspace, then its float64 copies. */
    for (int s = 0; s < p->n_steps; s++) {
        plan_step *stp = &p->steps[s];
        const kn__ir_node *v = &ir->nodes[stp->v];
        const kn_node *n = kn__ir_exec(v);
        int b = p->mem.scratch[v->pos];
        unsigned char *base = b >= 0 ? p->arena + p->mem.bufs[b].offset : p->arena;
        stp->args.node = n;
        stp->args.work = work_of[v->pos] ? base : NULL;
        stp->args.seed = g->seed;
        stp->args.training = p->opts.training;
        stp->args.threads = p->opts.threads;
        stp->args.err = p->msg;
        stp->args.err_size = sizeof p->msg;
        if (v->flags & KN__IR_FUSED) { /* pointers of a fused batch norm: resolve() */
            const kn_node *act = v->fused_act >= 0 ? ir->nodes[v->fused_act].node : NULL;
            stp->epi.act = act ? act->op : -1;
            stp->epi.a = act ? (float)act->af[0] : 0.0f;
            stp->epi.b = act ? (float)act->af[1] : 0.0f;
            stp->epi.bn_eps = v->fused_bn >= 0 ? ir->nodes[v->fused_bn].node->af[1] : 0.0;
            stp->args.epi = &stp->epi;
        }
        if (!stp->fallback)
            continue;
        size_t cursor = work_of[v->pos] ? align64(work_of[v->pos]) : 0;
        for (int i = 0; i < n->nsrc; i++) {
            if (!kn_dtype_is_float(n->src[i]->dtype))
                continue;
            stp->args.src[i] = base + cursor;
            cursor += align64((size_t)kn__numel(n->src[i]) * 8 + 1);
        }
        if (kn_dtype_is_float(n->dtype))
            stp->args.dst = base + cursor;
    }
    kn__free(work_of);
    resolve(p);
    if (cuda && (st = kn__cuda_plan_new(&p->dev, p, dev_msg, sizeof dev_msg)) != KN_OK)
        return compile_fail(p, st, "plan: %s", dev_msg);
    *out = p;
    return KN_OK;
}

/* ---- what the device side (plan_device.h) reads ---- */
kn_graph *kn__plan_graph(const kn_plan *p) { return p->graph; }
const kn_plan_opts *kn__plan_opts(const kn_plan *p) { return &p->opts; }
int kn__plan_step_node(const kn_plan *p, int s) { return p->steps[s].v; }
const kn__kargs *kn__plan_step_args(const kn_plan *p, int s) { return &p->steps[s].args; }
size_t kn__plan_param_bytes(const kn_plan *p) { return p->param_bytes; }
bool kn__plan_fuses(const kn_plan *p) { return (p->passes & KN_PASS_FUSE) != 0; }
void kn__plan_add_step_seconds(kn_plan *p, int s, double seconds) { p->steps[s].seconds += seconds; }

static void refresh(kn_plan *p)
{
    if (p->graph->param_data != p->param_base)
        resolve(p);
}

/* Index of the first NaN/Inf among n elements (f32/f64; other dtypes are not checked), or -1. */
static int64_t first_nonfinite(const void *d, kn_dtype dt, int64_t n)
{
    for (int64_t i = 0; d && i < n; i++)
        if ((dt == KN_F32 && !isfinite(((const float *)d)[i])) || (dt == KN_F64 && !isfinite(((const double *)d)[i])))
            return i;
    return -1;
}

/* The --debug-numerics check after step st: KN_OK, or KN_ERR_RANGE with the message. */
static kn_status check_numerics(kn_plan *p, const plan_step *st, const kn_node *n)
{
    int64_t at = first_nonfinite(st->orig_dst, n->dtype, kn__numel(n));
    if (at < 0)
        return KN_OK;
    double v = kn__load_f64(st->orig_dst, n->dtype, at);
    int bad_in = -1;
    for (int i = 0; i < n->nsrc && bad_in < 0 && !(kn__op_flags[n->op] & KN_OPF_MUTATES); i++)
        if (first_nonfinite(st->orig_src[i], n->src[i]->dtype, kn__numel(n->src[i])) >= 0)
            bad_in = i;
    char why[160] = "its inputs are finite: this op created it";
    if (bad_in >= 0)
        snprintf(why, sizeof why, "its input %d (%s %s%s%s) already held one", bad_in, kn__op_names[n->src[bad_in]->op],
                 kn__shp(n->src[bad_in]), n->src[bad_in]->name[0] ? " " : "", n->src[bad_in]->name);
    snprintf(p->msg, sizeof p->msg, "numerics: first non-finite value: %s (node %d%s%s) output %s[%lld] = %g; %s",
             kn__op_names[n->op], n->id, n->name[0] ? " " : "", n->name, kn__shp(n), (long long)at, v, why);
    return KN_ERR_RANGE;
}

kn_status kn__plan_run_step_host(kn_plan *p, int s)
{
    plan_step *st = &p->steps[s];
    const kn_node *n = kn__ir_exec(&p->ir.nodes[st->v]);
    st->args.step = p->step_count;
    if (st->fallback)
        for (int i = 0; i < n->nsrc; i++)
            if (kn_dtype_is_float(n->src[i]->dtype))
                kn_convert(st->args.src[i], KN_F64, st->orig_src[i], n->src[i]->dtype, kn__numel(n->src[i]));
    double t0 = p->opts.profile ? kn__now_seconds() : 0;
    kn_status rc = st->fn(&st->args);
    if (p->opts.profile)
        st->seconds += kn__now_seconds() - t0;
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
    if (p->opts.debug_numerics && (rc = check_numerics(p, st, n)) != KN_OK)
        return rc;
    return KN_OK;
}

kn_status kn_plan_wait(kn_plan *p)
{
    if (!p)
        return KN_ERR_ARG;
    if (!p->pending)
        return KN_OK;
    p->pending = false;
    kn_status rc = kn__cuda_plan_wait(p->dev, p->msg, sizeof p->msg);
    if (rc)
        return rc;
    p->step_count++;
    p->profiled_runs++;
    return KN_OK;
}

kn_status kn_plan_run_async(kn_plan *p)
{
    if (!p)
        return KN_ERR_ARG;
    if (!p->dev)
        return kn_plan_run(p);
    kn_status rc = kn_plan_wait(p); /* one run in flight */
    if (rc)
        return rc;
    p->msg[0] = 0;
    refresh(p);
    if (p->opts.threads > 0)
        omp_set_num_threads(p->opts.threads); /* CPU-fallback steps */
    rc = kn__cuda_plan_launch(p->dev, p->msg, sizeof p->msg);
    p->pending = rc == KN_OK;
    return rc;
}

kn_status kn_plan_run(kn_plan *p)
{
    if (!p)
        return KN_ERR_ARG;
    if (p->dev) {
        kn_status rc = kn_plan_run_async(p);
        return rc ? rc : kn_plan_wait(p);
    }
    p->msg[0] = 0;
    refresh(p);
    if (p->opts.threads > 0)
        omp_set_num_threads(p->opts.threads);
    char why[512];
    if (kn__graph_params_to_host(p->graph, why, sizeof why)) { /* a CUDA plan held newer values */
        snprintf(p->msg, sizeof p->msg, "copying the parameters back from the GPU: %s", why);
        return KN_ERR_DEVICE;
    }
    kn_status rc;
    for (int s = 0; s < p->n_steps; s++)
        if ((rc = kn__plan_run_step_host(p, s)) != KN_OK)
            return rc;
    p->step_count++;
    p->profiled_runs++;
    return KN_OK;
}

static bool in_plan(const kn_plan *p, const kn_node *n)
{
    return p && n && n->graph == p->graph && n->id < p->ir.n;
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
    if (p->dev) /* the host buffer changes: a prefetched copy is stale */
        kn__cuda_plan_cancel_prefetch(p->dev, input->id);
    if (bytes)
        memcpy(dst, data, bytes);
    return KN_OK;
}

kn_status kn_plan_prefetch_input(kn_plan *p, const kn_node *input)
{
    if (!kn_plan_input_data(p, input)) {
        if (p)
            snprintf(p->msg, sizeof p->msg, "prefetch_input: node %s is not an input of this plan",
                     input ? input->name : "(null)");
        return KN_ERR_ARG;
    }
    return p->dev ? kn__cuda_plan_prefetch(p->dev, input->id, p->msg, sizeof p->msg) : KN_OK;
}

void *kn_plan_input_data(kn_plan *p, const kn_node *input)
{
    if (!in_plan(p, input) || input->op != KN_OP_INPUT)
        return NULL;
    const kn__ir_node *v = &p->ir.nodes[input->id];
    if (!(v->flags & KN__IR_LIVE) || v->storage < 0)
        return NULL;
    return p->arena + v->offset;
}

const void *kn_plan_data(kn_plan *p, const kn_node *n)
{
    if (!in_plan(p, n))
        return NULL;
    if (p->pending && kn_plan_wait(p) != KN_OK)
        return NULL; /* the run failed: kn_plan_error says why */
    refresh(p);
    if (p->dev && kn__plan_addr(p, n->id) && kn__cuda_plan_fetch(p->dev, n->id, p->msg, sizeof p->msg))
        return NULL; /* the copy from the GPU failed: the reason is in kn_plan_error */
    return kn__plan_addr(p, n->id);
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

kn_status kn_plan_get_stats(const kn_plan *p, kn_plan_stats *out)
{
    if (!p || !out)
        return KN_ERR_ARG;
    memset(out, 0, sizeof *out);
    out->passes = p->passes;
    out->nodes = p->ir.cone;
    out->steps = p->n_steps;
    out->dead = p->ir.n_dead;
    out->merged = p->ir.n_merged;
    out->folded = p->ir.n_folded;
    out->inplace = p->ir.n_inplace;
    out->fused = p->ir.n_fused;
    out->grouped = p->dev ? kn__cuda_plan_num_grouped(p->dev) : 0;
    for (int b = 0; b < p->mem.n_bufs; b++)
        out->buffers += p->mem.bufs[b].owner >= 0;
    out->arena_bytes = p->arena_bytes;
    out->peak_bytes = p->mem.peak_bytes;
    out->naive_bytes = p->mem.naive_bytes;
    out->input_bytes = p->mem.input_bytes;
    out->output_bytes = p->mem.output_bytes;
    out->scratch_bytes = p->mem.scratch_bytes;
    out->folded_bytes = p->ir.folded_bytes;
    return KN_OK;
}

kn_status kn_plan_write_dot(const kn_plan *p, FILE *f, bool memory, kn_node *const *forward, int n_forward)
{
    if (!p || !f || n_forward < 0 || (n_forward && !forward))
        return KN_ERR_ARG;
    return kn__dot_write(p, f, memory, forward, n_forward);
}

const char *kn_plan_error(const kn_plan *p) { return p ? p->msg : "no plan"; }
size_t kn_plan_arena_bytes(const kn_plan *p) { return p ? p->arena_bytes : 0; }
size_t kn_plan_peak_bytes(const kn_plan *p) { return p ? p->mem.peak_bytes : 0; }
int kn_plan_num_steps(const kn_plan *p) { return p ? p->n_steps : 0; }
int kn_plan_num_fallbacks(const kn_plan *p)
{
    return !p ? 0 : p->dev ? kn__cuda_plan_num_fallbacks(p->dev) : p->n_fallbacks;
}
kn_backend_kind kn_plan_backend(const kn_plan *p) { return p ? p->opts.backend : KN_BACKEND_CPU; }
int kn_plan_device(const kn_plan *p) { return p && p->dev ? p->opts.device : -1; }
bool kn_plan_uses_cuda_graph(const kn_plan *p) { return p && p->dev && kn__cuda_plan_uses_graph(p->dev); }
uint64_t kn_plan_step_count(const kn_plan *p) { return p ? p->step_count : 0; }
void kn_plan_set_step_count(kn_plan *p, uint64_t s) { if (p) p->step_count = s; }
double kn_plan_flops(const kn_plan *p) { return p ? p->flops : 0; }

/* ---- profile ------------------------------------------------------------------------------ */

void kn_plan_reset_profile(kn_plan *p)
{
    if (!p)
        return;
    for (int s = 0; s < p->n_steps; s++)
        p->steps[s].seconds = 0;
    p->profiled_runs = 0;
}

static int by_seconds_desc(const void *a, const void *b)
{
    double x = ((const double *)a)[0], y = ((const double *)b)[0];
    return x < y ? 1 : x > y ? -1 : 0;
}

kn_status kn_plan_write_profile(const kn_plan *p, FILE *f, int top)
{
    if (!p || !f || !p->opts.profile)
        return KN_ERR_ARG;
    double runs = p->profiled_runs ? (double)p->profiled_runs : 1, total = 0;
    /* per op kind: [ms per run, op, calls] sorted by time */
    double kinds[KN_OP_COUNT][3] = {{0}};
    for (int s = 0; s < p->n_steps; s++) {
        int op = p->ir.nodes[p->steps[s].v].node->op;
        kinds[op][0] += 1e3 * p->steps[s].seconds / runs;
        kinds[op][1] = op;
        kinds[op][2] += 1;
        total += 1e3 * p->steps[s].seconds / runs;
    }
    qsort(kinds, KN_OP_COUNT, sizeof kinds[0], by_seconds_desc);
    fprintf(f, "profile over %llu runs: %.3f ms per run in %d steps\n", (unsigned long long)p->profiled_runs, total,
            p->n_steps);
    fprintf(f, "%-28s %10s %7s %6s\n", "op", "ms/run", "share", "steps");
    for (int k = 0; k < KN_OP_COUNT && kinds[k][2] > 0; k++)
        fprintf(f, "%-28s %10.4f %6.1f%% %6d\n", kn__op_names[(int)kinds[k][1]], kinds[k][0],
                total > 0 ? 100 * kinds[k][0] / total : 0, (int)kinds[k][2]);
    if (top > 0 && p->n_steps > 0) {
        double (*order)[2] = kn__alloc((size_t)p->n_steps * sizeof *order);
        if (!order)
            return KN_ERR_OOM;
        for (int s = 0; s < p->n_steps; s++) {
            order[s][0] = p->steps[s].seconds;
            order[s][1] = s;
        }
        qsort(order, (size_t)p->n_steps, sizeof order[0], by_seconds_desc);
        fprintf(f, "slowest steps:\n%-5s %-24s %-6s %-28s %10s %9s\n", "step", "op", "node", "shape", "ms/run",
                "GFLOP/s");
        for (int k = 0; k < top && k < p->n_steps; k++) {
            int s = (int)order[k][1];
            const kn_node *n = p->ir.nodes[p->steps[s].v].node;
            double ms = 1e3 * p->steps[s].seconds / runs;
            double fl = kn__op_table[n->op]->flops ? kn__op_table[n->op]->flops(n) : 0;
            fprintf(f, "%-5d %-24s %-6d %-28s %10.4f %9.1f\n", s, kn__op_names[n->op], n->id, kn__shp(n), ms,
                    ms > 0 ? fl / (ms * 1e6) : 0);
        }
        kn__free(order);
    }
    return ferror(f) ? KN_ERR_IO : KN_OK;
}
