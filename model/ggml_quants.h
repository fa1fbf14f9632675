#pragma once
// Reference GGML block quantization (ggml-quants.c quantize_row_*_ref / dequantize_row_*),
// used to write Q8_0/Q4_0 GGUF files and to read them back in tests. Bit-exact with ggml:
// other GGUF readers must see the same numbers we meant.
#include <cstdint>

namespace troupe {

// n must be a multiple of 32. `dst` receives n/32 blocks (34 bytes for Q8_0, 18 for Q4_0).
void quantize_row_q8_0(const float* x, uint8_t* dst, int64_t n);
void quantize_row_q4_0(const float* x, uint8_t* dst, int64_t n);
void dequantize_row_q8_0(const uint8_t* src, float* y, int64_t n);
void dequantize_row_q4_0(const uint8_t* src, float* y, int64_t n);

}  // namespace troupe
