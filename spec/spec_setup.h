#pragma once
// Engine-side assembly of speculative decoding: the proposer named by the config (checked
// against the target: vocabularies must match), its static cost ratio and the startup cost
// curves the controller starts from.
#include <memory>
#include <string>

#include "actors/engine.h"
#include "actors/scheduler.h"
#include "model/backend.h"
#include "spec/proposer.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

struct SpecSetup {
  std::shared_ptr<spec::Proposer> proposer;
  SpecSchedule schedule;
  std::string description;  // e.g. "draft model /x (2 layers), K=4, adaptive"
};

// Throws troupe::Error with a message naming the flag on a bad configuration. `target` is
// idle (not yet handed to a shard): calibration runs steps on it.
SpecSetup setup_speculation(const EngineConfig& cfg, Backend& target, const Tokenizer& target_tok);

}  // namespace troupe
