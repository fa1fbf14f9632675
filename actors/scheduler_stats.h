#pragma once
// The scheduler's counters and gauges, the reply to StatsQuery (protocol.h).
#include <cstdint>

#include "kv/block_manager.h"
#include "spec/metrics.h"

namespace troupe {

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
  // Speculative decoding (vLLM's spec_decode_* counters; all zero without speculation).
  spec::SpecMetrics spec;
  bool operator==(const SchedulerStats&) const = default;  // field by field (protocol tests)
};

}  // namespace troupe
