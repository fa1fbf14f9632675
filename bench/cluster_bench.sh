#!/usr/bin/env bash
# Multi-node costs on this machine (docs/benchmarks.md, "Across processes"):
#  1. the per-step cost of a pipeline hop: single process vs 2 stages on `troupe worker`
#     processes, at batch 1 and 32, with one step in flight (--pipeline-depth 1) and with
#     the default depth (one step per stage, so the stages overlap);
#  2. replica scaling: 1 vs 2 replicas, each a worker with --threads 1;
#  3. a simulated network: the same pipeline and replicas with a fixed one-way delay (0.2,
#     1, 5 ms) between head and workers. Run as root, the workers live in their own network
#     namespace behind a veth pair; the delay comes from troupe-delay-relay (this kernel has
#     no netem qdisc; see bench/delay_relay.cpp).
# Usage: bench/cluster_bench.sh MODEL.gguf [OUT_DIR]   (binaries from build/ unless $BUILD)
set -euo pipefail
model=${1:?model path (e.g. troupe synth --shape llama-110m --out /tmp/llama-110m-f32 --format gguf --dtype f32)}
out=${2:-/tmp/troupe-cluster-bench}
build=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
troupe=$build/app/troupe
relay=$build/bench/troupe-delay-relay
mkdir -p "$out"
pids=()
netns=troupe-bench-$$
use_netns=false
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if $use_netns; then ip netns del "$netns" 2>/dev/null || true; fi
}
trap cleanup EXIT

# Workers: in a network namespace joined to this one by a veth pair when we may make one
# (10.77.0.1 here, 10.77.0.2 there), on loopback otherwise.
worker_ip=127.0.0.1
if [ "$(id -u)" = 0 ] && ip netns add "$netns" 2>/dev/null; then
  use_netns=true
  ip link add "tb$$a" type veth peer name "tb$$b"
  ip link set "tb$$b" netns "$netns"
  ip addr add 10.77.0.1/24 dev "tb$$a" && ip link set "tb$$a" up
  ip netns exec "$netns" ip addr add 10.77.0.2/24 dev "tb$$b"
  ip netns exec "$netns" ip link set "tb$$b" up
  ip netns exec "$netns" ip link set lo up
  worker_ip=10.77.0.2
fi
start_bg() {  # $1: log name, rest: command (run here, so the EXIT trap knows the pid)
  local log=$1
  shift
  "$@" > "$out/$log.log" 2>&1 &
  pids+=($!)
}
address_of() {  # $1: log name; prints HOST:PORT once it listens
  for _ in $(seq 400); do
    grep -q "listening on" "$out/$1.log" && break
    sleep 0.05
  done
  grep -o "listening on [0-9.]*:[0-9]*" "$out/$1.log" | head -1 | cut -d' ' -f3
}
if $use_netns; then
  start_bg w1 ip netns exec "$netns" "$troupe" worker --listen "$worker_ip:0" --threads 1
  start_bg w2 ip netns exec "$netns" "$troupe" worker --listen "$worker_ip:0" --threads 1
else
  start_bg w1 "$troupe" worker --listen "$worker_ip:0" --threads 1
  start_bg w2 "$troupe" worker --listen "$worker_ip:0" --threads 1
fi
w1=$(address_of w1)
w2=$(address_of w2)
echo "workers at $w1 and $w2 ($($use_netns && echo "network namespace $netns, veth" || echo loopback))"

run() {  # $1: label, rest: flags
  local label=$1
  shift
  "$troupe" bench throughput --model "$model" --input-len 32 --output-len 64 --seed 1 "$@" \
    --json "$out/$label.json" > "$out/$label.txt" 2>&1
  python3 - "$out/$label.json" "$label" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["continuous"]
steps = r["steps"]
print(f'{sys.argv[2]:<30} out tok/s {r["output_tokens_per_s"]:8.1f}  step {1000 * r["duration_s"] / steps:7.2f} ms'
      f'  forward {r["forward_ms_per_step"]:7.2f} ms  steps {steps}')
PY
}
for batch in 1 32; do
  n=$((batch == 1 ? 4 : 32))
  run "single_b$batch" --threads 1 --num-prompts $n --max-num-seqs $batch
  run "pipeline_b${batch}_depth1" --pipeline-workers "$w1,$w2" --pipeline-depth 1 --num-prompts $n --max-num-seqs $batch
  run "pipeline_b${batch}_depth2" --pipeline-workers "$w1,$w2" --num-prompts $n --max-num-seqs $batch
done
run replicas_1 --replica-workers "$w1" --num-prompts 64 --max-num-seqs 32
run replicas_2 --replica-workers "$w1,$w2" --num-prompts 64 --max-num-seqs 32

# The simulated network: a relay per worker holds every chunk `delay` ms each way.
for delay in 0 0.2 1 5; do
  start_bg "relay1_$delay" "$relay" 0 "${w1%:*}" "${w1##*:}" "$delay"
  start_bg "relay2_$delay" "$relay" 0 "${w2%:*}" "${w2##*:}" "$delay"
  r1=$(address_of "relay1_$delay")
  r2=$(address_of "relay2_$delay")
  run "delay${delay}_pipeline_b1" --pipeline-workers "$r1,$r2" --num-prompts 4 --max-num-seqs 1
  run "delay${delay}_pipeline_b32_depth1" --pipeline-workers "$r1,$r2" --pipeline-depth 1 --num-prompts 32 --max-num-seqs 32
  run "delay${delay}_pipeline_b32_depth2" --pipeline-workers "$r1,$r2" --num-prompts 32 --max-num-seqs 32
  run "delay${delay}_replicas_2" --replica-workers "$r1,$r2" --num-prompts 64 --max-num-seqs 32
  kill "${pids[-1]}" "${pids[-2]}" 2>/dev/null || true
done
