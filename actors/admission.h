#pragma once
// Admission stage: validates a request (sampling parameters, prompt length against
// max_model_len), tokenizes it, enforces max_waiting (a clear "overloaded" error instead of
// queueing forever), and hands the sequence to the scheduler. Problems go to the output
// stage as the request's final (error) update; nothing a client sends can take the
// pipeline down. A custom admission stage (a policy such as per-tenant quotas) implements
// admission_actor and forwards what it accepts to this one (examples/tenant_quotas.cpp).
#include <caf/all.hpp>

#include <memory>

#include "actors/protocol.h"
#include "config/admission_config.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

// Spawns the default admission stage. It does nothing until the builder sends it
// AdmissionLinks (the scheduler, and the output stage that receives rejections).
admission_actor spawn_admission(caf::actor_system& sys, std::shared_ptr<const Tokenizer> tokenizer,
                                AdmissionConfig cfg);

// Validates and tokenizes one request (throws troupe::Error naming what is wrong): the
// default admission's work, for custom admission stages that add a policy on top.
EnqueueSeq admit(AdmitRequest& a, const Tokenizer& tok, const AdmissionConfig& cfg);

// The final update that rejects a request (send it to the output stage in StepUpdates).
SeqUpdate rejection(int64_t request_id, ErrorKind kind, std::string message);

}  // namespace troupe
