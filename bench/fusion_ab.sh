#!/bin/bash
# fusion_ab.sh — A/B of the fusion pass on model B: KILN_PASSES=all against all but fuse
# (dce,cse,fold,inplace,memplan), interleaved (the order alternates per repetition).
#   wall: `kiln bench ... --threads 2 --json` (median step time of each process), training
#         batch 64 and inference batch 1;
#   cpu:  user+sys CPU seconds of a fixed number of steps at --threads 1, minus the same
#         command with --steps 1 (start-up and compile) — less sensitive to a loaded machine
#         than wall time.
# Usage: bench/fusion_ab.sh [KILN_BINARY] [REPS]   (defaults: build/kiln, 5); appends to
# fusion_wall.jsonl and fusion_cpu.txt in the current directory.
K=${1:-build/kiln}
REPS=${2:-5}
NOFUSE=dce,cse,fold,inplace,memplan
for r in $(seq 1 "$REPS"); do
    if [ $((r % 2)) -eq 1 ]; then order="all $NOFUSE"; else order="$NOFUSE all"; fi
    for mode in "--train --batch 64" "--infer --batch 1"; do
        for p in $order; do
            j=$(KILN_PASSES=$p "$K" bench --model model_b $mode --threads 2 --warmup 3 --min-time 1 --json 2>/dev/null | tail -1)
            echo "{\"rep\":$r,\"passes\":\"$p\",\"load\":$(cut -d' ' -f1 /proc/loadavg),\"r\":$j}" >> fusion_wall.jsonl
        done
    done
    for mode in "--train --batch 64 --steps 150" "--infer --batch 1 --steps 40000" "--infer --batch 64 --steps 400"; do
        for p in $order; do
            for short in 1 0; do
                m="$mode"
                [ $short = 1 ] && m=$(echo "$mode" | sed -E 's/--steps [0-9]+/--steps 1/')
                t=$( { /usr/bin/time -f "%U %S" env KILN_PASSES=$p "$K" bench --model model_b $m --threads 1 --warmup 1 \
                       --min-time 0 --json >/dev/null; } 2>&1 | tail -1)
                echo "$r $p $short $(echo "$mode" | tr ' ' '_') $t" >> fusion_cpu.txt
            done
        done
    done
done
