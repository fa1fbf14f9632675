#pragma once
// The scheduler's counters and gauges, the reply to StatsQuery (protocol.h).
#include <cstdint>
#include <vector>

#include "kv/block_manager.h"
#include "spec/metrics.h"

namespace troupe {

// SLO-aware scheduling (--slo-ttft-ms / --slo-tpot-ms, or a request's own `slo`): requests
// that ended normally and met both their targets (goodput) or missed one (and which target
// they missed), requests turned away at admission, and how many tokens each step computed
// (buckets: 1, 2-3, 4-7, ... 2^k..2^(k+1)-1, the last open).
struct SloStats {
  static constexpr size_t kBuckets = 14;
  int64_t met = 0, missed = 0, rejected = 0;
  int64_t ttft_missed = 0, tpot_missed = 0;
  std::vector<int64_t> step_tokens_histogram = std::vector<int64_t>(kBuckets, 0);
  int64_t step_tokens_sum = 0;
  // The largest token count bucket b holds (the last: none).
  static int64_t bucket_upper(size_t b) { return (int64_t(2) << b) - 1; }
  void record_step(int64_t tokens) {
    step_tokens_sum += tokens;
    size_t b = 0;
    while (b + 1 < kBuckets && (int64_t(2) << b) <= tokens) ++b;
    step_tokens_histogram[b]++;
  }
  SloStats& operator+=(const SloStats& o) {
    met += o.met, missed += o.missed, rejected += o.rejected, step_tokens_sum += o.step_tokens_sum;
    ttft_missed += o.ttft_missed, tpot_missed += o.tpot_missed;
    for (size_t i = 0; i < kBuckets && i < o.step_tokens_histogram.size(); ++i)
      step_tokens_histogram[i] += o.step_tokens_histogram[i];
    return *this;
  }
  bool operator==(const SloStats&) const = default;
};

struct SchedulerStats {
  int64_t running = 0, waiting = 0;
  int64_t steps = 0;
  int64_t prompt_tokens_computed = 0, generated_tokens = 0;
  int64_t preemptions = 0;
  int64_t finished = 0, cancelled = 0, failed = 0;
  BlockManagerStats kv;
  // Per-step time split: wall (plan sent -> result back) vs the backend's forward pass and
  // the executor's sampling; the rest is the actors' own overhead.
  double step_wall_ms_total = 0, forward_ms_total = 0, sample_ms_total = 0;
  // Forward time of the steps that computed prompt tokens (with whatever decodes rode
  // along): with static batching, whose prefill steps carry no decodes, the prompt cost a
  // run paid (bench throughput's estimate with the prompts counted,
  // actors/static_batching_bound.h).
  double prefill_forward_ms_total = 0;
  // Speculative decoding (vLLM's spec_decode_* counters; all zero without speculation).
  spec::SpecMetrics spec;
  SloStats slo;
  bool operator==(const SchedulerStats&) const = default;  // field by field (protocol tests)
};

}  // namespace troupe
