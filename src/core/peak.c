/* peak.c — the machine's peak FP32 FMA throughput, measured by kiln itself: every OpenMP
 * thread runs a register-only loop of fused multiply-adds on 12 independent accumulators
 * (enough to cover FMA latency × FMA ports on current x86 cores), AVX-512 when the CPU has
 * it, else AVX2+FMA, else plain C; the ISA is chosen at run time, so a binary built here
 * needs no -march (the rest of kiln is built for the build machine). Counts 2 FLOPs per lane per FMA. The loop touches no memory,
 * so this is the compute roof, not what a real kernel can reach. Rates are per thread CPU
 * time and the best of 20 short trials is kept, because shared machines are noisy.
 * Not here: the benchmark of a model (src/train/bench.c). */
#include <omp.h>
#include <stdint.h>
#include <time.h>

#include "kiln/bench.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KN_PEAK_X86 1
#endif

#define ACC 12

/* Read at run time so the compiler cannot fold the loop away. */
static volatile float peak_a = 0.999f, peak_b = 0.001f;
static volatile float peak_sink;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#ifdef KN_PEAK_X86
/* c = c·a + b converges to 1: no overflow, no denormals, however long it runs. */
#define FMA_BLOCK(fma)                                                                          \
    c0 = fma(c0, a, b), c1 = fma(c1, a, b), c2 = fma(c2, a, b), c3 = fma(c3, a, b);             \
    c4 = fma(c4, a, b), c5 = fma(c5, a, b), c6 = fma(c6, a, b), c7 = fma(c7, a, b);             \
    c8 = fma(c8, a, b), c9 = fma(c9, a, b), c10 = fma(c10, a, b), c11 = fma(c11, a, b)

__attribute__((target("avx512f"))) static float loop_avx512(int64_t iters)
{
    __m512 a = _mm512_set1_ps(peak_a), b = _mm512_set1_ps(peak_b);
    __m512 c0 = _mm512_set1_ps(0.0f), c1 = _mm512_set1_ps(0.1f), c2 = _mm512_set1_ps(0.2f),
           c3 = _mm512_set1_ps(0.3f), c4 = _mm512_set1_ps(0.4f), c5 = _mm512_set1_ps(0.5f),
           c6 = _mm512_set1_ps(0.6f), c7 = _mm512_set1_ps(0.7f), c8 = _mm512_set1_ps(0.8f),
           c9 = _mm512_set1_ps(0.9f), c10 = _mm512_set1_ps(1.1f), c11 = _mm512_set1_ps(1.2f);
    for (int64_t i = 0; i < iters; i++) {
        FMA_BLOCK(_mm512_fmadd_ps);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float loop_avx2(int64_t iters)
{
    __m256 a = _mm256_set1_ps(peak_a), b = _mm256_set1_ps(peak_b);
    __m256 c0 = _mm256_set1_ps(0.0f), c1 = _mm256_set1_ps(0.1f), c2 = _mm256_set1_ps(0.2f),
           c3 = _mm256_set1_ps(0.3f), c4 = _mm256_set1_ps(0.4f), c5 = _mm256_set1_ps(0.5f),
           c6 = _mm256_set1_ps(0.6f), c7 = _mm256_set1_ps(0.7f), c8 = _mm256_set1_ps(0.8f),
           c9 = _mm256_set1_ps(0.9f), c10 = _mm256_set1_ps(1.1f), c11 = _mm256_set1_ps(1.2f);
    for (int64_t i = 0; i < iters; i++) {
        FMA_BLOCK(_mm256_fmadd_ps);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    float v[8];
    _mm256_storeu_ps(v, s);
    return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
}
#endif

static float loop_scalar(int64_t iters)
{
    float a = peak_a, b = peak_b, c[ACC];
    for (int k = 0; k < ACC; k++)
        c[k] = 0.1f * (float)k;
    for (int64_t i = 0; i < iters; i++)
        for (int k = 0; k < ACC; k++)
            c[k] = c[k] * a + b;
    float s = 0;
    for (int k = 0; k < ACC; k++)
        s += c[k];
    return s;
}

typedef enum { ISA_SCALAR, ISA_AVX2, ISA_AVX512 } isa_kind;

static isa_kind pick_isa(void)
{
#ifdef KN_PEAK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return ISA_AVX2;
#endif
    return ISA_SCALAR;
}

const char *kn_peak_isa(void)
{
    static const char *names[] = {"scalar", "avx2", "avx512f"};
    return names[pick_isa()];
}

static float run_loop(isa_kind isa, int64_t iters)
{
#ifdef KN_PEAK_X86
    if (isa == ISA_AVX512)
        return loop_avx512(iters);
    if (isa == ISA_AVX2)
        return loop_avx2(iters);
#endif
    (void)isa;
    return loop_scalar(iters);
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* GFLOP/s of one trial: every thread runs blocks of the loop until `seconds` after the start
 * and divides its FLOPs by the CPU time it actually ran; the threads' rates are summed. On a
 * shared machine a wall-clock rate would measure the other tenants as much as the cores:
 * this is the throughput of `threads` threads each owning a core. With more threads than
 * cores, the sum is scaled down to the cores there are. */
static double trial(isa_kind isa, int threads, double seconds)
{
    const int64_t block = 4096;
    double lanes = isa == ISA_AVX512 ? 16 : isa == ISA_AVX2 ? 8 : 1;
    double rate = 0, deadline = now_s() + seconds;
#pragma omp parallel num_threads(threads) reduction(+ : rate)
    {
        float s = 0;
        int64_t n = 0;
        double c0 = cpu_s();
        do {
            s += run_loop(isa, block);
            n += block;
        } while (now_s() < deadline);
        double c = cpu_s() - c0;
        rate += (double)n * ACC * lanes * 2.0 / (c > 1e-6 ? c : 1e-6);
        if (s == -1.0f) /* never true; keeps the results alive */
            peak_sink = s;
    }
    int procs = omp_get_num_procs();
    return rate * (threads > procs ? (double)procs / threads : 1.0) * 1e-9;
}

double kn_peak_fma_gflops(int threads, double seconds)
{
    if (threads < 0)
        return 0;
    if (threads == 0)
        threads = omp_get_max_threads();
    if (!(seconds > 0))
        seconds = 0.2;
    isa_kind isa = pick_isa();
    const int trials = 20; /* short ones: on a shared machine the best finds a quiet window */
    trial(isa, threads, 0.1 * seconds / trials); /* wakes the threads, lets the clock ramp up */
    double best = 0;
    for (int k = 0; k < trials; k++) {
        double g = trial(isa, threads, seconds / trials);
        best = g > best ? g : best;
    }
    return best;
}
