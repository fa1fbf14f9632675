#pragma once
// Plain scalar references for the quantized formats and qmatmul: obviously correct, slow,
// used by tests (and by quantize() to read GGUF rows when converting between formats).
#include <cstdint>

#include "model/tensor.h"
#include "quant/qtensor.h"

namespace troupe::quant::ref {

// Row r of a GGUF Q8_0 / Q4_0 tensor dequantized straight from its stored blocks.
void dequantize_gguf_row(const TensorView& t, int64_t r, float* out);

// Activation quantization as the kernels define it: blocks of 32 (the tail zero-padded),
// d = amax / 127, q = round-to-nearest-even(x * (127 / amax)). q: nb * 32, d: nb.
void quantize_activation_row(const float* x, int64_t n, int8_t* q, float* d);

// y[t, o] = sum_i x[t, i] * W[o, i] (+ bias[o]) with W dequantized row by row and the sum
// in double: the float-activation ground truth.
void qmatmul(const float* x, int64_t T, const QuantizedMatrix& W, float* y,
             const float* bias = nullptr);
// The same with every x row replaced by its int8 block quantization: what the integer
// (VNNI) kernels compute, up to float rounding.
void qmatmul_qact(const float* x, int64_t T, const QuantizedMatrix& W, float* y,
                  const float* bias = nullptr);
// Worst-case |qmatmul_qact - qmatmul| per output: sum_i |W[o, i]| * d_block(i) / 2, since
// activation rounding moves each x by at most half a step.
void act_error_bound(const float* x, int64_t T, const QuantizedMatrix& W, float* bound);

}  // namespace troupe::quant::ref
