#pragma once
// The worker side of remoting: `troupe worker` publishes this actor; a head asks it to host
// pipeline stages (HostStage, cluster_protocol.h). It loads the model as the worker sees
// it, checks that it is the head's model with the head's quantization, builds a backend
// over the requested layers and answers with the shard that runs them. It serves one head
// at a time (a second one is told so) and frees everything when that head goes away.
#include <caf/all.hpp>

#include <string>

#include "actors/remote/cluster_protocol.h"

namespace troupe {

struct WorkerOptions {
  int threads = 0;        // compute threads of each hosted backend (0: all cores)
  std::string model;      // load this path instead of the one the head names ("": the head's)
};

// Detached: loading a model blocks it, never CAF's worker pool.
worker_actor spawn_worker(caf::actor_system& sys, WorkerOptions opts);

}  // namespace troupe
