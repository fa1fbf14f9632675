// Portable fallback kernels (any x86-64 or other CPU): the same integer math as the SIMD
// paths - int8 activations per 32-block, integer block dots, float scaling per block or
// group - on the packed layout, one row at a time.
#include <cmath>

#include "core/half.h"
#include "quant/qkernel.h"

namespace troupe::quant::detail {
namespace {

// acc[r] += integer dot of row r of one tile-block with 32 activation bytes. Written as
// loops over the 16 rows of each 64-byte group so the compiler can vectorise them.
void block_dot_8bit(const uint8_t* blk, const int8_t* xp, int32_t* acc) {
  for (int j = 0; j < 8; ++j) {
    const uint8_t* g = blk + 64 * j;
    const int8_t* x = xp + 4 * j;
    for (int r = 0; r < kTileRows; ++r)
      acc[r] += g[4 * r] * x[0] + g[4 * r + 1] * x[1] + g[4 * r + 2] * x[2] + g[4 * r + 3] * x[3];
  }
}

void block_dot_4bit(const uint8_t* blk, const int8_t* xp, int32_t* acc) {
  for (int j = 0; j < 4; ++j) {
    const uint8_t* g = blk + 64 * j;
    const int8_t* lo = xp + 8 * j;
    const int8_t* hi = lo + 4;
    for (int r = 0; r < kTileRows; ++r) {
      int32_t s = 0;
      for (int c = 0; c < 4; ++c) s += (g[4 * r + c] & 15) * lo[c] + (g[4 * r + c] >> 4) * hi[c];
      acc[r] += s;
    }
  }
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
                  float* y, const float* bias, cpu::GemvFetch) {
  const bool four = is_4bit(W.fmt);
  const int64_t bb = tile_block_bytes(W.fmt);
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const uint8_t* wt = W.w + tile * W.nb * bb;
    const int64_t r0 = tile * kTileRows;
    for (int64_t t = 0; t < T; ++t) {
      const int8_t* xq = A.q + t * A.stride;
      const float* xd = A.d + t * A.nb;
      const int32_t* xo = A.off + t * A.nb;
      float yacc[kTileRows] = {}, gacc[kTileRows], ds[kTileRows];
      int64_t b = 0;
      for (int64_t g = 0; g < W.ng; ++g) {
        for (float& v : gacc) v = 0.0f;
        for (const int64_t bend = b + W.group_blocks; b < bend; ++b) {
          int32_t acc[kTileRows];
          for (int32_t& v : acc) v = W.fmt == QFormat::Int4 ? 0 : xo[b];
          if (four)
            block_dot_4bit(wt + b * bb, xq + b * kBlock, acc);
          else
            block_dot_8bit(wt + b * bb, xq + b * kBlock, acc);
          if (W.fmt == QFormat::Q8_0 || W.fmt == QFormat::Q4_0)
            for (int r = 0; r < kTileRows; ++r) ds[r] = f16_to_f32(W.d16[(tile * W.ng + b) * kTileRows + r]);
          for (int r = 0; r < kTileRows; ++r) {
            const float v = static_cast<float>(acc[r]) * xd[b];
            if (W.fmt == QFormat::Int8)
              yacc[r] += v;
            else if (W.fmt == QFormat::Int4)
              gacc[r] += v;
            else
              yacc[r] += v * ds[r];
          }
        }
        if (W.fmt == QFormat::Int4) {  // zero point: z * s * sum over the group of d * sum(q)
          const int64_t k = (tile * W.ng + g) * kTileRows;
          const float gs = A.gsum[t * A.ng + g];
          for (int r = 0; r < kTileRows; ++r) {
            const float sc = f16_to_f32(W.d16[k + r]);
            yacc[r] += sc * gacc[r] - sc * static_cast<float>(W.z[k + r]) * gs;
          }
        }
      }
      for (int r = 0; r < kTileRows && r0 + r < W.rows; ++r) {
        const float v = W.fmt == QFormat::Int8 ? yacc[r] * W.s32[r0 + r] : yacc[r];
        y[t * W.rows + r0 + r] = v + (bias ? bias[r0 + r] : 0.0f);
      }
    }
  }
}

}  // namespace troupe::quant::detail
