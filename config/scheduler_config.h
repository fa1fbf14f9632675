#pragma once
// Scheduler settings (actors/scheduler.h runs them): batching mode, per-step budgets,
// prefix caching. Flags: add_scheduler_flags in config/flags.h.
#include <cstdint>

namespace troupe {

enum class Scheduling { Continuous, Static };

// The order of the waiting queue among requests of the same priority and TTFT deadline.
//  Fcfs: arrival order.
//  LongestOutputFirst: the most max_tokens first (SGLang's `lof`), then arrival. With
//   outputs that run to max_tokens (offline batches, ignore_eos), the long ones start first
//   and the short ones fill the slots they leave, so the batch stays full to the end
//   instead of draining: issue 19's 32 requests in 16 slots allow ~1.66x over static
//   batching against ~1.24x first come, first served (docs/benchmarks.md, session 36).
//   Short requests wait longer for their first token; continuous batching only (static
//   batching is the arrival-order baseline), and not with a server-wide TTFT target
//   (deadlines come first, and each request has its own).
enum class SchedulePolicy : uint8_t { Fcfs, LongestOutputFirst };
// Its name in flags, config files and bench JSON.
inline const char* schedule_policy_name(SchedulePolicy p) {
  return p == SchedulePolicy::LongestOutputFirst ? "lof" : "fcfs";
}

struct SchedulerConfig {
  Scheduling scheduling = Scheduling::Continuous;
  SchedulePolicy schedule_policy = SchedulePolicy::Fcfs;
  int64_t max_num_seqs = 64;
  int64_t max_num_batched_tokens = 1024;  // token budget per step (continuous)
  int64_t max_model_len = 0;              // prompt + generated
  bool enable_prefix_caching = true;
  int64_t batch_wait_ms = 50;             // static: wait this long to fill a batch
  // Steps in flight at once, each over disjoint sequences (continuous batching without
  // speculation only). 1: plan the next step when the last returns. More lets pipeline
  // stages work on different steps at the same time (the engine sets it from
  // --pipeline-depth).
  int64_t max_steps_in_flight = 1;
  // Latency targets (ms; 0: none). With them the scheduler sizes each step by its step-time
  // model so decoding sequences keep the time-per-output-token target (prefill chunks get
  // the time left), and admission turns away (or demotes) requests whose time-to-first-
  // token target cannot be met at the current load. Without them: a fixed token budget.
  double slo_ttft_ms = 0;
  double slo_tpot_ms = 0;
  // A request whose TTFT target cannot be met: rejected (429 with Retry-After) when true,
  // else queued behind those that can (its priority lowered by one).
  bool slo_reject = true;
  // Admission multiplies its TTFT estimate by this quantile of the observed actual /
  // estimated TTFT: higher turns away more requests that would have met their target,
  // lower admits more that will miss it.
  double slo_admission_quantile = 0.9;
  // The tightest targets a request may ask for itself (its `slo` object; 0: the server's
  // own target above). With neither set, requests cannot set that target.
  double slo_min_ttft_ms = 0;
  double slo_min_tpot_ms = 0;
  // Whether any latency target can be in play (the engine then measures the step-time
  // model at startup).
  bool slo_aware() const { return slo_ttft_ms > 0 || slo_tpot_ms > 0 || slo_min_ttft_ms > 0 || slo_min_tpot_ms > 0; }
  bool operator==(const SchedulerConfig&) const = default;
};

}  // namespace troupe
