#pragma once
// troupe::Engine - the library API. Start from a config, submit requests, receive streamed
// tokens through a callback, cancel, stop. Inside, the pipeline of actors:
//   admission -> scheduler -> executor -> shard (detached thread, owns the backend)
// exchanging one step message per iteration.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "actors/request.h"
#include "actors/scheduler.h"
#include "quant/options.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

struct EngineConfig {
  std::string model;                   // HF directory or .gguf file
  int threads = 0;                     // compute threads (0: all cores)
  int64_t block_size = 16;             // KV block size in tokens
  int64_t kv_cache_bytes = 0;          // 0: enough for max_num_seqs full-length sequences, capped at 25% of RAM
  int64_t max_model_len = 0;           // 0: the model's max_position_embeddings
  int64_t max_waiting = 1024;
  quant::Options quantization;         // none | int8 | int4 (+ group) at load | awq (pre-quantized)
  SchedulerConfig scheduler;
};

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

 private:
  struct Impl;
  EngineConfig cfg_;
  int64_t max_model_len_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
