/* kiln/bench.h — timing a model's training step or inference, and the machine's FMA peak.
 *
 * kn_bench builds a model the way kn_train does (one graph: model, softmax cross-entropy,
 * backward, optimizer updates, compiled once into a training plan) or as an inference plan,
 * feeds it synthetic inputs and labels from a fixed seed, runs it a few times to warm up,
 * then times each run with a monotonic clock and reports the median, min and max, images/s
 * and the achieved GFLOP/s (FLOPs of one run from the op table, kn_plan_flops). It measures
 * the compiled step only: no data loading, no metrics.
 *
 * kn_peak_fma_gflops measures what the cores can do: a register-only loop of independent
 * fused multiply-adds on every thread (AVX-512 or AVX2, chosen at run time), the yardstick
 * for "fraction of peak". Not here: the CLI (tools/kiln/cmd_bench.c) and the comparison with
 * PyTorch (bench/run_peers.sh). */
#ifndef KILN_BENCH_H
#define KILN_BENCH_H

#include "nn.h"
#include "plan.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kn_bench_mode {
    KN_BENCH_TRAIN = 0, /* forward + loss + backward + optimizer updates, training plan */
    KN_BENCH_INFER,     /* forward only, inference plan */
} kn_bench_mode;

typedef struct kn_bench_opts {
    kn_bench_mode mode;
    int64_t batch;            /* ≥ 1 */
    int threads;              /* 0 = all cores (OpenMP default); > 0 also calls omp_set_num_threads, like kn_train */
    int steps;                /* timed runs; 0 = auto: at least 10 and at least min_seconds */
    int warmup;               /* untimed runs first (≥ 0) */
    double min_seconds;       /* for steps = 0 (default 1.0) */
    uint64_t seed;            /* parameter init and synthetic data */
    const kn_recipe *recipe;  /* optimizer for KN_BENCH_TRAIN; NULL = the model's own recipe */
    const char *checkpoint;   /* load model weights from this kiln checkpoint; NULL = fresh init */
    FILE *profile;            /* non-NULL: time every kernel of the timed runs and write the
                                 per-op profile here (kn_plan_write_profile, 15 slowest steps) */
    kn_precision precision;   /* conv/dense compute precision as in kn_train (fp16 training also
                                 scales the loss and unscales the gradients like kn_train) */
    kn_backend_kind backend;  /* KN_BACKEND_CPU (default), KN_BACKEND_CUDA or KN_BACKEND_AUTO */
    int device;               /* CUDA ordinal */
    bool deterministic;       /* CUDA: kn_plan_opts.deterministic */
} kn_bench_opts;

/* train mode, batch 64, all threads, auto steps (≥ 10 runs, ≥ 1 s), warm-up 3, seed 42. */
void kn_bench_opts_defaults(kn_bench_opts *o);

#define KN_BENCH_MAX_STEPS 100000

typedef struct kn_bench_result {
    int steps;                /* timed runs */
    double median_ms, min_ms, max_ms, mean_ms;
    double images_per_s;      /* batch / median */
    double flops_per_step;    /* kn_plan_flops of the plan */
    double gflops;            /* flops_per_step / median */
    double model_flops;       /* forward FLOPs per example (kn_model_stats) */
    int64_t params;           /* trainable parameter elements */
    double compile_ms;        /* building the graph and compiling the plan */
    size_t arena_bytes;       /* the plan's arena */
    int plan_steps;           /* kernels in the plan */
    int fallbacks;            /* of which run reference kernels on copies (CUDA: on the CPU) */
    kn_backend_kind backend;  /* where it ran (AUTO resolved) */
    int device;               /* CUDA ordinal, -1 off CUDA */
    bool cuda_graph;          /* CUDA: the timed runs replayed one captured CUDA graph */
    char device_name[128];    /* "NVIDIA H100 80GB HBM3", or "cpu" */
} kn_bench_result;

/* Benchmarks m as described by o. Errors (in err, with a message): KN_ERR_ARG for a NULL
 * model/options/result, batch < 1 or over 2^24, steps < 0 or over KN_BENCH_MAX_STEPS,
 * warmup < 0, threads < 0, an unknown optimizer; the status of building the graph, compiling
 * or running the plan; those of kn_checkpoint_load for o->checkpoint. res is zeroed on error. */
kn_status kn_bench(const kn_model *m, const kn_bench_opts *o, kn_bench_result *res, kn_error *err);

/* Peak FP32 FMA throughput in GFLOP/s (2 FLOPs per lane per FMA) with `threads` OpenMP
 * threads (0 = all cores), the best of 20 short trials lasting `seconds` in all (≤ 0: 0.2 s).
 * Each thread's rate is its FLOPs over the CPU time it ran (so other processes on a shared
 * machine do not lower it); rates are summed, scaled to the number of cores when threads
 * exceed it. Returns 0 only when threads < 0. */
double kn_peak_fma_gflops(int threads, double seconds);
/* The instruction set kn_peak_fma_gflops uses on this machine: "avx512f", "avx2" or "scalar". */
const char *kn_peak_isa(void);

#ifdef __cplusplus
}
#endif
#endif
