#pragma once
// Quantized weight matrices W [out, in] for the CPU kernels in qmatmul.h.
//
// Formats (w is the dequantized weight of output row r, input i):
//   Int8  w = q * s[r]                  q int8 in [-127, 127], s f32 per row (symmetric,
//                                       per output channel, s = max|w| / 127)
//   Int4  w = (q - z[r,g]) * s[r,g]     q, z in [0, 15], s f16, g = i / group, group 32/64/128
//                                       (asymmetric min/max round-to-nearest; AutoAWQ's math)
//   Q8_0  w = q * d[r,b]                GGUF Q8_0 blocks of 32, d f16, q int8
//   Q4_0  w = (q - 8) * d[r,b]          GGUF Q4_0 blocks of 32, d f16, q in [0, 15]
//
// Packed layout (one layout for all formats, chosen for the AVX-512 VNNI kernel):
//   Rows are grouped in tiles of 16 and inputs in blocks of 32; a tile-block is stored
//   contiguously, tiles outermost then blocks: w[tile][block][...]. Inside a tile-block
//   the 16 rows are interleaved 4 inputs at a time, so one 64-byte load is the operand of
//   one vpdpbusd (16 int32 lanes = 16 rows, each the dot of 4 weight bytes with the same
//   4 activation bytes):
//     8-bit (Int8, Q8_0): 512 bytes; byte [k4 * 64 + r * 4 + c] = q[r][4 * k4 + c] + 128
//                         (offset binary: vpdpbusd wants the unsigned operand; the +128
//                         is cancelled exactly by the activation block sum).
//     4-bit (Int4, Q4_0): 256 bytes; byte [j * 64 + r * 4 + c] holds q[r][8j + c] in the
//                         low nibble and q[r][8j + 4 + c] in the high nibble.
//   Scales sit in separate arrays, 16 per tile and group: d16[tile][group][16] (f16; for
//   Q8_0/Q4_0 the group is the 32-block), z[tile][group][16] (u8, Int4), s32[tile * 16]
//   (Int8). Rows past `out` in the last tile are zero with zero scale. Inputs are
//   zero-padded to a multiple of 32 (Int8) or of the group (Int4).
// GGUF Q8_0/Q4_0 tensors are repacked once at load (a linear pass, bit-exact: the same
// quants and f16 scales, never a float copy); the packed copy is as large as the original.
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "cpu/thread_pool.h"
#include "model/tensor.h"
#include "quant/qkernel.h"

namespace troupe::quant {

std::string_view qformat_name(QFormat f);

class QuantizedMatrix {
 public:
  QuantizedMatrix() = default;

  QFormat format() const { return fmt_; }
  int64_t rows() const { return rows_; }  // out
  int64_t cols() const { return cols_; }  // in
  // Inputs sharing one scale: 32 (Q8_0, Q4_0), the group (Int4), cols() (Int8).
  int group() const { return group_; }
  bool empty() const { return rows_ == 0; }
  // A deep copy (copies otherwise share the immutable packed buffer).
  QuantizedMatrix clone() const;
  // Bytes a copy of this matrix occupies (its arrays, each 64-byte aligned): a multiple of 64.
  int64_t storage_bytes() const;
  // A deep copy into storage_bytes() bytes at dst (64-byte aligned) of an allocation that
  // `owner` keeps alive, e.g. one buffer on huge pages holding a model's matrices in the
  // order a step reads them (cpu_backend.cpp).
  QuantizedMatrix relocated(uint8_t* dst, const std::shared_ptr<uint8_t[]>& owner) const;
  // Rows [r0, r1) as a matrix that shares this one's packed buffer (no copy). Whole tiles
  // only: r0 % 16 == 0, and r1 % 16 == 0 or r1 == rows() (the padding of a partial last
  // tile must be this matrix's own).
  QuantizedMatrix row_slice(int64_t r0, int64_t r1) const;
  // Bytes a GEMV streams: packed weights, scales and zero points.
  int64_t nbytes() const { return bytes_; }

  // Element access (slow; for tests, references and writers).
  // w[r][i] = (q(r, i) - zero(r, i)) * scale(r, i).
  int q(int64_t r, int64_t i) const;
  int zero(int64_t r, int64_t i) const;
  float scale(int64_t r, int64_t i) const;
  void dequantize_row(int64_t r, float* out) const;  // out: cols() floats

  // Raw views for the kernels.
  detail::PackedW packed() const;

  // Builders (below) fill a freshly allocated matrix (q = 0, zero scales) through these.
  // Distinct rows may be set from different threads.
  static QuantizedMatrix allocate(QFormat fmt, int64_t rows, int64_t cols, int group);
  void set_q(int64_t r, int64_t i, int q);                  // q as in q() above
  void set_row_q(int64_t r, const int8_t* q);               // cols() values, fast path
  void set_scale_bits(int64_t r, int64_t g, uint16_t f16);  // Int4, Q8_0, Q4_0
  void set_row_scale(int64_t r, float s);                   // Int8
  void set_zero(int64_t r, int64_t g, int z);               // Int4
  uint16_t scale_bits(int64_t r, int64_t g) const;          // Int4, Q8_0, Q4_0

 private:
  friend QuantizedMatrix concat_rows(std::span<const QuantizedMatrix* const> parts);
  friend QuantizedMatrix from_awq(const int32_t*, const int32_t*, const uint16_t*, int64_t,
                                  int64_t, int, cpu::ThreadPool*);
  int64_t packed_cols() const { return nb_ * kBlock; }
  // Format and sizes set, no storage yet; point_into() lays the arrays out at p.
  static QuantizedMatrix shaped(QFormat fmt, int64_t rows, int64_t cols, int group);
  void point_into(uint8_t* p);
  void copy_arrays_to(QuantizedMatrix& m) const;
  // Byte sizes of the arrays for tiles_ tiles (w, d16, s32, z).
  int64_t w_bytes() const;
  int64_t d16_bytes() const;
  int64_t s32_bytes() const;
  int64_t z_bytes() const;
  int64_t w_offset(int64_t r, int64_t i) const;

  QFormat fmt_ = QFormat::Int8;
  int64_t rows_ = 0, cols_ = 0, tiles_ = 0, nb_ = 0, ng_ = 0;
  int group_ = 0;
  int64_t bytes_ = 0;
  // One 64-byte aligned allocation: weights, then f16 scales, f32 scales, zero points.
  // Immutable once built, so copies share it.
  std::shared_ptr<uint8_t[]> buf_;
  uint8_t* w_ = nullptr;
  uint16_t* d16_ = nullptr;
  float* s32_ = nullptr;
  uint8_t* z_ = nullptr;
};

// Builders take an optional pool to split the rows over (load time: ~0.2-0.5 G weights/s
// per thread).
//
// Round-to-nearest quantizers from a row-major float matrix [out, in].
QuantizedMatrix quantize_int8(const float* w, int64_t out, int64_t in,
                              cpu::ThreadPool* pool = nullptr);
// group in {32, 64, 128}; in need not be a multiple of it (the last group is padded).
QuantizedMatrix quantize_int4(const float* w, int64_t out, int64_t in, int group = 128,
                              cpu::ThreadPool* pool = nullptr);

// Any stored weight matrix: F32/F16/BF16 quantized to any format (converted a row at a
// time, never a full float copy); Q8_0/Q4_0 tensors repacked as is when `fmt` matches
// their dtype (and dequantized row by row, then requantized, otherwise).
QuantizedMatrix quantize(const TensorView& w, QFormat fmt, int group = 128,
                         cpu::ThreadPool* pool = nullptr);
// The matrices stacked by rows (out = the sum of theirs) into one packed buffer, so that
// linear layers sharing one input (q/k/v, gate/up) run as one qmatmul: each output row
// is computed exactly as in its own matrix (tiles are independent). Empty when they
// cannot be stacked: different format, input size or group, or a part other than the
// last whose rows are not whole tiles (a multiple of 16).
QuantizedMatrix concat_rows(std::span<const QuantizedMatrix* const> parts);

// A GGUF Q8_0 or Q4_0 tensor [out, in], repacked bit-exactly.
QuantizedMatrix from_gguf(const TensorView& w, cpu::ThreadPool* pool = nullptr);

// AutoAWQ (GEMM version) 4-bit tensors of a linear layer with in_features `in`,
// out_features `out`: qweight int32 [in, out/8], qzeros int32 [in/group, out/8], scales
// f16 bits [in/group, out]. Nibble n (bits 4n..4n+3) of an int32 holds column
// kAwqOrder[n] of its 8 columns; w[o][i] = (q[i][o] - z[i/group][o]) * s[i/group][o].
inline constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
struct AwqTensors {
  int64_t in = 0, out = 0;
  int group = 128;
  std::vector<int32_t> qweight, qzeros;
  std::vector<uint16_t> scales;
};
QuantizedMatrix from_awq(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales,
                         int64_t in, int64_t out, int group, cpu::ThreadPool* pool = nullptr);
QuantizedMatrix from_awq(const AwqTensors& t, cpu::ThreadPool* pool = nullptr);
// The reverse, for writers: Int4 only, out % 8 == 0 and in % group == 0.
AwqTensors to_awq(const QuantizedMatrix& m);

}  // namespace troupe::quant
