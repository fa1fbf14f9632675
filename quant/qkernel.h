#pragma once
// Internal interface between qmatmul.cpp and the per-ISA kernel files
// (qkernel_avx512.cpp, qkernel_avx2.cpp, qkernel_scalar.cpp).
//
// Deliberately free of STL includes: the ISA files are compiled with -mavx512* / -mavx2
// flags, and any inline function with external linkage they instantiate (std::min,
// std::vector<...>::...) could be merged by the linker with the generic copy and execute
// AVX-512 code on a CPU without it. Everything in those files lives in an anonymous
// namespace except the entry points declared here.
#include <cstdint>

#include "cpu/host_tuning.h"

namespace troupe::quant {

// Storage formats of a QuantizedMatrix (see qtensor.h for the math and the layout).
enum class QFormat : uint8_t {
  Int8,  // symmetric per output channel: w = q * s[row], q in [-127, 127]
  Int4,  // asymmetric per (row, group of 32/64/128 inputs): w = (q - z) * s, q, z in [0, 15]
  Q8_0,  // GGUF Q8_0: per (row, 32-block) f16 d: w = q * d, q in [-128, 127]
  Q4_0,  // GGUF Q4_0: per (row, 32-block) f16 d: w = (q - 8) * d, q in [0, 15]
};

// Output rows interleaved in one tile: one AVX-512 vector of int32/float lanes.
constexpr int kTileRows = 16;
// Inputs per block: the unit of activation quantization and of the packed weight layout.
constexpr int kBlock = 32;

constexpr bool is_4bit(QFormat f) { return f == QFormat::Int4 || f == QFormat::Q4_0; }
// Bytes of one tile-block (16 rows x 32 inputs).
constexpr int64_t tile_block_bytes(QFormat f) { return is_4bit(f) ? 256 : 512; }

namespace detail {

// A non-owning view of a packed matrix, as the kernels see it.
struct PackedW {
  QFormat fmt;
  int64_t rows;          // real output rows (the last tile may be partial)
  int64_t tiles;         // ceil(rows / 16)
  int64_t nb;            // blocks of 32 inputs per row (packed, zero-padded)
  int64_t ng;            // scale groups per row (Int4: nb / group_blocks; Q*: nb; Int8: 1)
  int64_t group_blocks;  // blocks per scale group (Int4: group / 32; Q*: 1; Int8: nb)
  const uint8_t* w;      // [tiles][nb][tile_block_bytes]
  const uint16_t* d16;   // f16 scales [tiles][ng][16] (Int4, Q8_0, Q4_0)
  const float* s32;      // f32 row scales [tiles * 16] (Int8)
  const uint8_t* z;      // zero points [tiles][ng][16] (Int4)
};

// Activations quantized to int8 per block of 32: x[t][i] ~= q[t][i] * d[t][i / 32].
struct QAct {
  const int8_t* q;      // [T][stride], zero beyond the real input length
  int64_t stride;       // >= nb * 32
  const float* d;       // [T][nb]
  // [T][nb] -offset * sum(q over the block): the integer block dot's start value, which
  // removes a constant weight offset (Kernels::offset8 for 8-bit formats, 8 for Q4_0).
  const int32_t* off;
  const float* gsum;    // [T][ng]  Int4: sum over the group's blocks of d * sum(q)
  int64_t nb, ng;
};

// Quantizes one activation row of n floats into nb blocks (the tail of the last block,
// and any further block, is zero). Every ISA version produces bit-identical results:
// d = amax / 127, q = round_to_nearest_even(x * (127 / amax)).
using QuantizeActFn = void (*)(const float* x, int64_t n, int64_t nb, int8_t* q, float* d,
                               int32_t* sum);
// y[t * rows + r] = sum_i x[t][i] * W[r][i] (+ bias[r]) for t < T and the rows of tiles
// [tile0, tile1). `fetch`: how the AVX-512 GEMV (T = 1) fetches ahead (cpu/host_tuning.h);
// the other kernels leave their fetching to the hardware and ignore it.
using TilesFn = void (*)(const PackedW& W, const QAct& A, int64_t T, int64_t tile0,
                         int64_t tile1, float* y, const float* bias, cpu::GemvFetch fetch);

void quantize_act_scalar(const float* x, int64_t n, int64_t nb, int8_t* q, float* d,
                         int32_t* sum);
void tiles_scalar(const PackedW& W, const QAct& A, int64_t T, int64_t tile0, int64_t tile1,
                  float* y, const float* bias, cpu::GemvFetch fetch);
void quantize_act_avx2(const float* x, int64_t n, int64_t nb, int8_t* q, float* d,
                       int32_t* sum);
void tiles_avx2(const PackedW& W, const QAct& A, int64_t T, int64_t tile0, int64_t tile1,
                float* y, const float* bias, cpu::GemvFetch fetch);
void quantize_act_avx512(const float* x, int64_t n, int64_t nb, int8_t* q, float* d,
                         int32_t* sum);
// The int8 dot-product peak probe's loop: kDotChains independent vpdpbusd chains in
// registers, `iters` times acc[j] += sum of 4 (u8 1 x s8 {1, 1, -1, 0}) per lane, i.e. +1;
// writes lane 0 of chain j (j + iters) to out[j] and returns the multiply-adds done.
constexpr int kDotChains = 16;
int64_t dot_chains_avx512(int64_t iters, int32_t* out);
void tiles_avx512(const PackedW& W, const QAct& A, int64_t T, int64_t tile0, int64_t tile1,
                  float* y, const float* bias, cpu::GemvFetch fetch);

}  // namespace detail
}  // namespace troupe::quant
