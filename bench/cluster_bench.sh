#!/usr/bin/env bash
# Multi-node costs on this machine (docs/benchmarks.md, "Across processes"): the per-step cost
# of a pipeline hop (single process vs 2 stages on `troupe worker` processes over loopback,
# at batch 1 and 32) and replica scaling (1 vs 2 replicas, each a worker with --threads 1).
# Usage: bench/cluster_bench.sh MODEL.gguf [OUT_DIR]   (troupe from build/app unless $TROUPE)
set -euo pipefail
model=${1:?model path (e.g. troupe synth --shape llama-110m --out /tmp/llama-110m-f32 --format gguf --dtype f32)}
out=${2:-/tmp/troupe-cluster-bench}
troupe=${TROUPE:-$(cd "$(dirname "$0")/.." && pwd)/build/app/troupe}
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
start_worker() {  # $1: log name (in this shell, so the EXIT trap knows the pid)
  "$troupe" worker --listen 127.0.0.1:0 --threads 1 > "$out/$1.log" 2>&1 &
  pids+=($!)
}
address_of() {  # $1: log name; prints HOST:PORT once the worker listens
  for _ in $(seq 200); do
    grep -q "listening on" "$out/$1.log" && break
    sleep 0.05
  done
  grep -o "127.0.0.1:[0-9]*" "$out/$1.log" | head -1
}
start_worker w1
start_worker w2
w1=$(address_of w1)
w2=$(address_of w2)
run() {  # $1: label, rest: flags
  local label=$1
  shift
  "$troupe" bench throughput --model "$model" --input-len 32 --output-len 64 --seed 1 "$@" \
    --json "$out/$label.json" > "$out/$label.txt" 2>&1
  python3 - "$out/$label.json" "$label" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["continuous"]
steps = r["steps"]
print(f'{sys.argv[2]:<28} out tok/s {r["output_tokens_per_s"]:8.1f}  step {1000 * r["duration_s"] / steps:7.2f} ms'
      f'  forward {r["forward_ms_per_step"]:7.2f} ms  steps {steps}')
PY
}
for batch in 1 32; do
  n=$((batch == 1 ? 4 : 32))
  run "single_b$batch" --threads 1 --num-prompts $n --max-num-seqs $batch
  run "pipeline_b$batch" --pipeline-workers "$w1,$w2" --num-prompts $n --max-num-seqs $batch
done
run replicas_1 --replica-workers "$w1" --num-prompts 64 --max-num-seqs 32
run replicas_2 --replica-workers "$w1,$w2" --num-prompts 64 --max-num-seqs 32
