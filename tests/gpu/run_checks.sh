#!/bin/sh
# run_checks.sh — the GPU checks of the CUDA op kernels, for a machine with a CUDA device:
# builds kiln with the CUDA backend into build-gpu (or $BUILD), runs gpu_test_cuda_ops (every
# op vs the float64 reference, table of max errors at the end), then the same test on the
# small rows under compute-sanitizer memcheck and racecheck (each must report 0 errors).
# Usage: tests/gpu/run_checks.sh [test filter]; logs go to $OUT (or build-gpu/checks/).
set -u
BUILD=${BUILD:-build-gpu}
LOGS=${OUT:-$BUILD/checks}
mkdir -p "$LOGS"
cmake -S . -B "$BUILD" -DKILN_CUDA=ON -DCMAKE_BUILD_TYPE=Release >"$LOGS/cmake.log" 2>&1 || { tail -30 "$LOGS/cmake.log"; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" --target gpu_test_cuda_ops gpu_test_cuda_smoke >"$LOGS/build.log" 2>&1 || { tail -40 "$LOGS/build.log"; exit 1; }
T="$BUILD/tests/gpu_test_cuda_ops"
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
rc=0
"$BUILD/tests/gpu_test_cuda_smoke" >"$LOGS/smoke.log" 2>&1 || { echo "smoke test failed"; tail -20 "$LOGS/smoke.log"; rc=1; }
"$T" --time ${1:+"$1"} >"$LOGS/ops.log" 2>&1 || rc=1
for tool in memcheck racecheck; do
    if [ -x "$SAN" ]; then
        "$SAN" --tool "$tool" --error-exitcode 99 "$T" '!large' >"$LOGS/$tool.log" 2>&1
        s=$?
        echo "compute-sanitizer $tool: exit $s ($(grep -c 'ERROR SUMMARY: 0 errors\|RACECHECK SUMMARY: 0 hazards' "$LOGS/$tool.log") clean summaries)"
        [ $s -eq 0 ] || rc=1
    else
        echo "compute-sanitizer not found: $tool not run"; rc=1
    fi
done
tail -80 "$LOGS/ops.log"
exit $rc
