/* test_cuda_ops.c — every op with a CUDA kernel against the float64 reference kernel, over the
 * rows of the CPU op tests (the files in tests/ops/) plus larger shapes that reach the multi-block and
 * grid-stride paths. Per case: the row's node is built in f32; its inputs are taken from the
 * graph (parameters, constants) or from a CPU plan (computed inputs); the reference runs on
 * float64 copies on the host; the CUDA kernel runs on cudaMalloc'd copies with its output and
 * workspace poisoned (all bits set: NaN for floats, -1 for integers), through a kn__cuda_ctx
 * made here. Outputs (and, for ops that update their inputs in place, those inputs) are
 * compared with the per-dtype tolerance as |gpu − ref| ≤ tol·(|ref| + mean|ref|); NaN must
 * match NaN. GEMMs run in each math mode (FP32 1e-5 relative to 1e-4, TF32 1e-3, BF16 1e-2).
 * A GEMM or convolution with rounded operands (TF32, BF16, f16) is compared relative to the
 * same op over the absolute values S = |A|·|B|, |gpu − ref| ≤ tol·(S + mean S) element by
 * element: rounding each operand to p bits moves a product a·b by up to 2^-p·|a·b|, so S is
 * the scale the tolerance is a fraction of, whatever the cancellation in the sum.
 * Data errors (bad labels and indices, load_batch rows outside the table, Adam's t < 1) must
 * give the CPU's KN_ERR_RANGE message. Prints a table op → cases, max error, tolerance, and
 * the ops without a CUDA kernel.
 * Usage: gpu_test_cuda_ops [--time] [substring | !substring]: only the rows whose label contains
 * (or, with '!', does not contain) it, e.g. '!large' for the sanitizer runs; --time also times
 * the kernels of the "large" rows (median of 21 runs; GB/s and GFLOP/s).
 * KILN_TEST_HOST_ONLY=1 checks the harness without a device (builds, inputs, references);
 * KILN_TEST_VERBOSE=1 prints every case's largest error.
 * Exit 77 (CTest: skipped) without a CUDA device. */
#include <cuda_runtime.h>
#include <math.h>
#ifdef KN_HAVE_CUDNN
#include <cudnn.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_kern_check.h"
#include "backend/cuda/cuda_kernels.h"
#include "kiln/quant.h"
#include "ops/conv_internal.h"
#include "ops/op_rows.h"
#include "ops/quant_internal.h"
#include "util.h"

static kn__backend_kernel table[KN__CUDA_TABLE_SIZE]; /* the ops, then the plan's fused steps */
static kn__cuda_ctx ctx;
static bool host_only; /* KILN_TEST_HOST_ONLY=1: build, gather and run the references only */
static bool timing;    /* --time: also time the kernels of the "large" rows */
static bool verbose;   /* KILN_TEST_VERBOSE=1: one line per case with its largest error */

/* per-op results */
static struct {
    int cases, failed, unsupported, skipped;
    double max_err, tol;
} res[KN_OP_COUNT];

#define CU(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        CHECK(e_ == cudaSuccess, "%s: %s (%s)", #call, cudaGetErrorName(e_), cudaGetErrorString(e_)); \
    } while (0)

static bool gpu_supports(const kn_node *n)
{
    const kn__backend_kernel *k = &table[n->op];
    if (!k->fn)
        return false;
    return kn__backend_accepts(k, n);
}

static bool is_gemm(int op) { return op == KN_OP_MATMUL || op == KN_OP_LINEAR; }
static bool is_conv(int op)
{
    return op == KN_OP_CONV2D || op == KN_OP_CONV2D_BWD_DATA || op == KN_OP_CONV2D_BWD_WEIGHT;
}

static size_t nbytes(const kn_node *n) { return (size_t)kn__numel(n) * kn_dtype_size(n->dtype); }

/* Tolerance of a case: GEMMs by math mode; f32 elementwise 1e-5; other f32 ops the row's. */
static double case_tol(const op_row *row, const kn_node *out)
{
    if (is_conv(out->op) && ctx.dnn && ctx.math != KN_CUDA_MATH_FP32)
        return ctx.math == KN_CUDA_MATH_TF32 ? 1e-3 : 1e-2;
    if (is_gemm(out->op)) {
        if (out->dtype == KN_BF16 || ctx.math == KN_CUDA_MATH_BF16)
            return 1e-2;
        if (out->dtype == KN_F16)
            return 5e-3;
        if (ctx.math == KN_CUDA_MATH_TF32)
            return 1e-3;
        return 1e-5;
    }
    if (kn__op_flags[out->op] & KN_OPF_ELEMENTWISE)
        return 1e-5;
    return row->tol > 0 ? row->tol : 1e-4;
}

/* Compares n elements of got (dtype dt) with the float64 (or integer) reference ref, relative
 * to scale[i] + mean(scale) when given (else |ref| + mean|ref|); returns the largest error and counts the
 * elements over tol. */
static double compare(const char *label, int v, const char *what, kn_dtype dt, const void *got, const void *ref,
                      const double *scale, int64_t n, double tol, int *bad)
{
    *bad = 0;
    double worst = 0;
    if (!kn_dtype_is_float(dt)) {
        for (int64_t i = 0; i < n; i++) {
            int64_t a = kn__index_at(got, dt, i), r = kn__index_at(ref, dt, i);
            if (a != r && (*bad)++ < 3)
                CHECK(0, "%s v%d: %s[%lld]: GPU %lld, reference %lld", label, v, what, (long long)i, (long long)a,
                      (long long)r);
        }
        return *bad ? INFINITY : 0;
    }
    double *g = malloc(sizeof(double) * (size_t)(n ? n : 1));
    double *r = malloc(sizeof(double) * (size_t)(n ? n : 1));
    CHECK(g && r, "out of memory");
    if (!g || !r) {
        free(g);
        free(r);
        return INFINITY;
    }
    kn_convert(g, KN_F64, got, dt, n);
    /* the plan rounds a reference result to the node's dtype: compare with that */
    void *rr = malloc(kn_dtype_size(dt) * (size_t)(n ? n : 1));
    CHECK(rr != NULL, "out of memory");
    if (rr) {
        kn_convert(rr, dt, ref, KN_F64, n);
        kn_convert(r, KN_F64, rr, dt, n);
        free(rr);
    }
    double mean_abs = 0;
    for (int64_t i = 0; i < n; i++)
        mean_abs += isfinite(r[i]) ? fabs(r[i]) : 0;
    mean_abs = n ? mean_abs / (double)n : 0;
    double mean_scale = 0;
    for (int64_t i = 0; scale && i < n; i++)
        mean_scale += isfinite(scale[i]) ? scale[i] / (double)n : 0;
    for (int64_t i = 0; i < n; i++) {
        double e;
        if (isnan(r[i]) || isnan(g[i]))
            e = isnan(r[i]) && isnan(g[i]) ? 0 : INFINITY;
        else if (isinf(r[i]) || isinf(g[i]))
            e = r[i] == g[i] ? 0 : INFINITY;
        else
            e = fabs(g[i] - r[i]) / ((scale ? scale[i] + mean_scale : fabs(r[i]) + mean_abs) + 1e-30);
        worst = e > worst ? e : worst;
        if (!(e <= tol) && (*bad)++ < 3)
            CHECK(0, "%s v%d: %s[%lld]: GPU %.9g, float64 reference %.9g (error %.3g > %.3g)", label, v, what,
                  (long long)i, g[i], r[i], e, tol);
    }
    free(g);
    free(r);
    return worst;
}

/* The value of every input of out, in its own dtype, copied into malloc'd buffers. */
static bool gather_inputs(kn_graph *g, const op_row *row, int v, kn_node *out, void **host)
{
    kn_node *computed[KN_MAX_SRC];
    int nc = 0;
    for (int i = 0; i < out->nsrc; i++) {
        kn_node *s = out->src[i];
        host[i] = malloc(nbytes(s) ? nbytes(s) : 1);
        CHECK(host[i] != NULL, "out of memory");
        if (!host[i])
            return false;
        if (s->op == KN_OP_PARAM)
            memcpy(host[i], kn_graph_param_data(g, s), nbytes(s));
        else if (s->op == KN_OP_CONST)
            memcpy(host[i], s->const_data, nbytes(s));
        else if (s->op == KN_OP_INPUT) {
            printf("note: %s v%d skipped: input %d is a graph input (the harness feeds params and constants)\n",
                   row->label, v, i);
            return false;
        } else
            computed[nc++] = s;
    }
    if (nc == 0)
        return true;
    kn_plan *p = NULL;
    kn_plan_opts o = {.backend = KN_BACKEND_CPU, .training = row->training, .passes = KN_PASS_NONE};
    kn_status st = kn_plan_compile(&p, g, computed, nc, &o);
    CHECK(st == KN_OK, "%s v%d: plan for the inputs: %s", row->label, v, kn_plan_last_error());
    if (st == KN_OK) {
        st = kn_plan_run(p);
        CHECK(st == KN_OK, "%s v%d: computing the inputs: %s", row->label, v, kn_plan_error(p));
    }
    for (int i = 0; st == KN_OK && i < out->nsrc; i++) {
        kn_node *s = out->src[i];
        if (s->op != KN_OP_PARAM && s->op != KN_OP_CONST)
            memcpy(host[i], kn_plan_data(p, s), nbytes(s));
    }
    kn_plan_free(p);
    return st == KN_OK;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Median of 21 timed runs (device events around each, after 3 warm-up runs) of the kernel of
 * a checked case, with GB/s (inputs + output, once each) and GFLOP/s (the op table's count). */
static void time_case(const op_row *row, int v, const kn__kargs *ga)
{
    const kn_node *out = ga->node;
    cudaEvent_t e0 = NULL, e1 = NULL;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    float ms[21];
    kn_status st = KN_OK;
    for (int i = 0; i < 3 && !st; i++)
        st = table[out->op].fn(ga);
    for (int i = 0; i < 21 && !st; i++) {
        CU(cudaEventRecord(e0, ctx.stream));
        st = table[out->op].fn(ga);
        CU(cudaEventRecord(e1, ctx.stream));
        CU(cudaEventSynchronize(e1));
        CU(cudaEventElapsedTime(&ms[i], e0, e1));
    }
    CHECK(st == KN_OK, "%s v%d: timing run: %s", row->label, v, ga->err);
    if (st == KN_OK) {
        qsort(ms, 21, sizeof ms[0], cmp_float);
        double bytes = (double)nbytes(out);
        for (int i = 0; i < out->nsrc; i++)
            bytes += (double)nbytes(out->src[i]);
        double flops = kn__op_table[out->op]->flops(out), t = ms[10] * 1e-3;
        printf("time %-16s v%d %-26s %10.4f ms %9.1f GB/s %9.1f GFLOP/s (min %.4f, max %.4f ms)\n", row->label, v,
               kn__op_names[out->op], ms[10], bytes / t * 1e-9, flops / t * 1e-9, ms[0], ms[20]);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
}

/* A GEMM or convolution whose operands the device rounds: TF32 or BF16 math, or 16-bit
 * tensors. */
static bool rounds_operands(const kn_node *out)
{
    if (is_conv(out->op))
        return ctx.dnn && ctx.math != KN_CUDA_MATH_FP32;
    return is_gemm(out->op) && (ctx.math != KN_CUDA_MATH_FP32 || out->dtype != KN_F32);
}

/* The reference op over the absolute values of its (float64) inputs: for a bilinear op
 * (GEMM, convolution, + bias) that is Σ|a·b| per output element. NULL when out of memory. */
static double *abs_reference(const kn__kargs *ra, int ns)
{
    const kn_node *out = ra->node;
    int64_t m = kn__numel(out);
    double *scale = malloc(sizeof(double) * (size_t)(m ? m : 1));
    kn__kargs a = *ra;
    a.dst = scale;
    bool ok = scale != NULL;
    for (int i = 0; i < ns; i++) {
        int64_t k = kn__numel(out->src[i]);
        double *abs_in = malloc(sizeof(double) * (size_t)(k ? k : 1));
        a.src[i] = abs_in;
        ok = ok && abs_in;
        for (int64_t j = 0; abs_in && j < k; j++)
            abs_in[j] = fabs(((const double *)ra->src[i])[j]);
    }
    ok = ok && kn__op_table[out->op]->ref(&a) == KN_OK;
    for (int i = 0; i < ns; i++)
        free((void *)a.src[i]);
    CHECK(ok, "%s: reference over absolute values failed", kn__op_names[out->op]);
    if (!ok) {
        free(scale);
        return NULL;
    }
    return scale;
}

/* One row variant in the current math mode. */
static void run_case(const op_row *row, int v)
{
    kn_graph *g = kn_graph_new();
    kt_inputs_reset();
    kn_node *out = row->build(g, KN_F32, v);
    CHECK(out != NULL, "%s v%d: build failed: %s", row->label, v, kn_graph_error(g));
    if (!out) {
        kn_graph_free(g);
        return;
    }
    int op = out->op;
    if (!gpu_supports(out)) {
        res[op].unsupported++;
        kn_graph_free(g);
        return;
    }
    const int ns = out->nsrc;
    void *host[KN_MAX_SRC] = {0}, *ref_in[KN_MAX_SRC] = {0}, *dev[KN_MAX_SRC] = {0};
    void *ref_out = NULL, *ref_work = NULL, *got = NULL, *dout = NULL, *dwork = NULL;
    double *scale = NULL; /* |A|·|B| for GEMMs and convolutions on rounded operands */
    char ref_err[512] = "", gpu_err[512] = "";
    int before = kt_failures;
    bool skipped = false;
    if (!gather_inputs(g, row, v, out, host)) {
        skipped = kt_failures == before; /* a graph input: not a failure, not a case */
        goto done;
    }

    /* float64 reference on the host */
    for (int i = 0; i < ns; i++) {
        const kn_node *s = out->src[i];
        kn_dtype rd = kn_dtype_is_float(s->dtype) ? KN_F64 : s->dtype;
        ref_in[i] = malloc(kn_dtype_size(rd) * (size_t)(kn__numel(s) ? kn__numel(s) : 1));
        CHECK(ref_in[i] != NULL, "out of memory");
        if (!ref_in[i])
            goto done;
        kn_convert(ref_in[i], rd, host[i], s->dtype, kn__numel(s));
    }
    kn_dtype od = kn_dtype_is_float(out->dtype) ? KN_F64 : out->dtype;
    int64_t m = kn__numel(out);
    ref_out = malloc(kn_dtype_size(od) * (size_t)(m ? m : 1));
    size_t rws = kn__op_table[op]->ref_workspace ? kn__op_table[op]->ref_workspace(out) : 0;
    ref_work = rws ? malloc(rws) : NULL;
    CHECK(ref_out && (!rws || ref_work), "out of memory");
    if (!ref_out || (rws && !ref_work))
        goto done;
    kn__kargs ra = {.node = out, .dst = ref_out, .work = ref_work, .seed = g->seed, .step = 0,
                    .training = row->training, .threads = 1, .err = ref_err, .err_size = sizeof ref_err};
    for (int i = 0; i < ns; i++)
        ra.src[i] = ref_in[i];
    /* the updates write the parameter in place, as in a plan; a reshape is tested as a copy */
    bool alias = (kn__op_flags[op] & KN_OPF_ALIAS) && op != KN_OP_RESHAPE;
    if (alias)
        ra.dst = ref_in[0];
    kn_status ref_st = kn__op_table[op]->ref(&ra);
    if (ref_st == KN_OK && rounds_operands(out))
        scale = abs_reference(&ra, ns);
    if (host_only) {
        skipped = true;
        goto done;
    }

    /* the CUDA kernel on device copies */
    for (int i = 0; i < ns; i++) {
        size_t b = nbytes(out->src[i]);
        CU(cudaMalloc(&dev[i], b ? b : 1));
        if (!dev[i])
            goto done;
        CU(cudaMemcpy(dev[i], host[i], b, cudaMemcpyHostToDevice));
    }
    size_t ob = nbytes(out);
    if (alias) {
        dout = dev[0];
    } else {
        CU(cudaMalloc(&dout, ob ? ob : 1));
        if (!dout)
            goto done;
        CU(cudaMemset(dout, 0xFF, ob ? ob : 1)); /* poison: every element must be written */
    }
    size_t ws = table[op].workspace ? table[op].workspace(out) : 0;
    if (ws) {
        CU(cudaMalloc(&dwork, ws));
        if (!dwork)
            goto done;
        CU(cudaMemset(dwork, 0xFF, ws));
    }
    kn__kargs ga = {.node = out, .dst = dout, .work = dwork, .seed = g->seed, .step = 0,
                    .training = row->training, .threads = 1, .err = gpu_err, .err_size = sizeof gpu_err,
                    .device = &ctx};
    for (int i = 0; i < ns; i++)
        ga.src[i] = dev[i];
    kn_status gst = table[op].fn(&ga);
    CHECK(gst == KN_OK || gst == KN_ERR_RANGE, "%s v%d: CUDA kernel: %s: %s", row->label, v, kn_status_name(gst),
          gpu_err);
    CU(cudaStreamSynchronize(ctx.stream));
    CU(cudaGetLastError());
    if (gst == KN_OK && kn__cuda_op_checks_data(op))
        gst = kn__cuda_check_data(&ga);
    CHECK(gst == ref_st, "%s v%d: CUDA status %s (%s), reference %s (%s)", row->label, v, kn_status_name(gst),
          gpu_err, kn_status_name(ref_st), ref_err);
    if (ref_st != KN_OK) {
        CHECK(strcmp(gpu_err, ref_err) == 0, "%s v%d: CUDA message \"%s\", reference \"%s\"", row->label, v,
              gpu_err, ref_err);
        goto done;
    }
    if (gst != KN_OK)
        goto done;

    double tol = case_tol(row, out), worst = 0;
    int bad = 0;
    got = malloc(ob ? ob : 1);
    CHECK(got != NULL, "out of memory");
    if (!got)
        goto done;
    CU(cudaMemcpy(got, dout, ob, cudaMemcpyDeviceToHost));
    worst = compare(row->label, v, "output", out->dtype, got, alias ? ra.dst : ref_out, scale, m, tol, &bad);
    if (op == KN_OP_DROPOUT) { /* the mask itself must be the CPU's, bit for bit */
        float *gy = got;
        const double *ry = alias ? ra.dst : ref_out;
        int64_t diff = 0;
        for (int64_t i = 0; i < m; i++)
            diff += (gy[i] == 0.0f) != (ry[i] == 0.0);
        CHECK(diff == 0, "%s v%d: %lld mask bits differ from the reference", row->label, v, (long long)diff);
    }
    if (kn__op_flags[op] & KN_OPF_MUTATES) /* updated state buffers */
        for (int i = 1; i < ns; i++) {
            const kn_node *s = out->src[i];
            if (!kn_dtype_is_float(s->dtype) || s->op != KN_OP_PARAM)
                continue;
            void *h = malloc(nbytes(s) ? nbytes(s) : 1);
            CHECK(h != NULL, "out of memory");
            if (!h)
                continue;
            CU(cudaMemcpy(h, dev[i], nbytes(s), cudaMemcpyDeviceToHost));
            char what[32];
            snprintf(what, sizeof what, "input %d after the update", i);
            int b2 = 0;
            double w2 = compare(row->label, v, what, s->dtype, h, ref_in[i], NULL, kn__numel(s), tol, &b2);
            worst = w2 > worst ? w2 : worst;
            free(h);
        }
    if (verbose)
        printf("case %-28s v%-2d %-26s math %d%s: max error %.3g (tolerance %.0e)\n", row->label, v,
               kn__op_names[op], ctx.math, ctx.dnn ? " cuDNN" : "", worst, tol);
    if (timing && !kt_failures && strncmp(row->label, "large", 5) == 0)
        time_case(row, v, &ga);
    res[op].max_err = worst > res[op].max_err ? worst : res[op].max_err;
    res[op].tol = tol > res[op].tol ? tol : res[op].tol;
done:
    res[op].cases += !skipped;
    res[op].skipped += skipped;
    res[op].failed += kt_failures != before;
    for (int i = 0; i < ns; i++) {
        free(host[i]);
        free(ref_in[i]);
        if (dev[i])
            cudaFree(dev[i]);
    }
    if (dout && dout != dev[0])
        cudaFree(dout);
    if (dwork)
        cudaFree(dwork);
    free(ref_out);
    free(ref_work);
    free(got);
    free(scale);
    kn_graph_free(g);
}

/* ---- larger shapes than the CPU rows: several blocks, grid-stride loops, long rows -------- */

static kn_node *big_binary(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_add(g, kt_p(g, dt, -2, 2, 1000, 1031), kt_p(g, dt, -2, 2, 1031));
    case 1: return kn_graph_mul(g, kt_p(g, dt, -2, 2, 5000003), kt_p(g, dt, -2, 2, 5000003));
    default: return kn_graph_div(g, kt_p(g, dt, -2, 2, 17, 1, 4099), kt_p(g, dt, 0.5, 2, 1, 33, 1));
    }
}

static kn_node *big_unary(kn_graph *g, kn_dtype dt, int v)
{
    kn_node *x = kt_p(g, dt, -6, 6, 3000017);
    return v == 0 ? kn_graph_gelu(g, x) : v == 1 ? kn_graph_sigmoid(g, x) : kn_graph_cast(g, x, KN_BF16);
}

static kn_node *big_reduce(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_sum(g, kt_p(g, dt, -1, 1, 3, 100003), 2u, false);   /* long rows */
    case 1: return kn_graph_mean(g, kt_p(g, dt, -1, 1, 100003, 3), 1u, true);   /* long columns */
    case 2: return kn_graph_max(g, kt_p(g, dt, -1, 1, 40000, 37), 2u, false);   /* many short rows */
    case 3: return kn_graph_min(g, kt_p(g, dt, -1, 1, 7, 300, 11), 5u, false);  /* outer + inner */
    default: return kn_graph_argmax(g, kt_p(g, dt, -1, 1, 20000, 1000), 1, false);
    }
}

static kn_node *big_softmax(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_softmax(g, kt_p(g, dt, -8, 8, 257, 5003), 1);
    case 1: return kn_graph_log_softmax(g, kt_p(g, dt, -8, 8, 4, 1000, 129), 1);
    default: return kn_graph_log_softmax(g, kt_p(g, dt, -8, 8, 70000, 10), 1);
    }
}

static kn_node *big_loss(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: {
        const int64_t n = 4099;
        return kn_graph_softmax_cross_entropy(g, kt_p(g, dt, -5, 5, n, 1000),
                                              kt_labels(g, KN_I64, 1, &n, 1000));
    }
    case 1: {
        const int64_t n = 70001;
        return kn_graph_softmax_cross_entropy(g, kt_p(g, dt, -5, 5, n, 10), kt_labels(g, KN_I32, 1, &n, 10));
    }
    default: return kn_graph_mse_loss(g, kt_p(g, dt, -1, 1, 1000, 1003), kt_const(g, dt, 2, (const int64_t[]){1000, 1003}, -1, 1));
    }
}

/* Bad labels: the kernel must report the reference's KN_ERR_RANGE message. */
static kn_node *bad_labels(kn_graph *g, kn_dtype dt, int v)
{
    const int64_t n = 5;
    const int32_t lab[5] = {1, 0, 9, -1, 2}; /* rows 2 and 3 are bad: row 2 is named */
    kn_node *l = kn_graph_const(g, KN_I32, 1, &n, lab);
    kn_node *x = kt_p(g, dt, -1, 1, 5, 4);
    return v == 0 ? kn_graph_softmax_cross_entropy(g, x, l) : kn_graph_nll_loss(g, x, l);
}

static kn_node *big_matmul(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: return kn_graph_matmul(g, kt_p(g, dt, -1, 1, 257, 513), kt_p(g, dt, -1, 1, 513, 129), false, false);
    case 1: return kn_graph_matmul(g, kt_p(g, dt, -1, 1, 3, 1, 65, 31), kt_p(g, dt, -1, 1, 4, 31, 65), true, true);
    default: return kn_graph_linear(g, kt_p(g, dt, -1, 1, 300, 784), kt_p(g, dt, -1, 1, 100, 784), kt_p(g, dt, -1, 1, 100));
    }
}

static kn_node *big_norm(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: { /* model B's batch norm after the first conv, training: running stats updated */
        const int64_t c = 32;
        kn_node *x = kt_p(g, dt, -2, 2, 64, c, 28, 28);
        return kn_graph_batch_norm(g, x, kt_p(g, dt, 0.5, 1.5, c), kt_p(g, dt, -0.5, 0.5, c),
                                   kt_frozen(g, dt, 1, &c, -0.1, 0.1), kt_frozen(g, dt, 1, &c, 0.5, 1.5), 0.1, 1e-5);
    }
    case 1: return kn_graph_layer_norm(g, kt_p(g, dt, -2, 2, 300, 1027), 1, kt_p(g, dt, 0.5, 1.5, 1027),
                                       kt_p(g, dt, -0.5, 0.5, 1027), 1e-5);
    default: return kn_graph_layer_norm(g, kt_p(g, dt, -2, 2, 20000, 64), 1, NULL, NULL, 1e-5);
    }
}

static kn_node *big_pool(kn_graph *g, kn_dtype dt, int v)
{
    kn_node *x = kt_p(g, dt, -2, 2, 64, 32, 28, 28);
    return v == 0 ? kn_graph_max_pool2d(g, x, 2, 2, 0) : v == 1 ? kn_graph_avg_pool2d(g, x, 3, 2, 1)
                                                                : kn_graph_global_avg_pool(g, x);
}

static kn_node *big_conv(kn_graph *g, kn_dtype dt, int v)
{
    const int64_t conv[7] = {1, 1, 1, 1, 1, 1, 1};
    switch (v) {
    case 0: return kn_graph_conv2d(g, kt_p(g, dt, -1, 1, 16, 1, 28, 28), kt_p(g, dt, -1, 1, 32, 1, 3, 3),
                                   kt_p(g, dt, -1, 1, 32), &(kn_conv2d_opts){.pad_h = 1, .pad_w = 1});
    case 1: return kn__conv2d_bwd_data(g, kt_p(g, dt, -1, 1, 16, 32, 14, 14), kt_p(g, dt, -1, 1, 32, 16, 3, 3), conv,
                                       (const int64_t[]){16, 16, 14, 14});
    default: return kn__conv2d_bwd_weight(g, kt_p(g, dt, -1, 1, 16, 16, 14, 14), kt_p(g, dt, -1, 1, 16, 32, 14, 14),
                                          conv, (const int64_t[]){32, 16, 3, 3});
    }
}

/* Bad indices: the kernels must report the reference's KN_ERR_RANGE message. */
static kn_node *bad_index(kn_graph *g, kn_dtype dt, int v)
{
    const int64_t n = 6;
    const int64_t idx[6] = {3, 0, 2, 10, 1, -4}; /* positions 3 and 5 are bad: 3 is named */
    kn_node *ix = kn_graph_const(g, KN_I64, 1, &n, idx);
    if (v == 0)
        return kn_graph_embedding(g, kt_p(g, dt, -1, 1, 10, 4), ix);
    kn_node *s[2] = {ix, kt_p(g, dt, -1, 1, 6, 4)};
    kn_node *b = kn__node_new(g, KN_OP_EMBEDDING_BWD, 2, s);
    if (b)
        b->ai[0] = 10;
    return kn__node_finish(g, b);
}

/* load_batch with rows outside the table: the reference's KN_ERR_RANGE message, naming the first bad
 * example's row. */
static kn_node *bad_rows(kn_graph *g, kn_dtype dt, int v)
{
    (void)dt;
    const int64_t e[5][3] = {{1, 0, 0}, {0, 0, 1}, {v ? -1 : 4, 0, 2}, {3, 0, 3}, {4, 1, 4}}; /* N = 4: example 2 */
    kn_node *ex = kn_graph_const(g, KN_I64, 2, (const int64_t[]){5, 3}, e);
    const int64_t n256 = 256;
    if (v == 0)
        return kn_graph_load_batch(g, kt_labels(g, KN_U8, 3, (const int64_t[]){4, 6, 5}, 256), ex,
                                   kt_frozen(g, KN_F32, 1, &n256, -1, 1), 2, true, 7, -0.5f);
    return kn_graph_load_batch(g, kt_frozen(g, KN_F32, 2, (const int64_t[]){4, 9}, -1, 1), ex, NULL, 0, false, 7, 0);
}

/* A CIFAR-sized batch (u8 [3, 32, 32], crop 4 + flip) and an MNIST-sized one (f32 [784]). */
static kn_node *big_load_batch(kn_graph *g, kn_dtype dt, int v)
{
    (void)dt;
    const int64_t B = 256, N = v == 0 ? 2000 : 3000;
    int64_t *e = malloc(sizeof(int64_t) * 3 * (size_t)B);
    if (!e)
        return NULL;
    for (int64_t b = 0; b < B; b++) {
        e[3 * b] = (b * 7919) % N;
        e[3 * b + 1] = 3;
        e[3 * b + 2] = 40000 + b;
    }
    kn_node *ex = kn_graph_const(g, KN_I64, 2, (const int64_t[]){B, 3}, e);
    free(e);
    const int64_t n256 = 256;
    if (v == 0)
        return kn_graph_load_batch(g, kt_labels(g, KN_U8, 4, (const int64_t[]){N, 3, 32, 32}, 256), ex,
                                   kt_frozen(g, KN_F32, 1, &n256, -2, 2), 4, true, 42, -1.25f);
    return kn_graph_load_batch(g, kt_frozen(g, KN_F32, 2, (const int64_t[]){N, 784}, -2, 2), ex, NULL, 0, false, 42, 0);
}

/* ---- int8 qlinear / qconv2d ---------------------------------------------------------------- */

/* s8 weights in [-127, 127] from a fixed stream. */
static kn_node *qweights(kn_graph *g, int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    int8_t *w = malloc((size_t)n);
    if (!w)
        return NULL;
    uint32_t r = 12345;
    for (int64_t i = 0; i < n; i++) {
        r = r * 1664525u + 1013904223u;
        w[i] = (int8_t)((int)(r >> 24) % 255 - 127);
    }
    kn_node *node = kn_graph_const(g, KN_I8, ndim, shape, w);
    free(w);
    return node;
}

static kn_node *qparams(kn_graph *g, float scale, float zp)
{
    const float v[2] = {scale, zp};
    return kn_graph_const(g, KN_F32, 1, (const int64_t[]){2}, v);
}

static kn_node *q_conv(kn_graph *g, kn_dtype dt, const int64_t *x, const int64_t *w, const kn_conv2d_opts *o,
                       bool relu, bool pool)
{
    kn_node *y = kn_graph_qconv2d(g, kt_const(g, dt, 4, x, -1, 1), qweights(g, 4, w),
                                  kt_const(g, dt, 1, w, 0.001, 0.02), qparams(g, 0.007f, 117),
                                  kt_const(g, dt, 1, w, -1, 1), o, relu);
    if (y && pool && kn__qconv2d_fuse_pool(g, y))
        return NULL;
    return y;
}

/* Several GEMM tiles along both axes, a K that is not a multiple of the 8-word step, groups
 * wider than a tile; quick enough for the emulator. */
static kn_node *quant_tiles(kn_graph *g, kn_dtype dt, int v)
{
    switch (v) {
    case 0: {
        const int64_t out = 130;
        return kn_graph_qlinear(g, kt_const(g, dt, 2, (const int64_t[]){70, 101}, -1, 1),
                                qweights(g, 2, (const int64_t[]){out, 101}), kt_const(g, dt, 1, &out, 0.001, 0.02),
                                qparams(g, 0.006f, 131), kt_const(g, dt, 1, &out, -1, 1), true);
    }
    case 1:
        return q_conv(g, dt, (const int64_t[]){2, 10, 6, 5}, (const int64_t[]){140, 5, 2, 3},
                      &(kn_conv2d_opts){.groups = 2, .pad_h = 1, .pad_w = 2, .stride_w = 2}, false, false);
    default:
        return q_conv(g, dt, (const int64_t[]){3, 7, 11, 10}, (const int64_t[]){66, 7, 3, 3},
                      &(kn_conv2d_opts){.pad_h = 1, .pad_w = 1}, true, true);
    }
}

/* Model B's two convolutions (with their fused pools) and its first linear layer at batch 64. */
static kn_node *big_quant(kn_graph *g, kn_dtype dt, int v)
{
    const kn_conv2d_opts same = {.pad_h = 1, .pad_w = 1};
    switch (v) {
    case 0: return q_conv(g, dt, (const int64_t[]){64, 1, 28, 28}, (const int64_t[]){32, 1, 3, 3}, &same, true, true);
    case 1: return q_conv(g, dt, (const int64_t[]){64, 32, 14, 14}, (const int64_t[]){64, 32, 3, 3}, &same, true, true);
    default: {
        const int64_t out = 128;
        return kn_graph_qlinear(g, kt_const(g, dt, 2, (const int64_t[]){64, 3136}, -1, 1),
                                qweights(g, 2, (const int64_t[]){out, 3136}), kt_const(g, dt, 1, &out, 0.001, 0.02),
                                qparams(g, 0.006f, 128), kt_const(g, dt, 1, &out, -1, 1), true);
    }
    }
}

/* Unusable quantisation parameters: the CPU's KN_ERR_RANGE message, naming the input's scale
 * and zero point first, else the first bad weight scale. */
static kn_node *bad_qparams(kn_graph *g, kn_dtype dt, int v)
{
    const int64_t out = 3;
    const float good[3] = {0.01f, 0.02f, 0.03f}, bad[3] = {0.01f, -0.5f, NAN};
    kn_node *ws = kn_graph_const(g, KN_F32, 1, &out, v == 2 ? bad : good);
    kn_node *xq = v == 0 ? qparams(g, 0, 10) : v == 1 ? qparams(g, 0.01f, 300) : qparams(g, 0.01f, 3);
    if (v < 2)
        return kn_graph_qlinear(g, kt_const(g, dt, 2, (const int64_t[]){4, 9}, -1, 1),
                                qweights(g, 2, (const int64_t[]){out, 9}), ws, xq, NULL, false);
    return kn_graph_qconv2d(g, kt_const(g, dt, 4, (const int64_t[]){1, 2, 5, 5}, -1, 1),
                            qweights(g, 4, (const int64_t[]){out, 2, 3, 3}), ws, xq, NULL, NULL, false);
}

/* bf16 and f16 tensors through cuBLASLt (inputs cast on the CPU). */
static kn_node *half_matmul(kn_graph *g, kn_dtype dt, int v)
{
    kn_dtype h = v < 2 ? KN_BF16 : KN_F16;
    kn_node *a = kn_graph_cast(g, kt_p(g, dt, -1, 1, 65, 130), h);
    kn_node *b = kn_graph_cast(g, kt_p(g, dt, -1, 1, 31, 130), h);
    if (v % 2 == 0)
        return kn_graph_matmul(g, a, b, false, true);
    return kn_graph_linear(g, a, b, kn_graph_cast(g, kt_p(g, dt, -1, 1, 31), h));
}

/* Small shapes that still take the block-per-row / block-per-output paths (rows longer than
 * 256, reductions over more than 64 values) and the split reductions: quick enough for the
 * CPU emulation too. */
static kn_node *block_paths(kn_graph *g, kn_dtype dt, int v)
{
    const int64_t rows = 3, sh[2] = {3, 300};
    switch (v) {
    case 0: return kn_graph_softmax_cross_entropy(g, kt_p(g, dt, -5, 5, 3, 300), kt_labels(g, KN_I64, 1, &rows, 300));
    case 1: {
        kn_node *s[3] = {kt_p(g, dt, -5, 5, 3, 300), kt_labels(g, KN_I32, 1, &rows, 300), kt_param(g, dt, 0, NULL, 0.5, 2)};
        return kn__node_finish(g, kn__node_new(g, KN_OP_SOFTMAX_CE_BWD, 3, s));
    }
    case 2: return kn_graph_layer_norm(g, kt_p(g, dt, -2, 2, 3, 300), 1, kt_p(g, dt, 0.5, 1.5, 300),
                                       kt_p(g, dt, -0.5, 0.5, 300), 1e-5);
    case 3: case 4: case 5: { /* layer_norm_bwd: dx, dgamma, dbeta */
        kn_node *s[3] = {kt_param(g, dt, 2, sh, -2, 2), kt_const(g, dt, 2, sh, -1, 1), kt_p(g, dt, 0.5, 1.5, 300)};
        kn_node *n = kn__node_new(g, KN_OP_LAYER_NORM_BWD, 3, s);
        if (n) {
            n->ai[0] = 1;
            n->ai[1] = v - 3;
            n->af[0] = 1e-5;
        }
        return kn__node_finish(g, n);
    }
    case 6: return kn_graph_sum(g, kt_p(g, dt, -1, 1, 3, 100), 2u, false);
    case 7: return kn_graph_max(g, kt_p(g, dt, -1, 1, 5, 7, 20), 6u, true);
    /* split reductions (few outputs over ≥ 65,536 items: fixed segments, two launches) */
    case 9: return kn_graph_sum(g, kt_p(g, dt, -1, 1, 70001), 1u, false);
    case 10: return kn_graph_mean(g, kt_p(g, dt, -1, 1, 3, 280, 250), 6u, true);
    case 11: return kn_graph_min(g, kt_p(g, dt, -1, 1, 2, 66000), 2u, false);
    default: { /* maxmin_bwd over 100 values per output, about 25 of them tied at the maximum 0.5 */
        kn_node *x = kn_graph_clamp(g, kt_p(g, dt, -1, 1, 4, 100), -1, 0.5);
        kn_node *y = kn_graph_max(g, x, 2u, true);
        kn_node *s[3] = {x, y, kt_p(g, dt, -1, 1, 4, 1)};
        kn_node *n = kn__node_new(g, KN_OP_MAXMIN_BWD, 3, s);
        if (n)
            n->ai[0] = 2;
        return kn__node_finish(g, n);
    }
    }
}

static kn_node *big_dropout(kn_graph *g, kn_dtype dt, int v)
{
    (void)v;
    return kn_graph_dropout(g, kt_p(g, dt, 0.5, 2, 1000003), 0.3);
}

static const op_row extra_rows[] = {
    {.op = KN_OP_ADD, .label = "large binary", .build = big_binary, .n_variants = 3},
    {.op = KN_OP_GELU, .label = "large unary", .build = big_unary, .n_variants = 3},
    {.op = KN_OP_SUM, .label = "large reduce", .build = big_reduce, .n_variants = 5},
    {.op = KN_OP_SOFTMAX, .label = "large softmax", .build = big_softmax, .n_variants = 3},
    {.op = KN_OP_SOFTMAX_CE, .label = "large loss", .build = big_loss, .n_variants = 3},
    {.op = KN_OP_SOFTMAX_CE, .label = "bad labels", .build = bad_labels, .n_variants = 2},
    {.op = KN_OP_MATMUL, .label = "large matmul", .build = big_matmul, .n_variants = 3, .tol = 1e-4},
    {.op = KN_OP_DROPOUT, .label = "large dropout", .build = big_dropout, .n_variants = 1, .training = true},
    {.op = KN_OP_BATCH_NORM, .label = "large norm", .build = big_norm, .n_variants = 3, .training = true},
    {.op = KN_OP_MAX_POOL2D, .label = "large pool", .build = big_pool, .n_variants = 3},
    {.op = KN_OP_CONV2D, .label = "large conv", .build = big_conv, .n_variants = 3},
    {.op = KN_OP_EMBEDDING, .label = "bad indices", .build = bad_index, .n_variants = 2},
    {.op = KN_OP_LOAD_BATCH, .label = "bad rows", .build = bad_rows, .n_variants = 2},
    {.op = KN_OP_LOAD_BATCH, .label = "large load_batch", .build = big_load_batch, .n_variants = 2, .tol = 1e-300},
    {.op = KN_OP_SOFTMAX_CE, .label = "block paths", .build = block_paths, .n_variants = 12},
    {.op = KN_OP_MATMUL, .label = "half matmul", .build = half_matmul, .n_variants = 4},
    {.op = KN_OP_QLINEAR, .label = "quant tiles", .build = quant_tiles, .n_variants = 3},
    {.op = KN_OP_QCONV2D, .label = "large quant", .build = big_quant, .n_variants = 3},
    {.op = KN_OP_QLINEAR, .label = "bad qparams", .build = bad_qparams, .n_variants = 3},
};

typedef struct family {
    const op_row *rows;
    const int *n;
} family;

static const int n_extra = sizeof extra_rows / sizeof extra_rows[0];
static const family families[] = {
#define F(f) {kt_rows_##f, &kt_n_rows_##f},
    F(binary) F(unary) F(activation) F(random) F(softmax) F(loss) F(reduce) F(view) F(matmul) F(conv) F(pool)
    F(norm) F(embedding) F(data) F(shape) F(optim) F(quant)
#undef F
    {extra_rows, &n_extra},
};

static void *dnn_handle; /* cudnnHandle_t when built with cuDNN */

int main(int argc, char **argv)
{
    int count = 0;
    const char *ho = getenv("KILN_TEST_HOST_ONLY");
    host_only = ho && strcmp(ho, "1") == 0;
    const char *vb = getenv("KILN_TEST_VERBOSE");
    verbose = vb && strcmp(vb, "1") == 0;
    cudaError_t e = host_only ? cudaSuccess : cudaGetDeviceCount(&count);
    if (!host_only && (e != cudaSuccess || count == 0)) {
        printf("SKIPPED: no CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return 77;
    }
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--time") == 0)
            timing = true;
        else
            filter = argv[i];
    }
    kn__cuda_register_elementwise(table);
    kn__cuda_register_reduce(table);
    kn__cuda_register_softmax(table);
    kn__cuda_register_loss(table);
    kn__cuda_register_matmul(table);
    kn__cuda_register_random(table);
    kn__cuda_register_optim(table);
    kn__cuda_register_pool(table);
    kn__cuda_register_norm(table);
    kn__cuda_register_conv(table);
    kn__cuda_register_shape(table);
    kn__cuda_register_data(table);
    kn__cuda_register_quant(table);

    struct cudaDeviceProp prop = {0};
    if (host_only) /* a check of the harness itself without a device: nothing runs on a GPU */
        goto rows;
    CU(cudaGetDeviceProperties(&prop, 0));
    printf("device 0: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
    ctx.device = 0;
    ctx.sm_count = prop.multiProcessorCount;
    ctx.deterministic = true;
    CU(cudaStreamCreateWithFlags(&ctx.stream, cudaStreamNonBlocking));
    cublasStatus_t ls = cublasLtCreate(&ctx.lt);
    CHECK(ls == CUBLAS_STATUS_SUCCESS, "cublasLtCreate: %s", cublasLtGetStatusString(ls));
    ctx.gemm_workspace_bytes = 32u << 20;
    CU(cudaMalloc(&ctx.gemm_workspace, ctx.gemm_workspace_bytes));
#ifdef KN_HAVE_CUDNN
    cudnnHandle_t dh = NULL;
    cudnnStatus_t ds = cudnnCreate(&dh);
    CHECK(ds == CUDNN_STATUS_SUCCESS, "cudnnCreate: %s", cudnnGetErrorString(ds));
    dnn_handle = dh;
    printf("cuDNN %zu: convolutions run with the direct kernels and through cuDNN\n", cudnnGetVersion());
#else
    printf("built without cuDNN: convolutions run with the direct kernels only\n");
#endif
    if (kt_failures)
        return kt_finish("gpu_test_cuda_ops");

rows:
    for (int f = 0; f < (int)(sizeof families / sizeof families[0]); f++)
        for (int r = 0; r < *families[f].n; r++) {
            const op_row *row = &families[f].rows[r];
            if (filter && (filter[0] == '!' ? strstr(row->label, filter + 1) != NULL : !strstr(row->label, filter)))
                continue;
            /* GEMMs in each math mode; convolutions with the direct kernels, then (with cuDNN)
             * through cuDNN in FP32 and TF32 */
            int modes = is_gemm(row->op) ? 3 : is_conv(row->op) && dnn_handle ? 3 : 1;
            for (int mode = 0; mode < modes; mode++) {
                if (is_conv(row->op)) {
                    ctx.dnn = mode ? dnn_handle : NULL;
                    ctx.math = mode == 2 ? KN_CUDA_MATH_TF32 : KN_CUDA_MATH_FP32;
                } else {
                    ctx.math = mode == 0 ? KN_CUDA_MATH_FP32 : mode == 1 ? KN_CUDA_MATH_TF32 : KN_CUDA_MATH_BF16;
                }
                for (int v = 0; v < row->n_variants; v++)
                    run_case(row, v);
            }
            ctx.math = KN_CUDA_MATH_FP32;
            ctx.dnn = NULL;
        }

    printf("\n%-28s %6s %6s %7s %12s %10s\n", "op", "cases", "failed", "skipped", "max error", "tolerance");
    for (int op = 0; op < KN_OP_COUNT; op++)
        if (res[op].cases || res[op].skipped)
            printf("%-28s %6d %6d %7d %12.3g %10.0e\n", kn__op_names[op], res[op].cases, res[op].failed,
                   res[op].skipped, res[op].max_err, res[op].tol);
    printf("\nops without a CUDA kernel (or dtype not supported):");
    for (int op = 0; op < KN_OP_COUNT; op++)
        if (!(kn__op_flags[op] & KN_OPF_LEAF) && (!table[op].fn || (res[op].unsupported && !res[op].cases)))
            printf(" %s", kn__op_names[op]);
    printf("\n");
#ifdef KN_HAVE_CUDNN
    if (dnn_handle)
        cudnnDestroy((cudnnHandle_t)dnn_handle);
#endif
    if (!host_only) {
        cudaFree(ctx.gemm_workspace);
        cublasLtDestroy(ctx.lt);
        cudaStreamDestroy(ctx.stream);
    }
    return kt_finish("gpu_test_cuda_ops");
}
