#pragma once
// Shard stage: per-device execution. A shard owns one Backend (the CPU backend now; GPU
// and remote shards later answer the same messages) and runs steps on its own thread - a
// detached actor - so a forward pass never blocks CAF's worker pool.
#include <caf/all.hpp>

#include <memory>
#include <string>
#include <vector>

#include "kv/block_manager.h"
#include "model/backend.h"
#include "model/step.h"

namespace troupe {

struct ShardStep {
  StepBatch batch;
  std::vector<BlockCopy> copies;  // run first, in order
};

struct ShardOutput {
  StepOutput out;       // logits of the requested rows
  double forward_ms = 0;
  std::string error;    // non-empty: the backend rejected the step
};

// The shard takes ownership of the backend.
caf::actor spawn_shard(caf::actor_system& sys, std::shared_ptr<Backend> backend);

}  // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::ShardStep)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::ShardOutput)
