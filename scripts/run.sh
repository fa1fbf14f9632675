#!/usr/bin/env bash
# Installs dependencies, builds, and runs the main job on the default model
# ($TROUPE_MODELS/tinystories-656k). Extra args are passed to `troupe generate`.
set -euo pipefail
cd "$(dirname "$0")/.."
export TROUPE_MODELS=${TROUPE_MODELS:-$(cd .. && pwd)/shared/models}
bash scripts/install-deps.sh
bash scripts/build.sh
MODEL=${MODEL:-$TROUPE_MODELS/tinystories-656k}
exec ./build/app/troupe generate --model "$MODEL" --prompt "${PROMPT:-Once upon a time}" --max-tokens 200 "$@"
