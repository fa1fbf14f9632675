#!/usr/bin/env bash
# End-to-end tests with standard clients (openai SDK, ws, headless Chromium) against a live
# `troupe serve` on a free loopback port, then `promtool check metrics` on what it exported.
# Needs TROUPE_BIN and TROUPE_MODELS (ctest sets both), node/npm, chromium and promtool
# (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")"
: "${TROUPE_BIN:?TROUPE_BIN must point at the troupe binary (run through ctest)}"
: "${TROUPE_MODELS:?TROUPE_MODELS must point at the shared models}"
MODEL=${MODEL:-$TROUPE_MODELS/tinystories-656k}
for tool in node npm promtool; do
  command -v "$tool" > /dev/null || { echo "run.sh: $tool not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

npm ci --prefer-offline --no-audit --no-fund --loglevel=error
mkdir -p out
LOG=out/serve.log
KEY="test-key-$$"
"$TROUPE_BIN" serve --model "$MODEL" --port 0 --api-key "$KEY" --warmup 2 --max-num-seqs 32 --ws-ping-interval 1 \
  --speculative-method ngram --num-speculative-tokens 3 --slo-min-tpot-ms 1 \
  > "$LOG" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true' EXIT

PORT=""
for _ in $(seq 1 600); do
  PORT=$(sed -n 's|^troupe serve: listening on http://[^:]*:\([0-9]*\).*|\1|p' "$LOG")
  [ -n "$PORT" ] && break
  kill -0 "$PID" 2> /dev/null || { echo "troupe serve exited:" >&2; cat "$LOG" >&2; exit 1; }
  sleep 0.1
done
[ -n "$PORT" ] || { echo "troupe serve did not report its port" >&2; cat "$LOG" >&2; exit 1; }
export TROUPE_URL="http://127.0.0.1:$PORT" TROUPE_API_KEY="$KEY"

status=0
node --test --test-reporter=spec test/*.test.mjs || status=$?

# The exposition after real traffic (histograms populated) must pass promtool's lint.
node -e 'fetch(process.env.TROUPE_URL + "/metrics").then(r => r.text()).then(t => process.stdout.write(t))' > out/metrics.txt
if promtool check metrics < out/metrics.txt; then
  echo "promtool check metrics: OK ($(grep -c '^vllm_' out/metrics.txt) vllm samples)"
else
  echo "promtool check metrics: FAILED" >&2
  status=1
fi
kill -0 "$PID" 2> /dev/null || { echo "troupe serve died during the tests:" >&2; cat "$LOG" >&2; status=1; }
exit $status
