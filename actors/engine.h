#pragma once
// troupe::Engine - the library API. Start from a config, submit requests, receive streamed
// tokens through a callback, cancel, stop. It loads the model and builds the pipeline of
// actors with PipelineBuilder (pipeline.h):
//   admission -> scheduler -> [drafter] -> executor -> shard (detached thread, owns the backend)
//                    └──────────▶ output (detokenizes, stop strings, calls the sinks)
// exchanging one step message per iteration. EngineHooks lets a user add to the pipeline
// (observers, an admission policy, a custom proposer) while the engine does the loading.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "actors/pipeline.h"
#include "actors/remote/cluster_status.h"
#include "actors/request.h"
#include "actors/scheduler.h"
#include "config/engine_config.h"
#include "quant/options.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

struct EngineHooks {
  // Called with the builder once the engine has configured it from EngineConfig, just
  // before build(): add observers, an admission policy or a custom proposer (spawn stages
  // in `sys`, the engine's actor system), or force every message through serialization.
  std::function<void(PipelineBuilder& builder, caf::actor_system& sys)> customize;
};

class Engine {
 public:
  explicit Engine(EngineConfig cfg, EngineHooks hooks = {});  // loads the model and starts the actors
  ~Engine();                          // stop()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Never blocks. Returns the request id; every outcome (tokens, errors, cancellation)
  // arrives through `sink`, ending with exactly one event that has finished = true.
  int64_t submit(GenerateRequest req, TokenSink sink);
  void cancel(int64_t request_id);
  SchedulerStats stats();             // a round trip to the scheduler
  void stop();                        // idempotent

  const Tokenizer& tokenizer() const;
  const EngineConfig& config() const { return cfg_; }
  int64_t max_model_len() const { return max_model_len_; }
  std::string speculation() const;    // what drafts ("" without speculation), for logs
  // The step-time model SLO-aware scheduling starts from ("" without targets), for logs.
  std::string startup_step_time() const;
  const Pipeline& pipeline() const;   // the stages' handles
  // The pipeline's workers (--pipeline-workers), null without remote stages.
  std::shared_ptr<const ClusterStatus> cluster() const;
  caf::actor_system& system();

 private:
  struct Impl;
  EngineConfig cfg_;
  int64_t max_model_len_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
