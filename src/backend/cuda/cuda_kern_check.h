/* cuda_kern_check.h — data errors of CUDA kernels (a label outside [0, C), an embedding index
 * outside [0, V), a load_batch row outside the table, Adam's step t < 1, unusable int8
 * quantisation parameters):
 * a kernel cannot return KN_ERR_RANGE without synchronising, so the ops that validate data
 * keep a record at the start of their workspace, reset on the stream before each launch and
 * set by the kernel (the smallest bad index wins, independent of thread order; the output
 * then holds NaN or the update is skipped). After the stream is synchronised, the plan calls
 * kn__cuda_check_data for each node of such an op (kn__cuda_op_checks_data) to turn the record
 * into the same KN_ERR_RANGE message the CPU kernel gives. C and CUDA. */
#ifndef KN_CUDA_KERN_CHECK_H
#define KN_CUDA_KERN_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "../backend.h"

typedef struct kn__cuda_derr {
    uint64_t where; /* first bad row/element; UINT64_MAX = none (the reset sets all bits) */
    int32_t code;   /* KN_CUDA_DERR_* of the last writer; meaningful only when where is set */
    int32_t pad;
} kn__cuda_derr;

/* QPARAMS: where 0 = the input's (scale, zero point), 1 + o = weight scale o. */
enum { KN_CUDA_DERR_LABEL = 1, KN_CUDA_DERR_STEP = 2, KN_CUDA_DERR_INDEX = 3, KN_CUDA_DERR_QPARAMS = 4 };

/* Bytes at the start of such an op's workspace taken by the record (kernels put any other
 * scratch after it). */
#define KN_CUDA_DERR_BYTES 256

/* The workspace of an op whose kernel needs nothing but the record (kn__backend_kernel.workspace). */
static inline size_t kn__cu_derr_workspace(const kn_node *n)
{
    (void)n;
    return KN_CUDA_DERR_BYTES;
}

/* True for the ops whose CUDA kernels keep a data-error record in their workspace. */
bool kn__cuda_op_checks_data(int op);

/* Synchronises the context's stream, reads node a->node's record (a->work, device memory) and
 * returns KN_OK, or KN_ERR_RANGE with the CPU kernel's message in a->err (the bad label is
 * read back from the labels buffer); KN_ERR_DEVICE if a CUDA call fails. */
kn_status kn__cuda_check_data(const kn__kargs *a);

#ifdef __cplusplus
}
#endif

#endif
