#pragma once
// Data parallelism behind the scheduler interface: whole engine replicas (each a
// scheduler with its own executor, shard and KV pool, on this node or on a worker) and a
// router in front of them that admission sends to as to any scheduler.
//
// Routing: a request goes to the replica with the fewest outstanding tokens (prompt plus
// max_tokens of its requests, less what they have produced), except that requests whose
// first KV block hashes alike go to the replica that took that prefix last (its prefix
// cache holds it) while that replica's load is at most twice the least loaded one's plus
// one request's worth.
//
// Replicas send their StepUpdates here; the router forwards them to the output stage and
// learns from them what each replica has produced. A replica that goes down (ReplicaDown):
// its requests that produced no token yet go to another replica, the rest end with an
// error naming it. The router reports its queue (requests with no token yet) to admission.
#include <caf/all.hpp>

#include <memory>
#include <string>
#include <vector>

#include "actors/protocol.h"
#include "actors/remote/cluster_status.h"

namespace troupe {

// `names` label the replicas ("worker 10.0.0.2:7100"); each starts down until its
// ReplicaUp. `status` (optional) gets each replica's routed-request count. `block_size`:
// the prefix affinity hashes the first block of each prompt.
replica_router_actor spawn_replica_router(caf::actor_system& sys, std::vector<std::string> names,
                                          int64_t block_size, std::shared_ptr<ClusterStatus> status = nullptr);

}  // namespace troupe
