#pragma once
// The CPU backend: runs a Llama-family model over a batch of sequences of different
// lengths (prefill chunks, single decode tokens, 1+k verification runs) with K/V in a
// paged block pool. Float weights run in F32, F16 or BF16 as stored, repacked at load into
// MatrixLayout::Panels (CpuBackendOptions::huge_page_weights; on huge pages where THP is on)
// or else used row-major in place from the mapped file (BF16 is then converted to F32 once
// at load). Quantized linear layers
// (GGUF Q8_0/Q4_0 tensors, pre-quantized AutoAWQ / troupe INT8 checkpoints, or INT8/INT4
// round-to-nearest at load per CpuBackendOptions::quantization) are repacked once into the
// quant/ kernels' layout and run through quant::qmatmul, never dequantized to floats.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cpu/thread_pool.h"
#include "model/backend.h"
#include "model/quantized_checkpoint.h"
#include "model/weights.h"
#include "quant/options.h"
#include "quant/qtensor.h"

namespace troupe::cpu {

struct CpuBackendOptions {
  int num_threads = 0;               // 0: all hardware threads
  int64_t block_size = 16;           // tokens per KV block
  int64_t num_blocks = 0;            // 0: derive from kv_cache_bytes
  int64_t kv_cache_bytes = int64_t(256) << 20;
  // Stored element type of K and V (core/kv_dtype.h); bytes_per_block and so the number of
  // blocks kv_cache_bytes holds follow it.
  KvDtype kv_dtype = KvDtype::F32;
  // none: run as stored; int8/int4: quantize the 7 linear layers of every block (and the
  // LM head per lm_head) at load; awq: the checkpoint must be pre-quantized. A
  // pre-quantized checkpoint also runs as published with none.
  quant::Options quantization;
  // Copy the float matrices every decode step streams (linear layers, LM head) out of the
  // mapped file into one anonymous buffer, repacked into MatrixLayout::Panels (faster
  // matmuls at every T, the same bits at every T), on transparent huge pages where THP is
  // on, in the order a step reads them. Costs a copy of those weights at load (the file's
  // page cache becomes reclaimable). Skipped when the weights are more than half of RAM;
  // the kernels then read row-major views of the file (BF16 matrices, which only panels
  // run as stored, are converted to F32 copies). Quantized matrices (built one heap
  // allocation each) are moved into one such buffer too, in step order.
  bool huge_page_weights = true;
  // Stack the rows of q/k/v and of gate/up at load so that each group runs as one matmul
  // (one pool barrier per group instead of 3 or 2; each output is computed exactly as
  // unstacked). Quantized groups are stacked in place (the per-linear matrices become
  // views of the stack); float groups only as part of the panel copy (the mapped
  // file's tensors are not adjacent), so not when that copy is skipped.
  bool fuse_linears = true;
  // A pipeline-parallel stage holds layers [layer_begin, layer_end) only (their KV, their
  // quantized copies); layer_end 0: up to the last layer.
  int64_t layer_begin = 0, layer_end = 0;
};

// The inputs of the four groups of linear layers that share one input (and so one AWQ
// scale): q/k/v after the attention norm, o_proj, gate/up after the FFN norm, down_proj.
enum class LinearInput : uint8_t { Qkv, O, GateUp, Down };
constexpr int kNumLinearInputs = 4;

// The groups of linear layers that fuse_linears stacks into one matrix each.
enum class FusedGroup : uint8_t { Qkv, GateUp };
constexpr int kNumFusedGroups = 2;

// Sees the float activations entering each linear group during run_step (calibration for
// `troupe quantize`). Called on the stepping thread, in layer order.
class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  // x: [T, n] row-major, the input of `group` in `layer` for the step's T tokens.
  virtual void observe(int64_t layer, LinearInput group, const float* x, int64_t T,
                       int64_t n) = 0;
};

class CpuBackend final : public Backend {
 public:
  CpuBackend(ModelWeights weights, const CpuBackendOptions& opts);
  // Any checkpoint, including pre-quantized ones (load_checkpoint()).
  CpuBackend(Checkpoint checkpoint, const CpuBackendOptions& opts);
  ~CpuBackend() override;

  const ModelConfig& config() const override { return w_.config; }
  std::string name() const override;
  KvCacheShape kv_shape() const override { return kv_shape_; }
  void run_step(const StepBatch& batch, StepOutput& out) override;
  LayerRange layers() const override { return layers_; }
  void run_stage(const StepBatch& batch, std::vector<float>& hidden, StepOutput& out) override;
  void copy_block(int32_t src, int32_t dst) override;
  // Counts quantized layers at their packed size (weights + scales + zero points).
  int64_t weight_bytes_per_token() const override;

  ThreadPool& pool() { return pool_; }
  // Float tensors; the views of layers that run quantized still point at the stored data
  // (empty for pre-quantized checkpoints).
  const ModelWeights& weights() const { return w_; }
  const quant::Options& quantization() const { return quant_; }
  // The matrix linear `i` (LinearIndex) of `layer` runs on, or null if it runs in float.
  const quant::QuantizedMatrix* quantized(int64_t layer, int i) const;
  const quant::QuantizedMatrix* quantized_lm_head() const;
  // Whether `group` of `layer` runs as one stacked matmul.
  bool fused(int64_t layer, FusedGroup group) const { return fused_linear(layer, group) != nullptr; }
  // Whether the layer's float gate/up run as panel pairs (matmul_glu_pairs).
  bool glu_pairs(int64_t layer) const {
    const FusedLinear* f = fused_linear(layer, FusedGroup::GateUp);
    return f && f->glu_pairs;
  }
  // Null to stop observing. Not to be changed while a step runs.
  void set_observer(ActivationObserver* obs) { observer_ = obs; }

 private:
  struct Scratch;
  // One group's stacked matrix: float rows (panels in the packed copy) or a packed
  // quantized stack, and the stacked biases (zeros for members without one).
  struct FusedLinear {
    TensorView w;
    quant::QuantizedMatrix q;
    std::vector<float> bias;
    // Float gate/up packed by pack_panels_paired: run by matmul_glu_pairs, not linear_fused.
    bool glu_pairs = false;
    bool empty() const { return w.empty() && q.empty(); }
  };
  const FusedLinear* fused_linear(int64_t layer, FusedGroup g) const;
  void fuse_quantized();
  void cut_members(int64_t layer, FusedGroup group, const quant::QuantizedMatrix& stack);
  void fuse_float(const std::vector<std::vector<TensorView*>>& groups, const std::vector<bool>& paired,
                  const std::vector<TensorView>& stacks);
  void set_fused_bias(int64_t layer);
  // y = x W^T (+ bias) for a whole group: [T, rows of the stack].
  void linear_fused(const FusedLinear& f, const float* x, int64_t T, float* y);
  void check_batch(const StepBatch& batch) const;
  void forward_layer(int64_t layer, const StepBatch& batch, Scratch& s);
  void plan_attention(const StepBatch& batch, Scratch& s);
  void prepare_weights(Checkpoint& ck);
  void prepare_lm_head();
  void place_quantized_weights();
  void pack_float_weights();
  // y = x W^T (+ bias) for linear i of layer l, through qmatmul or the float matmul.
  void linear(int64_t l, int i, const float* x, int64_t T, float* y, const float* bias = nullptr);
  void observe(int64_t l, LinearInput g, const float* x, int64_t T, int64_t n) {
    if (observer_) observer_->observe(l, g, x, T, n);
  }

  ModelWeights w_;
  ThreadPool pool_;
  quant::Options quant_;
  bool huge_page_weights_;
  bool converted_matrix_ = false;  // some matrix was converted to an owned F32 copy at load
  // Per layer, per LinearIndex; empty() where the layer runs in float. Empty vector when
  // no layer is quantized.
  std::vector<std::array<quant::QuantizedMatrix, kNumLinears>> qlinear_;
  quant::QuantizedMatrix qlm_head_;
  bool fuse_linears_;
  // Per layer (empty vector when nothing is fused), per FusedGroup.
  std::vector<std::array<FusedLinear, kNumFusedGroups>> fused_;
  ActivationObserver* observer_ = nullptr;
  LayerRange layers_;
  bool first_stage() const { return layers_.begin == 0; }
  bool last_stage() const { return layers_.end == w_.config.num_layers; }
  KvCacheShape kv_shape_;
  // K or V of all held layers in the stored dtype: data is [layer - layers_.begin][block]
  // [slot][kv_head][head_dim] elements; with Int8, scales is [layer - layers_.begin][block]
  // [slot][kv_head] floats (empty otherwise). `data` is on transparent huge pages where THP
  // is on, zeroed by the pool at start (see the constructor).
  struct KvPool {
    struct Free {
      void operator()(uint8_t* p) const { std::free(p); }
    };
    std::unique_ptr<uint8_t, Free> data;
    std::vector<float> scales;
  };
  KvPool k_cache_, v_cache_;
  // Layer l's part of a pool, as the attention kernels take it.
  void* kv_layer_data(KvPool& p, int64_t l) const;
  float* kv_layer_scales(KvPool& p, int64_t l) const;
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace troupe::cpu
