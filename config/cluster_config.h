#pragma once
// Where the engine's stages run when not all in this process: pipeline-parallel shard
// stages or engine replicas on `troupe worker` processes (CAF remoting, actors/remote/).
// Flags (config/flags.h): --pipeline-workers, --pipeline-layers, --pipeline-depth,
// --replica-workers, --worker-timeout.
#include <string>
#include <vector>

namespace troupe {

// TLS for remoting (CAF's OpenSSL module), the same three files on a head and its workers:
// each side presents its certificate and refuses a peer whose certificate the CA did not sign.
struct TlsFiles {
  std::string cert, key, ca;   // PEM paths; all empty: plain TCP (private networks only)
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

struct ClusterConfig {
  // HOST:PORT of a worker per stage, in layer order; "local" runs that stage in this
  // process. Empty: no pipeline (one in-process shard).
  std::vector<std::string> pipeline_workers;
  // The split, "0:6,6:12" (one range per worker, contiguous, covering every layer); empty:
  // the layers divided evenly.
  std::string pipeline_layers;
  // Steps the scheduler keeps in flight through the pipeline, each over disjoint sequences,
  // so stage i works on one step while stage i+1 works on another. 0: one per stage.
  int64_t pipeline_depth = 0;
  // HOST:PORT of a worker per engine replica ("local": one in this process); requests are
  // routed between them. Empty: no replicas.
  std::vector<std::string> replica_workers;
  // Seconds to wait at startup for every worker to load its stage (and the longest a
  // reconnect attempt waits for one).
  double worker_timeout_s = 120;
  TlsFiles tls;
  bool enabled() const { return !pipeline_workers.empty() || !replica_workers.empty(); }
};

}  // namespace troupe
