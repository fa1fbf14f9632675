#pragma once
// What troupe::Engine (actors/engine.h) is started from: the model, KV-cache sizing,
// quantization, scheduler and speculative decoding. Flags: config/flags.h.

#include <cstdint>
#include <string>

#include "config/cluster_config.h"
#include "config/kv_config.h"
#include "config/quant_config.h"
#include "config/scheduler_config.h"

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
  KvCacheConfig kv;                    // block size and pool memory
  int64_t max_model_len = 0;           // 0: the model's max_position_embeddings
  int64_t max_waiting = 1024;
  quant::Options quantization;         // none | int8 | int4 (+ group) at load | awq (pre-quantized)
  SchedulerConfig scheduler;
  SpeculativeConfig speculative;
  ClusterConfig cluster;               // remote pipeline stages (actors/remote/)
};

}  // namespace troupe
