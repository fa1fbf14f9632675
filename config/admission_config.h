#pragma once
// Admission settings (actors/admission.h): request limits checked before scheduling.
#include <cstdint>

namespace troupe {

struct AdmissionConfig {
  int64_t max_model_len = 0;  // prompt + generated tokens
  int64_t max_waiting = 1024; // requests queued in the scheduler before rejecting
  int64_t vocab_size = 0;
  // Latency targets (SchedulerConfig's): a request's own `slo` may not be tighter than the
  // floor (min_*, or the server's target when no floor is set); without either it may not
  // set that target at all. Requests without one get the server's.
  double slo_ttft_ms = 0, slo_tpot_ms = 0;
  double slo_min_ttft_ms = 0, slo_min_tpot_ms = 0;
};

}  // namespace troupe
