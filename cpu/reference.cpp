// Scalar references: the specification the SIMD kernels are tested against. Written for
// obviousness, not speed; reductions accumulate in double so they are (nearly) exact and
// test tolerances measure only the fast kernel's rounding.
#include "cpu/reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/half.h"

namespace troupe::cpu::ref {
namespace {

float weight_at(const TensorView& W, int64_t r, int64_t c) {
  if (W.layout != MatrixLayout::RowMajor) fail("reference: '{}' is not row-major", W.name);
  const uint8_t* row = W.row_ptr(r);
  switch (W.dtype) {
    case DType::F32: {
      float v;
      std::memcpy(&v, row + 4 * c, 4);
      return v;
    }
    case DType::F16: {
      uint16_t h;
      std::memcpy(&h, row + 2 * c, 2);
      return f16_to_f32(h);
    }
    case DType::BF16: {
      uint16_t h;
      std::memcpy(&h, row + 2 * c, 2);
      return bf16_to_f32(h);
    }
    case DType::Q8_0: {
      const uint8_t* blk = row + (c / kQK8_0) * dtype_block_bytes(DType::Q8_0);
      uint16_t d;
      std::memcpy(&d, blk, 2);
      const int8_t q = static_cast<int8_t>(blk[2 + c % kQK8_0]);
      return static_cast<float>(q) * f16_to_f32(d);
    }
    case DType::Q4_0: {
      const uint8_t* blk = row + (c / kQK4_0) * dtype_block_bytes(DType::Q4_0);
      uint16_t d;
      std::memcpy(&d, blk, 2);
      const int j = static_cast<int>(c % kQK4_0);
      const uint8_t byte = blk[2 + (j % 16)];
      const int q = (j < 16 ? (byte & 0xF) : (byte >> 4)) - 8;
      return static_cast<float>(q) * f16_to_f32(d);
    }
    default:
      fail("reference: unsupported dtype {}", dtype_name(W.dtype));
  }
}

}  // namespace

void matmul(const float* x, int64_t T, const TensorView& W, float* y, const float* bias) {
  const int64_t out = W.rows(), in = W.cols();
  if (W.layout != MatrixLayout::RowMajor) fail("reference matmul: '{}' is not row-major", W.name);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t o = 0; o < out; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) acc += double(x[t * in + i]) * double(weight_at(W, o, i));
      y[t * out + o] = static_cast<float>(acc);
    }
  }
}

void rmsnorm(const float* x, const float* w, float* out, int64_t n, float eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * double(x[i]);
  const double inv = 1.0 / std::sqrt(ss / double(n) + double(eps));
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(double(x[i]) * inv * double(w[i]));
}

void rope(float* v, int64_t n_heads, int64_t head_dim, int64_t pos, float theta, RopeStyle style) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* x = v + h * head_dim;
    for (int64_t j = 0; j < half; ++j) {
      const double freq = std::pow(double(theta), -2.0 * double(j) / double(head_dim));
      const double angle = double(pos) * freq;
      const double c = std::cos(angle), s = std::sin(angle);
      // Halves pairs (j, j + d/2) like HF; Adjacent pairs (2j, 2j + 1) like GGUF/llama2.c.
      const int64_t a = style == RopeStyle::Halves ? j : 2 * j;
      const int64_t b = style == RopeStyle::Halves ? j + half : 2 * j + 1;
      const double x0 = x[a], x1 = x[b];
      x[a] = static_cast<float>(x0 * c - x1 * s);
      x[b] = static_cast<float>(x0 * s + x1 * c);
    }
  }
}

void silu_mul(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    gate[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * double(up[i]));
  }
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  double mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, double(x[i]));
  double sum = 0;
  std::vector<double> e(n);
  for (int64_t i = 0; i < n; ++i) sum += e[i] = std::exp(double(x[i]) - mx);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(e[i] / sum);
}

void embedding_row(const TensorView& table, int64_t row, float* out) {
  for (int64_t c = 0; c < table.cols(); ++c) out[c] = weight_at(table, row, c);
}

// Element d of KV head kvh's row at position p of a paged K or V pool (`base`, with its Int8
// scales), decoded one scalar at a time from the stored dtype.
static double kv_element(const PagedKv& kv, const void* base, const float* scales, int64_t p,
                         int64_t kvh, int64_t d) {
  const int64_t block = kv.block_table[p / kv.block_size];
  const int64_t row = kv_head_row(block, p % kv.block_size, kvh, kv.block_size, kv.n_kv_heads);
  const int64_t i = row * kv.head_dim + d;
  switch (kv.dtype) {
    case KvDtype::F32: return static_cast<const float*>(base)[i];
    case KvDtype::F16: return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case KvDtype::BF16: return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case KvDtype::Int8: return static_cast<float>(static_cast<const int8_t*>(base)[i]) * scales[row];  // in float, as stored values read back
  }
  return NAN;
}

void attention_one(const float* q, int64_t n_heads, const PagedKv& kv, int64_t n_ctx,
                   float scale, float* out) {
  const int64_t hd = kv.head_dim, group = n_heads / kv.n_kv_heads;
  std::vector<double> s(n_ctx);
  for (int64_t h = 0; h < n_heads; ++h) {
    const int64_t kvh = h / group;
    const float* qh = q + h * hd;
    double mx = -INFINITY;
    for (int64_t p = 0; p < n_ctx; ++p) {
      double dot = 0;
      for (int64_t d = 0; d < hd; ++d) dot += double(qh[d]) * kv_element(kv, kv.k, kv.k_scale, p, kvh, d);
      s[p] = dot * double(scale);
      mx = std::max(mx, s[p]);
    }
    double sum = 0;
    for (int64_t p = 0; p < n_ctx; ++p) sum += s[p] = std::exp(s[p] - mx);
    for (int64_t d = 0; d < hd; ++d) {
      double acc = 0;
      for (int64_t p = 0; p < n_ctx; ++p) acc += s[p] / sum * kv_element(kv, kv.v, kv.v_scale, p, kvh, d);
      out[h * hd + d] = static_cast<float>(acc);
    }
  }
}

}  // namespace troupe::cpu::ref
