#pragma once
// The backend interface (ggml-backend / CTranslate2 style): cpu/ and gpu/ implement it.
// A backend owns the weights in its preferred layout and the physical KV block pool; it
// knows nothing of scheduling policy - the caller (scheduler) decides which blocks a
// sequence uses and passes them in each StepSeq's block table.
#include <cstdint>
#include <string>
#include <vector>

#include "core/kv_dtype.h"
#include "model/config.h"
#include "model/step.h"

namespace troupe {

struct KvCacheShape {
  int64_t num_blocks = 0;
  int64_t block_size = 16;       // tokens per block
  int64_t bytes_per_block = 0;   // all layers this backend holds, K and V (Int8 scales included)
  KvDtype dtype = KvDtype::F32;  // stored element type (core/kv_dtype.h)
};

// The transformer layers [begin, end) a backend holds. A whole-model backend holds all of
// them; a pipeline-parallel stage a slice (the first stage also embeds the tokens, the last
// also computes the logits).
struct LayerRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
  bool operator==(const LayerRange&) const = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const ModelConfig& config() const = 0;
  virtual std::string name() const = 0;
  virtual KvCacheShape kv_shape() const = 0;
  // Runs the model over `batch`; writes K/V of every computed token into its block and
  // fills out.logits for the requested rows. Blocking; call from a compute thread.
  virtual void run_step(const StepBatch& batch, StepOutput& out) = 0;
  virtual LayerRange layers() const { return {0, config().num_layers}; }
  // One pipeline stage's part of a step. `hidden` holds the [num_tokens, hidden_size]
  // activations entering layers().begin (ignored by the first stage, which embeds the
  // tokens); on return it holds those leaving layers().end - 1, except on the last stage,
  // which fills `out` with the logits instead and leaves `hidden` empty.
  virtual void run_stage(const StepBatch& batch, std::vector<float>& hidden, StepOutput& out) {
    hidden.clear();
    run_step(batch, out);
  }
  // Copies one physical KV block to another (copy-on-write of a shared prefix block).
  virtual void copy_block(int32_t src, int32_t dst) = 0;
  // Bytes of weights streamed per decoded token (for the roofline).
  virtual int64_t weight_bytes_per_token() const = 0;
};

}  // namespace troupe
