#pragma once
// Writes a pre-quantized Hugging Face checkpoint in the layouts model/quantized_checkpoint.h
// reads: AutoAWQ GEMM (4-bit) or troupe INT8 (8-bit), one model.safetensors, the source's
// config.json with a quantization_config added, and the tokenizer files copied.
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "quant/qtensor.h"

namespace troupe::app {

// A float tensor to store as is (embeddings, norms, biases, an unquantized lm_head).
struct FloatTensor {
  std::string name;            // HF name, e.g. "model.norm.weight"
  DType dtype = DType::F32;    // F32 | F16 | BF16
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // little-endian elements of dtype
};

// A quantized linear layer: `module` is the HF module path ("model.layers.0.self_attn.q_proj");
// Int4 matrices become qweight/qzeros/scales (AutoAWQ), Int8 ones qweight/scales.
struct QuantLinearOut {
  std::string module;
  quant::QuantizedMatrix matrix;
};

struct CheckpointOut {
  std::string src_dir;  // HF directory whose config.json and tokenizer files are carried over
  std::string out_dir;  // created if missing
  int bits = 4;         // 4: awq layout (every matrix Int4 with one group size); 8: troupe_int8
  int group = 128;
  std::vector<FloatTensor> floats;
  std::vector<QuantLinearOut> linears;
};

// Throws troupe::Error on a format mismatch or I/O failure. The safetensors file is written
// to a temporary name and renamed, so a failed run leaves no half-written model.
void write_checkpoint(const CheckpointOut& ck);

}  // namespace troupe::app
