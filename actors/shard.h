#pragma once
// Shard stage: per-device execution. A shard owns one Backend (the CPU backend now; GPU
// and remote shards answer the same messages) and runs steps on its own thread - a
// detached actor - so a forward pass never blocks CAF's worker pool.
#include <caf/all.hpp>

#include <memory>

#include "actors/protocol.h"
#include "model/backend.h"

namespace troupe {

// The shard takes ownership of the backend.
shard_actor spawn_shard(caf::actor_system& sys, std::shared_ptr<Backend> backend);

}  // namespace troupe
