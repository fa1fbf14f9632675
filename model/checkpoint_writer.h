#pragma once
// Writes a pre-quantized Hugging Face checkpoint in the layouts model/quantized_checkpoint.h
// reads: AutoAWQ GEMM (4-bit) or troupe INT8 (8-bit), one model.safetensors, the source's
// config.json with a quantization_config added, and the tokenizer files copied.
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace troupe {

// One tensor as it goes into the safetensors file.
struct StoredTensor {
  std::string name;            // HF name, e.g. "model.norm.weight"
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // little-endian elements of dtype
};

struct CheckpointOut {
  std::string src_dir;  // HF directory whose config.json and tokenizer files are carried over
  std::string out_dir;  // created if missing
  int bits = 4;         // 4: awq layout (every matrix Int4 with one group size); 8: troupe_int8
  int group = 128;
  // Stored as is (embeddings, norms, biases, an unquantized lm_head): F32, F16 or BF16.
  std::vector<StoredTensor> floats;
  // The integer tensors of the quantized linear layers (<module>.qweight, .qzeros, .scales),
  // as quant::stored_tensors() makes them; written after `floats`.
  std::vector<StoredTensor> quantized;
};

// Throws troupe::Error on a format mismatch or I/O failure. The safetensors file is written
// to a temporary name and renamed, so a failed run leaves no half-written model.
void write_checkpoint(const CheckpointOut& ck);

}  // namespace troupe
