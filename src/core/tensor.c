/* tensor.c — strided tensors over refcounted aligned buffers: creation, views (reshape,
 * permute, slice), copies and conversion, element access, random fills. Tensors are the
 * user-facing data carrier; graphs and plans keep their own storage and hand out views. */
#include <string.h>

#include "alloc.h"
#include "core_internal.h"
#include "philox.h"

struct kn_buffer {
    void *data;
    size_t bytes;
    int refs;
};

static kn_status check_shape(kn_dtype dt, int ndim, const int64_t *shape, int64_t *numel)
{
    if (kn_dtype_size(dt) == 0 || ndim < 0 || ndim > KN_MAX_DIMS || (ndim > 0 && !shape))
        return KN_ERR_ARG;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return KN_ERR_ARG;
        if (shape[i] != 0 && n > INT64_MAX / shape[i])
            return KN_ERR_RANGE;
        n *= shape[i];
    }
    if ((uint64_t)n > (uint64_t)(SIZE_MAX / 2) / kn_dtype_size(dt))
        return KN_ERR_RANGE;
    *numel = n;
    return KN_OK;
}

static void set_contiguous_strides(kn_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->strides[i] = s;
        s *= t->shape[i] ? t->shape[i] : 1;
    }
}

static kn_tensor *tensor_struct(void)
{
    return kn__calloc(1, sizeof(kn_tensor));
}

kn_status kn_tensor_new(kn_tensor **out, kn_dtype dt, int ndim, const int64_t *shape)
{
    if (!out)
        return KN_ERR_ARG;
    *out = NULL;
    int64_t numel;
    kn_status st = check_shape(dt, ndim, shape, &numel);
    if (st)
        return st;
    kn_tensor *t = tensor_struct();
    kn_buffer *b = kn__calloc(1, sizeof(kn_buffer));
    size_t bytes = (size_t)numel * kn_dtype_size(dt);
    void *data = kn__alloc(bytes ? bytes : 1);
    if (!t || !b || !data) {
        kn__free(t);
        kn__free(b);
        kn__free(data);
        return KN_ERR_OOM;
    }
    memset(data, 0, bytes);
    b->data = data;
    b->bytes = bytes;
    b->refs = 1;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    set_contiguous_strides(t);
    t->data = data;
    t->buf = b;
    *out = t;
    return KN_OK;
}

kn_status kn_tensor_wrap(kn_tensor **out, void *data, kn_dtype dt, int ndim, const int64_t *shape)
{
    if (!out)
        return KN_ERR_ARG;
    *out = NULL;
    int64_t numel;
    kn_status st = check_shape(dt, ndim, shape, &numel);
    if (st)
        return st;
    if (!data && numel > 0)
        return KN_ERR_ARG;
    kn_tensor *t = tensor_struct();
    if (!t)
        return KN_ERR_OOM;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    set_contiguous_strides(t);
    t->data = data;
    *out = t;
    return KN_OK;
}

void kn_tensor_free(kn_tensor *t)
{
    if (!t)
        return;
    if (t->buf && --t->buf->refs == 0) {
        kn__free(t->buf->data);
        kn__free(t->buf);
    }
    kn__free(t);
}

int64_t kn_tensor_numel(const kn_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t kn_tensor_nbytes(const kn_tensor *t)
{
    return (size_t)kn_tensor_numel(t) * kn_dtype_size(t->dtype);
}

bool kn_tensor_is_contiguous(const kn_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != s)
            return false;
        s *= t->shape[i];
    }
    return true;
}

/* A new struct sharing t's buffer (one more reference). */
static kn_tensor *view_of(const kn_tensor *t)
{
    kn_tensor *v = tensor_struct();
    if (!v)
        return NULL;
    *v = *t;
    if (v->buf)
        v->buf->refs++;
    return v;
}

kn_status kn_tensor_reshape(kn_tensor **out, const kn_tensor *t, int ndim, const int64_t *shape)
{
    if (!out || !t || ndim < 0 || ndim > KN_MAX_DIMS || (ndim > 0 && !shape))
        return KN_ERR_ARG;
    *out = NULL;
    int64_t want[KN_MAX_DIMS], known = 1, numel = kn_tensor_numel(t);
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        want[i] = shape[i];
        if (shape[i] == -1) {
            if (infer >= 0)
                return KN_ERR_ARG;
            infer = i;
        } else if (shape[i] < 0) {
            return KN_ERR_ARG;
        } else {
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || numel % known)
            return KN_ERR_SHAPE;
        want[infer] = numel / known;
        known = numel;
    }
    if (known != numel)
        return KN_ERR_SHAPE;
    if (!kn_tensor_is_contiguous(t))
        return KN_ERR_UNSUPPORTED;
    kn_tensor *v = view_of(t);
    if (!v)
        return KN_ERR_OOM;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        v->shape[i] = want[i];
    set_contiguous_strides(v);
    *out = v;
    return KN_OK;
}

kn_status kn_tensor_permute(kn_tensor **out, const kn_tensor *t, const int *perm)
{
    if (!out || !t || (t->ndim > 0 && !perm))
        return KN_ERR_ARG;
    *out = NULL;
    unsigned seen = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= t->ndim || (seen & (1u << perm[i])))
            return KN_ERR_ARG;
        seen |= 1u << perm[i];
    }
    kn_tensor *v = view_of(t);
    if (!v)
        return KN_ERR_OOM;
    for (int i = 0; i < t->ndim; i++) {
        v->shape[i] = t->shape[perm[i]];
        v->strides[i] = t->strides[perm[i]];
    }
    *out = v;
    return KN_OK;
}

kn_status kn_tensor_transpose(kn_tensor **out, const kn_tensor *t, int d0, int d1)
{
    if (!t)
        return KN_ERR_ARG;
    if (d0 < 0)
        d0 += t->ndim;
    if (d1 < 0)
        d1 += t->ndim;
    if (d0 < 0 || d0 >= t->ndim || d1 < 0 || d1 >= t->ndim)
        return KN_ERR_ARG;
    int perm[KN_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++)
        perm[i] = i;
    perm[d0] = d1;
    perm[d1] = d0;
    return kn_tensor_permute(out, t, perm);
}

kn_status kn_tensor_slice(kn_tensor **out, const kn_tensor *t, int dim, int64_t start, int64_t stop,
                          int64_t step)
{
    if (!out || !t)
        return KN_ERR_ARG;
    *out = NULL;
    if (dim < 0)
        dim += t->ndim;
    if (dim < 0 || dim >= t->ndim || step < 1)
        return KN_ERR_ARG;
    int64_t n = t->shape[dim];
    if (start < 0)
        start += n;
    if (stop < 0)
        stop += n;
    if (start < 0 || stop > n || start > stop)
        return KN_ERR_ARG;
    kn_tensor *v = view_of(t);
    if (!v)
        return KN_ERR_OOM;
    v->shape[dim] = (stop - start + step - 1) / step;
    v->data = (char *)t->data + start * t->strides[dim] * (int64_t)kn_dtype_size(t->dtype);
    v->strides[dim] = t->strides[dim] * step;
    *out = v;
    return KN_OK;
}

/* Offset in elements of the i-th element in row-major order. */
static int64_t offset_of(const kn_tensor *t, int64_t i)
{
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t n = t->shape[d];
        off += (i % n) * t->strides[d];
        i /= n;
    }
    return off;
}

kn_status kn_tensor_copy(kn_tensor *dst, const kn_tensor *src)
{
    if (!dst || !src || dst->ndim != src->ndim)
        return KN_ERR_ARG;
    for (int i = 0; i < src->ndim; i++)
        if (dst->shape[i] != src->shape[i])
            return KN_ERR_SHAPE;
    int64_t n = kn_tensor_numel(src);
    if (kn_tensor_is_contiguous(dst) && kn_tensor_is_contiguous(src))
        return kn_convert(dst->data, dst->dtype, src->data, src->dtype, n);
    for (int64_t i = 0; i < n; i++)
        kn__store_f64(dst->data, dst->dtype, offset_of(dst, i),
                      kn__load_f64(src->data, src->dtype, offset_of(src, i)));
    return KN_OK;
}

kn_status kn_tensor_to(kn_tensor **out, const kn_tensor *t, kn_dtype dt)
{
    if (!out || !t)
        return KN_ERR_ARG;
    kn_status st = kn_tensor_new(out, dt, t->ndim, t->shape);
    if (st)
        return st;
    return kn_tensor_copy(*out, t);
}

kn_status kn_tensor_contiguous(kn_tensor **out, const kn_tensor *t)
{
    if (!t)
        return KN_ERR_ARG;
    return kn_tensor_to(out, t, t->dtype);
}

static int64_t offset_index(const kn_tensor *t, const int64_t *index)
{
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++)
        off += index[i] * t->strides[i];
    return off;
}

double kn_tensor_get(const kn_tensor *t, const int64_t *index)
{
    return kn__load_f64(t->data, t->dtype, offset_index(t, index));
}

void kn_tensor_set(kn_tensor *t, const int64_t *index, double v)
{
    kn__store_f64(t->data, t->dtype, offset_index(t, index), v);
}

void kn_philox4x32(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4])
{
    kn__philox4x32(seed, stream, block, out);
}

double kn_rng_uniform(uint64_t seed, uint64_t stream, uint64_t i)
{
    return kn__u32_to_unit(kn__philox_word(seed, stream, i));
}

double kn_rng_normal(uint64_t seed, uint64_t stream, uint64_t i)
{
    /* Box-Muller on words 2i and 2i+1 of the stream. */
    double u1 = kn__u32_to_unit(kn__philox_word(seed, stream, 2 * i));
    double u2 = kn__u32_to_unit(kn__philox_word(seed, stream, 2 * i + 1));
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static kn_status fill(kn_tensor *t, int kind, uint64_t seed, uint64_t stream, double a, double b)
{
    if (!t || !kn_dtype_is_float(t->dtype))
        return t ? KN_ERR_DTYPE : KN_ERR_ARG;
    int64_t n = kn_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double v = kind == 0 ? a
                 : kind == 1 ? a + (b - a) * kn_rng_uniform(seed, stream, (uint64_t)i)
                             : a + b * kn_rng_normal(seed, stream, (uint64_t)i);
        kn__store_f64(t->data, t->dtype, offset_of(t, i), v);
    }
    return KN_OK;
}

kn_status kn_tensor_fill_uniform(kn_tensor *t, uint64_t seed, uint64_t stream, double lo, double hi)
{
    return fill(t, 1, seed, stream, lo, hi);
}

kn_status kn_tensor_fill_normal(kn_tensor *t, uint64_t seed, uint64_t stream, double mean, double std)
{
    return fill(t, 2, seed, stream, mean, std);
}

kn_status kn_tensor_fill(kn_tensor *t, double value)
{
    return fill(t, 0, 0, 0, value, 0);
}
