#!/usr/bin/env bash
# Runs a libFuzzer campaign on one target of tests/fuzz/ (docs/fuzzing.md):
#   scripts/fuzz.sh TARGET SECONDS [extra libFuzzer flags...]
# TARGET: gguf, safetensors, tokenizer_json, sentencepiece, api_request, jinja, ws_message.
# Builds with clang 14 and -fsanitize=fuzzer,address,undefined into ./build-fuzz (its own
# build directory; only the parsing libraries are instrumented), starts from the seed corpus
# in tests/fuzz/corpus/TARGET and keeps what it learns in build-fuzz/corpus/TARGET. A crash
# lands in build-fuzz/crashes/TARGET/: copy it into tests/fuzz/corpus/TARGET/ once fixed, and
# the ctest fuzz_TARGET replays it from then on.
# Needs clang-14 and libclang-rt-14-dev (Debian's libFuzzer and sanitizer runtimes).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: $0 TARGET SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
target=$1 seconds=$2
shift 2
if [ ! -f "tests/fuzz/${target}_fuzz.cpp" ]; then
  echo "$0: no fuzz target '$target' (tests/fuzz/*_fuzz.cpp)" >&2
  exit 2
fi
BUILD_DIR=${BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-$(nproc)}
CC=${CC:-clang-14} CXX=${CXX:-clang++-14}
launcher=()
if command -v ccache > /dev/null; then
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(pwd)}
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROUPE_FUZZ=ON -DTROUPE_CUDA=OFF \
  -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" "${launcher[@]}" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" > "$BUILD_DIR.configure.log"
cmake --build "$BUILD_DIR" -j "$JOBS" --target "fuzz_${target}"

corpus="$BUILD_DIR/corpus/$target" crashes="$BUILD_DIR/crashes/$target"
mkdir -p "$corpus" "$crashes"
export TROUPE_MODELS=${TROUPE_MODELS:-$(pwd)/../shared/models}
# Leaks are reported (detect_leaks) but a leak in a refused input is still a finding.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
exec "$BUILD_DIR/tests/fuzz/fuzz_${target}" -max_total_time="$seconds" -print_final_stats=1 \
  -timeout=10 -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$crashes/" "$@" \
  "$corpus" "tests/fuzz/corpus/$target"
