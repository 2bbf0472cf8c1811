#!/usr/bin/env bash
# fuzz/run.sh — builds kiln's libFuzzer harnesses (make -C fuzz: build-fuzz/{debug,ndebug}/)
# and runs them: each harness for --time seconds (or --runs executions), at most --jobs at a
# time, under `nice -n 19`, starting from seeds made out of tests/corpus/ and the corpus kept
# in build-fuzz/corpus/<harness>/ by earlier runs. Prints one result line per run (executions,
# coverage, outcome), appends them to build-fuzz/results.txt, leaves any crashing input in
# build-fuzz/artifacts/<variant>/<harness>/, and exits 1 if any run crashed, hung, leaked or
# tripped a sanitizer (2 for a usage or build error).
#
#   fuzz/run.sh [--time S] [--runs N] [--jobs J] [--variant debug|ndebug|both] [--no-build] [HARNESS...]
#
# HARNESS is idx, cifar, npy, csv, safetensors, model or json (default: all). Environment:
# KILN_FUZZ_OUT (default build-fuzz), KILN_FUZZ_SRC (a patched copy of src/ and include/ to
# build the library from, to keep fuzzing past a reported bug before its fix lands). It is deliberately
# not part of `make` or CTest: scripts/ci-fuzz.sh runs a short pass in CI. See fuzz/README.md.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${KILN_FUZZ_OUT:-$ROOT/build-fuzz}   # where builds, corpora, logs and results go
SRCROOT=${KILN_FUZZ_SRC:-$ROOT}          # library sources: this checkout, or a patched copy
TIME=60 RUNS=0 JOBS=2 VARIANT=both BUILD=1
ALL=(idx cifar npy csv safetensors model json)
HARNESSES=()
while [ $# -gt 0 ]; do
    case $1 in
    --time) TIME=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --variant) VARIANT=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz/run.sh: unknown option $1" >&2; exit 2 ;;
    *) HARNESSES+=("$1"); shift ;;
    esac
done
[ ${#HARNESSES[@]} -eq 0 ] && HARNESSES=("${ALL[@]}")
case $VARIANT in both) VARIANTS=(debug ndebug) ;; debug | ndebug) VARIANTS=("$VARIANT") ;;
*) echo "fuzz/run.sh: --variant must be debug, ndebug or both" >&2; exit 2 ;; esac

mkdir -p "$OUT"
if [ $BUILD = 1 ]; then
    echo "fuzz/run.sh: building ${VARIANTS[*]} into $OUT (make -C fuzz)"
    if ! nice -n 19 make -s -C fuzz OUT="$OUT" SRCROOT="$SRCROOT" -j"$JOBS" "${VARIANTS[@]}" >"$OUT/build.log" 2>&1; then
        tail -30 "$OUT/build.log" >&2
        echo "fuzz/run.sh: the build failed (log: $OUT/build.log)" >&2
        exit 2
    fi
fi

# ---- seeds from tests/corpus -------------------------------------------------------------
SEEDS=$OUT/seeds
rm -rf "$SEEDS"
mkdir -p "$SEEDS"
le16() { # two bytes, little-endian
    printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))"
}
pairs() { # reader: one seed per MANIFEST row, "len(second) first second" (fuzz_common.h)
    local r=$1 i=0 a b _
    mkdir -p "$SEEDS/$r"
    while read -r a b _; do
        case $a in '' | '#'*) continue ;; esac
        [ -f "tests/corpus/$r/$a" ] && [ -f "tests/corpus/$r/$b" ] || continue
        local nb
        nb=$(stat -c %s "tests/corpus/$r/$b")
        [ "$nb" -lt 65536 ] || continue
        { le16 "$nb"; cat "tests/corpus/$r/$a" "tests/corpus/$r/$b"; } >"$SEEDS/$r/row-$i"
        i=$((i + 1))
    done <"tests/corpus/$r/MANIFEST"
}
pairs idx
pairs npy
for r in cifar csv safetensors model; do
    mkdir -p "$SEEDS/$r"
    find "tests/corpus/$r" -maxdepth 1 -type f ! -name MANIFEST -exec cp {} "$SEEDS/$r/" \;
done
cp examples/*.kiln "$SEEDS/model/"
mkdir -p "$SEEDS/json" # the JSON headers of the checkpoint corpus
for f in tests/corpus/safetensors/*.safetensors; do
    [ "$(stat -c %s "$f")" -ge 8 ] || continue
    n=$(od -An -t u8 -N8 "$f" | tr -d ' ')
    [ "$n" -le 65536 ] 2>/dev/null || continue
    tail -c +9 "$f" | head -c "$n" >"$SEEDS/json/$(basename "$f").json"
done

dict_for() {
    case $1 in model) echo fuzz/model.dict ;; npy) echo fuzz/npy.dict ;;
    safetensors | json) echo fuzz/safetensors.dict ;; *) ;; esac
}

# ---- runs ----------------------------------------------------------------------------------
LOGS=$OUT/logs
mkdir -p "$LOGS"
STAMP=$(date -u +%Y-%m-%dT%H:%M:%SZ)
run_one() { # variant harness
    local v=$1 h=$2 bin=$OUT/$1/fuzz_$2
    local corpus=$OUT/corpus/$h art=$OUT/artifacts/$v/$h/ log=$LOGS/$v-$h.log
    mkdir -p "$corpus" "$art"
    local args=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art")
    [ "$RUNS" -gt 0 ] && args+=(-runs="$RUNS") || args+=(-max_total_time="$TIME")
    local d
    d=$(dict_for "$h")
    [ -n "$d" ] && args+=(-dict="$d")
    [ "$h" = cifar ] && args+=(-max_len=16384)
    local t0=$SECONDS
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} OMP_NUM_THREADS=1 \
        nice -n 19 "$bin" "${args[@]}" "$corpus" "$SEEDS/$h" >"$log" 2>&1 &
    local pid=$!
    wait $pid
    local rc=$? secs=$((SECONDS - t0))
    # A run that crashed skips its exit handlers: remove its temporary files and libomp's
    # registration file.
    rm -f /dev/shm/kiln-fuzz-"$pid"-* "${TMPDIR:-/tmp}"/kiln-fuzz-"$pid"-* /dev/shm/__KMP_REGISTERED_LIB_"$pid"_*
    local execs cov ft outcome=ok
    execs=$(LC_ALL=C sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -ao 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -ao 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    if [ $rc -ne 0 ]; then
        outcome="FAILED (exit $rc: $(grep -a -m1 -oE 'ERROR: [A-Za-z]+: [a-z-]+|runtime error: .*|kiln fuzz: .*|ERROR: libFuzzer: [a-z-]+' "$log" | head -c 160); log: $log)"
    fi
    printf '%s %-7s %-12s %6ss %12s execs  cov %5s  ft %6s  %s\n' "$STAMP" "$v" "$h" "$secs" "${execs:-?}" \
        "${cov:-?}" "${ft:-?}" "$outcome" | tee -a "$OUT/results.txt"
    [ $rc -eq 0 ]
}

fail=0
running=0
for h in "${HARNESSES[@]}"; do
    for v in "${VARIANTS[@]}"; do
        if [ ! -x "$OUT/$v/fuzz_$h" ]; then
            echo "fuzz/run.sh: no harness $OUT/$v/fuzz_$h (known: ${ALL[*]})" >&2
            exit 2
        fi
        run_one "$v" "$h" &
        running=$((running + 1))
        if [ $running -ge "$JOBS" ]; then
            wait -n || fail=1
            running=$((running - 1))
        fi
    done
done
while [ $running -gt 0 ]; do
    wait -n || fail=1
    running=$((running - 1))
done
if [ $fail -ne 0 ]; then
    echo "fuzz/run.sh: a harness failed: the inputs are in $OUT/artifacts/, the logs in $LOGS/" >&2
    exit 1
fi
echo "fuzz/run.sh: no crash, hang, leak or sanitizer report"
