#!/usr/bin/env bash
# run_peers.sh — kiln against PyTorch on the CPU, same models, same machine, same run.
#
# For each model (mlp, model_a, model_b) and case (training step at batch 64, inference at
# batch 1, inference at batch 256) it runs `kiln bench --json` and bench/torch_models.py
# INTERLEAVED (the order alternating per repetition, so slow drifts of a shared machine hit
# both alike), REPS times each, takes the median of the per-process medians, and writes a
# table with kiln/PyTorch ratios, kiln's GFLOP/s and fraction of its measured FMA peak, and
# the peak RSS of both, to bench/results/<date>-cpu-peers.md (plus the raw JSON lines).
# Not part of `make test` or CI: it needs PyTorch and minutes of quiet machine.
#
# Environment (all optional):
#   THREADS=2            CPU threads for both frameworks
#   REPS=5               repetitions per framework and case
#   MODELS="mlp model_a model_b"
#   CASES="train:64 infer:1 infer:256"
#   MIN_TIME=1           seconds of timed runs per process (auto step count, both frameworks)
#   STEPS=               a fixed number of timed runs instead of MIN_TIME
#   WARMUP=3             untimed runs first
#   VENV=bench/.venv     Python venv with torch + numpy; created with `pip install torch numpy`
#                        when missing (VENV=/path/to/existing/venv reuses one)
#   BUILD=build          kiln build directory; `make BUILD=$BUILD` runs first unless NO_BUILD=1
#   OUT=bench/results/$(date +%F)-cpu-peers.md
#   RAW=FILE             no measurements: write the report from FILE's JSON lines (a failed
#                        report leaves them in /tmp/kiln_peers.*; the .md holds them too)
#   QUIET=0.15           before each measurement wait (up to QUIET_MAX=600 s) until other
#                        processes (niced ones too) used less than this fraction of the CPUs
#                        over half a second; QUIET=0 does not wait. The fraction seen is
#                        recorded with each measurement.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

THREADS=${THREADS:-2}
REPS=${REPS:-5}
MODELS=${MODELS:-"mlp model_a model_b"}
CASES=${CASES:-"train:64 infer:1 infer:256"}
MIN_TIME=${MIN_TIME:-1}
STEPS=${STEPS:-}
WARMUP=${WARMUP:-3}
VENV=${VENV:-bench/.venv}
BUILD=${BUILD:-build}
OUT=${OUT:-bench/results/$(date +%F)-cpu-peers.md}
QUIET=${QUIET:-0.15}
QUIET_MAX=${QUIET_MAX:-600}

die() { echo "run_peers.sh: $*" >&2; exit 1; }
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "THREADS must be a positive integer, got '$THREADS'"
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer, got '$REPS'"

# ---- PyTorch ----
PY="$VENV/bin/python"
if ! { [ -x "$PY" ] && "$PY" -c 'import torch, numpy' 2>/dev/null; }; then
    echo "run_peers.sh: setting up $VENV (pip install torch numpy)" >&2
    [ -x "$PY" ] || python3 -m venv "$VENV" || die "cannot create the venv $VENV (apt-get install python3-venv?)"
    "$VENV/bin/pip" install --quiet torch numpy || die "pip install torch numpy failed in $VENV"
fi

# ---- kiln ----
if [ -z "${NO_BUILD:-}" ]; then
    make BUILD="$BUILD" >/dev/null || die "building kiln failed (make BUILD=$BUILD)"
fi
KILN="$BUILD/kiln"
[ -x "$KILN" ] || die "$KILN not found (build with make BUILD=$BUILD, or unset NO_BUILD)"

# what was measured: the checkout (untracked files count: a new kernel file is a change) and the binary
GIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain 2>/dev/null)" ] || GIT="$GIT + uncommitted changes"
KILN_BUILT=$(date -u -r "$KILN" +%FT%TZ)
REPORT_ONLY=${RAW:+1}
if [ -n "$REPORT_ONLY" ]; then
    [ -s "$RAW" ] || die "RAW=$RAW: no such file, or empty"
else
    RAW=$(mktemp /tmp/kiln_peers.XXXXXX)
fi
steps_kiln=() steps_torch=()
if [ -n "$STEPS" ]; then
    steps_kiln=(--steps "$STEPS") steps_torch=(--steps "$STEPS")
else
    steps_kiln=(--min-time "$MIN_TIME") steps_torch=(--min-time "$MIN_TIME")
fi

run_kiln() {
    wait_quiet
    "$KILN" bench --model "$1" --"$2" --batch "$3" --threads "$THREADS" --warmup "$WARMUP" "${steps_kiln[@]}" --json \
        | sed 's/^{/{"framework":"kiln","rep":'"$4"',"busy_before":'"$BUSY"',/' >>"$RAW"
}
run_torch() {
    wait_quiet
    OMP_NUM_THREADS="$THREADS" "$PY" bench/torch_models.py --model "$1" --mode "$2" --batch "$3" --threads "$THREADS" \
        --warmup "$WARMUP" "${steps_torch[@]}" | sed 's/^{/{"rep": '"$4"', "busy_before": '"$BUSY"', /' >>"$RAW"
}

measure_all() {
    for model in $MODELS; do
        for c in $CASES; do
            mode=${c%%:*} batch=${c##*:}
            for rep in $(seq 1 "$REPS"); do
                echo "run_peers.sh: $model $mode batch $batch, repetition $rep/$REPS" >&2
                if ((rep % 2)); then
                    run_kiln "$model" "$mode" "$batch" "$rep"
                    run_torch "$model" "$mode" "$batch" "$rep"
                else
                    run_torch "$model" "$mode" "$batch" "$rep"
                    run_kiln "$model" "$mode" "$batch" "$rep"
                fi
            done
        done
    done
}

if [ -n "$REPORT_ONLY" ]; then
    echo "run_peers.sh: no new measurements; reporting on $RAW" >&2
    START=$(date -u -r "$RAW" +%FT%TZ) LOAD_BEFORE="not recorded" LOAD_AFTER="not recorded"
else
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    START=$(date -u +%FT%TZ)
    measure_all
    LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
fi

# ---- report ----
mkdir -p "$(dirname "$OUT")"
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
export RAW OUT THREADS REPS MIN_TIME STEPS WARMUP START MODELS BUILD QUIET QUIET_MAX LOAD_BEFORE LOAD_AFTER CPU GIT KILN_BUILT
export KILN_VERSION_STR="$("$KILN" version)" CC_VERSION="$(cc --version | head -1)"
export OPENBLAS="$(dpkg-query -W -f '${Package} ${Version}' libopenblas0-openmp 2>/dev/null || echo unknown)"
export TORCH_INFO="$("$PY" bench/torch_models.py --versions)"
export NPROC="$(nproc)" KERNEL="$(uname -sr)" MEM="$(free -g | awk '/Mem:/ {print $2 " GiB"}')"
"$PY" - <<'EOF' || die "writing the report failed; the measurements are in $RAW (report again with RAW=$RAW)"
import json, os, statistics as st

E = os.environ
rows = [json.loads(l) for l in open(E["RAW"]) if l.strip()]
tinfo = json.loads(E["TORCH_INFO"])

def med(xs):
    return st.median(xs) if xs else float("nan")

groups = {}
for r in rows:
    groups.setdefault((r["model"].split("/")[-1].removesuffix(".kiln"), r["mode"], r["batch"]), {}).setdefault(
        r["framework"], []).append(r)

table = ["| model | case | kiln | PyTorch | kiln / PyTorch | best-of-reps ratio | kiln GFLOP/s | kiln % of FMA peak | kiln peak RSS | PyTorch peak RSS |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
order = {m: i for i, m in enumerate(E.get("MODELS", "mlp model_a model_b").split())}
for (model, mode, batch), fw in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1] != "train", kv[0][2])):
    k, t = fw.get("kiln", []), fw.get("pytorch", [])
    kms, tms = med([r["step_ms"] for r in k]), med([r["step_ms"] for r in t])
    case = f"{mode} batch {batch}"
    kbest = min([r["step_ms"] for r in k], default=float("nan"))
    tbest = min([r["step_ms"] for r in t], default=float("nan"))
    if batch == 1:
        kv, tv = f"{kms:.3f} ms", f"{tms:.3f} ms"
        ratio = f"**{kms / tms:.2f}×** latency"
        best = f"{kbest / tbest:.2f}× latency"
    else:
        kv, tv = f"{batch / kms * 1e3:,.0f} img/s", f"{batch / tms * 1e3:,.0f} img/s"
        ratio = f"**{tms / kms:.2f}×** img/s"
        best = f"{tbest / kbest:.2f}× img/s"
    gf = med([r["gflops"] for r in k])
    frac = med([r["peak_fraction"] for r in k])
    krss = med([r["peak_rss_kb"] for r in k]) / 1024
    trss = med([r["peak_rss_kb"] for r in t]) / 1024
    table.append(f"| {model} | {case} | {kv} | {tv} | {ratio} | {best} | {gf:.1f} | {100 * frac:.1f}% | {krss:.0f} MB | {trss:.0f} MB |")

peaks = [r["peak_gflops"] for r in rows if r["framework"] == "kiln"]
spread = ["| model | case | framework | step ms per repetition (median of runs) | runs per repetition | CPUs busy before |",
          "|---|---|---|---|---|---|"]
for (model, mode, batch), fw in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1] != "train", kv[0][2])):
    for name in ("kiln", "pytorch"):
        rs = sorted(fw.get(name, []), key=lambda r: r["rep"])
        ms = ", ".join("%.3f" % r["step_ms"] for r in rs)
        n = ", ".join(str(r["steps"]) for r in rs)
        busy = ", ".join("%.2f" % r.get("busy_before", float("nan")) for r in rs)
        spread.append(f"| {model} | {mode} batch {batch} | {name} | {ms} | {n} | {busy} |")

flops = {}
for r in rows:
    if r["framework"] == "kiln":
        flops[(r["model"], r["mode"], r["batch"])] = (r["flops_per_step"], r["forward_flops_per_example"])
fl = ["| model | case | FLOPs per step (kn_plan_flops) | forward FLOPs × batch | ratio |", "|---|---|---:|---:|---:|"]
for (model, mode, batch), (f, fwd) in sorted(flops.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1] != "train", kv[0][2])):
    fl.append(f"| {model} | {mode} batch {batch} | {f:.4g} | {fwd * batch:.4g} | {f / (fwd * batch):.3f} |")

steps = f"--steps {E['STEPS']}" if E.get("STEPS") else f"auto: ≥ 10 runs and ≥ {E['MIN_TIME']} s of timed runs"
cfg = [l.strip() for l in tinfo["config"] if any(s in l for s in ("GCC", "Math Kernel", "MKL-DNN", "OpenMP", "CPU capability"))]
out = f"""# kiln vs PyTorch on the CPU: {E['START'][:10]}

Generated by `bench/run_peers.sh` (THREADS={E['THREADS']} REPS={E['REPS']}) at {E['START']}.

## Machine and versions

- CPU: {E['CPU']}, {E['NPROC']} cores visible, {E['MEM']} memory; {E['KERNEL']}
- load average (1, 5, 15 min) before: {E['LOAD_BEFORE']}, after: {E['LOAD_AFTER']} (a shared VM: other jobs ran too)
- kiln: {E['KILN_VERSION_STR']}, checkout at commit {E['GIT']} when the run started, binary built {E['KILN_BUILT']}; {E['CC_VERSION']}, `-O3 -march=native`; {E['OPENBLAS']}
- PyTorch {tinfo['torch']} (PyPI wheel), NumPy {tinfo['numpy']}, Python {tinfo['python']}; {'; '.join(cfg)}
- kiln's FMA peak, measured by `kiln bench` (src/core/peak.c, {E['THREADS']} threads): median {med(peaks):.1f} GFLOP/s
  over the runs (min {min(peaks):.1f}, max {max(peaks):.1f})

## Method

Each cell is the median over {E['REPS']} processes per framework, run interleaved (kiln first on odd
repetitions, PyTorch first on even ones); each process reports the median of its timed runs
({steps}; {E['WARMUP']} warm-up runs first). Synthetic inputs N(0,1) and uniform labels from a
fixed seed. **train** = one full training step: forward, softmax cross-entropy, backward, Adam
(lr 1e-3) update (kiln: one compiled plan; PyTorch: `zero_grad`, forward, `CrossEntropyLoss`,
`backward`, `Adam.step`, eager). **infer** = forward only (kiln: inference plan; PyTorch:
`model.eval()` under `torch.inference_mode()`). Throughput ratios are kiln images/s ÷ PyTorch
images/s (> 1: kiln faster); for batch 1 the ratio is kiln latency ÷ PyTorch latency
(< 1: kiln faster); "best-of-reps" uses each framework's fastest repetition instead of the
median one. Before each process the script waited (up to {E['QUIET_MAX']} s) until other
processes, niced ones included, used less than {E['QUIET']} of the CPUs (0 = no waiting; the
fraction seen is in the per-repetition table as "CPUs busy before"). GFLOP/s = FLOPs of one step from kiln's op table ÷ median step time;
"% of FMA peak" divides by the peak above. Peak RSS: getrusage in each process (kiln: the
`kiln bench` process; PyTorch: the Python process, importing torch included).

Commands (per repetition and case):

```sh
{E.get('BUILD', 'build')}/kiln bench --model MODEL --train|--infer --batch B --threads {E['THREADS']} --warmup {E['WARMUP']} {'--steps ' + E['STEPS'] if E.get('STEPS') else '--min-time ' + E['MIN_TIME']} --json
OMP_NUM_THREADS={E['THREADS']} python bench/torch_models.py --model MODEL --mode train|infer --batch B --threads {E['THREADS']} --warmup {E['WARMUP']} {'--steps ' + E['STEPS'] if E.get('STEPS') else '--min-time ' + E['MIN_TIME']}
```

## Results

{chr(10).join(table)}

Per repetition (spread; the machine is shared, so look at the minimum too):

{chr(10).join(spread)}

FLOPs per step as kiln counts them (a training step is ≈ 3× the forward pass: the backward
pass costs ≈ 2× the forward, minus the input gradient of the first layer, which nobody needs;
plus the Adam update, 13 FLOPs per parameter):

{chr(10).join(fl)}

## Raw JSON lines

<details><summary>{len(rows)} measurements</summary>

```
{chr(10).join(json.dumps(r) for r in rows)}
```

</details>
"""
open(E["OUT"], "w").write(out)
print("\n".join(table))
print(f"\nwritten: {E['OUT']}")
EOF
[ -n "$REPORT_ONLY" ] || rm -f "$RAW"
