/* emu_cudnn.cpp — cuDNN's legacy convolution API (the part in cudnn.h here) on the CPU, written
 * from cuDNN's documented semantics (not from kiln's kernels), so that tests/gpu/emu/run.sh runs
 * src/backend/cuda/conv.cu's cuDNN path and can catch a wrong descriptor or argument:
 *  - NCHW tensors, KCRS filters, padding / stride / dilation, groups (x has C channels, the
 *    filter C/G), CUDNN_CONVOLUTION flips the filter, CUDNN_CROSS_CORRELATION does not;
 *    output = alpha·op + beta·output, the output not read when beta = 0 (it may hold NaN);
 *    cudnnAddTensor broadcasts each dimension of A that is 1.
 *  - Validation as documented: null pointers, non-positive sizes, an output tensor that is not the
 *    output-dimension formula's, channels ≠ filter channels × groups, data types that differ
 *    → CUDNN_STATUS_BAD_PARAM; anything but FLOAT data with FLOAT compute, or NHWC → NOT_SUPPORTED.
 *    Every refusal is printed to stderr with its reason.
 *  - Math: CUDNN_FMA_MATH is FP32 (products and sums in float). The other math types permit TF32
 *    tensor cores on sm_80+, which this emulates: both operands are rounded to TF32 (10-bit
 *    mantissa, to nearest, ties away as cvt.rna.tf32.f32; EMU_CUDNN_TF32_RZ=1: truncated) before
 *    the product, sums in float.
 *  - The *_v7 heuristics return every algorithm of the direction in a fixed ranking (rank()):
 *    first one that needs more than 32 MiB of workspace, then ones that fail (status NOT_SUPPORTED,
 *    memory 0) or are non-deterministic, before the deterministic ones that fit. Running an
 *    algorithm that failed, or with less workspace than it asked for, is refused; the workspace it
 *    asked for is overwritten with NaN bytes (as a real one is scratch).
 *  - Inside a stream capture the work is recorded for the graph launch to replay.
 * At exit: one line with the convolutions run here (by direction and algorithm). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <functional>
#include <new>
#include <numeric>
#include <vector>

#include "cudnn.h"

struct cudnnContext { unsigned magic; cudaStream_t stream; };
struct cudnnTensorStruct { bool set; cudnnDataType_t dt; int n, c, h, w; };
struct cudnnFilterStruct { bool set; cudnnDataType_t dt; int k, c, r, s; };
struct cudnnConvolutionStruct {
    bool set;
    int ph, pw, u, v, dh, dw, groups = 1;
    cudnnConvolutionMode_t mode;
    cudnnDataType_t dt;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};
static const unsigned MAGIC = 0xc0d11e;

enum dir { FWD, BWD_DATA, BWD_FILTER };
static const char *const dir_name[] = {"forward", "backward-data", "backward-filter"};
static const int algo_count[] = {CUDNN_CONVOLUTION_FWD_ALGO_COUNT, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                 CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT};

static struct counters {
    long runs[3][8], nondet, add, refused, queries;
    long total(int d) const { return std::accumulate(runs[d], runs[d] + 8, 0L); }
    ~counters()
    {
        printf("emulated cuDNN: %ld forward, %ld backward-data, %ld backward-filter calls "
               "(%ld with a non-deterministic algorithm), %ld cudnnAddTensor, %ld calls refused, %ld algorithm "
               "queries\n",
               total(FWD), total(BWD_DATA), total(BWD_FILTER), nondet, add, refused, queries);
        for (int d = 0; d < 3; d++) {
            printf("emulated cuDNN: %s runs by algorithm:", dir_name[d]);
            for (int a = 0; a < algo_count[d]; a++)
                if (runs[d][a])
                    printf(" %d×%ld", a, runs[d][a]);
            printf("\n");
        }
        fflush(stdout);
    }
} counts;

extern "C" const char *cudnnGetErrorString(cudnnStatus_t st)
{
    return st == CUDNN_STATUS_SUCCESS         ? "CUDNN_STATUS_SUCCESS"
           : st == CUDNN_STATUS_BAD_PARAM     ? "CUDNN_STATUS_BAD_PARAM"
           : st == CUDNN_STATUS_NOT_SUPPORTED ? "CUDNN_STATUS_NOT_SUPPORTED"
           : st == CUDNN_STATUS_ALLOC_FAILED  ? "CUDNN_STATUS_ALLOC_FAILED"
                                              : "CUDNN_STATUS_UNKNOWN";
}

/* Counts and explains a refused call; returns st. */
static cudnnStatus_t refuse(cudnnStatus_t st, const char *fn, const char *fmt, ...)
{
    counts.refused++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "emulated cuDNN: %s: %s: ", fn, cudnnGetErrorString(st));
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return st;
}
#define BAD(...) refuse(CUDNN_STATUS_BAD_PARAM, __func__, __VA_ARGS__)
#define UNSUPPORTED(...) refuse(CUDNN_STATUS_NOT_SUPPORTED, __func__, __VA_ARGS__)

static bool live(cudnnHandle_t h) { return h && h->magic == MAGIC; }
static bool known_type(cudnnDataType_t t)
{
    return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_DOUBLE || t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16;
}

extern "C" {
size_t cudnnGetVersion(void) { return 90000; }

cudnnStatus_t cudnnCreate(cudnnHandle_t *h)
{
    if (!h)
        return BAD("handle is NULL");
    *h = new (std::nothrow) cudnnContext{MAGIC, nullptr};
    return *h ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_ALLOC_FAILED;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t h)
{
    if (!live(h))
        return BAD("not a live handle");
    h->magic = 0;
    delete h;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s)
{
    if (!live(h))
        return BAD("not a live handle");
    h->stream = s; /* the calls' work goes on this stream */
    return CUDNN_STATUS_SUCCESS;
}

#define CREATE_DESTROY(Create, Destroy, T)                                                         \
    cudnnStatus_t Create(T **d)                                                                    \
    {                                                                                              \
        if (!d)                                                                                    \
            return BAD("descriptor pointer is NULL");                                              \
        *d = new (std::nothrow) T{};                                                               \
        return *d ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_ALLOC_FAILED;                              \
    }                                                                                              \
    cudnnStatus_t Destroy(T *d)                                                                    \
    {                                                                                              \
        delete d;                                                                                  \
        return CUDNN_STATUS_SUCCESS;                                                               \
    }
CREATE_DESTROY(cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor, cudnnTensorStruct)
CREATE_DESTROY(cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor, cudnnFilterStruct)
CREATE_DESTROY(cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor, cudnnConvolutionStruct)

/* the checks the two 4-d setters share */
static cudnnStatus_t check4d(const char *fn, const void *d, cudnnTensorFormat_t f, cudnnDataType_t t, int a, int b,
                             int c, int e)
{
    if (!d)
        return refuse(CUDNN_STATUS_BAD_PARAM, fn, "descriptor is NULL");
    if (!known_type(t) || (f != CUDNN_TENSOR_NCHW && f != CUDNN_TENSOR_NHWC))
        return refuse(CUDNN_STATUS_BAD_PARAM, fn, "data type %d or format %d is not one", (int)t, (int)f);
    if (a <= 0 || b <= 0 || c <= 0 || e <= 0)
        return refuse(CUDNN_STATUS_BAD_PARAM, fn, "dimensions %d,%d,%d,%d not all positive", a, b, c, e);
    if (f != CUDNN_TENSOR_NCHW)
        return refuse(CUDNN_STATUS_NOT_SUPPORTED, fn, "the emulation has NCHW only");
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f, cudnnDataType_t t, int n,
                                         int c, int h, int w)
{
    cudnnStatus_t st = check4d(__func__, d, f, t, n, c, h, w);
    if (!st)
        *d = {true, t, n, c, h, w};
    return st;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t f, int k,
                                         int c, int h, int w)
{
    cudnnStatus_t st = check4d(__func__, d, f, t, k, c, h, w);
    if (!st)
        *d = {true, t, k, c, h, w};
    return st;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int ph, int pw, int u, int v, int dh,
                                              int dw, cudnnConvolutionMode_t mode, cudnnDataType_t t)
{
    if (!d)
        return BAD("descriptor is NULL");
    if (ph < 0 || pw < 0 || u <= 0 || v <= 0 || dh <= 0 || dw <= 0)
        return BAD("padding %d,%d (≥ 0), stride %d,%d, dilation %d,%d (> 0)", ph, pw, u, v, dh, dw);
    if ((mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) || !known_type(t))
        return BAD("mode %d or compute type %d is not one", (int)mode, (int)t);
    d->set = true, d->ph = ph, d->pw = pw, d->u = u, d->v = v, d->dh = dh, d->dw = dw, d->mode = mode, d->dt = t;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int g)
{
    if (!d || g < 1)
        return BAD("descriptor NULL or group count %d < 1", g);
    d->groups = g;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m)
{
    if (!d || m < CUDNN_DEFAULT_MATH || m > CUDNN_FMA_MATH)
        return BAD("descriptor NULL or math type %d is not one", (int)m);
    d->math = m;
    return CUDNN_STATUS_SUCCESS;
}
} /* extern "C" */

/* ---- one convolution problem: x [N,C,H,W], w [K,C/G,R,S], y [N,K,P,Q] ---- */
struct geom {
    int64_t N, C, H, W, K, Cg, Kg, R, S, P, Q, ph, pw, u, v, dh, dw;
    bool flip, tf32;
    cudnnMathType_t math;
};

/* cuDNN's output size along one axis */
static int64_t out_dim(int64_t in, int64_t pad, int64_t filt, int64_t dil, int64_t stride)
{
    return 1 + (in + 2 * pad - ((filt - 1) * dil + 1)) / stride;
}

/* Validates the descriptors of a convolution x * w → y as cuDNN does; fills g. */
static cudnnStatus_t problem(const char *fn, const cudnnTensorStruct *x, const cudnnFilterStruct *w,
                             const cudnnConvolutionStruct *c, const cudnnTensorStruct *y, geom *g)
{
    if (!x || !w || !c || !y)
        return refuse(CUDNN_STATUS_BAD_PARAM, fn, "a descriptor is NULL");
    if (!x->set || !w->set || !c->set || !y->set)
        return refuse(CUDNN_STATUS_BAD_PARAM, fn, "a descriptor was never set");
    if (x->dt != w->dt || x->dt != y->dt)
        return refuse(CUDNN_STATUS_BAD_PARAM, fn, "data types x %d, w %d, y %d differ", x->dt, w->dt, y->dt);
    if (x->dt != CUDNN_DATA_FLOAT || c->dt != CUDNN_DATA_FLOAT)
        return refuse(CUDNN_STATUS_NOT_SUPPORTED, fn, "only FLOAT data with FLOAT compute is emulated");
    const int G = c->groups;
    if (x->c != w->c * G)
        return refuse(CUDNN_STATUS_BAD_PARAM, fn, "x has %d channels, filter %d × %d groups", x->c, w->c, G);
    if (w->k % G || y->c != w->k || y->n != x->n)
        return refuse(CUDNN_STATUS_BAD_PARAM, fn, "filter K %d (groups %d), y [%d,%d,..], x [%d,..]", w->k, G, y->n,
                      y->c, x->n);
    if ((w->r - 1) * c->dh + 1 > x->h + 2 * c->ph || (w->s - 1) * c->dw + 1 > x->w + 2 * c->pw)
        return refuse(CUDNN_STATUS_BAD_PARAM, fn, "dilated filter larger than the padded input");
    int64_t P = out_dim(x->h, c->ph, w->r, c->dh, c->u), Q = out_dim(x->w, c->pw, w->s, c->dw, c->v);
    if (y->h != P || y->w != Q)
        return refuse(CUDNN_STATUS_BAD_PARAM, fn, "y is %dx%d, the convolution's output %lldx%lld", y->h, y->w,
                      (long long)P, (long long)Q);
    *g = {x->n, x->c, x->h, x->w, w->k, w->c, w->k / G, w->r, w->s, P, Q, c->ph, c->pw, c->u, c->v, c->dh, c->dw,
          c->mode == CUDNN_CONVOLUTION, c->math != CUDNN_FMA_MATH, c->math};
    return CUDNN_STATUS_SUCCESS;
}

/* ---- the algorithms: a fixed ranking per direction, workspace sizes from the problem ---- */
struct algo {
    int id;
    cudnnStatus_t status;
    size_t memory;
    cudnnDeterminism_t det;
};

static std::vector<algo> rank(dir d, const geom &g)
{
    const cudnnStatus_t OK = CUDNN_STATUS_SUCCESS, NO = CUDNN_STATUS_NOT_SUPPORTED;
    const cudnnDeterminism_t DET = CUDNN_DETERMINISTIC, NONDET = CUDNN_NON_DETERMINISTIC;
    const size_t big = (size_t)33 << 20; /* more than the 32 MiB kiln gives */
    const size_t bx = 4 * g.N * g.C * g.H * g.W, by = 4 * g.N * g.K * g.P * g.Q, bw = 4 * g.K * g.Cg * g.R * g.S;
    const size_t col = 4 * g.N * g.C * g.R * g.S * g.P * g.Q; /* im2col of the batch */
    const bool wino = g.R == 3 && g.S == 3 && g.u == 1 && g.v == 1 && g.dh == 1 && g.dw == 1;
    const cudnnStatus_t w3 = wino ? OK : NO;
    std::vector<algo> r;
    if (d == FWD)
        r = {{CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING, OK, big + bx + by, DET},
             {CUDNN_CONVOLUTION_FWD_ALGO_DIRECT, NO, 0, DET},
             {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, w3, bx + by, DET},
             {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, OK, col, DET},
             {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, OK, 8 * (size_t)(g.Cg * g.R * g.S), DET},
             {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, OK, 0, DET}};
    else if (d == BWD_DATA)
        r = {{CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT, OK, big + bx + by, DET},
             {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, OK, 0, NONDET},
             {CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD, NO, 0, DET},
             {CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED, w3, bx + by, DET},
             {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, OK, bw, DET}};
    else
        r = {{CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING, OK, big + bw + by, DET},
             {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, OK, bw, NONDET},
             {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, OK, 0, NONDET},
             {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD, NO, 0, DET},
             {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED, w3, bw + by, DET},
             {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, OK, col, DET}};
    for (int a = 0; a < algo_count[d]; a++) /* the rest: not for this problem */
        if (std::none_of(r.begin(), r.end(), [a](const algo &e) { return e.id == a; }))
            r.push_back({a, NO, 0, DET});
    return r;
}

/* The *_v7 heuristics of direction d for the convolution x * w → y (descriptors in that order). */
template <typename Perf>
static cudnnStatus_t heuristics(const char *fn, dir d, cudnnHandle_t h, const cudnnTensorStruct *x,
                                const cudnnFilterStruct *w, const cudnnConvolutionStruct *c,
                                const cudnnTensorStruct *y, int want, int *got, Perf *perf)
{
    counts.queries++;
    if (!live(h) || !got || !perf || want < 1)
        return refuse(CUDNN_STATUS_BAD_PARAM, fn, "handle, returnedAlgoCount or perfResults NULL, or count %d", want);
    geom g;
    if (cudnnStatus_t st = problem(fn, x, w, c, y, &g))
        return st;
    std::vector<algo> r = rank(d, g);
    *got = std::min(want, (int)r.size());
    for (int i = 0; i < *got; i++) {
        perf[i] = {};
        perf[i].algo = (decltype(perf[i].algo))r[i].id;
        perf[i].status = r[i].status;
        perf[i].time = -1; /* a heuristic, not a measurement */
        perf[i].memory = r[i].memory;
        perf[i].determinism = r[i].det;
        perf[i].mathType = g.math;
    }
    return CUDNN_STATUS_SUCCESS;
}

/* f rounded to TF32: 10 mantissa bits, to nearest, ties away from zero; Inf and NaN kept.
 * EMU_CUDNN_TF32_RZ=1 truncates instead (a kernel that feeds FP32 bits to the tensor cores
 * unconverted): twice the error, the worst case a tolerance has to allow. */
static float tf32(float f)
{
    static const bool rz = getenv("EMU_CUDNN_TF32_RZ") && strcmp(getenv("EMU_CUDNN_TF32_RZ"), "1") == 0;
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u)
        u = (rz ? u : u + 0x1000u) & ~0x1fffu;
    memcpy(&f, &u, 4);
    return f;
}

/* Calls f(xi, wi, yi) for every tap of the convolution: y[yi] gets x[xi]·w[wi]. */
template <typename F> static void taps(const geom &g, F f)
{
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t k = 0; k < g.K; k++)
            for (int64_t p = 0; p < g.P; p++)
                for (int64_t q = 0; q < g.Q; q++) {
                    const int64_t yi = ((n * g.K + k) * g.P + p) * g.Q + q, c0 = k / g.Kg * g.Cg;
                    for (int64_t c = 0; c < g.Cg; c++)
                        for (int64_t r = 0; r < g.R; r++) {
                            const int64_t h = p * g.u - g.ph + r * g.dh;
                            if (h < 0 || h >= g.H)
                                continue;
                            for (int64_t s = 0; s < g.S; s++) {
                                const int64_t w = q * g.v - g.pw + s * g.dw;
                                if (w < 0 || w >= g.W)
                                    continue;
                                const int64_t fr = g.flip ? g.R - 1 - r : r, fs = g.flip ? g.S - 1 - s : s;
                                f(((n * g.C + c0 + c) * g.H + h) * g.W + w, ((k * g.Cg + c) * g.R + fr) * g.S + fs, yi);
                            }
                        }
                }
}

/* Runs direction d of the convolution x * w → y (descriptors in that order): out = alpha·op(a, b)
 * + beta·out, with a, b the two inputs in the API's order (forward x, w; backward data w, dy;
 * backward filter x, dy). */
static cudnnStatus_t run(const char *fn, dir d, cudnnHandle_t h, const cudnnTensorStruct *x,
                         const cudnnFilterStruct *w, const cudnnConvolutionStruct *c, const cudnnTensorStruct *y,
                         int id, void *ws, size_t ws_bytes, const void *alpha, const void *beta, const void *a,
                         const void *b, void *out)
{
    if (!live(h) || !alpha || !beta || !a || !b || !out)
        return refuse(CUDNN_STATUS_BAD_PARAM, fn, "handle, alpha, beta or a data pointer NULL");
    geom g;
    if (cudnnStatus_t st = problem(fn, x, w, c, y, &g))
        return st;
    std::vector<algo> r = rank(d, g);
    auto e = std::find_if(r.begin(), r.end(), [id](const algo &x) { return x.id == id; });
    if (e == r.end() || e->status)
        return refuse(CUDNN_STATUS_NOT_SUPPORTED, fn, "algorithm %d does not support this problem", id);
    if (e->memory > ws_bytes || (e->memory && !ws))
        return refuse(CUDNN_STATUS_BAD_PARAM, fn, "algorithm %d needs %zu bytes of workspace, given %zu at %p", id,
                      e->memory, ws_bytes, ws);
    const float al = *(const float *)alpha, be = *(const float *)beta, *A = (const float *)a, *B = (const float *)b;
    float *O = (float *)out;
    const size_t mem = e->memory;
    emu_run_or_record(h->stream, [=] { /* validation above happens at the call, the work at replay */
        if (mem)
            memset(ws, 0xff, mem); /* scratch */
        const size_t n = d == FWD        ? g.N * g.K * g.P * g.Q
                         : d == BWD_DATA ? g.N * g.C * g.H * g.W
                                         : g.K * g.Cg * g.R * g.S;
        std::vector<float> acc(n, 0.0f);
        auto t = [&](float v) { return g.tf32 ? tf32(v) : v; };
        if (d == FWD) /* A = x, B = w */
            taps(g, [&](int64_t xi, int64_t wi, int64_t yi) { acc[yi] += t(A[xi]) * t(B[wi]); });
        else if (d == BWD_DATA) /* A = w, B = dy */
            taps(g, [&](int64_t xi, int64_t wi, int64_t yi) { acc[xi] += t(B[yi]) * t(A[wi]); });
        else /* A = x, B = dy */
            taps(g, [&](int64_t xi, int64_t wi, int64_t yi) { acc[wi] += t(A[xi]) * t(B[yi]); });
        for (size_t i = 0; i < n; i++)
            O[i] = be == 0.0f ? al * acc[i] : al * acc[i] + be * O[i];
    });
    counts.runs[d][id]++;
    counts.nondet += e->det == CUDNN_NON_DETERMINISTIC;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" {
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                     const cudnnFilterDescriptor_t w,
                                                     const cudnnConvolutionDescriptor_t c,
                                                     const cudnnTensorDescriptor_t y, const int want, int *got,
                                                     cudnnConvolutionFwdAlgoPerf_t *perf)
{
    return heuristics(__func__, FWD, h, x, w, c, y, want, got, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t h, const cudnnFilterDescriptor_t w,
                                                          const cudnnTensorDescriptor_t dy,
                                                          const cudnnConvolutionDescriptor_t c,
                                                          const cudnnTensorDescriptor_t dx, const int want, int *got,
                                                          cudnnConvolutionBwdDataAlgoPerf_t *perf)
{
    return heuristics(__func__, BWD_DATA, h, dx, w, c, dy, want, got, perf);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t h, const cudnnTensorDescriptor_t x,
                                                            const cudnnTensorDescriptor_t dy,
                                                            const cudnnConvolutionDescriptor_t c,
                                                            const cudnnFilterDescriptor_t dw, const int want,
                                                            int *got, cudnnConvolutionBwdFilterAlgoPerf_t *perf)
{
    return heuristics(__func__, BWD_FILTER, h, x, dw, c, dy, want, got, perf);
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha, const cudnnTensorDescriptor_t xd,
                                      const void *x, const cudnnFilterDescriptor_t wd, const void *w,
                                      const cudnnConvolutionDescriptor_t cd, cudnnConvolutionFwdAlgo_t algo,
                                      void *ws, size_t ws_bytes, const void *beta, const cudnnTensorDescriptor_t yd,
                                      void *y)
{
    return run(__func__, FWD, h, xd, wd, cd, yd, algo, ws, ws_bytes, alpha, beta, x, w, y);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *alpha, const cudnnFilterDescriptor_t wd,
                                           const void *w, const cudnnTensorDescriptor_t dyd, const void *dy,
                                           const cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdDataAlgo_t algo,
                                           void *ws, size_t ws_bytes, const void *beta,
                                           const cudnnTensorDescriptor_t dxd, void *dx)
{
    return run(__func__, BWD_DATA, h, dxd, wd, cd, dyd, algo, ws, ws_bytes, alpha, beta, w, dy, dx);
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void *alpha, const cudnnTensorDescriptor_t xd,
                                             const void *x, const cudnnTensorDescriptor_t dyd, const void *dy,
                                             const cudnnConvolutionDescriptor_t cd,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void *ws, size_t ws_bytes,
                                             const void *beta, const cudnnFilterDescriptor_t dwd, void *dw)
{
    return run(__func__, BWD_FILTER, h, xd, dwd, cd, dyd, algo, ws, ws_bytes, alpha, beta, x, dy, dw);
}

cudnnStatus_t cudnnAddTensor(cudnnHandle_t h, const void *alpha, const cudnnTensorDescriptor_t ad, const void *A,
                             const void *beta, const cudnnTensorDescriptor_t cd, void *C)
{
    if (!live(h) || !alpha || !beta || !ad || !cd || !A || !C || !ad->set || !cd->set)
        return BAD("handle, a pointer or a descriptor NULL or not set");
    if (ad->dt != cd->dt)
        return BAD("data types %d and %d differ", ad->dt, cd->dt);
    if (ad->dt != CUDNN_DATA_FLOAT)
        return UNSUPPORTED("only FLOAT is emulated");
    const int a[4] = {ad->n, ad->c, ad->h, ad->w}, c[4] = {cd->n, cd->c, cd->h, cd->w};
    for (int i = 0; i < 4; i++)
        if (a[i] != c[i] && a[i] != 1)
            return BAD("A dimension %d is %d, C's %d (must match or be 1)", i, a[i], c[i]);
    const float al = *(const float *)alpha, be = *(const float *)beta, *src = (const float *)A;
    float *dst = (float *)C;
    const int ad4[4] = {a[0], a[1], a[2], a[3]}, cd4[4] = {c[0], c[1], c[2], c[3]};
    emu_run_or_record(h->stream, [=] {
        const int *a = ad4, *c = cd4;
        int64_t i = 0;
        for (int64_t n = 0; n < c[0]; n++)
            for (int64_t k = 0; k < c[1]; k++)
                for (int64_t y = 0; y < c[2]; y++)
                    for (int64_t x = 0; x < c[3]; x++, i++) {
                        /* index into A: a broadcast dimension (size 1) contributes 0 */
                        int64_t j = (((a[0] > 1 ? n : 0) * a[1] + (a[1] > 1 ? k : 0)) * a[2] + (a[2] > 1 ? y : 0)) *
                                        a[3] +
                                    (a[3] > 1 ? x : 0);
                        dst[i] = be == 0.0f ? al * src[j] : al * src[j] + be * dst[i];
                    }
    });
    counts.add++;
    return CUDNN_STATUS_SUCCESS;
}
} /* extern "C" */
