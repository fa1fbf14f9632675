#pragma once
// The head side of one remote pipeline stage or replica: a link actor connects to a
// `troupe worker` (CAF remoting), has it host the stage or replica (HostStage), hands the
// shard to the stage chain (StageUp) or the scheduler to the replica router (ReplicaUp),
// and monitors the worker. When the worker is lost, the chain or router hears it at once
// (StageDown / ReplicaDown: what was in flight fails, naming the worker), the status table
// says so, and the link reconnects with backoff; once the worker is back, the stage or
// replica is rebuilt and serves again (StageUp with kv_lost: the head's scheduler forgets
// cached prefixes).
#include <caf/all.hpp>

#include <memory>
#include <string>

#include "actors/remote/cluster_protocol.h"
#include "actors/remote/cluster_status.h"

namespace troupe {

struct WorkerLinkSpec {
  std::string host;
  uint16_t port = 0;
  int32_t stage = 0;            // index in the chain or router, and in the status table
  HostStage request;            // what the worker is asked to host
  double timeout_s = 120;       // for connecting and loading
  bool tls = false;             // connect over TLS (configure_remoting set the files)
};

// "HOST:PORT" -> host, port (throws troupe::Error naming the text). Port 0 only with allow_zero.
std::pair<std::string, uint16_t> parse_host_port(const std::string& address, bool allow_zero = false);

// Never blocks: connecting goes through the middleman actor with a timeout.
// `target`: the stage chain (a stage) or the replica router (spec.request.replica).
caf::actor spawn_worker_link(caf::actor_system& sys, WorkerLinkSpec spec, caf::actor target,
                             std::shared_ptr<ClusterStatus> status);

}  // namespace troupe
