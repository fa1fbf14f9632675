#pragma once
// Scheduler stage (vLLM-v1 style token-step scheduling). Each iteration it builds one step
// from a token budget: running sequences first (decodes, then unfinished prefill chunks),
// then waiting ones by priority (FCFS among equals, or most max_tokens first with
// --schedule-policy lof) with what budget remains. When KV blocks run out it preempts the
// lowest-priority running sequence (recompute: free its blocks, requeue it at the front).
// It streams every new token to the output stage and retires finished sequences at once,
// so a new request joins the very next step.
// New tokens and final states go to the output stage as one StepUpdates per step.
#include <caf/all.hpp>

#include <cstdint>
#include <memory>

#include "actors/protocol.h"
#include "actors/step_time_model.h"
#include "config/scheduler_config.h"
#include "kv/block_manager.h"
#include "model/backend.h"
#include "spec/controller.h"

namespace troupe {

// Speculative decoding as the scheduler sees it: how many drafts to plan (the controller)
// and the startup cost curves it starts from. controller.num_speculative_tokens == 0: off.
struct SpecSchedule {
  spec::ControllerConfig controller;
  std::vector<std::pair<int64_t, double>> target_calibration, draft_calibration;
  // SLO-aware scheduling: steps timed at startup at several depths (spec::time_steps);
  // when given, the step-time model is fitted to them instead of target_calibration.
  std::vector<TimedStep> step_timings;
};

// Fails (troupe::Error) on settings the scheduler cannot run; the engine calls it before
// loading the model, spawn_scheduler's SchedulerCore again.
void check_scheduler_config(const SchedulerConfig& cfg);

// Spawns the scheduler stage. It does nothing until the builder sends it SchedulerLinks
// (where to send plans, updates, queue depths and observations).
scheduler_actor spawn_scheduler(caf::actor_system& sys, SchedulerConfig cfg, KvCacheShape kv,
                                SpecSchedule spec = {});

}  // namespace troupe
