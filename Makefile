# kiln — entry point. `make` builds everything into build/ (CLI: build/kiln);
# `make test` runs the test suite (normal build, then ASan + UBSan); `make unit` only the first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all test unit asan clean deps

all: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

# The whole suite: the normal build, then the same tests under ASan + UBSan (+ LeakSanitizer).
test:
	$(MAKE) unit
	$(MAKE) asan

unit: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

ASAN_FLAGS = -DKILN_SANITIZE=ON -DKILN_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug
asan:
	@test -f build-asan/CMakeCache.txt || cmake -S . -B build-asan $(ASAN_FLAGS)
	cmake --build build-asan -j $(JOBS)
	cd build-asan && OMP_NUM_THREADS=2 ctest --output-on-failure -j $(JOBS)

deps:
	scripts/install-deps.sh

clean:
	rm -rf build build-asan
