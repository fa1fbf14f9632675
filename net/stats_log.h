#pragma once
// The periodic engine stats line (vLLM's "Avg prompt throughput ..." log): every
// --log-stats-interval seconds while the engine is busy, one line on stderr:
//   stats: prompt 512.0 tok/s, generation 96.3 tok/s, running 4, waiting 1, KV cache 37.5%,
//          prefix-cache hits 62.5%, speculation acceptance 71.0%
// Throughputs and rates are over the interval; "-" where the interval had nothing to rate.
#include <optional>
#include <string>

#include "actors/scheduler_stats.h"

namespace troupe {

// The line for the interval from `prev` to `now` (`seconds` long); nullopt when the engine
// was idle throughout (nothing computed, nothing running or waiting).
std::optional<std::string> stats_line(const SchedulerStats& prev, const SchedulerStats& now, double seconds);

}  // namespace troupe
