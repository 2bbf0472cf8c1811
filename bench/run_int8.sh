#!/bin/bash
# run_int8.sh — int8 post-training quantisation of models A and B: accuracy, file size and CPU
# inference speed against kiln's FP32, as reported in bench/results/*-cpu-int8.md.
#
#   bench/run_int8.sh [KILN] [CKPT_DIR] [OUT_DIR]
#     KILN      kiln binary (default build/kiln)
#     CKPT_DIR  holds model_a/ and model_b/ FP32 checkpoints (default /work/ckpt)
#     OUT_DIR   where the quantised checkpoints go (default /tmp/kiln-int8)
#   REPS=3 THREADS=2 QUIET=0.3 QUIET_MAX=120 PARTS="acc wall cpu" bench/run_int8.sh
#   (PARTS: which sections to run; wall and cpu need the quantised checkpoints acc writes)
#
# Speed: REPS rounds, each running `kiln bench --infer --batch 64` on FP32 A, int8 A, FP32 B,
# int8 B in turn (interleaved); before each process the script waits (up to QUIET_MAX s)
# until other processes use less than QUIET of the CPUs. Each cell is the median over the
# rounds of each process's median step time. On a shared machine wall-clock numbers swing
# with the load, so it also reports CPU time per step (perf stat task-clock of a 300-step
# minus a 100-step run, 1 thread), which time slicing does not inflate.
set -u
source "$(dirname "$0")/lib.sh"
KILN=${1:-build/kiln}
CKPT=${2:-/work/ckpt}
OUT=${3:-/tmp/kiln-int8}
REPS=${REPS:-3}
THREADS=${THREADS:-2}
QUIET=${QUIET:-0.3}
QUIET_MAX=${QUIET_MAX:-120}
PARTS=${PARTS:-acc wall cpu}
mkdir -p "$OUT"


echo "# $(date -u +%FT%TZ) $($KILN version) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
[[ " $PARTS " == *" acc "* ]] && echo "## accuracy and size" &&
for m in model_a model_b; do
    $KILN quantize --model "$CKPT/$m" --out "$OUT/$m" --threads "$THREADS" >/dev/null || exit 1
    $KILN quantize --model "$CKPT/$m" --out "$OUT/$m-pct" --calib-method percentile --threads "$THREADS" >/dev/null || exit 1
    for f in "$CKPT/$m/model.safetensors" "$OUT/$m/model.safetensors" "$OUT/$m-pct/model.safetensors"; do
        echo "$($KILN eval --model "$f" --json --threads "$THREADS") bytes=$(stat -c %s "$f")"
    done
done
[[ " $PARTS " == *" wall "* ]] &&
echo "## wall clock: kiln bench --infer --batch 64 --threads $THREADS (rep model file busy_before step_ms_median min_ms images_per_s)" &&
for r in $(seq "$REPS"); do
    for m in model_a model_b; do
        for f in "$CKPT/$m/model.safetensors" "$OUT/$m/model.safetensors"; do
            wait_quiet
            busy=$BUSY
            $KILN bench --model "$f" --infer --batch 64 --threads "$THREADS" --peak 0 --json |
                python3 -c "import sys, json; d = json.load(sys.stdin); print('$r $m $f $busy', d['step_ms'], d['min_ms'], round(d['images_per_s'], 1))"
        done
    done
done
if [[ " $PARTS " == *" cpu "* ]] && command -v perf >/dev/null; then
    echo "## CPU time per step, 1 thread (perf stat task-clock: 300-step run minus 100-step run, / 200)"
    cpu() {
        perf stat -x, -e task-clock "$KILN" bench --model "$1" --infer --batch 64 --threads 1 --peak 0 --steps "$2" \
            --warmup 3 2>&1 >/dev/null | grep task-clock | cut -d, -f1
    }
    for r in $(seq "$REPS"); do
        for m in model_a model_b; do
            for f in "$CKPT/$m/model.safetensors" "$OUT/$m/model.safetensors"; do
                a=$(cpu "$f" 100)
                b=$(cpu "$f" 300)
                python3 -c "print('$r $m $f', '%.3f ms' % (($b - $a) / 200))"
            done
        done
    done
fi
