#pragma once
// Admission stage: validates a request (sampling parameters, prompt length against
// max_model_len), tokenizes it, enforces max_waiting (a clear "overloaded" error instead of
// queueing forever), and hands the sequence to the scheduler. Problems are reported to the
// request's own sink as an error event; nothing a client sends can take the pipeline down.
#include <caf/all.hpp>

#include <atomic>
#include <memory>

#include "actors/request.h"
#include "actors/scheduler.h"
#include "config/admission_config.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

struct AdmitRequest {
  int64_t request_id = 0;
  GenerateRequest req;
  TokenSink sink;
  Clock::time_point arrival;
};

caf::actor spawn_admission(caf::actor_system& sys, caf::actor scheduler,
                           std::shared_ptr<const Tokenizer> tokenizer, AdmissionConfig cfg,
                           std::shared_ptr<std::atomic<int64_t>> waiting_gauge);

}  // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::AdmitRequest)
