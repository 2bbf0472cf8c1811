/* kt_inputs.c — the inputs of the op test rows (op_rows.h: kt_param, kt_frozen, kt_labels,
 * kt_const): values from a fixed seed and a per-input stream counter, so an f32 and an f64
 * build of one row, or a CPU and a GPU run, see the same numbers. Shared by tests/test_ops.c
 * and tests/gpu/test_cuda_ops.c. */
#include <stdlib.h>

#include "op_rows.h"

static uint64_t kt_counter; /* reset before each build so f32 and f64 builds match */
static kn_dtype kt_round = KN_F32; /* values are rounded to this dtype (bf16/f16 for the low-precision pass) */

void kt_inputs_reset(void) { kt_counter = 0; }
void kt_inputs_round(kn_dtype dt) { kt_round = dt; }

static double kt_value(double lo, double hi, int64_t i)
{
    double v = lo + (hi - lo) * kn_rng_uniform(1234, kt_counter, (uint64_t)i);
    if (kt_round == KN_BF16)
        return kn_bf16_to_f32(kn_f32_to_bf16((float)v));
    if (kt_round == KN_F16)
        return kn_f16_to_f32(kn_f32_to_f16((float)v));
    return (double)(float)v;
}

static kn_node *make_param(kn_graph *g, kn_dtype dt, int ndim, const int64_t *shape, double lo,
                           double hi, bool trainable)
{
    kn_node *n = kn_graph_param(g, "", dt, ndim, shape, trainable);
    if (n) {
        void *d = kn_graph_param_data(g, n);
        for (int64_t i = 0; i < kn_node_numel(n); i++) {
            double v = kt_value(lo, hi, i);
            if (dt == KN_F32)
                ((float *)d)[i] = (float)v;
            else if (dt == KN_BF16)
                ((uint16_t *)d)[i] = kn_f32_to_bf16((float)v);
            else if (dt == KN_F16)
                ((uint16_t *)d)[i] = kn_f32_to_f16((float)v);
            else
                ((double *)d)[i] = v;
        }
    }
    kt_counter++; /* every input draws from its own stream */
    return n;
}

kn_node *kt_param(kn_graph *g, kn_dtype dt, int ndim, const int64_t *shape, double lo, double hi)
{
    return make_param(g, dt, ndim, shape, lo, hi, true);
}

kn_node *kt_frozen(kn_graph *g, kn_dtype dt, int ndim, const int64_t *shape, double lo, double hi)
{
    return make_param(g, dt, ndim, shape, lo, hi, false);
}

kn_node *kt_labels(kn_graph *g, kn_dtype dt, int ndim, const int64_t *shape, int64_t classes)
{
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= shape[i];
    int64_t *v = malloc(sizeof(int64_t) * (size_t)(numel ? numel : 1));
    for (int64_t i = 0; i < numel; i++)
        v[i] = (int64_t)(kn_rng_uniform(99, kt_counter, (uint64_t)i) * (double)classes);
    kt_counter++;
    kn_convert(v, dt, v, KN_I64, numel); /* narrowing in place is safe front to back */
    kn_node *n = kn_graph_const(g, dt, ndim, shape, v);
    free(v);
    return n;
}

kn_node *kt_const(kn_graph *g, kn_dtype dt, int ndim, const int64_t *shape, double lo, double hi)
{
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= shape[i];
    double *v = malloc(sizeof(double) * (size_t)(numel ? numel : 1));
    for (int64_t i = 0; i < numel; i++)
        v[i] = kt_value(lo, hi, i);
    kt_counter++;
    kn_tensor *src;
    kn_tensor_wrap(&src, v, KN_F64, ndim, shape);
    kn_tensor *conv = NULL;
    kn_tensor_to(&conv, src, dt);
    kn_node *n = kn_graph_const(g, dt, ndim, shape, conv ? conv->data : NULL);
    kn_tensor_free(conv);
    kn_tensor_free(src);
    free(v);
    return n;
}

