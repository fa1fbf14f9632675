#!/usr/bin/env bash
# Installs dependencies, builds, and runs the main job: the daemon (`troupe serve`) on the
# default model ($TROUPE_MODELS/tinystories-656k) at http://127.0.0.1:8000 (playground at /,
# OpenAI API under /v1, WebSocket at /v1/stream). Extra args are passed to `troupe serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
export TROUPE_MODELS=${TROUPE_MODELS:-$(cd .. && pwd)/shared/models}
bash scripts/install-deps.sh
bash scripts/build.sh
MODEL=${MODEL:-$TROUPE_MODELS/tinystories-656k}
exec ./build/app/troupe serve --model "$MODEL" --host 127.0.0.1 --port "${PORT:-8000}" "$@"
