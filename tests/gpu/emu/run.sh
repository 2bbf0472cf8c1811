#!/bin/sh
# run.sh — runs tests/gpu/test_cuda_ops.c with the CUDA op kernels emulated on the CPU (every
# .cu of src/backend/cuda except blas1.cu and device.cu; matmul.cu against emu_cublaslt.cpp, an
# emulated cuBLASLt), to check the kernels' logic and accuracy on a machine without a GPU. Slow (a thread per CUDA thread): the default skips
# the "large" rows. Needs a CPU build for libkiln.a: BUILD (default build) from
# `make BUILD=build CMAKE_FLAGS=-DKILN_CUDA=OFF`.
# Usage: tests/gpu/emu/run.sh [test arguments, default '!large']; KILN_TEST_VERBOSE=1 works;
# EMU_SANITIZE=1 builds the kernels and the test with ASan + UBSan ("device" memory is host
# memory here, so an out-of-bounds index in a kernel shows up).
set -eu
BUILD=${BUILD:-build}
EMU=tests/gpu/emu
OUTD=$BUILD/emu
mkdir -p "$OUTD"
test -f "$BUILD/libkiln.a" || { echo "no $BUILD/libkiln.a: build the CPU library first"; exit 1; }
SAN=""
if [ "${EMU_SANITIZE:-0}" = 1 ]; then SAN="-fsanitize=address,undefined -fno-omit-frame-pointer"; fi
FLAGS="-O1 -g -w $SAN -I$EMU -Iinclude -Isrc -Isrc/backend/cuda"
for f in src/backend/cuda/*.cu; do
    n=$(basename "$f" .cu)
    case $n in blas1|device) continue ;; esac
    python3 $EMU/transform.py "$f" "$OUTD/$n.cpp"
    g++ -std=c++20 $FLAGS -c "$OUTD/$n.cpp" -o "$OUTD/$n.o"
done
for f in emu_runtime emu_cublaslt; do
    g++ -std=c++20 $FLAGS -c $EMU/$f.cpp -o "$OUTD/$f.o"
done
for f in tests/gpu/test_cuda_ops.c tests/util.c tests/ops/*.c; do
    gcc -std=c11 $FLAGS -Itests -DKILN_BIN='"kiln"' -c "$f" -o "$OUTD/t_$(basename "$f" .c).o"
done
# the CPU library's own link libraries, as CMake links test_ops
LIBS=$(grep -o -- '-l[a-z0-9_]*\|/[^ ]*\.so[^ ]*' "$BUILD/tests/CMakeFiles/test_ops.dir/link.txt" | grep -v -x -- '-linux' | tr '\n' ' ')
g++ $SAN -o "$OUTD/test_cuda_ops_emu" "$OUTD"/*.o "$BUILD/libkiln.a" $LIBS -lpthread -lm
if [ $# -eq 0 ]; then set -- '!large'; fi
exec nice -n 19 "$OUTD/test_cuda_ops_emu" "$@"
