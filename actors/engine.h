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
#include "actors/request.h"
#include "actors/scheduler.h"
#include "quant/options.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

// Speculative decoding, vLLM's flags: --speculative-model, --num-speculative-tokens,
// --speculative-method, --ngram-min/--ngram-max (prompt_lookup_min/max).
struct SpeculativeConfig {
  std::string method;                  // "draft" | "ngram"; empty: "draft" if model is set
  std::string model;                   // draft model path, or self:int8 / self:int4
  int32_t num_speculative_tokens = 0;  // K, the most drafts per sequence and step (0: off)
  int32_t ngram_min = 2, ngram_max = 4;
  bool adaptive = true;                // false: always min(K, what the sequence can take)
  double min_gain = 1.02;              // predicted speedup below which a step does not speculate
  int draft_threads = 0;               // draft model compute threads (0: as the target)
  bool calibrate = true;               // measure step-time curves at startup (controller.h)
  bool test_skip_residual = false;     // TEST ONLY: breaks sampling losslessness (verify.h)
  bool enabled() const { return num_speculative_tokens > 0 && (!method.empty() || !model.empty()); }
};

struct EngineConfig {
  std::string model;                   // HF directory or .gguf file
  int threads = 0;                     // compute threads (0: all cores)
  int64_t block_size = 16;             // KV block size in tokens
  int64_t kv_cache_bytes = 0;          // 0: enough for max_num_seqs full-length sequences, capped at 25% of RAM
  int64_t max_model_len = 0;           // 0: the model's max_position_embeddings
  int64_t max_waiting = 1024;
  quant::Options quantization;         // none | int8 | int4 (+ group) at load | awq (pre-quantized)
  SchedulerConfig scheduler;
  SpeculativeConfig speculative;
};

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
  const Pipeline& pipeline() const;   // the stages' handles
  caf::actor_system& system();

 private:
  struct Impl;
  EngineConfig cfg_;
  int64_t max_model_len_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
