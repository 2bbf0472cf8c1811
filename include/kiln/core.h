/* kiln/core.h — status codes, dtypes, allocation hooks, tensors and the counter-based RNG.
 *
 * Memory layout, said once for all of kiln: tensors are row-major (the innermost dimension
 * is last and has stride 1 when contiguous); images are NCHW; strides count elements, not
 * bytes. A matmul of A [.., M, K] by B [.., K, N] gives [.., M, N]; linear() takes weights
 * as [out, in] like PyTorch, so y = x · Wᵀ + b.
 *
 * Nothing here aborts on user input: fallible functions return a kn_status (KN_OK = 0). */
#ifndef KILN_CORE_H
#define KILN_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KN_MAX_DIMS 8

/* ---- status ------------------------------------------------------------------------- */
typedef enum kn_status {
    KN_OK = 0,
    KN_ERR_SHAPE,       /* shapes do not fit the op's rule */
    KN_ERR_DTYPE,       /* element types do not fit the op's rule */
    KN_ERR_ARG,         /* a bad argument or attribute (axis out of range, p outside [0,1), ...) */
    KN_ERR_OOM,         /* an allocation failed */
    KN_ERR_DEVICE,      /* a device is missing or failed */
    KN_ERR_IO,          /* a read or write failed */
    KN_ERR_FORMAT,      /* a file is malformed */
    KN_ERR_UNSUPPORTED, /* valid, but kiln does not handle this case (yet) */
    KN_ERR_MISUSE,      /* API used out of order (e.g. running a plan whose graph has an error) */
    KN_ERR_RANGE,       /* a data value out of range at run time (label >= classes, bad index) */
    KN_STATUS_COUNT
} kn_status;

/* Short constant name of a status ("KN_ERR_SHAPE"); never NULL. */
const char *kn_status_name(kn_status s);

/* Where functions outside the graph builder (readers, writers, model parser, trainer) put
 * the reason of a failure: the status and a message naming what is wrong and what to do.
 * Pass NULL when the message is not wanted. */
typedef struct kn_error {
    kn_status status;
    char msg[1024];
} kn_error;

/* Records status and a printf-style message into err (if not NULL); returns status. */
kn_status kn_error_set(kn_error *err, kn_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- dtypes ------------------------------------------------------------------------- */
typedef enum kn_dtype {
    KN_F32 = 0,
    KN_F64,
    KN_F16,  /* IEEE half: storage and conversion */
    KN_BF16, /* bfloat16: storage and conversion */
    KN_I8,
    KN_I32,
    KN_I64,
    KN_U8,
    KN_DTYPE_COUNT
} kn_dtype;

size_t kn_dtype_size(kn_dtype dt);      /* bytes per element; 0 for an invalid dtype */
const char *kn_dtype_name(kn_dtype dt); /* "f32", ...; "?" for an invalid dtype */
bool kn_dtype_is_float(kn_dtype dt);
bool kn_dtype_is_int(kn_dtype dt);

uint16_t kn_f32_to_f16(float x);   /* round to nearest even; overflow gives ±inf */
float kn_f16_to_f32(uint16_t h);
uint16_t kn_f32_to_bf16(float x);  /* round to nearest even; NaN stays NaN */
float kn_bf16_to_f32(uint16_t h);

/* Converts n elements between any two dtypes (float→int truncates toward zero, saturating).
 * dst and src must not overlap unless identical. */
kn_status kn_convert(void *dst, kn_dtype dst_dtype, const void *src, kn_dtype src_dtype, int64_t n);

/* ---- allocation hooks --------------------------------------------------------------- */
/* Every allocation kiln makes goes through these hooks. alloc must return memory aligned to
 * `align` (a power of two) or NULL; free(NULL) must be a no-op. The hooks are process-wide:
 * set them before creating any kiln object and keep them until the last one is freed. */
typedef struct kn_alloc_hooks {
    void *(*alloc)(size_t bytes, size_t align, void *user);
    void (*free)(void *ptr, void *user);
    void *user;
} kn_alloc_hooks;

/* NULL restores the default (aligned_alloc/free). */
void kn_set_alloc_hooks(const kn_alloc_hooks *hooks);
/* Frees memory that a kiln function handed to the caller (documented there). NULL is a no-op. */
void kn_free(void *p);

/* ---- tensors ------------------------------------------------------------------------ */
typedef struct kn_buffer kn_buffer; /* refcounted, 64-byte aligned storage */

/* A tensor is a strided view of a buffer. Views (reshape, permute, slice) share the buffer;
 * the buffer lives until its last tensor is freed. Fields may be read freely. */
typedef struct kn_tensor {
    kn_dtype dtype;
    int ndim;                       /* 0 (scalar) .. KN_MAX_DIMS */
    int64_t shape[KN_MAX_DIMS];
    int64_t strides[KN_MAX_DIMS];   /* in elements */
    void *data;                     /* address of element [0, .., 0] */
    kn_buffer *buf;                 /* owning buffer, NULL when data is borrowed */
} kn_tensor;

/* New zero-filled contiguous tensor. Fails with KN_ERR_ARG (bad dtype/ndim/negative size),
 * KN_ERR_OOM, or KN_ERR_RANGE (byte size overflows). Free with kn_tensor_free. */
kn_status kn_tensor_new(kn_tensor **out, kn_dtype dt, int ndim, const int64_t *shape);
/* A contiguous tensor over memory the caller owns and keeps alive (borrowed). */
kn_status kn_tensor_wrap(kn_tensor **out, void *data, kn_dtype dt, int ndim, const int64_t *shape);
void kn_tensor_free(kn_tensor *t); /* NULL is a no-op */

int64_t kn_tensor_numel(const kn_tensor *t);
size_t kn_tensor_nbytes(const kn_tensor *t); /* numel · element size */
bool kn_tensor_is_contiguous(const kn_tensor *t);

/* Views: share storage. reshape needs a contiguous source (else KN_ERR_UNSUPPORTED: call
 * kn_tensor_contiguous first); one dimension may be -1. */
kn_status kn_tensor_reshape(kn_tensor **out, const kn_tensor *t, int ndim, const int64_t *shape);
kn_status kn_tensor_permute(kn_tensor **out, const kn_tensor *t, const int *perm);
kn_status kn_tensor_transpose(kn_tensor **out, const kn_tensor *t, int dim0, int dim1);
/* Elements start..stop-1 (step ≥ 1) along dim; negative start/stop count from the end. */
kn_status kn_tensor_slice(kn_tensor **out, const kn_tensor *t, int dim, int64_t start,
                          int64_t stop, int64_t step);
/* Copies: a new contiguous tensor, in the same or another dtype. */
kn_status kn_tensor_contiguous(kn_tensor **out, const kn_tensor *t);
kn_status kn_tensor_to(kn_tensor **out, const kn_tensor *t, kn_dtype dt);
/* Copies src into dst elementwise (same shape, any strides/dtypes). */
kn_status kn_tensor_copy(kn_tensor *dst, const kn_tensor *src);

/* Element access by multi-index, as double (slow; for tests and tools). */
double kn_tensor_get(const kn_tensor *t, const int64_t *index);
void kn_tensor_set(kn_tensor *t, const int64_t *index, double v);

/* ---- counter-based RNG (Philox4x32-10) ---------------------------------------------- */
/* The i-th number of stream `stream` under `seed` depends only on (seed, stream, i), so every
 * backend and every thread count produce the same values. */
void kn_philox4x32(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]);
double kn_rng_uniform(uint64_t seed, uint64_t stream, uint64_t i); /* in (0,1), exact in f32 */
double kn_rng_normal(uint64_t seed, uint64_t stream, uint64_t i);  /* N(0,1) */

/* Fills a tensor (any float dtype, any strides) in row-major order of its elements. */
kn_status kn_tensor_fill_uniform(kn_tensor *t, uint64_t seed, uint64_t stream, double lo, double hi);
kn_status kn_tensor_fill_normal(kn_tensor *t, uint64_t seed, uint64_t stream, double mean, double std);
kn_status kn_tensor_fill(kn_tensor *t, double value);

#ifdef __cplusplus
}
#endif
#endif
