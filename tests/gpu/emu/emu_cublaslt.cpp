/* emu_cublaslt.cpp — cuBLASLt's matmul emulated on the CPU from its documented semantics, so
 * that src/backend/cuda/matmul.cu's descriptor setup runs in tests/gpu/emu/run.sh against the
 * op rows' float64 reference. Written independently of matmul.cu: column-major layouts
 * (rows, cols, ld, batch count, strided batch offset), D = alpha·op(A)·op(B) + beta·C (+ bias
 * per row of D with CUBLASLT_EPILOGUE_BIAS; then max(x, 0) with _RELU / _RELU_BIAS), C not read
 * when beta = 0. It refuses, as the
 * library does, what a wrong setup would give it: op(A) not m×k, op(B) not k×n, C/D shapes
 * that differ, ld < rows, unequal batch counts, type combinations cuBLASLt has no kernel for,
 * C == D with different layouts, a workspace smaller than the chosen algorithm needs, and
 * operands less aligned than the heuristic was told (MIN_ALIGNMENT_*: default 256 bytes).
 * Math: COMPUTE_32F multiplies exactly and accumulates in float; FAST_TF32 keeps the first 10
 * bits of each f32 operand's mantissa (truncation: tensor cores read only those bits, as
 * PyTorch's numerical-accuracy notes say; EMU_TF32=rne rounds to nearest instead), FAST_16BF
 * rounds the operands to BF16; 16-bit outputs are rounded to nearest even. Split-K (when the reduction-scheme mask allows it and the workspace holds the
 * partial sums) sums K in 4 slices, so the deterministic mask changes the rounding as it can.
 * Inside a stream capture the product is recorded for the graph launch to replay. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <functional>

#include "cublasLt.h"

struct emu_lt { int magic; };
struct emu_lt_desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    int32_t ta, tb;
    uint32_t epilogue;
    const void *bias;
    int32_t bias_type;
};
/* BIAS and RELU_BIAS add the bias vector; RELU and RELU_BIAS then take max(x, 0). */
static bool has_bias(const emu_lt_desc *op)
{
    return op->epilogue == CUBLASLT_EPILOGUE_BIAS || op->epilogue == CUBLASLT_EPILOGUE_RELU_BIAS;
}
struct emu_lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch;
    int64_t stride;
};
struct emu_lt_pref {
    uint64_t max_ws;
    uint32_t reduction_mask;
    uint32_t align[4]; /* A, B, C, D */
};

enum { ALGO_MAGIC = 0x4c54454d, SPLIT_K = 4 };

extern "C" {
long emu_lt_calls, emu_lt_heuristics;
char emu_lt_why[256];
}

static cublasStatus_t fail(cublasStatus_t st, const char *why)
{
    snprintf(emu_lt_why, sizeof emu_lt_why, "%s", why);
    fprintf(stderr, "emulated cuBLASLt: %s\n", why);
    return st;
}

static size_t type_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }
static bool known_type(int t) { return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF; }

static float half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023;
    if (e == 31)
        e = 255, m <<= 13;
    else if (e == 0) {
        if (m == 0)
            e = 0;
        else { /* subnormal: normalise */
            float f = ldexpf((float)m, -24);
            return (h >> 15) ? -f : f;
        }
    } else
        e += 112, m <<= 13;
    uint32_t u = s | (e << 23) | m;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t float_to_half(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t s = (uint16_t)((u >> 16) & 0x8000);
    float a = fabsf(f);
    if (isnan(f))
        return s | 0x7e00;
    if (a >= 65520.0f)
        return s | 0x7c00;
    if (a < ldexpf(1, -14)) /* subnormal: multiples of 2^-24, rint = nearest even */
        return s | (uint16_t)rintf(a * ldexpf(1, 24));
    int e;
    float m = frexpf(a, &e); /* a = m·2^e, m in [0.5, 1) */
    uint32_t mant = (uint32_t)rintf(ldexpf(m, 11)); /* 11 significant bits */
    if (mant == 2048)
        mant = 1024, e++;
    return s | (uint16_t)((e + 14) << 10) | (uint16_t)(mant - 1024);
}

/* Rounds f to `bits` bits after the binary point of the significand, nearest even. */
static float round_mantissa(float f, int bits)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000) == 0x7f800000)
        return f;
    int drop = 23 - bits;
    uint32_t half = 1u << (drop - 1), lsb = (u >> drop) & 1;
    u = (u + half - 1 + lsb) & ~((1u << drop) - 1);
    memcpy(&f, &u, 4);
    return f;
}

/* Keeps `bits` bits after the binary point of the significand, dropping the rest. */
static float truncate_mantissa(float f, int bits)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000) != 0x7f800000)
        u &= ~((1u << (23 - bits)) - 1);
    memcpy(&f, &u, 4);
    return f;
}

static float load(const void *p, cudaDataType_t t, int64_t i)
{
    if (t == CUDA_R_32F)
        return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    if (t == CUDA_R_16F)
        return half_to_float(h);
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void store(void *p, cudaDataType_t t, int64_t i, float v)
{
    if (t == CUDA_R_32F)
        ((float *)p)[i] = v;
    else if (t == CUDA_R_16F)
        ((uint16_t *)p)[i] = float_to_half(v);
    else if (isnan(v))
        ((uint16_t *)p)[i] = 0x7fc0;
    else {
        float r = round_mantissa(v, 7);
        uint32_t u;
        memcpy(&u, &r, 4);
        ((uint16_t *)p)[i] = (uint16_t)(u >> 16);
    }
}

/* Copies an attribute of exactly `size` bytes, as the library insists. */
template <typename T> static cublasStatus_t set(T *dst, const void *buf, size_t size, const char *what)
{
    if (!buf || size != sizeof(T)) {
        char m[128];
        snprintf(m, sizeof m, "attribute %s: %zu bytes, expected %zu", what, size, sizeof(T));
        return fail(CUBLAS_STATUS_INVALID_VALUE, m);
    }
    memcpy(dst, buf, sizeof(T));
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" {
cublasStatus_t cublasLtCreate(cublasLtHandle_t *h)
{
    *h = new emu_lt{ALGO_MAGIC};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h)
{
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
const char *cublasLtGetStatusName(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    default: return "CUBLAS_STATUS_?";
    }
}
const char *cublasLtGetStatusString(cublasStatus_t s) { return s ? emu_lt_why : "success"; }

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale)
{
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32 && compute != CUBLAS_COMPUTE_32F_FAST_16BF &&
        compute != CUBLAS_COMPUTE_32F_FAST_16F)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "compute type not emulated");
    if (scale != CUDA_R_32F)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "a 32F compute type needs scale type CUDA_R_32F");
    *d = new emu_lt_desc{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, NULL, -1};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d)
{
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size)
{
    cublasStatus_t st;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: st = set(&d->ta, buf, size, "TRANSA"); break;
    case CUBLASLT_MATMUL_DESC_TRANSB: st = set(&d->tb, buf, size, "TRANSB"); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: st = set(&d->epilogue, buf, size, "EPILOGUE"); break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: st = set(&d->bias, buf, size, "BIAS_POINTER"); break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: st = set(&d->bias_type, buf, size, "BIAS_DATA_TYPE"); break;
    default: return fail(CUBLAS_STATUS_INVALID_VALUE, "matmul descriptor attribute not emulated");
    }
    if (!st && (d->ta > 1 || d->tb > 1))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "TRANSA/TRANSB must be CUBLAS_OP_N or CUBLAS_OP_T");
    return st;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld)
{
    if (!known_type(type))
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "matrix type not emulated");
    *l = new emu_lt_layout{type, rows, cols, ld, 1, 0};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l)
{
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                const void *buf, size_t size)
{
    if (attr == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT)
        return set(&l->batch, buf, size, "BATCH_COUNT");
    if (attr == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET)
        return set(&l->stride, buf, size, "STRIDED_BATCH_OFFSET");
    return fail(CUBLAS_STATUS_INVALID_VALUE, "layout attribute not emulated");
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p)
{
    *p = new emu_lt_pref{0, CUBLASLT_REDUCTION_SCHEME_MASK, {256, 256, 256, 256}};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p)
{
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t size)
{
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return set(&p->max_ws, buf, size, "MAX_WORKSPACE_BYTES");
    case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK: return set(&p->reduction_mask, buf, size, "REDUCTION_SCHEME_MASK");
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
        return set(&p->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, size, "MIN_ALIGNMENT");
    default: return fail(CUBLAS_STATUS_INVALID_VALUE, "preference attribute not emulated");
    }
}
} /* extern "C" */

/* The problem a descriptor and four layouts describe, checked as cuBLASLt checks it. */
struct problem {
    int64_t m, n, k, batch;
};

static cublasStatus_t check_problem(const emu_lt_desc *op, const emu_lt_layout *a, const emu_lt_layout *b,
                                    const emu_lt_layout *c, const emu_lt_layout *d, problem *p)
{
    char m[256];
    if (!op || !a || !b || !c || !d)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "null descriptor or layout");
    p->m = (int64_t)d->rows;
    p->n = (int64_t)d->cols;
    int64_t am = op->ta ? a->cols : a->rows, ak = op->ta ? a->rows : a->cols;
    int64_t bk = op->tb ? b->cols : b->rows, bn = op->tb ? b->rows : b->cols;
    p->k = ak;
    if (am != p->m || bn != p->n || bk != ak || c->rows != d->rows || c->cols != d->cols) {
        snprintf(m, sizeof m, "shapes do not chain: op(A) %lldx%lld, op(B) %lldx%lld, C %llux%llu, D %llux%llu",
                 (long long)am, (long long)ak, (long long)bk, (long long)bn, (unsigned long long)c->rows,
                 (unsigned long long)c->cols, (unsigned long long)d->rows, (unsigned long long)d->cols);
        return fail(CUBLAS_STATUS_INVALID_VALUE, m);
    }
    const emu_lt_layout *ls[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        if (ls[i]->ld < (int64_t)(ls[i]->rows ? ls[i]->rows : 1)) {
            snprintf(m, sizeof m, "layout %c: ld %lld < rows %llu", "ABCD"[i], (long long)ls[i]->ld,
                     (unsigned long long)ls[i]->rows);
            return fail(CUBLAS_STATUS_INVALID_VALUE, m);
        }
        if (ls[i]->batch != d->batch || ls[i]->batch < 1) {
            snprintf(m, sizeof m, "layout %c: batch count %d, D has %d", "ABCD"[i], ls[i]->batch, d->batch);
            return fail(CUBLAS_STATUS_INVALID_VALUE, m);
        }
    }
    p->batch = d->batch;
    /* the type combinations of a 32F compute type with 32F scale (cublasLtMatmul's table) */
    bool ok = a->type == b->type && c->type == d->type;
    if (op->compute != CUBLAS_COMPUTE_32F)
        ok = ok && a->type == CUDA_R_32F && c->type == CUDA_R_32F;
    else if (a->type != CUDA_R_32F)
        ok = ok && (c->type == a->type || c->type == CUDA_R_32F);
    else
        ok = ok && c->type == CUDA_R_32F;
    if (!ok) {
        snprintf(m, sizeof m, "no kernel for types A %d B %d C %d D %d with compute %d", a->type, b->type, c->type,
                 d->type, op->compute);
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, m);
    }
    if (op->epilogue != CUBLASLT_EPILOGUE_DEFAULT && op->epilogue != CUBLASLT_EPILOGUE_BIAS &&
        op->epilogue != CUBLASLT_EPILOGUE_RELU && op->epilogue != CUBLASLT_EPILOGUE_RELU_BIAS)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "epilogue not emulated");
    if (has_bias(op) && op->bias_type != -1 && op->bias_type != d->type)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "bias type differs from D's");
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t op,
                                                         cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                                         cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                                         cublasLtMatmulPreference_t pref, int requested,
                                                         cublasLtMatmulHeuristicResult_t results[], int *returned)
{
    problem p;
    emu_lt_heuristics++;
    if (!h || h->magic != ALGO_MAGIC || !pref || !results || !returned || requested < 1)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "heuristic: bad handle or arguments");
    cublasStatus_t st = check_problem(op, a, b, c, d, &p);
    if (st)
        return st;
    int got = 0;
    /* split-K first when allowed and the partial sums fit, then the plain algorithm */
    size_t split_ws = (size_t)SPLIT_K * p.m * p.n * p.batch * sizeof(float);
    bool can_split = p.k >= 64 && (pref->reduction_mask & ~(uint32_t)CUBLASLT_REDUCTION_SCHEME_NONE) && split_ws <= pref->max_ws;
    for (int split = can_split ? SPLIT_K : 1; split >= 1 && got < requested; split = split == 1 ? 0 : 1) {
        cublasLtMatmulHeuristicResult_t *r = &results[got++];
        memset(r, 0, sizeof *r);
        r->algo.data[0] = ALGO_MAGIC;
        r->algo.data[1] = (uint64_t)split;
        r->algo.data[2] = split > 1 ? split_ws : 0;
        for (int i = 0; i < 4; i++) /* an algorithm assumes what the preference allows, up to 16 bytes */
            r->algo.data[3 + i] = pref->align[i] < 16 ? pref->align[i] : 16;
        r->workspaceSize = (size_t)r->algo.data[2];
        r->state = CUBLAS_STATUS_SUCCESS;
        r->wavesCount = 1.0f;
    }
    *returned = got;
    return CUBLAS_STATUS_SUCCESS;
}

static void gemm(const emu_lt_desc &o, const emu_lt_layout &la, const emu_lt_layout &lb, const emu_lt_layout &lc,
                 const emu_lt_layout &ld, const problem &p, int64_t split, int round_bits, bool tf32_truncates, float al,
                 float be, const void *A, const void *B, const void *C, void *D);

/* Largest power of two dividing every matrix's address of a strided batch. */
static uint64_t alignment(const void *p, const emu_lt_layout *l)
{
    uint64_t bits = (uint64_t)(uintptr_t)p | (l->batch > 1 ? (uint64_t)l->stride * type_size(l->type) : 0) | 4096;
    return bits & (~bits + 1);
}

extern "C" cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void *alpha,
                                         const void *A, cublasLtMatrixLayout_t a, const void *B,
                                         cublasLtMatrixLayout_t b, const void *beta, const void *C,
                                         cublasLtMatrixLayout_t c, void *D, cublasLtMatrixLayout_t d,
                                         const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_bytes,
                                         cudaStream_t stream)
{
    problem p;
    char m[256];
    if (!h || h->magic != ALGO_MAGIC || !alpha || !beta || !A || !B || !D || !algo || algo->data[0] != ALGO_MAGIC)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "matmul: null pointer, bad handle or an algorithm the heuristic did not give");
    cublasStatus_t st = check_problem(op, a, b, c, d, &p);
    if (st)
        return st;
    if (C == D && (c->ld != d->ld || c->stride != d->stride || c->type != d->type))
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "in place (C == D) needs identical C and D layouts");
    const float al = *(const float *)alpha, be = *(const float *)beta;
    if (be != 0 && !C)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "beta != 0 and no C");
    if (algo->data[2] > workspace_bytes || (algo->data[2] && !workspace)) {
        snprintf(m, sizeof m, "the algorithm needs %llu workspace bytes, %zu given", (unsigned long long)algo->data[2],
                 workspace_bytes);
        return fail(CUBLAS_STATUS_INVALID_VALUE, m);
    }
    const void *ptrs[4] = {A, B, C, D};
    const emu_lt_layout *ls[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++)
        if (ptrs[i] && alignment(ptrs[i], ls[i]) < algo->data[3 + i]) {
            snprintf(m, sizeof m, "misaligned address: %c at %p (batch stride %lld) is %llu-byte aligned, the algorithm "
                     "assumes %llu (MIN_ALIGNMENT_%c_BYTES)", "ABCD"[i], ptrs[i], (long long)ls[i]->stride,
                     (unsigned long long)alignment(ptrs[i], ls[i]), (unsigned long long)algo->data[3 + i], "ABCD"[i]);
            return fail(CUBLAS_STATUS_EXECUTION_FAILED, m);
        }
    if (has_bias(op) && !op->bias)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "bias epilogue without BIAS_POINTER");
    const int round_bits = op->compute == CUBLAS_COMPUTE_32F_FAST_TF32   ? 10
                           : op->compute == CUBLAS_COMPUTE_32F_FAST_16BF ? 7
                                                                         : 23;
    const int64_t split = (int64_t)algo->data[1];
    const char *tf32 = getenv("EMU_TF32");
    const bool tf32_truncates = !tf32 || strcmp(tf32, "rne") != 0;
    /* the work, with copies of the descriptors (the caller may destroy them once this returns):
     * run now, or recorded when a stream capture is open (emu_runtime.cpp) */
    const emu_lt_desc o = *op;
    const emu_lt_layout la = *a, lb = *b, lc = *c, ld = *d;
    auto work = [=] { gemm(o, la, lb, lc, ld, p, split, round_bits, tf32_truncates, al, be, A, B, C, D); };
    emu_run_or_record(stream, work);
    emu_lt_calls++;
    return CUBLAS_STATUS_SUCCESS;
}

static void gemm(const emu_lt_desc &o, const emu_lt_layout &la, const emu_lt_layout &lb, const emu_lt_layout &lc,
                 const emu_lt_layout &ld, const problem &p, int64_t split, int round_bits, bool tf32_truncates, float al,
                 float be, const void *A, const void *B, const void *C, void *D)
{
    const emu_lt_desc *op = &o;
    const emu_lt_layout *a = &la, *b = &lb, *c = &lc, *d = &ld;
    const bool bias = has_bias(op);
    const bool relu = op->epilogue == CUBLASLT_EPILOGUE_RELU || op->epilogue == CUBLASLT_EPILOGUE_RELU_BIAS;
    for (int64_t bi = 0; bi < p.batch; bi++)
        for (int64_t j = 0; j < p.n; j++)
            for (int64_t i = 0; i < p.m; i++) {
                float sum = 0;
                for (int64_t s = 0; s < split; s++) {
                    float part = 0;
                    for (int64_t kk = s * p.k / split; kk < (s + 1) * p.k / split; kk++) {
                        /* op(A)[i,kk] and op(B)[kk,j] in column-major storage */
                        int64_t ia = op->ta ? kk + i * a->ld : i + kk * a->ld;
                        int64_t ib = op->tb ? j + kk * b->ld : kk + j * b->ld;
                        float x = load(A, a->type, bi * a->stride + ia), y = load(B, b->type, bi * b->stride + ib);
                        if (round_bits == 10 && tf32_truncates)
                            x = truncate_mantissa(x, 10), y = truncate_mantissa(y, 10);
                        else if (round_bits < 23)
                            x = round_mantissa(x, round_bits), y = round_mantissa(y, round_bits);
                        part = fmaf(x, y, part);
                    }
                    sum += part;
                }
                float v = al * sum;
                if (be != 0)
                    v += be * load(C, c->type, bi * c->stride + i + j * c->ld);
                if (bias)
                    v += load(op->bias, op->bias_type == -1 ? d->type : (cudaDataType_t)op->bias_type, i);
                if (relu)
                    v = fmaxf(v, 0.0f); /* max(x, 0), as documented; NaN → 0 like the GPU's fmaxf */
                store(D, d->type, bi * d->stride + i + j * d->ld, v);
            }
}
