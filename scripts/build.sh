#!/usr/bin/env bash
# Configures and builds troupe (Release) into ./build. Extra args go to cmake.
# Uses ccache when it is installed (optional; not in install-deps.sh): compile results are
# keyed by paths relative to the repository, so any clone of it shares one cache.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
launcher=()
if command -v ccache > /dev/null; then
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(pwd)}
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} "${launcher[@]}" "$@"
cmake --build "$BUILD_DIR" -j "$JOBS"
