#include "model/ggml_quants.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/half.h"

namespace troupe {

// Q8_0 block: f16 d, then int8 q[32]; x = d * q with d = absmax / 127.
void quantize_row_q8_0(const float* x, uint8_t* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQK8_0; ++b, x += kQK8_0, dst += 2 + kQK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t dh = f32_to_f16(d);
    std::memcpy(dst, &dh, 2);
    for (int j = 0; j < kQK8_0; ++j) {
      dst[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[j] * id)));
    }
  }
}

// Q4_0 block: f16 d, then 16 bytes; byte j holds element j (low nibble) and element j+16
// (high nibble); x = (q - 8) * d. d maps the element of largest magnitude to -8 (keeping
// its sign), so that extreme is exact and the range is [-8, 7] * d.
void quantize_row_q4_0(const float* x, uint8_t* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQK4_0; ++b, x += kQK4_0, dst += 2 + kQK4_0 / 2) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK4_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const uint16_t dh = f32_to_f16(d);
    std::memcpy(dst, &dh, 2);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      // ggml truncates (x + 8.5) toward zero, i.e. rounds half up; values are >= 0 here.
      const float x0 = x[j] * id;
      const float x1 = x[kQK4_0 / 2 + j] * id;
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x0 + 8.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x1 + 8.5f)));
      dst[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void dequantize_row_q8_0(const uint8_t* src, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK8_0; ++b, src += 2 + kQK8_0, y += kQK8_0) {
    uint16_t dh;
    std::memcpy(&dh, src, 2);
    const float d = f16_to_f32(dh);
    for (int j = 0; j < kQK8_0; ++j) y[j] = static_cast<float>(static_cast<int8_t>(src[2 + j])) * d;
  }
}

void dequantize_row_q4_0(const uint8_t* src, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK4_0; ++b, src += 2 + kQK4_0 / 2, y += kQK4_0) {
    uint16_t dh;
    std::memcpy(&dh, src, 2);
    const float d = f16_to_f32(dh);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      y[j] = static_cast<float>((src[2 + j] & 0x0f) - 8) * d;
      y[j + kQK4_0 / 2] = static_cast<float>((src[2 + j] >> 4) - 8) * d;
    }
  }
}

}  // namespace troupe
