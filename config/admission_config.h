#pragma once
// Admission settings (actors/admission.h): request limits checked before scheduling.
#include <cstdint>

namespace troupe {

struct AdmissionConfig {
  int64_t max_model_len = 0;  // prompt + generated tokens
  int64_t max_waiting = 1024; // requests queued in the scheduler before rejecting
  int64_t vocab_size = 0;
};

}  // namespace troupe
