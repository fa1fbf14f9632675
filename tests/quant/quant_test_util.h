#pragma once
// Random data for the quant tests: weights like a trained linear layer (normal, a few
// larger outliers) and activations like a residual stream (normal with outlier channels).
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/half.h"

namespace troupe::quant::test {

inline std::vector<float> random_weights(int64_t out, int64_t in, uint32_t seed,
                                         float sigma = 0.02f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, sigma);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(out * in));
  for (auto& v : w) v = n(rng) * (u(rng) < 0.002f ? 8.0f : 1.0f);
  return w;
}

inline std::vector<float> random_acts(int64_t T, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(T * in));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < in; ++i) x[t * in + i] = n(rng) * (i % 97 == 5 ? 20.0f : 1.0f);
  return x;
}

// Raw GGUF Q8_0 / Q4_0 blocks with random quants and f16 scales around `d`.
inline std::vector<uint8_t> random_gguf(DType t, int64_t out, int64_t in, uint32_t seed,
                                        float d = 0.002f) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  const int64_t bb = dtype_block_bytes(t), nblocks = out * in / 32;
  std::vector<uint8_t> v(static_cast<size_t>(nblocks * bb));
  for (int64_t b = 0; b < nblocks; ++b) {
    const uint16_t h = f32_to_f16(d * u(rng) * (byte(rng) & 1 ? 1.0f : -1.0f));
    v[b * bb] = static_cast<uint8_t>(h & 0xff);
    v[b * bb + 1] = static_cast<uint8_t>(h >> 8);
    for (int64_t j = 2; j < bb; ++j) v[b * bb + j] = static_cast<uint8_t>(byte(rng));
  }
  return v;
}

}  // namespace troupe::quant::test
