#include "model/tensor_names.h"

#include <fmt/format.h>

#include <string_view>

#include "core/error.h"

namespace troupe {

std::string hf_block_prefix(int64_t layer) { return fmt::format("model.layers.{}.", layer); }

std::string gguf_block_prefix(int64_t layer) { return fmt::format("blk.{}.", layer); }

bool has_block_tensor(const ModelConfig& c, const BlockTensor& t) {
  switch (t.when) {
    case BlockTensor::When::AttentionBias: return c.attention_bias;
    case BlockTensor::When::QkNorm: return c.qk_norm;
    default: return true;
  }
}

const BlockTensor& block_tensor(TensorView LayerWeights::*view) {
  for (const BlockTensor& t : kBlockTensors)
    if (t.view == view) return t;
  fail("tensor_names: a LayerWeights view without a name");  // every view has an entry
}

std::string hf_tensor_name(int64_t layer, TensorView LayerWeights::*view) {
  return hf_block_prefix(layer) + block_tensor(view).hf;
}

std::string gguf_tensor_name(int64_t layer, TensorView LayerWeights::*view) {
  return gguf_block_prefix(layer) + block_tensor(view).gguf;
}

std::string linear_module_name(int i) {
  for (const BlockTensor& t : kBlockTensors) {
    if (t.linear != i) continue;
    std::string_view name = t.hf;
    name.remove_suffix(std::string_view(".weight").size());  // the module's weight parameter
    return std::string(name);
  }
  return "";
}

}  // namespace troupe
