#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (CTest). The README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
export TROUPE_MODELS=${TROUPE_MODELS:-$(cd .. && pwd)/shared/models}
if [ ! -d "$TROUPE_MODELS" ]; then
  echo "error: TROUPE_MODELS=$TROUPE_MODELS does not exist (the shared models must sit in ../shared/models)" >&2
  exit 1
fi
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "${CTEST_JOBS:-1}"
