#!/usr/bin/env bash
# scripts/ci-fuzz.sh — the short fuzz pass every CI run makes after `make test`: builds the
# libFuzzer harnesses (fuzz/, both the debug and the -DNDEBUG build) and runs each of the 7
# harnesses in both builds for KILN_CI_FUZZ_SECONDS seconds (default 3, corpus loading
# included: under 60 s of fuzzing in all, two runs at a time, so about 30 s of wall time after
# the build), starting from tests/corpus/ and whatever corpus earlier runs left in
# build-fuzz/. Exits non-zero on any crash, hang, leak or
# sanitizer report (the input is kept in build-fuzz/artifacts/). Without clang and libFuzzer
# it says so and exits 0: the fuzzers are an extra, the bad-file corpus itself runs in
# `make test` (tests/test_corpus.c). The long runs are fuzz/run.sh's job; see fuzz/README.md.
set -uo pipefail
cd "$(dirname "$0")/.."

skip() {
    echo "ci-fuzz: SKIPPED: $1; install clang and libclang-rt-dev (Debian) to fuzz the file readers"
    exit 0
}
command -v clang >/dev/null 2>&1 || skip "clang not found"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
    >"$probe/probe.c"
clang -fsanitize=fuzzer,address,undefined "$probe/probe.c" -o "$probe/probe" >"$probe/log" 2>&1 ||
    skip "clang cannot link a libFuzzer target ($(head -c 200 "$probe/log"))"

seconds=${KILN_CI_FUZZ_SECONDS:-3}
echo "ci-fuzz: building and running every harness for ${seconds} s per build"
fuzz/run.sh --time "$seconds" --jobs 2 --variant both
