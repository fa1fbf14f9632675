#include "model/tensor_names.h"

#include <fmt/format.h>

#include <string_view>

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
