/* plan_cuda.c — the device side of a plan compiled for CUDA (plan_device.h is the seam with
 * plan.c). At compile: a device arena with the host arena's layout (kiln's caching
 * allocator), the parameters mirrored on the device, constants and folded values uploaded
 * once, the host arena pinned (it is the staging area for inputs and the mirror for
 * results), and for every step either the CUDA table's kernel with device addresses or the
 * host kernel on copies (logged once per plan). A run uploads the inputs on a copy stream
 * (or takes those kn_plan_prefetch_input already put in the second input buffer, the inbox,
 * while the previous run computed), writes the step counter to device memory, then replays
 * one captured CUDA graph (captured
 * on the second run, when every step has a CUDA kernel; KILN_CUDA_GRAPHS=0 turns it off) or
 * enqueues the kernels one by one, and waits; bad data found on the device
 * (kn__cuda_data_error) comes back as KN_ERR_RANGE.
 *
 * Parameters: the graph's param_data stays the master copy on the host; a CUDA plan that runs
 * uploads it unless it already holds the newest values (graph->param_holder), and becomes the
 * holder; kn_graph_param_data, checkpoints and CPU plans pull them back (pull_params). Plain C
 * on the CUDA runtime's C API; kernels live in the family .cu files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef KN_HAVE_CUDNN
#include <cudnn.h>
#endif

#include "../../core/alloc.h"
#include "../../core/core_internal.h"
#include "../../runtime/plan_device.h"
#include "cuda_internal.h"
#include "cuda_kernels.h"
#ifdef KN_CUDA_HAVE_DATA_CHECK /* kern_check.cu: data-error records in the workspace of some ops */
#include "cuda_kern_check.h"
#endif

#define GEMM_WORKSPACE_BYTES ((size_t)32 << 20)
#define MAX_LOGGED_FALLBACKS 8
#define PREFETCH_BYTES ((size_t)1 << 20)

typedef struct dstep {
    int s;                          /* plan step */
    int v;                          /* IR index */
    const kn__backend_kernel *k;    /* NULL: the host kernel on copies */
    kn__kargs args;                 /* device addresses (k != NULL) */
    bool grouped;                   /* run by an earlier step's grouped launch: skipped */
} dstep;

struct kn__cuda_plan {
    kn_plan *p;
    kn_graph *g;
    const kn__ir *ir;
    int device;
    kn__cuda_ctx ctx;
    cudaStream_t copy;              /* input uploads */
    cudaEvent_t uploaded;           /* recorded on copy after the uploads; the compute stream waits */
    cudaEvent_t consumed;           /* recorded on the compute stream once it has taken the inbox */
    unsigned char *arena;           /* device, the host arena's layout */
    size_t arena_bytes;
    unsigned char *params;          /* device mirror of graph->param_data[0 .. param_bytes) */
    size_t param_bytes;
    unsigned char *consts;          /* constants and folded values, uploaded at compile */
    size_t *const_off;              /* per IR node: offset in consts, or SIZE_MAX */
    unsigned char *misc;            /* device: step counter, data-error record */
    unsigned char *pinned;          /* host (cudaMallocHost): step counter, data-error record */
    void *gemm_ws;
    bool host_registered;           /* the host arena is pinned */
    dstep *steps;
    int n_steps, n_fallbacks;
    kn__group *groups;              /* grouped optimizer updates (update_group.c) */
    int n_groups;
    int *inputs;                    /* IR indices of the inputs held in the arena */
    int n_inputs;
    unsigned char *inbox;           /* device: a second buffer per input, filled by prefetches */
    size_t *inbox_off;              /* per input k: its offset in the inbox */
    bool *prefetched;               /* per input k: the inbox holds its next value */
    int *small_outputs;             /* IR indices of outputs ≤ PREFETCH_BYTES in the arena: copied to the
                                       host mirror at the end of every run (one wait, not one per read) */
    int n_small_outputs;
    bool outputs_fresh;             /* the host mirror holds the last run's small outputs */
    cudaEvent_t *ev;                /* opts.profile: two timing events per step, else NULL */
    cudaGraphExec_t exec;           /* the captured run, or NULL */
    int graph_state;                /* 0 = not yet tried, 1 = captured, -1 = off */
    int runs;
    int *checked;                   /* steps whose kernels keep a data-error record (kern_check.cu) */
    int n_checked;
    unsigned char *records;         /* device: each checked step's record, saved right after it ran */
    unsigned char *records_host;    /* pinned: the same, read after the run */
    char kmsg[512];                 /* kernels' messages */
};

#ifdef KN_CUDA_HAVE_DATA_CHECK
#define RECORD_BYTES sizeof(kn__cuda_derr)
#else
#define RECORD_BYTES (size_t)16
#endif

/* ---- devices ---------------------------------------------------------------------------- */

kn_status kn__cuda_check_device(int device, char *msg, size_t size)
{
    int n = 0;
    kn_status st = kn_cuda_device_count(&n);
    if (st || n == 0) {
        snprintf(msg, size, "no CUDA device found (%.300s): use --device cpu, or auto to pick a GPU only when one is present",
                 st ? kn_cuda_last_error() : "cudaGetDeviceCount: 0 devices");
        return KN_ERR_DEVICE;
    }
    if (device < 0 || device >= n) {
        char have[64] = "cuda:0";
        if (n > 1)
            snprintf(have, sizeof have, "cuda:0 .. cuda:%d", n - 1);
        snprintf(msg, size, "cuda:%d does not exist: this machine has %d CUDA device%s (%s)", device, n, n == 1 ? "" : "s",
                 have);
        return KN_ERR_ARG;
    }
    return kn__cuda_probe_arch(device, msg, size);
}

bool kn__cuda_step_supported(const kn_node *n, size_t *workspace)
{
    *workspace = 0;
    if (!kn__cuda_supports(n))
        return false;
    const kn__backend_kernel *k = kn__cuda_kernel(n->op);
    *workspace = k->workspace ? k->workspace(n) : 0;
    return true;
}

/* ---- addresses ---------------------------------------------------------------------------- */

/* The IR node that owns i's value: follows CSE merges and views. */
static int root_of(const kn__ir *ir, int i)
{
    i = kn__ir_rep(ir, i);
    while (!(ir->nodes[i].flags & KN__IR_FOLDED) && (kn__op_flags[ir->nodes[i].node->op] & KN_OPF_ALIAS))
        i = kn__ir_rep(ir, ir->nodes[i].src[0]);
    return i;
}

/* Device address of IR node i's value (the device twin of kn__plan_addr), or NULL. */
static void *dev_addr(const kn__cuda_plan *d, int i)
{
    const kn__ir *ir = d->ir;
    i = kn__ir_rep(ir, i);
    const kn__ir_node *v = &ir->nodes[i];
    const kn_node *n = v->node;
    if ((v->flags & KN__IR_FOLDED) || n->op == KN_OP_CONST)
        return d->const_off[i] == SIZE_MAX ? NULL : d->consts + d->const_off[i];
    if (n->op == KN_OP_PARAM)
        return n->param_offset < d->param_bytes ? d->params + n->param_offset : NULL;
    if (!(v->flags & KN__IR_LIVE))
        return NULL;
    if (kn__op_flags[n->op] & KN_OPF_ALIAS)
        return dev_addr(d, v->src[0]);
    return v->storage >= 0 ? d->arena + v->offset : NULL;
}

static bool is_constant(const kn__ir *ir, int i)
{
    const kn__ir_node *v = &ir->nodes[root_of(ir, i)];
    return (v->flags & KN__IR_FOLDED) || v->node->op == KN_OP_CONST;
}

static bool is_param(const kn__ir *ir, int i)
{
    const kn__ir_node *v = &ir->nodes[root_of(ir, i)];
    return !(v->flags & KN__IR_FOLDED) && v->node->op == KN_OP_PARAM;
}

/* ---- parameters --------------------------------------------------------------------------- */

/* graph->param_pull: the device values back into param_data. */
static kn_status pull_params(void *holder, char *msg, size_t size)
{
    kn__cuda_plan *d = holder;
    kn_status st = kn__cuda_status(cudaSetDevice(d->device), "cudaSetDevice", msg, size);
    if (!st)
        st = kn__cuda_status(cudaStreamSynchronize(d->ctx.stream), "waiting for the GPU", msg, size);
    if (!st && d->param_bytes)
        st = kn__cuda_status(cudaMemcpy(d->g->param_data, d->params, d->param_bytes, cudaMemcpyDeviceToHost),
                             "copying the parameters from the GPU", msg, size);
    return st;
}

/* Makes the device mirror current: pulls from another holder, uploads, becomes the holder. */
static kn_status claim_params(kn__cuda_plan *d, char *msg, size_t size)
{
    kn_graph *g = d->g;
    if (g->param_holder == d || !d->param_bytes)
        return KN_OK;
    kn_status st = kn__graph_params_to_host(g, msg, size);
    if (st)
        return st;
    st = kn__cuda_status(cudaMemcpyAsync(d->params, g->param_data, d->param_bytes, cudaMemcpyHostToDevice, d->ctx.stream),
                         "uploading the parameters", msg, size);
    /* param_data is pageable and the caller may change it right after: wait for the copy */
    if (!st)
        st = kn__cuda_status(cudaStreamSynchronize(d->ctx.stream), "uploading the parameters", msg, size);
    if (st)
        return st;
    g->param_holder = d;
    g->param_pull = pull_params;
    return KN_OK;
}

/* ---- lifetime ------------------------------------------------------------------------------ */

void kn__cuda_plan_free(kn__cuda_plan *d)
{
    if (!d)
        return;
    if (cudaSetDevice(d->device) != cudaSuccess)
        (void)cudaGetLastError();
    if (d->g->param_holder == d) {
        char why[256];
        if (kn__graph_params_to_host(d->g, why, sizeof why))
            fprintf(stderr, "kiln: freeing a CUDA plan: the parameters it updated could not be copied back: %s\n", why);
    }
    /* Teardown errors cannot be reported to anyone; the resources are gone either way. */
    if (d->ctx.stream)
        (void)cudaStreamSynchronize(d->ctx.stream);
    if (d->exec)
        (void)cudaGraphExecDestroy(d->exec);
    if (d->host_registered)
        (void)cudaHostUnregister((void *)kn__plan_arena(d->p));
    kn__cuda_free(d->device, d->arena);
    kn__cuda_free(d->device, d->params);
    kn__cuda_free(d->device, d->consts);
    kn__cuda_free(d->device, d->misc);
    kn__cuda_free(d->device, d->gemm_ws);
    if (d->pinned)
        (void)cudaFreeHost(d->pinned);
    if (d->ctx.lt)
        (void)cublasLtDestroy(d->ctx.lt);
#ifdef KN_HAVE_CUDNN
    if (d->ctx.dnn)
        (void)cudnnDestroy((cudnnHandle_t)d->ctx.dnn);
#endif
    if (d->uploaded)
        (void)cudaEventDestroy(d->uploaded);
    if (d->consumed)
        (void)cudaEventDestroy(d->consumed);
    for (int k = 0; d->ev && k < 2 * d->n_steps; k++)
        if (d->ev[k])
            (void)cudaEventDestroy(d->ev[k]);
    kn__free(d->ev);
    if (d->copy)
        (void)cudaStreamDestroy(d->copy);
    if (d->ctx.stream)
        (void)cudaStreamDestroy(d->ctx.stream);
    (void)cudaGetLastError();
    for (int k = 0; k < d->n_groups; k++) {
        kn__free((void *)d->groups[k].members);
        kn__cuda_free(d->device, (void *)d->groups[k].table);
    }
    kn__free(d->groups);
    kn__free(d->ctx.algos);
    kn__free(d->steps);
    kn__free(d->inputs);
    kn__free(d->inbox_off);
    kn__free(d->prefetched);
    kn__cuda_free(d->device, d->inbox);
    kn__free(d->small_outputs);
    kn__free(d->checked);
    kn__cuda_free(d->device, d->records);
    if (d->records_host)
        (void)cudaFreeHost(d->records_host);
    kn__free(d->const_off);
    kn__free(d);
}

static bool env_on(const char *name, bool dflt)
{
    const char *e = getenv(name);
    if (!e || !*e)
        return dflt;
    return strcmp(e, "0") != 0 && strcmp(e, "off") != 0 && strcmp(e, "false") != 0;
}

/* KILN_CUDA_MATH = fp32 (default) | tf32 | bf16. */
static int math_mode(void)
{
    const char *e = getenv("KILN_CUDA_MATH");
    if (e && !strcmp(e, "tf32"))
        return KN_CUDA_MATH_TF32;
    if (e && !strcmp(e, "bf16"))
        return KN_CUDA_MATH_BF16;
    return KN_CUDA_MATH_FP32;
}

/* Library handles and the small buffers every run uses. */
static kn_status make_context(kn__cuda_plan *d, char *msg, size_t size)
{
    kn__cuda_ctx *c = &d->ctx;
    c->device = d->device;
    kn_status st = kn__cuda_status(cudaSetDevice(d->device), "cudaSetDevice", msg, size);
    if (!st)
        st = kn__cuda_status(cudaDeviceGetAttribute(&c->sm_count, cudaDevAttrMultiProcessorCount, d->device),
                             "cudaDeviceGetAttribute", msg, size);
    if (st)
        return st;
    c->math = math_mode();
    c->deterministic = kn__plan_opts(d->p)->deterministic || env_on("KILN_DETERMINISTIC", false);
    st = kn__cuda_status(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate", msg, size);
    if (!st)
        st = kn__cuda_status(cudaStreamCreateWithFlags(&d->copy, cudaStreamNonBlocking), "cudaStreamCreate (copies)", msg,
                             size);
    if (!st)
        st = kn__cuda_status(cudaEventCreateWithFlags(&d->uploaded, cudaEventDisableTiming), "cudaEventCreate", msg, size);
    if (!st)
        st = kn__cuda_status(cudaEventCreateWithFlags(&d->consumed, cudaEventDisableTiming), "cudaEventCreate", msg, size);
    if (!st) {
        cublasStatus_t bs = cublasLtCreate(&c->lt);
        if (bs != CUBLAS_STATUS_SUCCESS) {
            c->lt = NULL;
            st = kn__cublas_status(bs, "cublasLtCreate", msg, size);
        }
    }
#ifdef KN_HAVE_CUDNN
    if (!st) {
        cudnnHandle_t h = NULL;
        cudnnStatus_t ds = cudnnCreate(&h);
        if (ds == CUDNN_STATUS_SUCCESS)
            ds = cudnnSetStream(h, c->stream);
        c->dnn = h;
        if (ds != CUDNN_STATUS_SUCCESS) {
            snprintf(msg, size, "cuDNN: %s", cudnnGetErrorString(ds));
            st = KN_ERR_DEVICE;
        }
    }
#endif
    if (!st)
        st = kn__cuda_malloc(d->device, GEMM_WORKSPACE_BYTES, &d->gemm_ws, msg, size);
    c->gemm_workspace = d->gemm_ws;
    if (!st && !(c->algos = kn__calloc(1, sizeof *c->algos))) {
        snprintf(msg, size, "out of memory for the algorithm cache");
        st = KN_ERR_OOM;
    }
    c->gemm_workspace_bytes = d->gemm_ws ? GEMM_WORKSPACE_BYTES : 0;
    const size_t misc = 64 + sizeof(kn__cuda_data_error);
    if (!st)
        st = kn__cuda_malloc(d->device, misc, (void **)&d->misc, msg, size);
    if (!st)
        st = kn__cuda_status(cudaMallocHost((void **)&d->pinned, misc), "cudaMallocHost", msg, size);
    if (!st)
        st = kn__cuda_status(cudaMemsetAsync(d->misc, 0, misc, c->stream), "cudaMemsetAsync", msg, size);
    if (st)
        return st;
    memset(d->pinned, 0, misc);
    c->step = (const unsigned long long *)d->misc;
    c->data_error = (kn__cuda_data_error *)(d->misc + 64);
    return KN_OK;
}

/* Uploads every constant and folded value a step can read (once). */
static kn_status upload_constants(kn__cuda_plan *d, char *msg, size_t size)
{
    const kn__ir *ir = d->ir;
    d->const_off = kn__alloc((size_t)(ir->n ? ir->n : 1) * sizeof(size_t));
    if (!d->const_off) {
        snprintf(msg, size, "out of memory");
        return KN_ERR_OOM;
    }
    size_t total = 0;
    for (int i = 0; i < ir->n; i++) {
        d->const_off[i] = SIZE_MAX;
        const kn__ir_node *v = &ir->nodes[i];
        if (kn__ir_rep(ir, i) != i || !((v->flags & KN__IR_FOLDED) || v->node->op == KN_OP_CONST))
            continue;
        if (!kn__plan_addr(d->p, i))
            continue;
        d->const_off[i] = total;
        total += (kn__nbytes(v->node) + 255) & ~(size_t)255;
    }
    kn_status st = kn__cuda_malloc(d->device, total, (void **)&d->consts, msg, size);
    for (int i = 0; i < ir->n && !st; i++)
        if (d->const_off[i] != SIZE_MAX && kn__nbytes(ir->nodes[i].node))
            st = kn__cuda_status(cudaMemcpyAsync(d->consts + d->const_off[i], kn__plan_addr(d->p, i),
                                                 kn__nbytes(ir->nodes[i].node), cudaMemcpyHostToDevice, d->ctx.stream),
                                 "uploading constants", msg, size);
    return st;
}

/* The chain kernel when every op of chain c has a CUDA kernel (and none is forced to the CPU
 * with KILN_CUDA_FALLBACK_OPS), else NULL: the chain step then runs on the host. */
static const kn__backend_kernel *chain_kernel(const kn__chain *c)
{
    for (int j = 0; j < c->n_ops; j++)
        if (!kn__cuda_supports(c->ops[j].node))
            return NULL;
    return kn__cuda_kernel(KN__CUDA_OP_CHAIN);
}

/* Each run of two or more consecutive update steps that join (update_group.c) becomes one
 * multi-tensor launch in its first step's place; the others are skipped. */
static kn_status group_updates(kn__cuda_plan *d, char *msg, size_t size)
{
    const kn__backend_kernel *k = kn__cuda_kernel(KN__CUDA_OP_UPDATES);
    if (!k || d->n_steps < 2)
        return KN_OK;
    /* run: the members of the run being scanned; groups: at most one per two steps */
    kn__kargs *run = kn__alloc((size_t)d->n_steps * sizeof *run);
    d->groups = kn__calloc((size_t)d->n_steps / 2, sizeof *d->groups);
    if (!run || !d->groups) {
        kn__free(run);
        snprintf(msg, size, "out of memory");
        return KN_ERR_OOM;
    }
    kn_status st = KN_OK;
    for (int s = 0, e; s < d->n_steps && !st; s = e > s ? e : s + 1) {
        for (e = s; e < d->n_steps && d->steps[e].k && kn__cuda_update_joins(run, e - s, &d->steps[e].args); e++)
            run[e - s] = d->steps[e].args;
        if (e - s < 2)
            continue;
        kn__group *g = &d->groups[d->n_groups++];
        g->n = e - s;
        kn__kargs *members = kn__alloc((size_t)g->n * sizeof *members);
        if (!members) {
            snprintf(msg, size, "out of memory");
            st = KN_ERR_OOM;
            break;
        }
        memcpy(members, run, (size_t)g->n * sizeof *members);
        g->members = members;
        st = kn__cuda_update_table(g, d->device, d->ctx.stream, msg, size);
        d->steps[s].k = k;
        d->steps[s].args.group = g;
        for (int j = s + 1; j < e; j++)
            d->steps[j].grouped = true;
    }
    kn__free(run);
    return st;
}

/* Every step: the CUDA kernel with device addresses, or the host kernel (logged). */
static kn_status make_steps(kn__cuda_plan *d, char *msg, size_t size)
{
    kn_plan *p = d->p;
    const kn__ir *ir = d->ir;
    const kn__memplan *mem = kn__plan_memplan(p);
    d->n_steps = kn_plan_num_steps(p);
    d->steps = kn__calloc((size_t)(d->n_steps ? d->n_steps : 1), sizeof *d->steps);
    if (!d->steps) {
        snprintf(msg, size, "out of memory for %d steps", d->n_steps);
        return KN_ERR_OOM;
    }
    int logged = 0;
    for (int s = 0; s < d->n_steps; s++) {
        dstep *ds = &d->steps[s];
        ds->s = s;
        ds->v = kn__plan_step_node(p, s);
        const kn__ir_node *v = &ir->nodes[ds->v];
        const kn_node *n = v->node;
        size_t ws = 0;
        const kn__backend_kernel *k = v->chain ? chain_kernel(v->chain)
                                      : kn__cuda_step_supported(n, &ws) ? kn__cuda_kernel(n->op)
                                                                        : NULL;
        if (!k) {
            d->n_fallbacks++;
            if (logged++ < MAX_LOGGED_FALLBACKS)
                fprintf(stderr, "kiln: plan: %s%s (node %d%s%s) has no CUDA kernel; it runs on the CPU with copies\n",
                        v->chain ? "a chain ending in " : "", kn__op_names[n->op], n->id, n->name[0] ? " " : "",
                        n->name);
            continue;
        }
        if (v->chain) /* a sum/mean tail may want its sum node's workspace (0 when none) */
            (void)kn__cuda_step_supported(n, &ws);
        ds->k = k;
        ds->args = *kn__plan_step_args(p, s); /* a chain step's args.chain comes with them */
        ds->args.dst = dev_addr(d, ds->v);
        for (int i = 0; i < v->nsrc; i++) /* the IR's inputs: a chain's are its external inputs */
            ds->args.src[i] = dev_addr(d, v->src[i]);
        int b = mem->scratch[v->pos];
        ds->args.work = ws && b >= 0 ? d->arena + mem->bufs[b].offset : NULL;
        ds->args.device = &d->ctx;
        ds->args.err = d->kmsg;
        ds->args.err_size = sizeof d->kmsg;
    }
    if (kn__plan_fuses(p)) {
        kn_status st = group_updates(d, msg, size);
        if (st)
            return st;
    }
#ifdef KN_CUDA_HAVE_DATA_CHECK
    d->checked = kn__alloc((size_t)(d->n_steps ? d->n_steps : 1) * sizeof(int));
    if (!d->checked) {
        snprintf(msg, size, "out of memory");
        return KN_ERR_OOM;
    }
    for (int s = 0; s < d->n_steps; s++)
        if (d->steps[s].k && !d->steps[s].grouped && d->steps[s].args.work &&
            kn__cuda_op_checks_data(ir->nodes[d->steps[s].v].node->op))
            d->checked[d->n_checked++] = s;
    if (d->n_checked) {
        kn_status st = kn__cuda_malloc(d->device, (size_t)d->n_checked * RECORD_BYTES, (void **)&d->records, msg, size);
        if (!st)
            st = kn__cuda_status(cudaMallocHost((void **)&d->records_host, (size_t)d->n_checked * RECORD_BYTES),
                                 "cudaMallocHost", msg, size);
        if (st)
            return st;
    }
#endif
    if (logged > MAX_LOGGED_FALLBACKS)
        fprintf(stderr, "kiln: plan: ... %d more steps run on the CPU with copies (%d of %d in all)\n",
                logged - MAX_LOGGED_FALLBACKS, d->n_fallbacks, d->n_steps);
    /* the inputs kn_plan_run uploads */
    d->inputs = kn__alloc((size_t)(ir->n ? ir->n : 1) * sizeof(int));
    if (!d->inputs) {
        snprintf(msg, size, "out of memory");
        return KN_ERR_OOM;
    }
    for (int i = 0; i < ir->n; i++) {
        const kn__ir_node *v = &ir->nodes[i];
        if (v->node->op == KN_OP_INPUT && (v->flags & KN__IR_LIVE) && v->storage >= 0 && kn__nbytes(v->node))
            d->inputs[d->n_inputs++] = i;
    }
    /* the inbox: where prefetches put the next run's inputs while this one reads the arena's */
    d->inbox_off = kn__alloc((size_t)(d->n_inputs ? d->n_inputs : 1) * sizeof(size_t));
    d->prefetched = kn__calloc((size_t)(d->n_inputs ? d->n_inputs : 1), sizeof(bool));
    if (!d->inbox_off || !d->prefetched) {
        snprintf(msg, size, "out of memory");
        return KN_ERR_OOM;
    }
    size_t inbox = 0;
    for (int k = 0; k < d->n_inputs; k++) {
        d->inbox_off[k] = inbox;
        inbox += (kn__nbytes(ir->nodes[d->inputs[k]].node) + 255) & ~(size_t)255;
    }
    if (inbox) {
        kn_status st = kn__cuda_malloc(d->device, inbox, (void **)&d->inbox, msg, size);
        if (st)
            return st;
    }
    /* small outputs (loss, logits, metrics) come down with the run: the trainer reads them all */
    d->small_outputs = kn__alloc((size_t)(ir->n_outputs ? ir->n_outputs : 1) * sizeof(int));
    if (!d->small_outputs) {
        snprintf(msg, size, "out of memory");
        return KN_ERR_OOM;
    }
    for (int k = 0; k < ir->n_outputs; k++) {
        int o = ir->outputs[k];
        size_t bytes = kn__nbytes(ir->nodes[kn__ir_rep(ir, o)].node);
        if (!is_constant(ir, o) && !is_param(ir, o) && bytes && bytes <= PREFETCH_BYTES && kn__plan_addr(d->p, o) &&
            dev_addr(d, o))
            d->small_outputs[d->n_small_outputs++] = o;
    }
    return KN_OK;
}

kn_status kn__cuda_plan_new(kn__cuda_plan **out, kn_plan *p, char *msg, size_t size)
{
    *out = NULL;
    kn__cuda_plan *d = kn__calloc(1, sizeof *d);
    if (!d) {
        snprintf(msg, size, "out of memory");
        return KN_ERR_OOM;
    }
    d->p = p;
    d->g = kn__plan_graph(p);
    d->ir = kn__plan_ir(p);
    d->device = kn__plan_opts(p)->device;
    d->arena_bytes = kn_plan_arena_bytes(p);
    d->param_bytes = kn__plan_param_bytes(p);
    char why[512];
    kn_status st = make_context(d, why, sizeof why);
    if (!st)
        st = kn__cuda_malloc(d->device, d->arena_bytes, (void **)&d->arena, why, sizeof why);
    if (!st)
        st = kn__cuda_status(cudaMemsetAsync(d->arena, 0, d->arena_bytes, d->ctx.stream), "clearing the arena", why,
                             sizeof why);
    if (!st)
        st = kn__cuda_malloc(d->device, d->param_bytes, (void **)&d->params, why, sizeof why);
    if (!st)
        st = upload_constants(d, why, sizeof why);
    if (!st)
        st = make_steps(d, why, sizeof why);
    if (!st) {
        /* Pin the host arena: inputs are staged there and results mirrored there, and only
         * copies to and from pinned memory are asynchronous (a copy to pageable memory
         * returns when it is done, which would make every run wait for its step). plan.c
         * allocated it in whole pages, so pinning it touches no one else's memory. */
        cudaError_t e = cudaHostRegister((void *)kn__plan_arena(p), d->arena_bytes, cudaHostRegisterDefault);
        d->host_registered = e == cudaSuccess;
        if (!d->host_registered && e != cudaErrorNotSupported) {
            (void)cudaGetLastError();
            fprintf(stderr, "kiln: plan: could not pin the %zu-byte host staging area (%s); copies will be slower\n",
                    d->arena_bytes, cudaGetErrorString(e));
        }
        bool profile = kn__plan_opts(p)->profile;
        d->graph_state = d->n_fallbacks == 0 && !profile && env_on("KILN_CUDA_GRAPHS", true) ? 0 : -1;
        if (profile) { /* per-kernel times from events: the kernels run one by one */
            d->ev = kn__calloc((size_t)(2 * d->n_steps + 1), sizeof *d->ev);
            if (!d->ev) {
                snprintf(why, sizeof why, "out of memory for the profile's events");
                st = KN_ERR_OOM;
            }
            for (int k = 0; !st && k < 2 * d->n_steps; k++)
                st = kn__cuda_status(cudaEventCreateWithFlags(&d->ev[k], cudaEventDefault), "cudaEventCreate (profile)",
                                     why, sizeof why);
        }
        /* everything above was enqueued on the compute stream (a non-blocking stream: no
         * ordering with the legacy default stream); done before the plan is handed out */
        if (!st)
            st = kn__cuda_status(cudaStreamSynchronize(d->ctx.stream), "setting up the plan on the GPU", why,
                                 sizeof why);
    }
    if (st) {
        if (strstr(why, "cuda:")) /* already names the device */
            snprintf(msg, size, "%s", why);
        else
            snprintf(msg, size, "cuda:%d: %s", d->device, why);
        kn__cuda_plan_free(d);
        return st;
    }
    *out = d;
    return KN_OK;
}

/* ---- running -------------------------------------------------------------------------------- */

/* One step on the host: its inputs down, the host kernel, its output (and mutated inputs) up. */
static kn_status run_host_step(kn__cuda_plan *d, const dstep *ds, char *msg, size_t size)
{
    const kn__ir *ir = d->ir;
    const kn__ir_node *v = &ir->nodes[ds->v];
    const kn_node *n = v->node;
    cudaStream_t s = d->ctx.stream;
    kn_status st = KN_OK;
    for (int i = 0; i < v->nsrc && !st; i++) { /* a chain's inputs are the IR node's */
        if (is_constant(ir, v->src[i]))
            continue; /* the host already has it */
        void *h = (void *)kn__plan_addr(d->p, v->src[i]), *dv = dev_addr(d, v->src[i]);
        size_t bytes = kn__nbytes(ir->nodes[kn__ir_rep(ir, v->src[i])].node);
        if (h && dv && bytes)
            st = kn__cuda_status(cudaMemcpyAsync(h, dv, bytes, cudaMemcpyDeviceToHost, s), "copying an input to the host",
                                 msg, size);
    }
    if (!st)
        st = kn__cuda_status(cudaStreamSynchronize(s), "waiting for the GPU", msg, size);
    if (st)
        return st;
    st = kn__plan_run_step_host(d->p, ds->s);
    if (st) {
        const char *e = kn_plan_error(d->p); /* the plan's buffer: usually msg itself */
        if (e != msg)
            snprintf(msg, size, "%s", e);
        return st;
    }
    void *h = (void *)kn__plan_addr(d->p, ds->v), *dv = dev_addr(d, ds->v);
    if (h && dv && kn__nbytes(n))
        st = kn__cuda_status(cudaMemcpyAsync(dv, h, kn__nbytes(n), cudaMemcpyHostToDevice, s),
                             "copying a result to the GPU", msg, size);
    if (kn__op_flags[n->op] & KN_OPF_MUTATES)
        for (int i = 0; i < n->nsrc && !st; i++) {
            if (is_constant(ir, v->src[i]))
                continue;
            void *hs = (void *)kn__plan_addr(d->p, v->src[i]), *ds2 = dev_addr(d, v->src[i]);
            size_t bytes = kn__nbytes(ir->nodes[kn__ir_rep(ir, v->src[i])].node);
            if (hs && ds2 && bytes)
                st = kn__cuda_status(cudaMemcpyAsync(ds2, hs, bytes, cudaMemcpyHostToDevice, s),
                                     "copying an updated input to the GPU", msg, size);
        }
    /* the host buffers are reused by the next host step: wait until they are read */
    if (!st)
        st = kn__cuda_status(cudaStreamSynchronize(s), "waiting for the GPU", msg, size);
    return st;
}

static kn_status step_failed(kn__cuda_plan *d, const dstep *ds, kn_status rc, char *msg, size_t size)
{
    const kn_node *n = d->ir->nodes[ds->v].node;
    snprintf(msg, size, "%s (node %d%s%s) on cuda:%d: %s", kn__op_names[n->op], n->id, n->name[0] ? " " : "", n->name,
             d->device, d->kmsg[0] ? d->kmsg : kn_status_name(rc));
    return rc;
}

/* Enqueues every step (host steps synchronise). */
static kn_status enqueue_steps(kn__cuda_plan *d, char *msg, size_t size)
{
    for (int s = 0; s < d->n_steps; s++) {
        dstep *ds = &d->steps[s];
        kn_status rc;
        if (ds->grouped)
            continue;
        if (!ds->k) {
            double t0 = d->ev ? kn__now_seconds() : 0;
            if ((rc = run_host_step(d, ds, msg, size)) != KN_OK)
                return rc;
            if (d->ev) /* includes its copies, which is what a CPU step costs here */
                kn__plan_add_step_seconds(d->p, ds->s, kn__now_seconds() - t0);
            continue;
        }
        d->kmsg[0] = 0;
        ds->args.step = kn_plan_step_count(d->p);
        if (d->ev && (rc = kn__cuda_status(cudaEventRecord(d->ev[2 * s], d->ctx.stream), "cudaEventRecord", msg,
                                           size)) != KN_OK)
            return rc;
        if ((rc = ds->k->fn(&ds->args)) != KN_OK)
            return step_failed(d, ds, rc, msg, size);
        for (int j = 0; j < d->n_checked; j++) /* save the record before a later step reuses the scratch */
            if (d->checked[j] == s &&
                (rc = kn__cuda_status(cudaMemcpyAsync(d->records + (size_t)j * RECORD_BYTES, ds->args.work, RECORD_BYTES,
                                                      cudaMemcpyDeviceToDevice, d->ctx.stream),
                                      "saving a data-error record", msg, size)) != KN_OK)
                return rc;
        if (d->ev && (rc = kn__cuda_status(cudaEventRecord(d->ev[2 * s + 1], d->ctx.stream), "cudaEventRecord", msg,
                                           size)) != KN_OK)
            return rc;
    }
    return KN_OK;
}

/* Captures the steps into a CUDA graph on the compute stream (thread-local mode: a kernel
 * that allocates or synchronises breaks the capture instead of silently escaping it). On
 * any failure graphs are off for this plan, the reason is logged once, and the caller runs
 * the steps eagerly, where a kernel's own error shows as itself. */
static void capture(kn__cuda_plan *d)
{
    cudaStream_t s = d->ctx.stream;
    char why[512] = "";
    cudaGraph_t graph = NULL;
    d->graph_state = -1;
    if (kn__cuda_status(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture", why,
                        sizeof why) == KN_OK) {
        kn_status rc = enqueue_steps(d, why, sizeof why);
        cudaError_t e = cudaStreamEndCapture(s, &graph);
        if (rc == KN_OK && kn__cuda_status(e, "cudaStreamEndCapture", why, sizeof why) == KN_OK) {
            e = cudaGraphInstantiate(&d->exec, graph, 0);
            if (kn__cuda_status(e, "cudaGraphInstantiate", why, sizeof why) == KN_OK)
                d->graph_state = 1;
            else
                d->exec = NULL;
        }
        if (graph)
            (void)cudaGraphDestroy(graph);
    }
    if (d->graph_state == 1)
        return;
    (void)cudaGetLastError();
    fprintf(stderr, "kiln: plan: CUDA graph capture failed (%s); running kernel by kernel\n", why);
}

/* After the run: bad data the kernels found (kn__cuda_data_error), as KN_ERR_RANGE. */
static kn_status check_data_error(kn__cuda_plan *d, char *msg, size_t size)
{
    const kn__cuda_data_error *e = (const kn__cuda_data_error *)(d->pinned + 64);
    if (!e->code)
        return KN_OK;
    kn__cuda_data_error rec = *e;
    const kn_node *n = rec.node >= 0 && rec.node < d->g->n_nodes ? d->g->nodes[rec.node] : NULL;
    snprintf(msg, size, "%s (node %d): value %lld at index %lld is outside [0, %lld)", n ? kn__op_names[n->op] : "?",
             rec.node, rec.value, rec.index, rec.limit);
    memset(d->pinned + 64, 0, sizeof rec);
    char why[256];
    if (kn__cuda_status(cudaMemsetAsync(d->ctx.data_error, 0, sizeof rec, d->ctx.stream), "cudaMemsetAsync", why,
                        sizeof why))
        snprintf(msg, size, "%s", why);
    return rec.code == KN_ERR_RANGE ? KN_ERR_RANGE : KN_ERR_DEVICE;
}

kn_status kn__cuda_plan_launch(kn__cuda_plan *d, char *msg, size_t size)
{
    cudaStream_t s = d->ctx.stream;
    kn_status st = kn__cuda_status(cudaSetDevice(d->device), "cudaSetDevice", msg, size);
    if (!st)
        st = claim_params(d, msg, size);
    if (st)
        return st;
    /* inputs: pinned host staging → device on the copy stream, unless a prefetch already put
     * them in the inbox; the compute stream waits for the copy stream, then takes the inbox's */
    const unsigned char *host = kn__plan_arena(d->p);
    for (int k = 0; k < d->n_inputs && !st; k++) {
        const kn__ir_node *v = &d->ir->nodes[d->inputs[k]];
        if (!d->prefetched[k])
            st = kn__cuda_status(cudaMemcpyAsync(d->arena + v->offset, host + v->offset, kn__nbytes(v->node),
                                                 cudaMemcpyHostToDevice, d->copy),
                                 "uploading an input", msg, size);
    }
    if (!st)
        st = kn__cuda_status(cudaEventRecord(d->uploaded, d->copy), "cudaEventRecord", msg, size);
    if (!st)
        st = kn__cuda_status(cudaStreamWaitEvent(s, d->uploaded, 0), "cudaStreamWaitEvent", msg, size);
    bool took = false;
    for (int k = 0; k < d->n_inputs && !st; k++) {
        const kn__ir_node *v = &d->ir->nodes[d->inputs[k]];
        if (!d->prefetched[k])
            continue;
        d->prefetched[k] = false;
        took = true;
        st = kn__cuda_status(cudaMemcpyAsync(d->arena + v->offset, d->inbox + d->inbox_off[k], kn__nbytes(v->node),
                                             cudaMemcpyDeviceToDevice, s),
                             "taking a prefetched input", msg, size);
    }
    if (!st && took) /* the next prefetch may overwrite the inbox once this is done */
        st = kn__cuda_status(cudaEventRecord(d->consumed, s), "cudaEventRecord", msg, size);
    /* the step counter lives in device memory so that a captured graph stays valid */
    *(unsigned long long *)d->pinned = (unsigned long long)kn_plan_step_count(d->p);
    if (!st)
        st = kn__cuda_status(cudaMemcpyAsync(d->misc, d->pinned, sizeof(unsigned long long), cudaMemcpyHostToDevice, s),
                             "uploading the step counter", msg, size);
    if (st)
        return st;
    if (d->graph_state == 0 && d->runs >= 1) /* the first run was eager: lazy library setup is done */
        capture(d);
    if (d->graph_state == 1)
        st = kn__cuda_status(cudaGraphLaunch(d->exec, s), "cudaGraphLaunch", msg, size);
    else if (!st)
        st = enqueue_steps(d, msg, size);
    d->outputs_fresh = false;
    for (int k = 0; k < d->n_small_outputs && !st; k++) {
        int o = d->small_outputs[k];
        st = kn__cuda_status(cudaMemcpyAsync((void *)kn__plan_addr(d->p, o), dev_addr(d, o),
                                             kn__nbytes(d->ir->nodes[kn__ir_rep(d->ir, o)].node), cudaMemcpyDeviceToHost, s),
                             "copying the outputs to the host", msg, size);
    }
    if (!st)
        st = kn__cuda_status(cudaMemcpyAsync(d->pinned + 64, d->ctx.data_error, sizeof(kn__cuda_data_error),
                                             cudaMemcpyDeviceToHost, s),
                             "reading the data-error record", msg, size);
    if (!st && d->n_checked)
        st = kn__cuda_status(cudaMemcpyAsync(d->records_host, d->records, (size_t)d->n_checked * RECORD_BYTES,
                                             cudaMemcpyDeviceToHost, s),
                             "reading the kernels' data-error records", msg, size);
    /* the caller may refill the staging buffers once the inputs are on the device */
    if (!st)
        st = kn__cuda_status(cudaEventSynchronize(d->uploaded), "uploading the inputs", msg, size);
    if (st)
        (void)cudaGetLastError();
    return st;
}

kn_status kn__cuda_plan_wait(kn__cuda_plan *d, char *msg, size_t size)
{
    kn_status st = kn__cuda_status(cudaSetDevice(d->device), "cudaSetDevice", msg, size);
    if (!st)
        st = kn__cuda_status(cudaStreamSynchronize(d->ctx.stream), "running the plan on the GPU", msg, size);
    if (st) {
        (void)cudaGetLastError();
        return st;
    }
    for (int s2 = 0; d->ev && s2 < d->n_steps; s2++) {
        float ms = 0;
        if (d->steps[s2].k && !d->steps[s2].grouped && cudaEventElapsedTime(&ms, d->ev[2 * s2], d->ev[2 * s2 + 1]) == cudaSuccess)
            kn__plan_add_step_seconds(d->p, s2, 1e-3 * ms);
    }
    (void)cudaGetLastError();
    d->runs++;
    d->outputs_fresh = true;
#ifdef KN_CUDA_HAVE_DATA_CHECK
    for (int j = 0; j < d->n_checked; j++) {
        const kn__cuda_derr *rec = (const kn__cuda_derr *)(d->records_host + (size_t)j * RECORD_BYTES);
        if (rec->where == UINT64_MAX)
            continue;
        /* the kernel's message, from the saved record (its scratch is reused by now) */
        const dstep *ds = &d->steps[d->checked[j]];
        kn__kargs a = ds->args;
        a.work = d->records + (size_t)j * RECORD_BYTES;
        d->kmsg[0] = 0;
        kn_status rc = kn__cuda_check_data(&a);
        return step_failed(d, ds, rc ? rc : KN_ERR_RANGE, msg, size);
    }
#endif
    return check_data_error(d, msg, size);
}

/* The input slot k of IR node i, or -1 (not an input held in the arena). */
static int input_slot(const kn__cuda_plan *d, int i)
{
    for (int k = 0; k < d->n_inputs; k++)
        if (d->inputs[k] == i)
            return k;
    return -1;
}

kn_status kn__cuda_plan_prefetch(kn__cuda_plan *d, int i, char *msg, size_t size)
{
    int k = input_slot(d, i);
    if (k < 0)
        return KN_OK; /* not used by the plan: nothing to upload */
    const kn__ir_node *v = &d->ir->nodes[i];
    /* after the last run took the inbox's previous contents (a no-op before any run did) */
    kn_status st = kn__cuda_status(cudaSetDevice(d->device), "cudaSetDevice", msg, size);
    if (!st)
        st = kn__cuda_status(cudaStreamWaitEvent(d->copy, d->consumed, 0), "cudaStreamWaitEvent", msg, size);
    if (!st)
        st = kn__cuda_status(cudaMemcpyAsync(d->inbox + d->inbox_off[k], kn__plan_arena(d->p) + v->offset,
                                             kn__nbytes(v->node), cudaMemcpyHostToDevice, d->copy),
                             "prefetching an input", msg, size);
    d->prefetched[k] = st == KN_OK;
    if (st)
        (void)cudaGetLastError();
    return st;
}

void kn__cuda_plan_cancel_prefetch(kn__cuda_plan *d, int i)
{
    int k = input_slot(d, i);
    if (k >= 0)
        d->prefetched[k] = false;
}

kn_status kn__cuda_plan_fetch(kn__cuda_plan *d, int i, char *msg, size_t size)
{
    const kn__ir *ir = d->ir;
    if (is_constant(ir, i))
        return KN_OK;
    if (is_param(ir, i))
        return kn__graph_params_to_host(d->g, msg, size);
    void *h = (void *)kn__plan_addr(d->p, i), *dv = dev_addr(d, i);
    size_t bytes = kn__nbytes(ir->nodes[kn__ir_rep(ir, i)].node);
    if (!h || !dv || !bytes)
        return KN_OK;
    for (int k = 0; d->outputs_fresh && k < d->n_small_outputs; k++) /* came down with the run */
        if (dev_addr(d, d->small_outputs[k]) == dv &&
            kn__nbytes(ir->nodes[kn__ir_rep(ir, d->small_outputs[k])].node) >= bytes)
            return KN_OK;
    kn_status st = kn__cuda_status(cudaSetDevice(d->device), "cudaSetDevice", msg, size);
    if (!st)
        st = kn__cuda_status(cudaMemcpyAsync(h, dv, bytes, cudaMemcpyDeviceToHost, d->ctx.stream),
                             "copying a result from the GPU", msg, size);
    if (!st)
        st = kn__cuda_status(cudaStreamSynchronize(d->ctx.stream), "copying a result from the GPU", msg, size);
    return st;
}

kn_status kn__cuda_plan_run(kn__cuda_plan *d, char *msg, size_t size)
{
    kn_status st = kn__cuda_plan_launch(d, msg, size);
    return st ? st : kn__cuda_plan_wait(d, msg, size);
}

int kn__cuda_plan_num_fallbacks(const kn__cuda_plan *d) { return d ? d->n_fallbacks : 0; }

int kn__cuda_plan_num_grouped(const kn__cuda_plan *d)
{
    int n = 0;
    for (int s = 0; d && s < d->n_steps; s++)
        n += d->steps[s].grouped;
    return n;
}
bool kn__cuda_plan_uses_graph(const kn__cuda_plan *d) { return d && d->graph_state == 1; }
