#pragma once
// Pre-quantized Hugging Face checkpoints: config.json carries a `quantization_config` and the
// linear layers of each block store integer weights instead of `<name>.weight`. Two layouts:
//
//  AutoAWQ (GEMM version), as published and as vLLM loads it with quantization="awq":
//    quantization_config {quant_method: "awq", bits: 4, group_size: G, zero_point: true,
//                         version: "gemm"}
//    <name>.qweight  I32 [in, out/8]   eight 4-bit q per int32; nibble n holds column
//                                      [0,2,4,6,1,3,5,7][n] of its 8 output columns
//    <name>.qzeros   I32 [in/G, out/8] zero points, packed the same way
//    <name>.scales   F16 [in/G, out]   w[o][i] = (q[i][o] - z[i/G][o]) * s[i/G][o]
//
//  troupe INT8 (written by `troupe quantize --bits 8`; no common community format exists
//  for weight-only per-channel INT8 in plain safetensors):
//    quantization_config {quant_method: "troupe_int8", bits: 8, group_size: -1,
//                         zero_point: false, version: "per_channel"}
//    <name>.qweight  I8  [out, in]     row-major like the float weight
//    <name>.scales   F32 [out]         w[o][i] = q[o][i] * s[o]   (symmetric, q in [-127, 127])
//
// A linear layer that still stores `<name>.weight` (AutoAWQ's modules_to_not_convert) loads
// as a float layer. Everything else (embeddings, norms, biases, lm_head) is a float tensor as
// in any HF checkpoint.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/tensor_names.h"
#include "model/weights.h"

namespace troupe {

// The view of linear layer `i` (LinearIndex, model/tensor_names.h).
TensorView& linear_view(LayerWeights& l, int i);
const TensorView& linear_view(const LayerWeights& l, int i);

struct QuantizationConfig {
  std::string quant_method;   // "awq" | "troupe_int8"
  int bits = 0;               // 4 (awq) | 8 (troupe_int8)
  int group_size = 0;         // awq: 32 / 64 / 128; troupe_int8: -1 (whole row)
  bool zero_point = false;
  std::string version;        // awq: "gemm"
};

// One linear layer as stored: views into the mapped checkpoint (see the layouts above).
struct StoredQuantLinear {
  enum class Format : uint8_t { Float, Awq4, Int8 };
  Format format = Format::Float;  // Float: the layer's LayerWeights view holds the weight
  int group = 0;
  int64_t in = 0, out = 0;
  TensorView qweight, qzeros, scales;
};

// A model as loaded from disk, quantized or not.
struct Checkpoint {
  ModelWeights weights;  // linear views of pre-quantized layers are empty
  std::optional<QuantizationConfig> quant;
  // One entry per layer when `quant` is set; empty otherwise.
  std::vector<std::array<StoredQuantLinear, kNumLinears>> layers;
};

// The quantization_config of `path`'s config.json (nullopt: a float checkpoint, a GGUF file,
// or no such file). Throws troupe::Error for a quantization troupe cannot run (GPTQ, AWQ
// GEMV/Marlin versions, AWQ without zero points, other bit widths), naming the field.
std::optional<QuantizationConfig> read_quantization_config(const std::string& path);

// Loads any model path: float HF directories and GGUF files through load_model(), and
// pre-quantized HF directories with their quantized linear layers in `layers`. Shapes and
// dtypes are checked against the config; errors name the file and tensor.
Checkpoint load_checkpoint(const std::string& path);

}  // namespace troupe
