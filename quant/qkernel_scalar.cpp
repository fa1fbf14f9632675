// Portable fallback kernels (any x86-64 or other CPU): the same integer math as the SIMD
// paths - int8 activations per 32-block, integer block dots, float scaling per block or
// group - on the packed layout, one row at a time.
#include <cmath>

#include "core/half.h"
#include "quant/qkernel.h"

namespace troupe::quant::detail {
namespace {

// Integer dot of one row's tile-block with 32 activation bytes, the format's constant
// offset (8-bit: +128, Q4_0: 8) not yet removed.
int32_t block_dot(const uint8_t* blk, bool four_bit, int rr, const int8_t* xq) {
  int32_t s = 0;
  for (int k = 0; k < kBlock; ++k) {
    int w;
    if (four_bit) {
      const uint8_t v = blk[(k / 8) * 64 + rr * 4 + k % 4];
      w = (k % 8) >= 4 ? v >> 4 : v & 15;
    } else {
      w = blk[(k / 4) * 64 + rr * 4 + k % 4];
    }
    s += w * xq[k];
  }
  return s;
}

}  // namespace

void quantize_act_scalar(const float* x, int64_t n, int64_t nb, int8_t* q, float* d,
                         int32_t* sum) {
  for (int64_t b = 0; b < nb; ++b) {
    float amax = 0.0f;
    for (int64_t i = b * kBlock; i < n && i < (b + 1) * kBlock; ++i)
      amax = std::fmax(amax, std::fabs(x[i]));
    d[b] = amax / 127.0f;
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int32_t s = 0;
    for (int64_t j = 0; j < kBlock; ++j) {
      const int64_t i = b * kBlock + j;
      const int v = i < n ? static_cast<int>(std::nearbyint(x[i] * id)) : 0;
      q[i] = static_cast<int8_t>(v);
      s += v;
    }
    sum[b] = s;
  }
}

void tiles_scalar(const PackedW& W, const QAct& A, int64_t T, int64_t tile0, int64_t tile1,
                  float* y, const float* bias) {
  const bool four = is_4bit(W.fmt);
  const int64_t bb = tile_block_bytes(W.fmt);
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t* wt = W.w + tile * W.nb * bb;
    for (int rr = 0; rr < kTileRows; ++rr) {
      const int64_t r = tile * kTileRows + rr;
      if (r >= W.rows) break;
      for (int64_t t = 0; t < T; ++t) {
        const int8_t* xq = A.q + t * A.stride;
        const float* xd = A.d + t * A.nb;
        const int32_t* xo = A.off + t * A.nb;
        float acc = 0.0f, gacc = 0.0f;
        for (int64_t b = 0; b < W.nb; ++b) {
          const int32_t dot = block_dot(wt + b * bb, four, rr, xq + b * kBlock) +
                              (W.fmt == QFormat::Int4 ? 0 : xo[b]);
          switch (W.fmt) {
            case QFormat::Int8:
              acc += static_cast<float>(dot) * xd[b];
              break;
            case QFormat::Q8_0:
            case QFormat::Q4_0:
              acc += static_cast<float>(dot) * xd[b] * f16_to_f32(W.d16[(tile * W.ng + b) * kTileRows + rr]);
              break;
            case QFormat::Int4: {
              gacc += static_cast<float>(dot) * xd[b];
              if ((b + 1) % W.group_blocks == 0) {
                const int64_t g = b / W.group_blocks, k = (tile * W.ng + g) * kTileRows + rr;
                const float s = f16_to_f32(W.d16[k]);
                acc += s * gacc - s * static_cast<float>(W.z[k]) * A.gsum[t * A.ng + g];
                gacc = 0.0f;
              }
              break;
            }
          }
        }
        if (W.fmt == QFormat::Int8) acc *= W.s32[r];
        y[t * W.rows + r] = acc + (bias ? bias[r] : 0.0f);
      }
    }
  }
}

}  // namespace troupe::quant::detail
