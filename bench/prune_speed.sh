#!/bin/sh
# prune_speed.sh — CPU inference speed of an unpruned vs a pruned checkpoint, measured with
# `kiln bench --infer` in interleaved runs (A B A B ...), so a change in the machine's load hits
# both alike. Prints every run's median step time and, per batch size, the median over the
# runs of each model and the speed-up. The 2-core VMs are shared: read the spread, rerun when
# the runs disagree.
# usage: bench/prune_speed.sh BASE.safetensors PRUNED.safetensors [RUNS=3] [THREADS=2] [BATCHES="64 1"]
set -eu
KILN=${KILN:-build/kiln}
A=$1
B=$2
RUNS=${3:-3}
THREADS=${4:-2}
BATCHES=${5:-64 1}
for batch in $BATCHES; do
    ta="" tb=""
    for r in $(seq "$RUNS"); do
        for which in A B; do
            if [ $which = A ]; then m=$A; else m=$B; fi
            ms=$($KILN bench --model "$m" --infer --batch "$batch" --threads "$THREADS" --min-time 2 --peak 0 --json |
                 sed 's/.*"step_ms":\([0-9.e+-]*\).*/\1/')
            echo "batch $batch run $r $which $ms ms ($m)"
            if [ $which = A ]; then ta="$ta $ms"; else tb="$tb $ms"; fi
        done
    done
    echo "$ta" "|" "$tb" | awk -v batch="$batch" '
        function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                                       return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
        { na = nb = 0; side = 0
          for (i = 1; i <= NF; i++) { if ($i == "|") { side = 1; continue } if (side) b[++nb] = $i; else a[++na] = $i }
          ma = med(a, na); mb = med(b, nb)
          printf "batch %s: unpruned %.3f ms, pruned %.3f ms (medians of %d runs): %.2fx faster\n", batch, ma, mb, na, ma / mb }'
done
