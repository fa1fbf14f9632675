#pragma once
// Engine-side assembly of speculative decoding: the proposer named by the config (checked
// against the target: vocabularies must match; draft backends come from make_backend()),
// its static cost ratio and the startup cost curves the controller starts from. The engine
// hands the controller settings and curves to the scheduler (SpecSchedule, actors/scheduler.h).
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/engine_config.h"
#include "model/backend.h"
#include "spec/controller.h"
#include "spec/proposer.h"
#include "tokenizer/tokenizer.h"

namespace troupe::spec {

struct SpecSetup {
  std::shared_ptr<Proposer> proposer;
  ControllerConfig controller;
  std::vector<std::pair<int64_t, double>> target_calibration, draft_calibration;
  std::string description;  // e.g. "draft model /x (2 layers), K=4, adaptive"
};

// Throws troupe::Error with a message naming the flag on a bad configuration. `target` is
// idle (not yet handed to a shard): calibration runs steps on it.
SpecSetup setup_speculation(const EngineConfig& cfg, Backend& target, const Tokenizer& target_tok);

}  // namespace troupe::spec
