// AVX2 kernels for CPUs without AVX-512 VNNI (compiled with -mavx2 -mfma -mf16c; called
// only after the cpuid check in qmatmul.cpp). Same packed layout and math as the AVX-512
// path; a 16-row tile is two ymm halves (rows 0-7 are bytes 0-31 of each 64-byte group,
// rows 8-15 bytes 32-63).
//
// Without vpdpbusd the 4-byte dot is vpmaddubsw (u8 x s8 -> saturating i16 pairs) then
// vpmaddwd by ones (-> i32). Saturation decides the details:
//  - 4-bit: 2 * 15 * 127 = 3810 per pair, so the 8 products of a block are summed in i16
//    (<= 30480) and widened once per block.
//  - 8-bit: q + 128 (up to 255) would saturate, so the offset is flipped back to signed q
//    and the sign moved onto the activation: maddubs(|q|, sign(x, q)) <= 2 * 128 * 127.
//    This computes the true dot, so the 8-bit offset is 0 here (Kernels::offset8).
#include <immintrin.h>

#include "quant/qkernel.h"

namespace troupe::quant::detail {
namespace {

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

// Integer dot (offset already removed for 8-bit, not for Q4_0) of 8 rows (half h) of one
// tile-block with 32 activation bytes.
template <bool k4>
inline __m256i block_dot(const uint8_t* blk, int h, const int8_t* xp) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (k4) {
    const __m256i m = _mm256_set1_epi8(0x0f);
    __m256i p = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + 64 * j + 32 * h));
      p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(v, m), bcast4(xp + 8 * j)));
      p = _mm256_add_epi16(p, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m),
                                                   bcast4(xp + 8 * j + 4)));
    }
    return _mm256_madd_epi16(p, ones);
  } else {
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    __m256i acc = _mm256_setzero_si256();
    for (int k = 0; k < 8; ++k) {
      const __m256i q = _mm256_xor_si256(
          _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + 64 * k + 32 * h)), flip);
      const __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(bcast4(xp + 4 * k), q));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
    }
    return acc;
  }
}

template <QFormat F>
void run(const PackedW& W, const QAct& A, int64_t T, int64_t tile0, int64_t tile1, float* y,
         const float* bias) {
  constexpr bool k4 = is_4bit(F);
  constexpr int64_t BB = tile_block_bytes(F);
  for (int64_t tile = tile0; tile < tile1; ++tile) {
    const int64_t r0 = tile * kTileRows;
    for (int64_t t = 0; t < T; ++t) {
      const int8_t* xq = A.q + t * A.stride;
      const float* xd = A.d + t * A.nb;
      const uint8_t* wp = W.w + tile * W.nb * BB;
      __m256 yacc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
      int64_t b = 0;
      for (int64_t g = 0; g < W.ng; ++g) {
        __m256 gacc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        for (const int64_t bend = b + W.group_blocks; b < bend; ++b, wp += BB) {
          const __m256 dx = _mm256_set1_ps(xd[b]);
          const __m256i off = _mm256_set1_epi32(A.off[t * A.nb + b]);
          for (int h = 0; h < 2; ++h) {
            const __m256 af = _mm256_cvtepi32_ps(_mm256_add_epi32(block_dot<k4>(wp, h, xq + b * kBlock), off));
            if constexpr (F == QFormat::Int8) {
              yacc[h] = _mm256_fmadd_ps(af, dx, yacc[h]);
            } else if constexpr (F == QFormat::Int4) {
              gacc[h] = _mm256_fmadd_ps(af, dx, gacc[h]);
            } else {
              const __m256 ds = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(
                  W.d16 + (tile * W.ng + b) * kTileRows + 8 * h)));
              yacc[h] = _mm256_fmadd_ps(af, _mm256_mul_ps(ds, dx), yacc[h]);
            }
          }
        }
        if constexpr (F == QFormat::Int4) {
          const __m256 gs = _mm256_set1_ps(A.gsum[t * A.ng + g]);
          for (int h = 0; h < 2; ++h) {
            const int64_t k = (tile * W.ng + g) * kTileRows + 8 * h;
            const __m256 s = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(W.d16 + k)));
            const __m256 z = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(W.z + k))));
            yacc[h] = _mm256_fmadd_ps(s, gacc[h], yacc[h]);
            yacc[h] = _mm256_fnmadd_ps(_mm256_mul_ps(s, z), gs, yacc[h]);
          }
        }
      }
      alignas(32) float out[kTileRows];
      for (int h = 0; h < 2; ++h) {
        if constexpr (F == QFormat::Int8) yacc[h] = _mm256_mul_ps(yacc[h], _mm256_load_ps(W.s32 + r0 + 8 * h));
        _mm256_store_ps(out + 8 * h, yacc[h]);
      }
      float* yt = y + t * W.rows + r0;
      for (int r = 0; r < kTileRows && r0 + r < W.rows; ++r) yt[r] = out[r] + (bias ? bias[r0 + r] : 0.0f);
    }
  }
}

}  // namespace

void quantize_act_avx2(const float* x, int64_t n, int64_t nb, int8_t* q, float* d,
                       int32_t* sum) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t i0 = b * kBlock;
    alignas(32) float buf[kBlock] = {};
    const float* src = x + i0;
    if (n - i0 < kBlock) {  // zero-padded tail
      for (int64_t i = i0; i < n; ++i) buf[i - i0] = x[i];
      src = buf;
    }
    __m256 v[4], m = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_loadu_ps(src + 8 * j);
      m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[j]));
    }
    const float amax = hmax(m);
    d[b] = amax / 127.0f;
    const __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
    __m256i qi[4];
    for (int j = 0; j < 4; ++j) qi[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], id));
    // packs interleave 128-bit lanes; the permute restores element order.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i0),
                        _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    sum[b] = hsum(_mm256_add_epi32(_mm256_add_epi32(qi[0], qi[1]), _mm256_add_epi32(qi[2], qi[3])));
  }
}

void tiles_avx2(const PackedW& W, const QAct& A, int64_t T, int64_t tile0, int64_t tile1,
                float* y, const float* bias, cpu::GemvFetch) {
  switch (W.fmt) {
    case QFormat::Int8: run<QFormat::Int8>(W, A, T, tile0, tile1, y, bias); break;
    case QFormat::Int4: run<QFormat::Int4>(W, A, T, tile0, tile1, y, bias); break;
    case QFormat::Q8_0: run<QFormat::Q8_0>(W, A, T, tile0, tile1, y, bias); break;
    case QFormat::Q4_0: run<QFormat::Q4_0>(W, A, T, tile0, tile1, y, bias); break;
  }
}

}  // namespace troupe::quant::detail
