/* kern_check.cu — turns the data-error record of a CUDA kernel (cuda_kern_check.h: a label
 * outside [0, C), an embedding index outside [0, V), a load_batch row outside the table, Adam's
 * t < 1, a damaged int8 scale or zero point) into the KN_ERR_RANGE message the CPU kernel of
 * the same op gives. Runs after the kernel, synchronising the stream; the plan calls it for
 * the nodes whose op kn__cuda_op_checks_data names. */
#include "cuda_kern_util.cuh"

extern "C" {
#include "ops/quant_internal.h"
}

extern "C" bool kn__cuda_op_checks_data(int op)
{
    return op == KN_OP_SOFTMAX_CE || op == KN_OP_NLL || op == KN_OP_SOFTMAX_CE_BWD || op == KN_OP_NLL_BWD ||
           op == KN_OP_ADAM_UPDATE || op == KN_OP_EMBEDDING || op == KN_OP_EMBEDDING_BWD || op == KN_OP_LOAD_BATCH ||
           op == KN_OP_QLINEAR || op == KN_OP_QCONV2D;
}

/* Copies element i of a device buffer of dtype dt into host memory out (kn_dtype_size bytes). */
static kn_status read_elem(const kn__kargs *a, const kn__cuda_ctx *ctx, const void *dev, kn_dtype dt, uint64_t i,
                           void *out)
{
    size_t es = kn_dtype_size(dt);
    kn_status st = kn__cu_check(a,
                                cudaMemcpyAsync(out, (const char *)dev + i * es, es, cudaMemcpyDeviceToHost,
                                                ctx->stream),
                                "cudaMemcpyAsync (read back a bad value)");
    if (!st)
        st = kn__cu_check(a, cudaStreamSynchronize(ctx->stream), "cudaStreamSynchronize (read back a bad value)");
    return st;
}

extern "C" kn_status kn__cuda_check_data(const kn__kargs *a)
{
    KN_CU_CTX(a, ctx);
    const kn_node *n = a->node;
    if (!kn__cuda_op_checks_data(n->op))
        return KN_OK;
    if (!a->work)
        return kn__cu_fail(a, KN_ERR_DEVICE, "no workspace holding the data-error record");
    kn__cuda_derr rec;
    kn_status st = kn__cu_check(a,
                                cudaMemcpyAsync(&rec, a->work, sizeof rec, cudaMemcpyDeviceToHost, ctx->stream),
                                "cudaMemcpyAsync (data-error record)");
    if (!st)
        st = kn__cu_check(a, cudaStreamSynchronize(ctx->stream), "cudaStreamSynchronize (data-error record)");
    if (st || rec.where == UINT64_MAX)
        return st;
    if (rec.code == KN_CUDA_DERR_STEP && n->op == KN_OP_ADAM_UPDATE) {
        double t = 0;
        unsigned char raw[8];
        if ((st = read_elem(a, ctx, a->src[3], n->src[3]->dtype, 0, raw)))
            return st;
        kn_convert(&t, KN_F64, raw, n->src[3]->dtype, 1);
        return kn__kerr(a, "adam_update: step t = %g, expected >= 1 (t counts steps from 1)", t);
    }
    if (rec.code == KN_CUDA_DERR_QPARAMS && (n->op == KN_OP_QLINEAR || n->op == KN_OP_QCONV2D)) {
        float v[2];
        if (rec.where == 0) {
            if ((st = read_elem(a, ctx, a->src[KN_Q_XQ], KN_F32, 0, &v[0])) ||
                (st = read_elem(a, ctx, a->src[KN_Q_XQ], KN_F32, 1, &v[1])))
                return st;
            return kn__q_bad_input_params(a, v[0], v[1]);
        }
        if ((st = read_elem(a, ctx, a->src[KN_Q_WSCALE], KN_F32, rec.where - 1, &v[0])))
            return st;
        return kn__q_bad_weight_scale(a, (int64_t)rec.where - 1, v[0]);
    }
    if (n->op == KN_OP_LOAD_BATCH) { /* the record names the example; its row is examples[where, 0] */
        int64_t row = 0;
        if ((st = read_elem(a, ctx, a->src[1], KN_I64, rec.where * 3, &row)))
            return st;
        return kn__kerr(a, "load_batch: row %lld of example %lld is outside the table's rows [0, %lld)",
                        (long long)row, (long long)rec.where, (long long)n->src[0]->shape[0]);
    }
    if (n->op == KN_OP_EMBEDDING || n->op == KN_OP_EMBEDDING_BWD) {
        int ii = n->op == KN_OP_EMBEDDING ? 1 : 0;
        int64_t V = n->op == KN_OP_EMBEDDING ? n->src[0]->shape[0] : n->shape[0];
        unsigned char raw[8];
        if ((st = read_elem(a, ctx, a->src[ii], n->src[ii]->dtype, rec.where, raw)))
            return st;
        return kn__kerr(a, "%s: index %lld at position %lld is outside [0, %lld)", kn__op_names[n->op],
                        (long long)kn__index_at(raw, n->src[ii]->dtype, 0), (long long)rec.where, (long long)V);
    }
    int li = n->op == KN_OP_NLL_BWD ? 0 : 1;
    int64_t classes = n->op == KN_OP_SOFTMAX_CE || n->op == KN_OP_NLL ? n->src[0]->shape[1] : n->shape[1];
    unsigned char raw[8];
    if ((st = read_elem(a, ctx, a->src[li], n->src[li]->dtype, rec.where, raw)))
        return st;
    return kn__kerr(a, "%s: label %lld at row %lld is outside [0, %lld)", kn__op_names[n->op],
                    (long long)kn__index_at(raw, n->src[li]->dtype, 0), (long long)rec.where, (long long)classes);
}
