/* cuda_mock.c — a CUDA device made of host memory, for testing kiln's CUDA plan machinery
 * without a GPU (see cuda_mock.h). It defines the CUDA runtime, cuBLASLt and cuDNN functions
 * kiln calls (the linker takes them before libcudart): "device" memory is malloc'd and
 * poisoned with NaN bytes, copies check that their direction matches the pointers (a host
 * address where a device one belongs is a violation), streams run at once, stream capture
 * records kernel calls and graph launches replay them. It also replaces the CUDA kernel
 * table: every op's "CUDA kernel" is its CPU kernel run on the device buffers, after checking
 * that every pointer it gets is device memory, reading the step counter from device memory
 * (as real kernels must) and turning KN_ERR_RANGE into the device data-error record. */
#include <cublasLt.h>
#include <cuda_runtime.h>
#ifdef KN_HAVE_CUDNN
#include <cudnn.h>
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_kernels.h"
#include "kiln/cuda.h"
#include "cuda_mock.h"

/* ---- the mock device ------------------------------------------------------------------------ */

#define MAX_BLOCKS 8192
#define MAX_CALLS 8192

static struct {
    char *p;
    size_t n;
} blocks[MAX_BLOCKS];
static int n_blocks;
size_t capacity = (size_t)1 << 30, used;
long n_mallocs, n_launches, n_captures, violations, n_d2h;
char first_violation[512];
static int capturing;
static const kn__kargs *recorded[MAX_CALLS];
static int n_recorded;

typedef struct mock_graph {
    int n;
    const kn__kargs *calls[];
} mock_graph;

static void violation(const char *what)
{
    if (violations++ == 0)
        snprintf(first_violation, sizeof first_violation, "%s", what);
}

static bool is_dev(const void *p, size_t n)
{
    const char *c = p;
    for (int i = 0; i < n_blocks; i++)
        if (c >= blocks[i].p && c + n <= blocks[i].p + blocks[i].n)
            return true;
    return false;
}

cudaError_t cudaGetDeviceCount(int *count)
{
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    if (device != 0)
        return cudaErrorInvalidDevice;
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "kiln mock GPU");
    prop->major = 9;
    prop->multiProcessorCount = 132;
    return cudaSuccess;
}

cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *attr, const void *func)
{
    (void)func;
    memset(attr, 0, sizeof *attr);
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
cudaError_t cudaGetDevice(int *device)
{
    *device = 0;
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) { return cudaSuccess; }

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device)
{
    (void)attr, (void)device;
    *value = 132;
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags)
{
    (void)flags;
    *s = (cudaStream_t)malloc(16);
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    free(s);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    (void)s;
    if (capturing)
        violation("cudaStreamSynchronize while capturing");
    return capturing ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags)
{
    (void)flags;
    *e = (cudaEvent_t)malloc(16);
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e)
{
    free(e);
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s)
{
    (void)e, (void)s;
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    (void)start, (void)end;
    *ms = 0.25f;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e)
{
    (void)e;
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int flags)
{
    (void)s, (void)e, (void)flags;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t n)
{
    if (capturing)
        violation("cudaMalloc while capturing");
    if (n > capacity - used || n_blocks == MAX_BLOCKS)
        return cudaErrorMemoryAllocation;
    char *m = malloc(n ? n : 1);
    if (!m)
        return cudaErrorMemoryAllocation;
    memset(m, 0xff, n); /* NaN floats: reading what nobody wrote shows */
    blocks[n_blocks].p = m;
    blocks[n_blocks++].n = n;
    used += n;
    n_mallocs++;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    for (int i = 0; i < n_blocks; i++)
        if (blocks[i].p == p) {
            used -= blocks[i].n;
            free(p);
            blocks[i] = blocks[--n_blocks];
            return cudaSuccess;
        }
    violation("cudaFree of something cudaMalloc did not return");
    return cudaErrorInvalidValue;
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total)
{
    *free_b = capacity - used;
    *total = capacity;
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void **p, size_t n)
{
    *p = malloc(n);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFreeHost(void *p)
{
    free(p);
    return cudaSuccess;
}
cudaError_t cudaHostRegister(void *p, size_t n, unsigned int flags)
{
    (void)flags;
    if (is_dev(p, n))
        violation("cudaHostRegister of device memory");
    return cudaSuccess;
}
cudaError_t cudaHostUnregister(void *p)
{
    (void)p;
    return cudaSuccess;
}

static cudaError_t copy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
    char what[160];
    if (capturing && kind != cudaMemcpyDeviceToDevice) {
        violation("a host copy while capturing: kiln's host copies are not part of the graph");
        return cudaErrorStreamCaptureUnsupported;
    }
    bool ok = kind == cudaMemcpyHostToDevice     ? is_dev(dst, n) && !is_dev(src, n)
              : kind == cudaMemcpyDeviceToHost   ? is_dev(src, n) && !is_dev(dst, n)
              : kind == cudaMemcpyDeviceToDevice ? is_dev(src, n) && is_dev(dst, n)
                                                 : false;
    if (capturing && ok && kind == cudaMemcpyDeviceToDevice) { /* a graph node: done at replay */
        violation("a device-to-device copy while capturing: the mock cannot replay copies");
        return cudaErrorStreamCaptureUnsupported;
    }
    if (!ok) {
        snprintf(what, sizeof what, "copy kind %d of %zu bytes: dst %s device, src %s device", (int)kind, n,
                 is_dev(dst, n) ? "is" : "is not", is_dev(src, n) ? "is" : "is not");
        violation(what);
        return cudaErrorInvalidValue;
    }
    memmove(dst, src, n);
    n_d2h += kind == cudaMemcpyDeviceToHost;
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
    return copy(dst, src, n, kind);
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind, cudaStream_t s)
{
    (void)s;
    return copy(dst, src, n, kind);
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s)
{
    (void)s;
    if (!is_dev(p, n)) {
        violation("cudaMemsetAsync on host memory");
        return cudaErrorInvalidValue;
    }
    memset(p, v, n);
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode mode)
{
    (void)s, (void)mode;
    capturing = 1;
    n_recorded = 0;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph)
{
    (void)s;
    capturing = 0;
    mock_graph *g = malloc(sizeof *g + (size_t)n_recorded * sizeof g->calls[0]);
    g->n = n_recorded;
    memcpy(g->calls, recorded, (size_t)n_recorded * sizeof g->calls[0]);
    *graph = (cudaGraph_t)g;
    n_captures++;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags)
{
    (void)flags;
    mock_graph *g = (mock_graph *)graph, *x = malloc(sizeof *x + (size_t)g->n * sizeof x->calls[0]);
    memcpy(x, g, sizeof *g + (size_t)g->n * sizeof g->calls[0]);
    *exec = (cudaGraphExec_t)x;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g)
{
    free(g);
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x)
{
    free(x);
    return cudaSuccess;
}

static kn_status run_kernel(const kn__kargs *a);

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s)
{
    (void)s;
    const mock_graph *x = (const mock_graph *)exec;
    n_launches++;
    for (int i = 0; i < x->n; i++)
        if (run_kernel(x->calls[i]) != KN_OK)
            return cudaErrorLaunchFailure;
    return cudaSuccess;
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h)
{
    *h = (cublasLtHandle_t)malloc(16);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h)
{
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}
#ifdef KN_HAVE_CUDNN
cudnnStatus_t cudnnCreate(cudnnHandle_t *h)
{
    *h = (cudnnHandle_t)malloc(16);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t h)
{
    free(h);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s)
{
    (void)h, (void)s;
    return CUDNN_STATUS_SUCCESS;
}
#endif

/* ---- the mock kernel table: CPU kernels on device buffers ----------------------------------- */

static kn__backend_kernel table[KN__CUDA_TABLE_SIZE];
long n_device_steps, n_chain_steps, n_group_steps;

static kn_status run_kernel(const kn__kargs *a)
{
    const kn__cuda_ctx *c = a->device;
    kn__kargs b = *a;
    b.step = *c->step; /* what a graph-safe kernel reads */
    char err[256] = "";
    b.err = err;
    b.err_size = sizeof err;
    b.device = NULL;
    if (a->group) { /* a grouped update: each member's CPU kernel, in order */
        for (int k = 0; k < a->group->n; k++) {
            kn_status rc = run_kernel(&a->group->members[k]);
            if (rc)
                return rc;
        }
        return KN_OK;
    }
    kn_status rc = a->chain ? kn__cpu_chain_run(&b) : kn__cpu_kernel(a->node->op)->fn(&b);
    if (rc == KN_ERR_RANGE) { /* a device kernel records bad data instead of returning it */
        if (!c->data_error->code) {
            c->data_error->code = KN_ERR_RANGE;
            c->data_error->node = a->node->id;
            c->data_error->index = -1;
            c->data_error->value = -1;
            c->data_error->limit = -1;
        }
        return KN_OK;
    }
    return rc;
}

static kn_status mock_kernel(const kn__kargs *a)
{
    const kn_node *n = a->node;
    char what[200];
    if (!a->device) {
        violation("a CUDA kernel without a device context");
        return KN_ERR_DEVICE;
    }
    if (a->dst && kn__nbytes(n) && !is_dev(a->dst, kn__nbytes(n))) {
        snprintf(what, sizeof what, "%s (node %d): dst is not device memory", kn__op_names[n->op], n->id);
        violation(what);
    }
    for (int i = 0; i < n->nsrc && !a->chain; i++)
        if (kn__nbytes(n->src[i]) && !is_dev(a->src[i], kn__nbytes(n->src[i]))) {
            snprintf(what, sizeof what, "%s (node %d): src %d is not device memory", kn__op_names[n->op], n->id, i);
            violation(what);
        }
    for (int j = 0; a->chain && j < a->chain->n_ops; j++) { /* a chain's inputs: its ops' external operands */
        const kn_node *o = a->chain->ops[j].node;
        for (int i = 0; i < o->nsrc && i < 2; i++) {
            int in = a->chain->ops[j].in[i];
            if (in >= 0 && kn__nbytes(o->src[i]) && !is_dev(a->src[in], kn__nbytes(o->src[i]))) {
                snprintf(what, sizeof what, "chain op %s (node %d): input slot %d is not device memory",
                         kn__op_names[o->op], o->id, in);
                violation(what);
            }
        }
    }
    for (int k = 0; a->group && k < a->group->n; k++)
        if (!is_dev(a->group->members[k].src[0], kn__nbytes(a->group->members[k].node)))
            violation("a grouped update's parameter is not device memory");
    n_chain_steps += a->chain != NULL;
    n_group_steps += a->group != NULL;
    if (a->work && !is_dev(a->work, 1))
        violation("workspace is not device memory");
    n_device_steps++;
    if (capturing) {
        if (n_recorded == MAX_CALLS)
            return KN_ERR_OOM;
        recorded[n_recorded++] = a;
        return KN_OK;
    }
    return run_kernel(a);
}

/* The mock's kernels keep no data-error records in their workspace (kern_check.cu's scheme):
 * these stand in for kern_check.cu when it exists, so the plan saves and checks none. */
bool kn__cuda_op_checks_data(int op);
kn_status kn__cuda_check_data(const kn__kargs *a);
bool kn__cuda_op_checks_data(int op)
{
    (void)op;
    return false;
}
kn_status kn__cuda_check_data(const kn__kargs *a)
{
    (void)a;
    return KN_OK;
}

const kn__backend_kernel *kn__cuda_kernel(int op)
{
    if (op == KN__CUDA_OP_CHAIN || op == KN__CUDA_OP_UPDATES) { /* run_kernel: the CPU chain, each member */
        table[op].fn = mock_kernel;
        return &table[op];
    }
    if (op < 0 || op >= KN_OP_COUNT)
        return NULL;
    const kn__backend_kernel *c = kn__cpu_kernel(op);
    if (!c)
        return NULL;
    table[op].fn = mock_kernel;
    table[op].workspace = c->workspace;
    table[op].supports = NULL;
    return &table[op];
}

bool kn__cuda_supports(const kn_node *n)
{
    const char *env = getenv("KILN_CUDA_FALLBACK_OPS");
    if (env && *env) {
        const char *name = kn__op_names[n->op];
        size_t len = strlen(name);
        for (const char *s = env; *s;) {
            size_t k = strcspn(s, ",");
            if (k == len && !strncmp(s, name, k))
                return false;
            s += k + (s[k] == ',');
        }
    }
    return kn__cpu_supports(n) && kn__cuda_kernel(n->op);
}


/* Any program on the mock device fails if the device model was breached, whatever it checked. */
__attribute__((destructor)) static void report_violations(void)
{
    if (!violations)
        return;
    fprintf(stderr, "cuda_mock: %ld violations of the device model; the first: %s\n", violations, first_violation);
    _exit(1);
}
