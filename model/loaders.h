#pragma once
// Internal to model/: the per-format loaders behind load_model() and what they share.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace troupe::detail {

ModelWeights load_hf_dir(const std::string& dir);

// The parts of load_hf_dir that other Hugging Face layouts (pre-quantized checkpoints,
// model/quantized_checkpoint.cpp) share:
// config.json (+ generation_config.json for bos/eos), validated.
ModelConfig read_hf_config(const std::string& dir);
// Every tensor of the checkpoint by name, across shards.
struct TensorIndex {
  std::vector<std::shared_ptr<SafetensorsFile>> files;
  std::unordered_map<std::string, std::pair<const SafetensorsFile*, const SafetensorsEntry*>> by_name;

  void add_file(const std::string& path) {
    auto f = std::make_shared<SafetensorsFile>(SafetensorsFile::open(path));
    for (const auto& e : f->tensors()) {
      if (!by_name.emplace(e.name, std::make_pair(f.get(), &e)).second) {
        fail("{}: tensor {} is also stored in {}", path, e.name, by_name[e.name].first->path());
      }
    }
    files.push_back(std::move(f));
  }
};
// model.safetensors, or the shards of model.safetensors.index.json, of directory `dir`.
TensorIndex open_tensors(const std::string& dir);
// Maps one tensor of the index by name and records it as used; `required` false: an empty
// view when it is absent.
using TakeTensor = std::function<TensorView(const std::string& name, bool required)>;
// The dtype a stored tensor loads as, or a troupe::Error naming `file` and the tensor.
using StoredDType = DType (*)(const SafetensorsEntry& e, const std::string& file);
// A TakeTensor over `idx` whose views `w` keeps alive; errors name `w.source`.
TakeTensor hf_tensor_taker(ModelWeights& w, const TensorIndex& idx, std::unordered_set<std::string>& used,
                           StoredDType dtype_of);
// Takes the tensors of `w.config` that every HF layout stores in float, by their HF names
// (model/tensor_names.h): embeddings and lm_head (tied or not), the final norm, and in each
// block the norms and biases, plus the linear weights when `linears`. Into `used` go also
// what is stored but ignored: lm_head beside tied embeddings, rotary inv_freq buffers.
void take_hf_tensors(ModelWeights& w, const TensorIndex& idx, std::unordered_set<std::string>& used,
                     const TakeTensor& take, bool linears);
// Throws for the first tensor of `idx` not in `used`: it would be silently ignored (extra
// layers, o_proj/mlp biases, ...). `model` names what troupe runs ("qwen2", "awq qwen2").
void refuse_unused(const TensorIndex& idx, const std::unordered_set<std::string>& used,
                   const std::string& model);
ModelWeights load_gguf(const std::string& path);

// A view of `nbytes` stored bytes. The data is used in place unless it is misaligned for its
// element type (possible in a safetensors file whose header length is not a multiple of 4,
// or a GGUF with alignment 1); then it is copied into a buffer `w` keeps alive.
TensorView make_view(ModelWeights& w, std::string name, DType dtype, std::vector<int64_t> shape,
                     const uint8_t* data, int64_t nbytes);

// Checks the config and that every tensor is present with the shape the config implies;
// throws troupe::Error naming w.source and the tensor.
void check_weights(const ModelWeights& w);

// "llama" / "mistral" / "qwen2" / "qwen3".
std::optional<Arch> parse_arch(std::string_view name);

}  // namespace troupe::detail
