#!/bin/sh
# run.sh — runs the GPU tests on the CPU emulator: the CUDA backend's sources as they are
# (every .cu and .cuh of src/backend/cuda rewritten by transform.py, plan_cuda.c, cuda_alloc.c,
# cuda_table.c, update_group.c) against emulated CUDA runtime, cuBLASLt and cuDNN (this folder), to check
# the kernels' logic and accuracy and the plan's use of them on a machine without a GPU.
#   EMU_TEST=ops (default): tests/gpu/test_cuda_ops.c, every op row against float64;
#   EMU_TEST=plan: tests/gpu/test_cuda_plan.c, an MLP training step as a CUDA plan (cuBLASLt
#   linears, dropout, loss, SGD) against the CPU plan, CUDA-graph capture and replay, the
#   allocator, fallbacks, bad labels, out-of-memory;
#   EMU_TEST=kiln: the kiln command line itself (BUILD's CLI objects), e.g.
#   `EMU_TEST=kiln tests/gpu/emu/run.sh train --model examples/mlp.kiln --device cuda ...`.
# Slow (a thread per CUDA thread): the ops default skips the "large" rows. Needs a CPU build for
# libkiln.a: BUILD (default build) from `make BUILD=build CMAKE_FLAGS=-DKILN_CUDA=OFF`.
# Usage: tests/gpu/emu/run.sh [test arguments, default '!large' for ops]; KILN_TEST_VERBOSE=1
# works; EMU_SANITIZE=1 builds everything with ASan + UBSan ("device" memory is host memory
# here, so an out-of-bounds index in a kernel shows up). EMU_ASYNC=<seed> (at run time) queues
# stream work and runs it in a random order that keeps only CUDA's guarantees, so a missing
# event wait or synchronisation shows up as wrong numbers; try several seeds, e.g.
# `for s in 1 2 3 4 5 6 7 8; do EMU_ASYNC=$s build-emu/emu/test_cuda_plan_emu; done`.
set -eu
BUILD=${BUILD:-build}
EMU=tests/gpu/emu
OUTD=$BUILD/emu
TEST=${EMU_TEST:-ops}
mkdir -p "$OUTD"
test -f "$BUILD/libkiln.a" || { echo "no $BUILD/libkiln.a: build the CPU library first"; exit 1; }
SAN=""
if [ "${EMU_SANITIZE:-0}" = 1 ]; then SAN="-fsanitize=address,undefined -fno-omit-frame-pointer"; fi
FLAGS="-O1 -g -w $SAN -I$EMU -Iinclude -Isrc -Isrc/backend/cuda"
FLAGS="$FLAGS -DKN_HAVE_CUDNN" # conv.cu, plan_cuda.c and test_cuda_ops.c take their cuDNN path
DEFS="-DKN_CUDA_HAVE_DATA_CHECK"
rm -f "$OUTD"/*.o
for f in src/backend/cuda/*.cuh; do # headers may launch too; the .cpp files include these copies
    if grep -q '>>>(' "$f"; then python3 $EMU/transform.py "$f" "$OUTD/$(basename "$f")"; else cp "$f" "$OUTD/"; fi
done
for f in src/backend/cuda/*.cu; do
    n=$(basename "$f" .cu)
    DEFS="$DEFS -DKN_CUDA_FAMILY_$(echo "$n" | tr a-z A-Z)"
    python3 $EMU/transform.py "$f" "$OUTD/$n.cpp"
    g++ -std=c++20 $FLAGS $DEFS -c "$OUTD/$n.cpp" -o "$OUTD/$n.o"
done
for f in plan_cuda cuda_alloc cuda_table update_group; do # not cublaslt_lazy.c: emu_cublaslt.cpp is the library
    gcc -std=gnu11 $FLAGS $DEFS -c src/backend/cuda/$f.c -o "$OUTD/$f.o"
done
for f in emu_runtime emu_cublaslt emu_cudnn; do
    g++ -std=c++20 $FLAGS -c $EMU/$f.cpp -o "$OUTD/$f.o"
done
mkdir -p "$OUTD/t"
rm -f "$OUTD"/t/*.o
if [ "$TEST" = kiln ]; then
    SRCS=""
    cp "$BUILD"/CMakeFiles/kiln.dir/tools/kiln/*.o "$BUILD"/CMakeFiles/kiln.dir/builtin_models.c.o "$OUTD/t/"
elif [ "$TEST" = plan ]; then
    SRCS="tests/gpu/test_cuda_plan.c tests/util.c"
else
    SRCS="tests/gpu/test_cuda_ops.c tests/util.c tests/ops/*.c"
fi
for f in $SRCS; do
    gcc -std=c11 $FLAGS -Itests -DKILN_BIN='"kiln"' -c "$f" -o "$OUTD/t/$(basename "$f" .c).o"
done
# the CPU library's own link libraries, as CMake links test_ops
LIBS=$(grep -o -- '-l[a-z0-9_]*\|/[^ ]*\.so[^ ]*' "$BUILD/tests/CMakeFiles/test_ops.dir/link.txt" | grep -v -x -- '-linux' | tr '\n' ' ')
g++ $SAN -o "$OUTD/test_cuda_${TEST}_emu" "$OUTD"/*.o "$OUTD"/t/*.o "$BUILD/libkiln.a" $LIBS -lpthread -lm
if [ $# -eq 0 ] && [ "$TEST" = ops ]; then set -- '!large'; fi
exec nice -n 19 "$OUTD/test_cuda_${TEST}_emu" "$@"
