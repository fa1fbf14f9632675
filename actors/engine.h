#pragma once
// troupe::Engine - the library API. Start from a config, submit requests, receive streamed
// tokens through a callback, cancel, stop. Inside, the pipeline of actors:
//   admission -> scheduler -> executor -> shard (detached thread, owns the backend)
// exchanging one step message per iteration. With speculative decoding a drafter actor
// sits between scheduler and executor (which then verifies the drafts).
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "actors/request.h"
#include "actors/scheduler.h"
#include "config/engine_config.h"
#include "quant/options.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

class Engine {
 public:
  explicit Engine(EngineConfig cfg);  // loads the model and starts the actors
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

 private:
  struct Impl;
  EngineConfig cfg_;
  int64_t max_model_len_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
