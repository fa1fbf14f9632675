#pragma once
// Scheduler settings (actors/scheduler.h runs them): batching mode, per-step budgets,
// prefix caching. Flags: add_scheduler_flags in config/flags.h.
#include <cstdint>

namespace troupe {

enum class Scheduling { Continuous, Static };

struct SchedulerConfig {
  Scheduling scheduling = Scheduling::Continuous;
  int64_t max_num_seqs = 64;
  int64_t max_num_batched_tokens = 1024;  // token budget per step (continuous)
  int64_t max_model_len = 0;              // prompt + generated
  bool enable_prefix_caching = true;
  int64_t batch_wait_ms = 50;             // static: wait this long to fill a batch
  bool operator==(const SchedulerConfig&) const = default;
};

}  // namespace troupe
