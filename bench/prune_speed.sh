#!/bin/bash
# prune_speed.sh — CPU inference speed of an unpruned vs a pruned checkpoint, measured with
# `kiln bench --infer` in interleaved runs (A B A B ...), so a change in the machine's load hits
# both alike. Before each run it waits (up to QUIET_MAX seconds) until other processes use less
# than QUIET of the CPUs (the busy_fraction of bench/run_peers.sh; QUIET=0: no waiting). Prints
# every run (median and fastest step, CPUs busy before) and, per batch size, the median over the
# runs of each model's median and fastest step, and the speed-ups.
# usage: bench/prune_speed.sh BASE.safetensors PRUNED.safetensors [RUNS=3] [THREADS=2] [BATCHES="64 1"]
set -eu
source "$(dirname "$0")/lib.sh"
KILN=${KILN:-build/kiln}
QUIET=${QUIET:-0.3}
QUIET_MAX=${QUIET_MAX:-300}
A=$1
B=$2
RUNS=${3:-3}
THREADS=${4:-2}
BATCHES=${5:-64 1}



median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

for batch in $BATCHES; do
    ta="" tb="" ma="" mb=""
    for r in $(seq "$RUNS"); do
        for which in A B; do
            if [ $which = A ]; then m=$A; else m=$B; fi
            wait_quiet
            json=$($KILN bench --model "$m" --infer --batch "$batch" --threads "$THREADS" --min-time 2 --peak 0 --json)
            ms=$(echo "$json" | sed 's/.*"step_ms":\([0-9.e+-]*\).*/\1/')
            min=$(echo "$json" | sed 's/.*"min_ms":\([0-9.e+-]*\).*/\1/')
            echo "batch $batch run $r $which: median $ms ms, fastest $min ms, CPUs busy before $BUSY ($m)"
            if [ $which = A ]; then ta="$ta $ms" ma="$ma $min"; else tb="$tb $ms" mb="$mb $min"; fi
        done
    done
    a=$(echo "$ta" | median) b=$(echo "$tb" | median) fa=$(echo "$ma" | median) fb=$(echo "$mb" | median)
    awk -v n="$batch" -v r="$RUNS" -v a="$a" -v b="$b" -v fa="$fa" -v fb="$fb" 'BEGIN {
        printf "batch %s, median of %d runs: unpruned %.3f ms, pruned %.3f ms: %.2fx faster", n, r, a, b, a / b
        printf " (fastest steps: %.3f vs %.3f ms, %.2fx)\n", fa, fb, fa / fb }'
done
