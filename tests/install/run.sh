#!/usr/bin/env bash
# install_package test: `cmake --install` into a temporary prefix, then build
# examples/concurrent_requests.cpp out of tree against it twice -- a CMake project with
# find_package(troupe CONFIG) + troupe::actors, and a plain g++ line from `pkg-config troupe` --
# and run both against tinystories-656k.
#   tests/install/run.sh BUILD_DIR SOURCE_DIR
# Environment: TROUPE_MODELS (the shared models), CXX and TROUPE_CMAKE_GENERATOR (those of the
# build; CTest sets them).
set -euo pipefail
build=${1:?build dir}
src=${2:?source dir}
model=${TROUPE_MODELS:?TROUPE_MODELS not set}/tinystories-656k
[[ -d $model ]] || { echo "missing model $model" >&2; exit 1; }
example=$src/examples/concurrent_requests.cpp

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

echo "== cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
test -f "$prefix/include/troupe/actors/engine.h"
test -f "$prefix/lib/cmake/troupe/troupeConfig.cmake"

check_run() {  # BINARY: 4 requests, the last one cancelled
  local out
  out=$("$1" "$model" 4)
  echo "$out" | tail -1
  grep -q "finished 3, cancelled 1" <<<"$out" || { echo "$out"; echo "FAIL: $1: expected 'finished 3, cancelled 1'" >&2; exit 1; }
}

# -O1: the example compile is the slow part of this test; nothing here measures speed.
echo "== find_package(troupe CONFIG) + troupe::actors"
cmake -S "$src/tests/install" -B "$tmp/consumer" -G "${TROUPE_CMAKE_GENERATOR:-Ninja}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DCMAKE_PREFIX_PATH="$prefix" -DTROUPE_EXAMPLE="$example" >"$tmp/configure.log" \
  || { cat "$tmp/configure.log"; exit 1; }
cmake --build "$tmp/consumer" -j "${TROUPE_INSTALL_TEST_JOBS:-2}"
check_run "$tmp/consumer/app"

echo "== pkg-config troupe"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
flags=$(pkg-config --cflags --libs troupe)
echo "pkg-config --cflags --libs troupe: $flags"
# Compiled again with the pc's flags only, as a pkg-config user would; -O1 as above.
${CXX:-c++} -std=c++20 -O1 -o "$tmp/app_pc" "$example" $flags
check_run "$tmp/app_pc"
echo "install_package: OK"
