#!/usr/bin/env bash
# SLO-aware scheduling against fixed token budgets across request rates (docs/benchmarks.md,
# "Latency targets"): one `troupe serve` per server configuration, all started up front (one
# after another, so each measures its step-time model alone; an idle server's threads block
# and cost nothing), then for every rate the same `bench serve` workload (Poisson arrivals,
# mixed prompt and output lengths, the rate's seed) against each configuration in turn, in
# an order rotated per rate. Interleaving the configurations in time means a change in the
# machine's load hits all of them alike instead of deciding the comparison.
# Configurations:
#   slo          --slo-ttft-ms T --slo-tpot-ms P (steps sized by time; admission control)
#   slo-b        the same targets plus $SLO_B_FLAGS, only when that is set (a variant of the
#                policy side by side, e.g. SLO_B_FLAGS="--slo-admission-quantile 0.75")
#   fixed-N      --max-num-batched-tokens N, for N in 256 512 1024 2048 (no targets)
# Writes OUT/<config>.json (all rates), OUT/sweep.png (goodput, p95 TTFT, p95 TPOT against
# rate) and OUT/summary.txt (per rate: SLO-aware goodput / best fixed goodput).
# Usage: bench/slo_sweep.sh MODEL TTFT_MS TPOT_MS RATES INPUT_LEN OUTPUT_LEN NUM_PROMPTS [OUT]
#   e.g. bench/slo_sweep.sh ../shared/models/tinystories-656k 300 8 5,10,20,40 32:400 16:128 200
# Arrivals are Poisson unless $BURSTINESS (bench serve --burstiness: gamma gaps of that shape,
# below 1 in bursts) is set.
# Binaries from build/ unless $BUILD; extra serve flags in $SERVE_FLAGS (e.g. --threads 2);
# servers listen on $PORT .. $PORT + 5. Every rate uses the same workload seed ($SEED, 1 by
# default): the same prompts and output lengths, and the same arrival draws scaled to the
# rate, so neighbouring rates differ by the rate alone (common random numbers).
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
seed=${SEED:-1}
burstiness=${BURSTINESS:-1}
configs=(slo)
[ -n "${SLO_B_FLAGS:-}" ] && configs+=(slo-b)
configs+=(fixed-256 fixed-512 fixed-1024 fixed-2048)
declare -A flags=([slo]="--slo-ttft-ms $ttft --slo-tpot-ms $tpot --max-num-batched-tokens 2048"
                  [slo-b]="--slo-ttft-ms $ttft --slo-tpot-ms $tpot --max-num-batched-tokens 2048 ${SLO_B_FLAGS:-}"
                  [fixed-256]="--max-num-batched-tokens 256" [fixed-512]="--max-num-batched-tokens 512"
                  [fixed-1024]="--max-num-batched-tokens 1024" [fixed-2048]="--max-num-batched-tokens 2048")
declare -A ports
servers=()
trap 'for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

i=0
for c in "${configs[@]}"; do
  ports[$c]=$((port + i))
  i=$((i + 1))
  # shellcheck disable=SC2086  # flags are words
  # (No prefix caching: every rate sends the same prompts, which must not hit the cache.)
  "$troupe" serve --model "$model" --port "${ports[$c]}" --warmup 2 --no-enable-prefix-caching ${SERVE_FLAGS:-} ${flags[$c]} > "$out/$c.serve.log" 2>&1 &
  servers+=($!)
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:${ports[$c]}/health" > /dev/null 2>&1 && break
    kill -0 "${servers[-1]}" 2>/dev/null || { cat "$out/$c.serve.log"; exit 1; }
    sleep 0.2
  done
done

IFS=, read -r -a rate_list <<< "$rates"
# One unrecorded run per server first ($WARMUP_PROMPTS requests, a fifth of the recorded
# runs by default, at the first rate, other prompts): a fresh server's step-time model and
# admission calibration are still settling, and that should not land on whichever
# configuration the rotation sends first.
warmup=${WARMUP_PROMPTS:-$((num_prompts / 5))}
if [ "$warmup" -gt 0 ]; then
  for c in "${configs[@]}"; do
    echo "== warm-up: $c"
    "$troupe" bench serve --url "http://127.0.0.1:${ports[$c]}" --num-prompts "$warmup" \
      --request-rate "${rate_list[0]}" --input-len "$input_len" --output-len "$output_len" \
      --seed $((seed + 1000)) --burstiness "$burstiness" --label "$c-warmup" > /dev/null
  done
fi
for r in "${!rate_list[@]}"; do
  for k in "${!configs[@]}"; do
    c=${configs[$(((k + r) % ${#configs[@]}))]}
    echo "== rate ${rate_list[$r]}: $c ($(uptime | sed 's/.*load/load/'))"
    "$troupe" bench serve --url "http://127.0.0.1:${ports[$c]}" --num-prompts "$num_prompts" \
      --request-rate "${rate_list[$r]}" --input-len "$input_len" --output-len "$output_len" \
      --slo-ttft-ms "$ttft" --slo-tpot-ms "$tpot" --seed "$seed" --burstiness "$burstiness" --label "$c" \
      --json "$out/$c.rate$r.json" | grep -v '^\[' | tee -a "$out/$c.bench.txt"
  done
done
for c in "${configs[@]}"; do
  curl -s "http://127.0.0.1:${ports[$c]}/metrics" | grep -E '^troupe_slo|^troupe_engine_step_tokens_(sum|count)' > "$out/$c.metrics.txt" || true
done

# One file per configuration with every rate's run, as one `bench serve` sweep writes it
# (one seed for every rate, as above).
python3 - "$out" "${#rate_list[@]}" "${configs[@]}" <<'PY'
import json, sys
out, n, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
for c in names:
    parts = [json.load(open(f"{out}/{c}.rate{r}.json")) for r in range(n)]
    merged = {k: v for k, v in parts[0].items() if k in
              ("label", "url", "endpoint", "model", "num_prompts", "max_concurrency", "input_len",
               "output_len", "seed", "burstiness", "slo_ttft_ms", "slo_tpot_ms")}
    merged["runs"] = [p["runs"][0] for p in parts]
    json.dump(merged, open(f"{out}/{c}.json", "w"))
PY

plot_with=()
for c in "${configs[@]:1}"; do plot_with+=(--plot-with "$out/$c.json"); done
# (summary.txt: each SLO-aware configuration against the best fixed budget at each rate.)
python3 - "$out" "${configs[@]}" <<'PY' | tee "$out/summary.txt"
import json, sys
out, names = sys.argv[1], sys.argv[2:]
runs = {n: json.load(open(f"{out}/{n}.json"))["runs"] for n in names}
slo = [n for n in names if n.startswith("slo")]
fixed = [n for n in names if n.startswith("fixed")]
cols = ["rate (req/s)"] + [f"{n} goodput" for n in names]
for n in slo:
    cols += [f"{n} / best fixed", f"{n} p95 TPOT (ms)", f"{n} p95 TTFT (ms)", f"{n} rejected (429)"]
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
for i, r in enumerate(runs["slo"]):
    good = {n: runs[n][i].get("goodput_requests_per_s", 0) for n in names}
    best = max(good[n] for n in fixed)
    row = [str(r["request_rate"])] + [f"{good[n]:.2f}" for n in names]
    for n in slo:
        s = runs[n][i]
        row += [f"{good[n] / best:.2f}x" if best > 0 else "inf", f"{s['tpot_ms']['p95']:.1f}",
                f"{s['ttft_ms']['p95']:.0f}", str(s.get("rejected_429", 0))]
    print("| " + " | ".join(row) + " |")
PY
"$troupe" bench serve --plot-only "$out/slo.json" "${plot_with[@]}" --plot "$out/sweep.png"
