#pragma once
// Where an engine's stages run when not all in this process:
//   --pipeline-workers: the model's layers split over stages, each in this process ("local")
//     or on a `troupe worker`, behind one stage chain (actors/stage_chain.h) that the
//     executor uses as its shard;
//   --replica-workers: whole engine replicas (scheduler, executor, shard, KV), each local or
//     on a worker, behind a replica router (actors/replica_router.h) that admission uses as
//     its scheduler.
#include <caf/all.hpp>

#include <memory>
#include <string>
#include <vector>

#include "actors/protocol.h"
#include "actors/remote/cluster_status.h"
#include "config/engine_config.h"
#include "model/backend.h"
#include "model/weights.h"

namespace troupe {

struct PipelineStages {
  stage_chain_actor chain;
  std::shared_ptr<ClusterStatus> status;   // one row per stage
  std::vector<caf::actor> owned;           // links and local shards (stop with the engine)
};

// The layer range of each of `stages` stages: parsed from `spec` ("0:6,6:12": contiguous,
// from 0 to num_layers, none empty) or, when it is empty, divided evenly (earlier stages
// take the remainder). Throws troupe::Error naming the problem.
std::vector<LayerRange> split_layers(int64_t num_layers, size_t stages, const std::string& spec);

// Starts every stage and waits until all serve (cfg.cluster.worker_timeout_s); throws
// troupe::Error naming the worker that could not connect, load, or was refused.
// `weights`: the head's model (its identity is what workers must match).
PipelineStages start_pipeline_stages(caf::actor_system& sys, const EngineConfig& cfg,
                                     const ModelWeights& weights, int64_t num_blocks);

struct ReplicaSet {
  replica_router_actor router;
  std::shared_ptr<ClusterStatus> status;   // one row per replica
  std::vector<caf::actor> owned;           // router, links, local replicas' stages
};

// Starts every replica (each with a KV pool of `num_blocks` and scheduler settings `sched`)
// and waits until all serve; throws like start_pipeline_stages.
ReplicaSet start_replicas(caf::actor_system& sys, const EngineConfig& cfg, const ModelWeights& weights,
                          int64_t num_blocks, const SchedulerConfig& sched);

}  // namespace troupe
