#pragma once
// Scheduler stage (vLLM-v1 style token-step scheduling). Each iteration it builds one step
// from a token budget: running sequences first (decodes, then unfinished prefill chunks),
// then waiting ones by priority (FCFS among equals) with what budget remains. When KV
// blocks run out it preempts the lowest-priority running sequence (recompute: free its
// blocks, requeue it at the front). It streams every new token to the request's sink and
// retires finished sequences at once, so a new request joins the very next step.
#include <caf/all.hpp>

#include <atomic>
#include <cstdint>
#include <memory>

#include "actors/sequence.h"
#include "config/scheduler_config.h"
#include "kv/block_manager.h"
#include "model/backend.h"
#include "spec/controller.h"
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
};

// Speculative decoding as the scheduler sees it: how many drafts to plan (the controller)
// and the startup cost curves it starts from. controller.num_speculative_tokens == 0: off.
struct SpecSchedule {
  spec::ControllerConfig controller;
  std::vector<std::pair<int64_t, double>> target_calibration, draft_calibration;
};

// Messages understood by the scheduler actor.
struct EnqueueSeq {
  SequencePtr seq;
};
struct CancelRequest {
  int64_t request_id = 0;
};
struct StatsQuery {};

// `waiting_gauge` counts sequences admitted but not yet running: admission adds one per
// sequence it sends, the scheduler applies the changes of its waiting queue. Admission
// reads it to enforce --max-waiting without a round trip.
// With speculation, steps that carry draft slots go through `drafter` (drafter.h), the
// others straight to the executor.
caf::actor spawn_scheduler(caf::actor_system& sys, caf::actor executor, SchedulerConfig cfg,
                           KvCacheShape kv, std::shared_ptr<std::atomic<int64_t>> waiting_gauge,
                           caf::actor drafter = {}, SpecSchedule spec = {});

}  // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::EnqueueSeq)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::CancelRequest)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::StatsQuery)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::SchedulerStats)
