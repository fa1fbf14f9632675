#!/usr/bin/env bash
# SLO-aware scheduling against fixed token budgets across request rates (docs/benchmarks.md,
# "Latency targets"): for each server configuration a fresh `troupe serve`, the same
# `bench serve` workload (Poisson arrivals, mixed prompt and output lengths, one seed) at
# every rate, goodput counted against the same SLOs. Configurations:
#   slo          --slo-ttft-ms T --slo-tpot-ms P (steps sized by time; admission control)
#   fixed-N      --max-num-batched-tokens N, for N in 256 512 1024 2048 (no targets)
# Writes OUT/<config>.json, OUT/sweep.png (goodput, p95 TTFT, p95 TPOT against rate) and
# OUT/summary.txt (per rate: SLO-aware goodput / best fixed goodput).
# Usage: bench/slo_sweep.sh MODEL TTFT_MS TPOT_MS RATES INPUT_LEN OUTPUT_LEN NUM_PROMPTS [OUT]
#   e.g. bench/slo_sweep.sh ../shared/models/tinystories-656k 300 8 5,10,20,40 32:400 16:128 200
# Binaries from build/ unless $BUILD; extra serve flags in $SERVE_FLAGS (e.g. --threads 2).
set -euo pipefail
model=${1:?model}
ttft=${2:?TTFT target ms}
tpot=${3:?TPOT target ms}
rates=${4:?rates, e.g. 5,10,20,inf}
input_len=${5:?input len MIN:MAX}
output_len=${6:?output len MIN:MAX}
num_prompts=${7:?number of requests per rate}
out=${8:-/tmp/troupe-slo-sweep}
build=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
troupe=$build/app/troupe
port=${PORT:-18731}
mkdir -p "$out"
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null || true' EXIT

run_config() {  # name, serve flags...
  local name=$1
  shift
  "$troupe" serve --model "$model" --port "$port" --warmup 2 ${SERVE_FLAGS:-} "$@" > "$out/$name.serve.log" 2>&1 &
  server=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/health" > /dev/null 2>&1 && break
    kill -0 $server 2>/dev/null || { cat "$out/$name.serve.log"; exit 1; }
    sleep 0.2
  done
  "$troupe" bench serve --url "http://127.0.0.1:$port" --num-prompts "$num_prompts" --request-rate "$rates" \
    --input-len "$input_len" --output-len "$output_len" --slo-ttft-ms "$ttft" --slo-tpot-ms "$tpot" \
    --seed 1 --label "$name" --json "$out/$name.json" | grep -v '^\[' | tee "$out/$name.bench.txt"
  curl -s "http://127.0.0.1:$port/metrics" | grep -E '^troupe_slo|^troupe_engine_step_tokens_(sum|count)' > "$out/$name.metrics.txt" || true
  kill $server
  wait $server 2>/dev/null || true
  server=
}

configs=(slo fixed-256 fixed-512 fixed-1024 fixed-2048)
run_config slo --slo-ttft-ms "$ttft" --slo-tpot-ms "$tpot" --max-num-batched-tokens 2048
for n in 256 512 1024 2048; do run_config "fixed-$n" --max-num-batched-tokens "$n"; done

plot_with=()
for c in "${configs[@]:1}"; do plot_with+=(--plot-with "$out/$c.json"); done
# Re-plot from the files (no new run): bench serve's plotting reads the sweeps back.
python3 - "$out" "${configs[@]}" <<'PY' | tee "$out/summary.txt"
import json, sys
out, names = sys.argv[1], sys.argv[2:]
runs = {n: json.load(open(f"{out}/{n}.json"))["runs"] for n in names}
print("| rate (req/s) | " + " | ".join(f"{n} goodput" for n in names) + " | SLO-aware / best fixed | SLO-aware p95 TPOT (ms) | SLO-aware p95 TTFT (ms) | rejected (429) |")
print("|" + "---|" * (len(names) + 5))
for i, r in enumerate(runs["slo"]):
    good = [runs[n][i].get("goodput_requests_per_s", 0) for n in names]
    best = max(good[1:])
    ratio = f"{good[0] / best:.2f}x" if best > 0 else "inf"
    print(f"| {r['request_rate']} | " + " | ".join(f"{g:.2f}" for g in good) +
          f" | {ratio} | {r['tpot_ms']['p95']:.1f} | {r['ttft_ms']['p95']:.0f} | {r.get('rejected_429', 0)} |")
PY
"$troupe" bench serve --plot-only "$out/slo.json" "${plot_with[@]}" --plot "$out/sweep.png"
