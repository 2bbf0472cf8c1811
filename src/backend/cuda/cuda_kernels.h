/* cuda_kernels.h — the CUDA backend's kernel table: the same contract as the CPU backend
 * (src/backend/backend.h: {kernel, workspace, supports} per op; src/ops/op_table.h: kn__kargs
 * with every buffer contiguous row-major), with DEVICE pointers in kn__kargs.dst/src/work and
 * the plan's kn__cuda_ctx in kn__kargs.device. A kernel enqueues its work on ctx->stream and
 * returns without synchronising; it checks every launch (cudaGetLastError) and library call
 * and returns KN_ERR_DEVICE / KN_ERR_OOM with a message in a->err (kn__kerr) on failure. A
 * node the table does not support runs on the CPU with copies (the plan logs it).
 * Kernels must be capturable into a CUDA graph: no allocation, no synchronisation, no host
 * reads of device data while enqueueing, and nothing that changes from run to run in their
 * launch arguments (read the step counter through ctx->step; data errors go to
 * ctx->data_error). Elementwise kernels must allow dst == src (the in-place pass, like on
 * the CPU: kn__op_inplace_ok). Random ops
 * use the same counter-based Philox stream as the CPU (src/core/philox.h is host-device), so
 * dropout masks match bit for bit. */
#ifndef KN_CUDA_KERNELS_H
#define KN_CUDA_KERNELS_H

#include <cublasLt.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" { /* the core headers have no extern "C" of their own */
#endif
#include "../backend.h"
#ifdef __cplusplus
}
#endif

/* Bad data found by a kernel on the device (a label ≥ classes, an embedding index out of
 * range): the kernel cannot return KN_ERR_RANGE for it, so it records the first one here
 * (claim with atomicCAS(&code, 0, KN_ERR_RANGE), then fill the rest) and carries on; the
 * plan reads the record after every run and reports "<op> (node N): value V at index I is
 * outside [0, LIMIT)" as KN_ERR_RANGE. */
typedef struct kn__cuda_data_error {
    int code;        /* 0 = none */
    int node;        /* kn_node.id of the kernel's node */
    long long index; /* flat element index of the bad value */
    long long value;
    long long limit; /* valid values are 0 .. limit - 1 */
} kn__cuda_data_error;

/* Per-plan cache of the library algorithms picked for each node (cuDNN convolution
 * algorithms, cuBLASLt matmul algorithms): a node's is picked on its first call and reused by
 * every later call and by the CUDA-graph capture, so the heuristics run once per node and the
 * choice cannot change between runs. Keyed by node, kind (KN_CUDA_ALGO_*) and a hash of the
 * problem's geometry (so a kernel making several differently shaped calls gets one entry per
 * shape). Open addressing; when full, calls simply are not cached. */
enum { KN_CUDA_ALGO_CONV_FWD = 1, KN_CUDA_ALGO_CONV_BWD_DATA, KN_CUDA_ALGO_CONV_BWD_FILTER, KN_CUDA_ALGO_GEMM };
#define KN_CUDA_ALGO_SLOTS 1024
typedef struct kn__cuda_algo {
    const void *node;       /* NULL: a free slot */
    int kind;
    int algo;               /* cuDNN: the algorithm, or -1 when none fits (kiln's direct kernels) */
    uint64_t geometry;
    uint64_t blob[8];       /* cuBLASLt: the cublasLtMatmulAlgo_t */
} kn__cuda_algo;
typedef struct kn__cuda_algo_cache {
    kn__cuda_algo slot[KN_CUDA_ALGO_SLOTS];
    long picks, reuses;     /* heuristic calls made / saved */
} kn__cuda_algo_cache;

/* Per-plan device context handed to every kernel through kn__kargs.device. */
typedef struct kn__cuda_ctx {
    int device;
    cudaStream_t stream;        /* compute stream: every kernel of the plan */
    cublasLtHandle_t lt;        /* cuBLASLt (GEMMs) */
    void *dnn;                  /* cudnnHandle_t when built with cuDNN, else NULL */
    void *gemm_workspace;       /* device scratch for cuBLASLt/cuDNN */
    size_t gemm_workspace_bytes;
    kn__cuda_algo_cache *algos; /* host memory, the plan's; NULL: pick on every call */
    int math;                   /* KN_CUDA_MATH_*: FP32 exact, TF32 or BF16 tensor cores */
    bool deterministic;         /* no atomics whose order varies; fixed algorithms */
    int sm_count;               /* multiprocessors, for grid sizing */
    /* DEVICE address of the plan's step counter (completed runs, = kn__kargs.step), written
     * by an async copy before every run. A kernel whose work depends on the step (dropout's
     * Philox offset) must read it here, not from kn__kargs.step: the plan captures its
     * kernels once into a CUDA graph and replays them, so launch arguments are frozen. */
    const unsigned long long *step;
    kn__cuda_data_error *data_error; /* DEVICE address; see kn__cuda_data_error */
} kn__cuda_ctx;

enum { KN_CUDA_MATH_FP32 = 0, KN_CUDA_MATH_TF32 = 1, KN_CUDA_MATH_BF16 = 2 };

/* Table entries past the ops: the fused steps the CUDA plan forms. CHAIN runs a fused
 * elementwise chain (kn__kargs.chain; chain.cu); UPDATES a group of optimizer updates of one
 * op and the same settings as one multi-tensor launch (kn__kargs.group; optim.cu). */
enum { KN__CUDA_OP_CHAIN = KN_OP_COUNT, KN__CUDA_OP_UPDATES, KN__CUDA_TABLE_SIZE };

/* One chunk of a grouped update's work (update_group.c builds the table, optim.cu reads it):
 * n elements from the given element of a member's parameter, gradient and state (s1: momentum
 * buffer or exp_avg; s2: exp_avg_sq; NULL when the optimizer has none). */
#define KN_CUDA_UPDATE_CHUNK 16384
typedef struct kn__cuda_update_chunk {
    float *p;
    const float *g;
    float *s1, *s2;
    long long n;
} kn__cuda_update_chunk;

#ifdef __cplusplus
extern "C" {
#endif
/* The table, filled once by kn__cuda_register_* (one per family file, like the CPU's);
 * op < KN__CUDA_TABLE_SIZE (the ops, then the fused steps above). */
const kn__backend_kernel *kn__cuda_kernel(int op);
bool kn__cuda_supports(const kn_node *n);
void kn__cuda_register_elementwise(kn__backend_kernel *t); /* binary, unary, activation, cast, unary_bwd */
void kn__cuda_register_chain(kn__backend_kernel *t);       /* fused elementwise chains */
void kn__cuda_register_reduce(kn__backend_kernel *t);      /* sum, mean, max, min, argmax, maxmin_bwd */
void kn__cuda_register_softmax(kn__backend_kernel *t);     /* softmax, log_softmax and their bwd */
void kn__cuda_register_loss(kn__backend_kernel *t);        /* softmax_ce (+bwd), nll, mse, bce, kl_div */
void kn__cuda_register_matmul(kn__backend_kernel *t);      /* matmul, linear (cuBLASLt) */
void kn__cuda_register_conv(kn__backend_kernel *t);        /* conv2d and its bwd (cuDNN or own) */
void kn__cuda_register_pool(kn__backend_kernel *t);
void kn__cuda_register_norm(kn__backend_kernel *t);
void kn__cuda_register_random(kn__backend_kernel *t);      /* dropout */
void kn__cuda_register_shape(kn__backend_kernel *t);       /* view/expand/permute/concat/slice/pad, embedding */
void kn__cuda_register_data(kn__backend_kernel *t);        /* load_batch */
void kn__cuda_register_quant(kn__backend_kernel *t);       /* fake_quant */
void kn__cuda_register_optim(kn__backend_kernel *t);       /* sgd/adam updates, grouped updates */

/* Grouped optimizer updates (update_group.c): whether update step b (its device arguments)
 * may join the group members[0 .. n) — same op, attributes, lr and t, in place, and touching
 * no buffer another member writes — so that one multi-tensor launch (optim.cu) computes what
 * the steps would one by one. */
bool kn__cuda_update_joins(const kn__kargs *members, int n, const kn__kargs *b);
/* Builds g's device chunk table (kn__cuda_update_chunk, KN_CUDA_UPDATE_CHUNK elements each)
 * from g->members, uploads it on stream s and waits; sets g->table and g->n_chunks. The
 * caller frees g->table with kn__cuda_free. */
kn_status kn__cuda_update_table(kn__group *g, int device, cudaStream_t s, char *msg, size_t size);
#ifdef __cplusplus
}
#endif

#endif
