#pragma once
// The CPU backend: runs a Llama-family model over a batch of sequences of different
// lengths (prefill chunks, single decode tokens, 1+k verification runs) with K/V in a
// paged block pool. Weights are used in place from the mapped file when their dtype has a
// kernel (F32, F16); other dtypes are converted to F32 once at load.
#include <cstdint>
#include <memory>
#include <vector>

#include "cpu/thread_pool.h"
#include "model/backend.h"
#include "model/weights.h"

namespace troupe::cpu {

struct CpuBackendOptions {
  int num_threads = 0;               // 0: all hardware threads
  int64_t block_size = 16;           // tokens per KV block
  int64_t num_blocks = 0;            // 0: derive from kv_cache_bytes
  int64_t kv_cache_bytes = int64_t(256) << 20;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(ModelWeights weights, const CpuBackendOptions& opts);
  ~CpuBackend() override;

  const ModelConfig& config() const override { return w_.config; }
  std::string name() const override;
  KvCacheShape kv_shape() const override { return kv_shape_; }
  void run_step(const StepBatch& batch, StepOutput& out) override;
  void copy_block(int32_t src, int32_t dst) override;
  int64_t weight_bytes_per_token() const override { return w_.bytes_per_token(); }

  ThreadPool& pool() { return pool_; }
  const ModelWeights& weights() const { return w_; }

 private:
  struct Scratch;
  void check_batch(const StepBatch& batch) const;
  void forward_layer(int64_t layer, const StepBatch& batch, Scratch& s);

  ModelWeights w_;
  ThreadPool pool_;
  KvCacheShape kv_shape_;
  std::vector<float> k_cache_, v_cache_;  // [layer][block][slot][kv_dim]
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace troupe::cpu
