/* lowp.c (CPU) — bf16 and f16 ("low precision") operands on the CPU backend, for mixed
 * precision training (docs/compression.md, "Mixed precision"):
 *
 *  - CAST between f32 and bf16/f16: vectorised, round to nearest even (F16C/AVX-512 for f16,
 *    integer rounding for bf16 so subnormals are kept exactly like kn_f32_to_bf16), split
 *    over threads for large tensors. Every other cast keeps the generic kernel (unary.c).
 *  - CONV2D, CONV2D_BWD_DATA, CONV2D_BWD_WEIGHT, MATMUL and LINEAR whose float operands and
 *    output are all bf16 (or all f16): the operands are widened to f32 in the kernel's
 *    workspace (exact), the registered f32 kernel runs on them (FP32 accumulation, the same
 *    blocking and thread-count independence), and the result is rounded to the node's dtype.
 *    Such a kernel is registered by wrapping whatever f32 entry the family file registered,
 *    so it must be filled after them (last in cpu_table.c).
 *
 *  - LINEAR in bf16 on CPUs with AVX-512 BF16 runs natively instead (vdpbf16ps,
 *    lowp_bf16dot.c), chosen at run time; KILN_BF16DOT=0 in the environment turns it off
 *    (read once, for comparisons).
 *
 * On a CPU, widening costs one pass over the operands, so a bf16 step is not faster than
 * f32 here: the gain of low precision on this backend is numerical parity with GPU mixed
 * precision (tensor cores), not speed. Deliberately not here: native bf16 convolutions
 * (model B's are Winograd in FP32, which saves more than bf16's doubled dot-product rate),
 * f64 operands (they keep the reference fallback). */
#include <string.h>
#if defined(__AVX512F__) && !defined(KN_CPU_NO_AVX512)
#include <immintrin.h>
#define LOWP_AVX512 1
#endif

#include <stdlib.h>

#include "../backend.h"
#include "lowp.h"

#define PAR_MIN 32768 /* elements below which threading costs more than it gains */

static kn__backend_kernel inner[KN_OP_COUNT]; /* the wrapped f32 entries */

static size_t align64(size_t b) { return (b + 63) & ~(size_t)63; }

static bool is_low(kn_dtype dt) { return dt == KN_BF16 || dt == KN_F16; }

/* ---- conversion -------------------------------------------------------------------------- */

static void bf16_to_f32(float *dst, const uint16_t *src, int64_t n)
{
    uint32_t *d = (uint32_t *)dst;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        d[i] = (uint32_t)src[i] << 16;
}

/* Round to nearest even; NaN stays a (quiet) NaN: the same bits as kn_f32_to_bf16. */
static void f32_to_bf16(uint16_t *dst, const float *src, int64_t n)
{
    const uint32_t *s = (const uint32_t *)src;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = s[i];
        uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
        bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
        dst[i] = (uint16_t)(nan ? (u >> 16) | 0x40u : r);
    }
}

static void f16_to_f32(float *dst, const uint16_t *src, int64_t n)
{
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t c = 0; c < (n + 4095) / 4096; c++) {
        int64_t i = c * 4096, end = i + 4096 < n ? i + 4096 : n;
#ifdef LOWP_AVX512
        for (; i + 16 <= end; i += 16)
            _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
#endif
        for (; i < end; i++)
            dst[i] = kn_f16_to_f32(src[i]);
    }
}

static void f32_to_f16(uint16_t *dst, const float *src, int64_t n)
{
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t c = 0; c < (n + 4095) / 4096; c++) {
        int64_t i = c * 4096, end = i + 4096 < n ? i + 4096 : n;
#ifdef LOWP_AVX512
        for (; i + 16 <= end; i += 16) {
            __m512 v = _mm512_loadu_ps(src + i);
            /* NaN inputs take the scalar path so their bits match kn_f32_to_f16 */
            if (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q))
                break;
            _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        }
#endif
        for (; i < end; i++)
            dst[i] = kn_f32_to_f16(src[i]);
    }
}

static void widen(float *dst, const void *src, kn_dtype dt, int64_t n)
{
    if (dt == KN_BF16)
        bf16_to_f32(dst, src, n);
    else
        f16_to_f32(dst, src, n);
}

static void narrow(void *dst, const float *src, kn_dtype dt, int64_t n)
{
    if (dt == KN_BF16)
        f32_to_bf16(dst, src, n);
    else
        f32_to_f16(dst, src, n);
}

/* ---- cast -------------------------------------------------------------------------------- */

static bool fast_cast(const kn_node *n)
{
    kn_dtype from = n->src[0]->dtype, to = n->dtype;
    return (from == KN_F32 && is_low(to)) || (is_low(from) && to == KN_F32);
}

static kn_status cast_lowp(const kn__kargs *a)
{
    const kn_node *n = a->node;
    if (!fast_cast(n))
        return inner[KN_OP_CAST].fn(a);
    int64_t m = kn__numel(n);
    if (n->dtype == KN_F32)
        widen(a->dst, a->src[0], n->src[0]->dtype, m);
    else
        narrow(a->dst, a->src[0], n->dtype, m);
    return KN_OK;
}

static bool cast_supports(const kn_node *n)
{
    if (fast_cast(n))
        return true;
    return inner[KN_OP_CAST].fn && (!inner[KN_OP_CAST].supports || inner[KN_OP_CAST].supports(n));
}

/* ---- f32 kernels on widened operands ----------------------------------------------------- */

/* The node as its f32 kernel sees it: every float dtype (output and inputs) f32. */
typedef struct shadow {
    kn_node n;
    kn_node src[KN_MAX_SRC];
} shadow;

static void make_shadow(const kn_node *n, shadow *s)
{
    s->n = *n;
    if (kn_dtype_is_float(n->dtype))
        s->n.dtype = KN_F32;
    for (int i = 0; i < n->nsrc; i++) {
        s->src[i] = *n->src[i];
        if (kn_dtype_is_float(s->src[i].dtype))
            s->src[i].dtype = KN_F32;
        s->n.src[i] = &s->src[i];
    }
}

/* The one low dtype of every float operand and the output, or KN_F32 when they are not all
 * the same bf16 or f16 (then this wrapper does not apply). */
static kn_dtype low_dtype(const kn_node *n)
{
    kn_dtype dt = n->dtype;
    if (!is_low(dt))
        return KN_F32;
    for (int i = 0; i < n->nsrc; i++)
        if (kn_dtype_is_float(n->src[i]->dtype) && n->src[i]->dtype != dt)
            return KN_F32;
    return dt;
}

static bool wrapped_supports(const kn_node *n)
{
    const kn__backend_kernel *k = &inner[n->op];
    if (!k->fn)
        return false;
    if (low_dtype(n) == KN_F32) { /* f32 (or mixed) nodes: the wrapped entry decides */
        if (k->supports)
            return k->supports(n);
        bool f32 = n->dtype == KN_F32 || !kn_dtype_is_float(n->dtype);
        for (int i = 0; f32 && i < n->nsrc; i++)
            f32 = n->src[i]->dtype == KN_F32 || !kn_dtype_is_float(n->src[i]->dtype);
        return f32;
    }
    shadow s;
    make_shadow(n, &s);
    return !k->supports || k->supports(&s.n);
}

static size_t inner_workspace(const kn_node *n)
{
    const kn__backend_kernel *k = &inner[n->op];
    return k->workspace ? k->workspace(n) : 0;
}

/* Layout: [inner workspace][f32 copy of each float input][f32 output], 64-byte aligned. */
static size_t wrapped_workspace(const kn_node *n)
{
    if (low_dtype(n) == KN_F32)
        return inner_workspace(n);
    shadow s;
    make_shadow(n, &s);
    size_t b = align64(inner_workspace(&s.n));
    for (int i = 0; i < n->nsrc; i++)
        if (kn_dtype_is_float(n->src[i]->dtype))
            b += align64((size_t)kn__numel(n->src[i]) * sizeof(float));
    return b + align64((size_t)kn__numel(n) * sizeof(float));
}

/* The native bf16 linear kernel applies (and is not switched off by KILN_BF16DOT=0). */
static bool use_bf16dot(void)
{
    static int use = -1;
    if (use < 0) {
        const char *e = getenv("KILN_BF16DOT");
        use = kn__bf16dot_available() && !(e && !strcmp(e, "0"));
    }
    return use == 1;
}

static kn_status wrapped_run(const kn__kargs *a)
{
    const kn_node *n = a->node;
    kn_dtype dt = low_dtype(n);
    if (dt == KN_F32)
        return inner[n->op].fn(a);
    if (n->op == KN_OP_LINEAR && dt == KN_BF16 && use_bf16dot())
        return kn__linear_bf16dot(a);
    shadow s;
    make_shadow(n, &s);
    kn__kargs b = *a;
    b.node = &s.n;
    size_t iw = inner_workspace(&s.n), cur = align64(iw);
    char *w = a->work;
    b.work = iw ? w : NULL;
    for (int i = 0; i < n->nsrc; i++) {
        if (!kn_dtype_is_float(n->src[i]->dtype))
            continue;
        int64_t m = kn__numel(n->src[i]);
        widen((float *)(w + cur), a->src[i], dt, m);
        b.src[i] = w + cur;
        cur += align64((size_t)m * sizeof(float));
    }
    b.dst = w + cur;
    kn_status st = inner[n->op].fn(&b);
    if (st)
        return st;
    narrow(a->dst, b.dst, dt, kn__numel(n));
    return KN_OK;
}

void kn__cpu_register_lowp(kn__backend_kernel *t)
{
    static const int wrapped[] = {KN_OP_CONV2D, KN_OP_CONV2D_BWD_DATA, KN_OP_CONV2D_BWD_WEIGHT, KN_OP_MATMUL,
                                  KN_OP_LINEAR};
    for (size_t i = 0; i < sizeof wrapped / sizeof wrapped[0]; i++) {
        int op = wrapped[i];
        inner[op] = t[op];
        if (!inner[op].fn)
            continue;
        /* the fusion pass fuses only into f32 nodes, which go straight to the inner kernel */
        t[op] = (kn__backend_kernel){.fn = wrapped_run, .workspace = wrapped_workspace, .supports = wrapped_supports,
                                     .epilogue = inner[op].epilogue};
    }
    inner[KN_OP_CAST] = t[KN_OP_CAST];
    t[KN_OP_CAST] = (kn__backend_kernel){.fn = cast_lowp, .workspace = inner[KN_OP_CAST].workspace,
                                         .supports = cast_supports};
}
