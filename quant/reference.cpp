// Scalar references: dequantize a row, then dot in double. No layout knowledge beyond the
// element accessors of QuantizedMatrix (and GGUF's block format for dequantize_gguf_row).
#include "quant/reference.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/half.h"

namespace troupe::quant::ref {

void dequantize_gguf_row(const TensorView& t, int64_t r, float* out) {
  const uint8_t* row = t.row_ptr(r);
  const int64_t bb = dtype_block_bytes(t.dtype);
  for (int64_t b = 0; b < t.cols() / kBlock; ++b) {
    const uint8_t* blk = row + b * bb;
    uint16_t dh;
    std::memcpy(&dh, blk, 2);
    const float d = f16_to_f32(dh);
    for (int j = 0; j < kBlock; ++j) {
      float v;
      if (t.dtype == DType::Q8_0)
        v = static_cast<float>(static_cast<int8_t>(blk[2 + j]));
      else if (t.dtype == DType::Q4_0)
        v = static_cast<float>((j < 16 ? blk[2 + j] & 15 : blk[2 + j - 16] >> 4) - 8);
      else
        fail("dequantize_gguf_row: '{}' is {}, not Q8_0/Q4_0", t.name, dtype_name(t.dtype));
      out[b * kBlock + j] = v * d;
    }
  }
}

void quantize_activation_row(const float* x, int64_t n, int8_t* q, float* d) {
  for (int64_t b = 0; b * kBlock < n; ++b) {
    float amax = 0.0f;
    for (int64_t i = b * kBlock; i < n && i < (b + 1) * kBlock; ++i)
      amax = std::fmax(amax, std::fabs(x[i]));
    d[b] = amax / 127.0f;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int64_t j = 0; j < kBlock; ++j) {
      const int64_t i = b * kBlock + j;
      q[i] = i < n ? static_cast<int8_t>(std::nearbyint(x[i] * id)) : 0;
    }
  }
}

namespace {

void matmul_rows(const float* x, int64_t T, const QuantizedMatrix& W, float* y,
                 const float* bias, bool qact) {
  const int64_t in = W.cols(), out = W.rows(), nb = (in + kBlock - 1) / kBlock;
  std::vector<float> xs(static_cast<size_t>(T * in)), w(static_cast<size_t>(in)), d(nb);
  std::vector<int8_t> q(static_cast<size_t>(nb * kBlock));
  for (int64_t t = 0; t < T; ++t) {
    float* xt = xs.data() + t * in;
    if (!qact) {
      std::memcpy(xt, x + t * in, static_cast<size_t>(in) * 4);
      continue;
    }
    quantize_activation_row(x + t * in, in, q.data(), d.data());
    for (int64_t i = 0; i < in; ++i) xt[i] = static_cast<float>(q[i]) * d[i / kBlock];
  }
  for (int64_t o = 0; o < out; ++o) {
    W.dequantize_row(o, w.data());
    for (int64_t t = 0; t < T; ++t) {
      double s = bias ? bias[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) s += static_cast<double>(xs[t * in + i]) * w[i];
      y[t * out + o] = static_cast<float>(s);
    }
  }
}

}  // namespace

void qmatmul(const float* x, int64_t T, const QuantizedMatrix& W, float* y, const float* bias) {
  matmul_rows(x, T, W, y, bias, false);
}

void qmatmul_qact(const float* x, int64_t T, const QuantizedMatrix& W, float* y,
                  const float* bias) {
  matmul_rows(x, T, W, y, bias, true);
}

void act_error_bound(const float* x, int64_t T, const QuantizedMatrix& W, float* bound) {
  const int64_t in = W.cols(), out = W.rows(), nb = (in + kBlock - 1) / kBlock;
  std::vector<float> w(static_cast<size_t>(in)), d(static_cast<size_t>(T * nb));
  std::vector<int8_t> q(static_cast<size_t>(nb * kBlock));
  for (int64_t t = 0; t < T; ++t) quantize_activation_row(x + t * in, in, q.data(), d.data() + t * nb);
  for (int64_t o = 0; o < out; ++o) {
    W.dequantize_row(o, w.data());
    for (int64_t t = 0; t < T; ++t) {
      double s = 0.0;
      for (int64_t i = 0; i < in; ++i) s += std::fabs(w[i]) * 0.5 * d[t * nb + i / kBlock];
      bound[t * out + o] = static_cast<float>(s);
    }
  }
}

}  // namespace troupe::quant::ref
