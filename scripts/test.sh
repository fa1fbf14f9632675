#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (CTest). The README's test command.
# TROUPE_SANITIZE=1 runs the same suite under ASan + UBSan instead (build-asan, RelWithDebInfo,
# UBSan errors fatal); several times slower, so CI does not run it by default.
set -euo pipefail
cd "$(dirname "$0")/.."
export TROUPE_MODELS=${TROUPE_MODELS:-$(cd .. && pwd)/shared/models}
if [ ! -d "$TROUPE_MODELS" ]; then
  echo "error: TROUPE_MODELS=$TROUPE_MODELS does not exist (the shared models must sit in ../shared/models)" >&2
  exit 1
fi
bash scripts/install-deps.sh
if [ "${TROUPE_SANITIZE:-0}" != "0" ]; then
  export BUILD_DIR=${BUILD_DIR:-build-asan} BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  bash scripts/build.sh -DTROUPE_SANITIZE=ON
else
  bash scripts/build.sh
fi
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "${CTEST_JOBS:-1}"
