#!/usr/bin/env bash
# gemm_vs_libs.sh — issue 5's kernel point: "GEMM on every shape the models use at ≥ 85% of the
# best of OpenBLAS, BLIS and oneDNN on that shape". Builds bench/kernels/gemm_lab.c once per
# library (OpenBLAS, BLIS, oneDNN, each called the usual way: the library threads the call, and
# LAB_SPLIT=1: the caller splits C over the threads) and once on kiln's dispatcher kn__sgemm,
# and bench/kernels/op_lab.c for kiln's convolution kernels (which run Winograd or an implicit
# GEMM, not an im2col GEMM: they are compared with the libraries' time for the im2col GEMM of
# the same convolution, im2col itself not counted — a bound in the libraries' favour).
# Runs REPS interleaved repetitions at THREADS threads and prints, per shape, the median
# GFLOP/s of each and kiln ÷ best, and the same ratio from each side's fastest repetition. Needs libblis-dev libblis-openmp-dev libdnnl-dev.
# Usage: bench/gemm_vs_libs.sh [BUILD_DIR]   (env THREADS=2 REPS=3 OUT=file.md)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
[ -f "$B/libkiln.so" ] || make BUILD="$B" >/dev/null
cc=(gcc -O2 -march=native -fopenmp)
"${cc[@]}" bench/kernels/gemm_lab.c -I/usr/include/x86_64-linux-gnu/openblas-openmp -lopenblas -o "$T/openblas"
"${cc[@]}" -DLAB_BLIS bench/kernels/gemm_lab.c -I/usr/include/x86_64-linux-gnu/blis-openmp \
    /usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so -o "$T/blis"
"${cc[@]}" -DLAB_DNNL bench/kernels/gemm_lab.c -ldnnl -o "$T/onednn"
# against the shared library: it names its own dependencies (oneDNN, OpenBLAS, CUDA runtime, ...)
kiln_so=(-L"$B" -lkiln -Wl,-rpath,"$(cd "$B" && pwd)" -lm)
"${cc[@]}" -DLAB_KILN_SGEMM -I src bench/kernels/gemm_lab.c "${kiln_so[@]}" -o "$T/kiln"
"${cc[@]}" -I include -I src bench/kernels/op_lab.c "${kiln_so[@]}" -o "$T/op_lab"
export OMP_NUM_THREADS=$THREADS BLIS_NUM_THREADS=$THREADS
for r in $(seq "$REPS"); do
    for lib in openblas blis onednn; do
        LAB_SPLIT=0 "$T/$lib" > "$T/$lib.lib.$r"
        LAB_SPLIT=1 "$T/$lib" > "$T/$lib.split.$r"
    done
    "$T/kiln" > "$T/kiln.$r"
    # convolutions of model B (batch 64) and model A (batch 64): N C H W O K PAD
    "$T/op_lab" conv 64 1 28 28 32 3 1 --threads "$THREADS" --nocheck > "$T/conv.Bc1.$r"
    "$T/op_lab" conv 64 32 14 14 64 3 1 --threads "$THREADS" --nocheck > "$T/conv.Bc2.$r"
    "$T/op_lab" conv 64 1 28 28 32 3 0 --threads "$THREADS" --nocheck > "$T/conv.Ac1.$r"
done
python3 - "$T" "$REPS" "$THREADS" <<'PY'
import glob, re, statistics, sys
T, reps, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def lab(path):
    rows = {}
    for line in open(path):
        m = re.match(r"(.{26}) +(\d) +(\d) +(\d+) +(\d+) +(\d+) +([\d.]+) +([\d.]+)", line)
        if m:
            rows[m.group(1).strip()] = (float(m.group(7)), float(m.group(8)), int(m.group(4)), int(m.group(5)), int(m.group(6)))
    return rows
def med(files, pick=statistics.median):
    runs = [lab(f) for f in files]
    out = {}
    for k in runs[0]:
        vals = [r[k] for r in runs if k in r]
        out[k] = (pick(v[0] for v in vals), pick(v[1] for v in vals)) + vals[0][2:]
    return out
libs, libs_best = {}, {}
for lib in ("openblas", "blis", "onednn"):
    for mode in ("lib", "split"):
        files = [f"{T}/{lib}.{mode}.{r}" for r in range(1, reps + 1)]
        name = f"{lib} ({'threaded' if mode == 'lib' else 'split'})"
        libs[name], libs_best[name] = med(files), med(files, max)
kfiles = [f"{T}/kiln.{r}" for r in range(1, reps + 1)]
kiln, kiln_best = med(kfiles), med(kfiles, max)
# kiln's convolution kernels: op time (us) → GFLOP/s of the im2col GEMM with the same FLOPs
conv_map = {"Bc1": {"conv2d": "B conv1 fwd, batched", "conv2d_bwd_weight": "B conv1 dW, batched"},
            "Bc2": {"conv2d": "B conv2 fwd, batched", "conv2d_bwd_data": "B conv2 dcol, batched",
                    "conv2d_bwd_weight": "B conv2 dW, batched"},
            "Ac1": {"conv2d": "A conv1 fwd, batched", "conv2d_bwd_weight": "A conv1 dW, batched"}}
conv_us = {}
for tag, ops in conv_map.items():
    for r in range(1, reps + 1):
        for line in open(f"{T}/conv.{tag}.{r}"):
            m = re.match(r"time (\S+) +\S+ +median +([\d.]+) us", line)
            if m and m.group(1) in ops:
                conv_us.setdefault(ops[m.group(1)], []).append(float(m.group(2)))
print(f"| shape | M×N×K | kiln runs | best library | best GFLOP/s | kiln GFLOP/s | kiln ÷ best | best-of-reps ratio |")
print("|---|---|---|---|---:|---:|---:|---:|")
worst = worst_best = None
for shape, (us, gf, M, N, K) in kiln.items():
    if shape.startswith("square"):
        continue
    best_name, best = max(((n, t[shape][1]) for n, t in libs.items() if shape in t), key=lambda x: x[1])
    top = max(t[shape][1] for t in libs_best.values() if shape in t)
    flops = 2.0 * M * N * K
    if shape in conv_us:
        kgf = flops / statistics.median(conv_us[shape]) * 1e-3
        ktop = flops / min(conv_us[shape]) * 1e-3
        how = "conv kernel (Winograd / implicit GEMM)"
    elif "conv" in shape:
        continue  # per-image im2col shapes: kiln runs the batched convolution instead
    else:
        kgf, ktop, how = gf, kiln_best[shape][1], "kn__sgemm"
    ratio, ratio_best = kgf / best, ktop / top
    worst = ratio if worst is None or ratio < worst else worst
    worst_best = ratio_best if worst_best is None or ratio_best < worst_best else worst_best
    print(f"| {shape} | {M}×{N}×{K} | {how} | {best_name} | {best:.1f} | {kgf:.1f} | **{ratio:.2f}** | {ratio_best:.2f} |")
print(f"\n{threads} threads, median of {reps} interleaved repetitions; worst kiln ÷ best: {worst:.2f} "
      f"(best-of-reps: each side's fastest repetition; worst {worst_best:.2f})")
PY
