#pragma once
// Pipeline parallelism behind the shard interface: a chain of stages, each a shard that
// holds a slice of the layers (Backend::layers(); on this node or on a worker, cluster/).
// The executor sends a ShardStep as to any shard; the chain runs it through stage 0..n-1,
// handing each stage's hidden states (raw bytes) to the next, and answers with the last
// stage's logits and the summed forward time. Steps are not serialized here: a second step
// may enter stage 0 while the first is in stage 1 (stages overlap when the scheduler keeps
// several steps in flight).
//
// A stage may go down (StageDown, from whoever watches it): the steps in flight fail with
// the reason, and so does every step until the stage is up again (StageUp).
#include <caf/all.hpp>

#include <string>
#include <vector>

#include "actors/protocol.h"

namespace troupe {

// `names` label the stages in errors ("stage 1 (worker 10.0.0.2:7100)"); every stage starts
// down until its StageUp.
stage_chain_actor spawn_stage_chain(caf::actor_system& sys, std::vector<std::string> names);

// A chain over stages that are already up (in-process ones, tests).
stage_chain_actor spawn_stage_chain(caf::actor_system& sys, const std::vector<shard_actor>& stages);

}  // namespace troupe
