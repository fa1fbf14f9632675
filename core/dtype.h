#pragma once
// Element types of weight tensors. Block-quantized types (GGML's Q8_0, Q4_0) store
// `block_elems` values in `block_bytes` bytes along the innermost dimension.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace troupe {

enum class DType : uint8_t { F32, F16, BF16, Q8_0, Q4_0, I32, I8, U8 };

std::string_view dtype_name(DType t);
// Elements per block and bytes per block (1 and sizeof(elem) for plain types).
int64_t dtype_block_elems(DType t);
int64_t dtype_block_bytes(DType t);
// Bytes for a row of n elements (n must be a multiple of the block size for quantized types).
int64_t dtype_row_bytes(DType t, int64_t n);

// GGML block layouts (ggml-common.h): scale then quants.
constexpr int kQK8_0 = 32;  // Q8_0: f16 d; int8 qs[32]          -> 34 bytes
constexpr int kQK4_0 = 32;  // Q4_0: f16 d; uint8 qs[16] (nibbles) -> 18 bytes; v = (q - 8) * d

}  // namespace troupe
