#pragma once
// Internal to model/: the per-format loaders behind load_model() and what they share.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/weights.h"

namespace troupe::detail {

ModelWeights load_hf_dir(const std::string& dir);
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
