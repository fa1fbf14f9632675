// QuantizedMatrix storage, quantizers (round to nearest), GGUF repacking and AutoAWQ
// conversion. The layout is documented in qtensor.h; w_offset() is its single definition.
#include "quant/qtensor.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "core/error.h"
#include "core/half.h"
#include "cpu/kernels.h"
#include "quant/qrow.h"

namespace troupe::quant {
namespace {

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// Largest f16 not below s (s >= 0): a stored scale must cover the group's whole range, or
// the extreme weights would be clipped by up to 15 * (s - f16(s)).
uint16_t f16_at_least(float s) {
  uint16_t h = f32_to_f16(s);
  if (f16_to_f32(h) < s && h < 0x7bff) ++h;  // positive halves are ordered like their bits
  return h;
}

inline float ratio_or_zero(float num, float den) { return den != 0.0f ? num / den : 0.0f; }

// Each quantizer fills q[0, in) for one row and sets that row's scales. Scales are rounded
// to their stored precision before the quants are computed from them.
void quant_row_int8(QuantizedMatrix& m, int64_t r, const float* w, int64_t in, int8_t* q) {
  const float amax = detail::row_absmax(w, in);
  m.set_row_scale(r, amax / 127.0f);
  detail::row_quantize(w, in, ratio_or_zero(127.0f, amax), 0.0f, -127.0f, 127.0f, q);
}

// min/max asymmetric RTN. The range is widened to include 0 so that the integer zero
// point lands in [0, 15] (0 is then exactly representable); for the usual groups that
// straddle zero this is AutoAWQ's pseudo_quantize_tensor.
void quant_row_int4(QuantizedMatrix& m, int64_t r, const float* w, int64_t in, int group,
                    int8_t* q) {
  for (int64_t g0 = 0, g = 0; g0 < in; g0 += group, ++g) {
    const int64_t n = std::min<int64_t>(in - g0, group);
    float lo, hi;
    detail::row_minmax(w + g0, n, &lo, &hi);
    lo = std::min(lo, 0.0f);
    hi = std::max(hi, 0.0f);
    const uint16_t sb = f16_at_least((hi - lo) / 15.0f);
    const float inv = ratio_or_zero(1.0f, f16_to_f32(sb));
    // All-zero group: s = 0, so z = q = 0.
    const float z = std::nearbyint(std::min(std::max(-lo * inv, 0.0f), 15.0f));
    m.set_scale_bits(r, g, sb);
    m.set_zero(r, g, static_cast<int>(z));
    detail::row_quantize(w + g0, n, inv, z, 0.0f, 15.0f, q + g0);
  }
}

void quant_row_q8_0(QuantizedMatrix& m, int64_t r, const float* w, int64_t in, int8_t* q) {
  for (int64_t b = 0; b * kBlock < in; ++b) {
    const uint16_t db = f16_at_least(detail::row_absmax(w + b * kBlock, kBlock) / 127.0f);
    m.set_scale_bits(r, b, db);
    detail::row_quantize(w + b * kBlock, kBlock, ratio_or_zero(1.0f, f16_to_f32(db)), 0.0f,
                         -127.0f, 127.0f, q + b * kBlock);
  }
}

// GGML's Q4_0 choice: d = (value of largest magnitude) / -8, so that value maps to q = 0
// exactly and the opposite side gets the 7 remaining steps (+ clamping of 8 to 7).
void quant_row_q4_0(QuantizedMatrix& m, int64_t r, const float* w, int64_t in, int8_t* q) {
  for (int64_t b = 0; b * kBlock < in; ++b) {
    float lo, hi;
    detail::row_minmax(w + b * kBlock, kBlock, &lo, &hi);
    const uint16_t db = f32_to_f16((-lo > hi ? lo : hi) / -8.0f);
    m.set_scale_bits(r, b, db);
    detail::row_quantize(w + b * kBlock, kBlock, ratio_or_zero(1.0f, f16_to_f32(db)), 8.0f,
                         0.0f, 15.0f, q + b * kBlock);
  }
}

// Runs fn(r0, r1) over row ranges in whole tiles (so threads never share a packed byte).
void for_row_tiles(cpu::ThreadPool* pool, int64_t rows, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t tiles = (rows + kTileRows - 1) / kTileRows;
  auto body = [&](int, int64_t t0, int64_t t1) {
    fn(t0 * kTileRows, std::min(rows, t1 * kTileRows));
  };
  if (pool && tiles > 1)
    pool->parallel_for(tiles, 1, body);
  else
    body(0, 0, tiles);
}

// Quantizes `out` rows produced one at a time by row(r, scratch) -> pointer to `in` floats.
QuantizedMatrix quantize_rows(QFormat fmt, int64_t out, int64_t in, int group,
                              const std::function<const float*(int64_t, float*)>& row,
                              cpu::ThreadPool* pool) {
  QuantizedMatrix m = QuantizedMatrix::allocate(fmt, out, in, group);
  for_row_tiles(pool, out, [&](int64_t r0, int64_t r1) {
    std::vector<float> buf(static_cast<size_t>(in));
    std::vector<int8_t> q(static_cast<size_t>(in));
    for (int64_t r = r0; r < r1; ++r) {
      const float* w = row(r, buf.data());
      switch (fmt) {
        case QFormat::Int8: quant_row_int8(m, r, w, in, q.data()); break;
        case QFormat::Int4: quant_row_int4(m, r, w, in, group, q.data()); break;
        case QFormat::Q8_0: quant_row_q8_0(m, r, w, in, q.data()); break;
        case QFormat::Q4_0: quant_row_q4_0(m, r, w, in, q.data()); break;
      }
      m.set_row_q(r, q.data());
    }
  });
  return m;
}

// Nibble position of each of an AWQ int32's 8 columns (inverse of kAwqOrder).
constexpr int kAwqPos[8] = {0, 4, 1, 5, 2, 6, 3, 7};

void check_awq_shape(int64_t in, int64_t out, int group) {
  if (group != 32 && group != 64 && group != 128)
    fail("AWQ: group size {} unsupported (32, 64 or 128)", group);
  if (in <= 0 || out <= 0 || out % 8 != 0 || in % group != 0)
    fail("AWQ: shape in={} out={} must have out % 8 == 0 and in % group ({}) == 0", in, out,
         group);
}

}  // namespace

std::string_view qformat_name(QFormat f) {
  switch (f) {
    case QFormat::Int8: return "int8";
    case QFormat::Int4: return "int4";
    case QFormat::Q8_0: return "Q8_0";
    case QFormat::Q4_0: return "Q4_0";
  }
  return "?";
}

QuantizedMatrix QuantizedMatrix::shaped(QFormat fmt, int64_t rows, int64_t cols, int group) {
  if (rows < 0 || cols < 0) fail("quantized matrix: bad shape [{}, {}]", rows, cols);
  if (fmt == QFormat::Int4 && group != 32 && group != 64 && group != 128)
    fail("int4: group size {} unsupported (32, 64 or 128)", group);
  if ((fmt == QFormat::Q8_0 || fmt == QFormat::Q4_0) && cols % kBlock != 0)
    fail("{}: input dimension {} is not a multiple of 32", qformat_name(fmt), cols);
  QuantizedMatrix m;
  m.fmt_ = fmt;
  m.rows_ = rows;
  m.cols_ = cols;
  m.group_ = fmt == QFormat::Int4 ? group : fmt == QFormat::Int8 ? static_cast<int>(cols) : kBlock;
  m.tiles_ = (rows + kTileRows - 1) / kTileRows;
  const int64_t kp = round_up(cols, fmt == QFormat::Int4 ? group : kBlock);
  m.nb_ = kp / kBlock;
  m.ng_ = fmt == QFormat::Int4 ? kp / group : fmt == QFormat::Int8 ? 1 : m.nb_;
  m.bytes_ = m.w_bytes() + m.d16_bytes() + m.s32_bytes() + m.z_bytes();
  return m;
}

// The arrays one after another, each 64-byte aligned.
int64_t QuantizedMatrix::storage_bytes() const {
  return std::max<int64_t>(64, round_up(w_bytes(), 64) + round_up(d16_bytes(), 64) +
                                   round_up(s32_bytes(), 64) + round_up(z_bytes(), 64));
}

void QuantizedMatrix::point_into(uint8_t* p) {
  const int64_t o_d16 = round_up(w_bytes(), 64), o_s32 = o_d16 + round_up(d16_bytes(), 64);
  const int64_t o_z = o_s32 + round_up(s32_bytes(), 64);
  w_ = p;
  d16_ = d16_bytes() ? reinterpret_cast<uint16_t*>(p + o_d16) : nullptr;
  s32_ = s32_bytes() ? reinterpret_cast<float*>(p + o_s32) : nullptr;
  z_ = z_bytes() ? p + o_z : nullptr;
}

QuantizedMatrix QuantizedMatrix::allocate(QFormat fmt, int64_t rows, int64_t cols, int group) {
  QuantizedMatrix m = shaped(fmt, rows, cols, group);
  const int64_t total = m.storage_bytes();
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(64, static_cast<size_t>(total)));
  if (!p) fail("quantized matrix: out of memory ({} bytes)", total);
  m.buf_ = std::shared_ptr<uint8_t[]>(p, [](uint8_t* q) { std::free(q); });
  std::memset(p, 0, static_cast<size_t>(total));
  if (!is_4bit(fmt)) std::memset(p, 0x80, static_cast<size_t>(m.w_bytes()));  // q = 0
  m.point_into(p);
  return m;
}

int64_t QuantizedMatrix::w_bytes() const { return tiles_ * nb_ * tile_block_bytes(fmt_); }
int64_t QuantizedMatrix::d16_bytes() const {
  return fmt_ == QFormat::Int8 ? 0 : tiles_ * kTileRows * ng_ * 2;
}
int64_t QuantizedMatrix::s32_bytes() const {
  return fmt_ == QFormat::Int8 ? tiles_ * kTileRows * 4 : 0;
}
int64_t QuantizedMatrix::z_bytes() const {
  return fmt_ == QFormat::Int4 ? tiles_ * kTileRows * ng_ : 0;
}

// Array by array rather than the whole allocation: a row_slice() starts inside its
// buffer's arrays.
void QuantizedMatrix::copy_arrays_to(QuantizedMatrix& m) const {
  std::memcpy(m.w_, w_, static_cast<size_t>(w_bytes()));
  if (d16_) std::memcpy(m.d16_, d16_, static_cast<size_t>(d16_bytes()));
  if (s32_) std::memcpy(m.s32_, s32_, static_cast<size_t>(s32_bytes()));
  if (z_) std::memcpy(m.z_, z_, static_cast<size_t>(z_bytes()));
}

QuantizedMatrix QuantizedMatrix::clone() const {
  QuantizedMatrix m = allocate(fmt_, rows_, cols_, group_);
  if (!empty()) copy_arrays_to(m);
  return m;
}

QuantizedMatrix QuantizedMatrix::relocated(uint8_t* dst, const std::shared_ptr<uint8_t[]>& owner) const {
  if (reinterpret_cast<uintptr_t>(dst) % 64 != 0)
    fail("quantized matrix: relocation target is not 64-byte aligned");
  QuantizedMatrix m = shaped(fmt_, rows_, cols_, group_);
  m.buf_ = std::shared_ptr<uint8_t[]>(owner, dst);  // shares the owner's allocation
  m.point_into(dst);
  if (!empty()) copy_arrays_to(m);
  return m;
}

QuantizedMatrix QuantizedMatrix::row_slice(int64_t r0, int64_t r1) const {
  if (r0 < 0 || r1 > rows_ || r0 >= r1 || r0 % kTileRows != 0 ||
      (r1 % kTileRows != 0 && r1 != rows_))
    fail("quantized matrix: rows [{}, {}) of {} are not whole tiles of {}", r0, r1, rows_,
         kTileRows);
  QuantizedMatrix m = *this;
  const int64_t t0 = r0 / kTileRows;
  m.rows_ = r1 - r0;
  m.tiles_ = (m.rows_ + kTileRows - 1) / kTileRows;
  m.w_ = w_ + t0 * nb_ * tile_block_bytes(fmt_);
  if (d16_) m.d16_ = d16_ + t0 * ng_ * kTileRows;
  if (s32_) m.s32_ = s32_ + r0;
  if (z_) m.z_ = z_ + t0 * ng_ * kTileRows;
  m.bytes_ = m.w_bytes() + m.d16_bytes() + m.s32_bytes() + m.z_bytes();
  return m;
}

QuantizedMatrix concat_rows(std::span<const QuantizedMatrix* const> parts) {
  if (parts.empty()) return {};
  const QuantizedMatrix& first = *parts.front();
  int64_t rows = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const QuantizedMatrix& p = *parts[i];
    if (p.empty() || p.format() != first.format() || p.cols() != first.cols() ||
        p.group() != first.group())
      return {};
    if (i + 1 < parts.size() && p.rows() % kTileRows != 0) return {};
    rows += p.rows();
  }
  QuantizedMatrix m = QuantizedMatrix::allocate(first.format(), rows, first.cols(), first.group());
  // Every array is tile-major, so stacking whole tiles is stacking the arrays.
  int64_t w = 0, d16 = 0, s32 = 0, z = 0;
  for (const QuantizedMatrix* p : parts) {
    std::memcpy(m.w_ + w, p->w_, static_cast<size_t>(p->w_bytes()));
    w += p->w_bytes();
    if (p->d16_) std::memcpy(reinterpret_cast<uint8_t*>(m.d16_) + d16, p->d16_, static_cast<size_t>(p->d16_bytes()));
    d16 += p->d16_bytes();
    if (p->s32_) std::memcpy(reinterpret_cast<uint8_t*>(m.s32_) + s32, p->s32_, static_cast<size_t>(p->s32_bytes()));
    s32 += p->s32_bytes();
    if (p->z_) std::memcpy(m.z_ + z, p->z_, static_cast<size_t>(p->z_bytes()));
    z += p->z_bytes();
  }
  return m;
}

int64_t QuantizedMatrix::w_offset(int64_t r, int64_t i) const {
  const int64_t tile = r / kTileRows, rr = r % kTileRows, b = i / kBlock, k = i % kBlock;
  const int64_t base = (tile * nb_ + b) * tile_block_bytes(fmt_) + rr * 4 + k % 4;
  return base + (is_4bit(fmt_) ? k / 8 : k / 4) * 64;
}

int QuantizedMatrix::q(int64_t r, int64_t i) const {
  const uint8_t v = w_[w_offset(r, i)];
  if (!is_4bit(fmt_)) return static_cast<int>(v) - 128;
  return (i % 8) >= 4 ? v >> 4 : v & 15;
}

void QuantizedMatrix::set_q(int64_t r, int64_t i, int q) {
  uint8_t& v = w_[w_offset(r, i)];
  if (!is_4bit(fmt_))
    v = static_cast<uint8_t>(q + 128);
  else if ((i % 8) >= 4)
    v = static_cast<uint8_t>((v & 0x0f) | (q << 4));
  else
    v = static_cast<uint8_t>((v & 0xf0) | (q & 15));
}

void QuantizedMatrix::set_row_q(int64_t r, const int8_t* q) {
  const int64_t bb = tile_block_bytes(fmt_);
  uint8_t* dst = w_ + (r / kTileRows) * nb_ * bb + (r % kTileRows) * 4;
  int8_t tail[kBlock];
  for (int64_t b = 0; b < nb_; ++b, dst += bb) {
    const int8_t* src = q + b * kBlock;
    if ((b + 1) * kBlock > cols_) {  // last, partial block: pad with q = 0
      for (int64_t k = 0; k < kBlock; ++k) tail[k] = b * kBlock + k < cols_ ? src[k] : 0;
      src = tail;
    }
    if (is_4bit(fmt_)) {
      for (int j = 0; j < 4; ++j)
        for (int c = 0; c < 4; ++c)
          dst[j * 64 + c] = static_cast<uint8_t>((src[8 * j + c] & 15) | (src[8 * j + 4 + c] << 4));
    } else {
      for (int j = 0; j < 8; ++j)
        for (int c = 0; c < 4; ++c) dst[j * 64 + c] = static_cast<uint8_t>(src[4 * j + c] + 128);
    }
  }
}

int QuantizedMatrix::zero(int64_t r, int64_t i) const {
  if (fmt_ == QFormat::Q4_0) return 8;
  if (fmt_ != QFormat::Int4) return 0;
  return z_[((r / kTileRows) * ng_ + i / group_) * kTileRows + r % kTileRows];
}

void QuantizedMatrix::set_zero(int64_t r, int64_t g, int z) {
  z_[((r / kTileRows) * ng_ + g) * kTileRows + r % kTileRows] = static_cast<uint8_t>(z);
}

uint16_t QuantizedMatrix::scale_bits(int64_t r, int64_t g) const {
  return d16_[((r / kTileRows) * ng_ + g) * kTileRows + r % kTileRows];
}

void QuantizedMatrix::set_scale_bits(int64_t r, int64_t g, uint16_t f16) {
  d16_[((r / kTileRows) * ng_ + g) * kTileRows + r % kTileRows] = f16;
}

void QuantizedMatrix::set_row_scale(int64_t r, float s) { s32_[r] = s; }

float QuantizedMatrix::scale(int64_t r, int64_t i) const {
  if (fmt_ == QFormat::Int8) return s32_[r];
  return f16_to_f32(scale_bits(r, i / group_));
}

void QuantizedMatrix::dequantize_row(int64_t r, float* out) const {
  for (int64_t i = 0; i < cols_; ++i)
    out[i] = static_cast<float>(q(r, i) - zero(r, i)) * scale(r, i);
}

detail::PackedW QuantizedMatrix::packed() const {
  detail::PackedW p{};
  p.fmt = fmt_;
  p.rows = rows_;
  p.tiles = tiles_;
  p.nb = nb_;
  p.ng = ng_;
  p.group_blocks = ng_ ? nb_ / ng_ : 0;
  p.w = w_;
  p.d16 = d16_;
  p.s32 = s32_;
  p.z = z_;
  return p;
}

QuantizedMatrix quantize_int8(const float* w, int64_t out, int64_t in, cpu::ThreadPool* pool) {
  return quantize_rows(QFormat::Int8, out, in, 0,
                       [&](int64_t r, float*) { return w + r * in; }, pool);
}

QuantizedMatrix quantize_int4(const float* w, int64_t out, int64_t in, int group,
                              cpu::ThreadPool* pool) {
  return quantize_rows(QFormat::Int4, out, in, group,
                       [&](int64_t r, float*) { return w + r * in; }, pool);
}

QuantizedMatrix from_gguf(const TensorView& t, cpu::ThreadPool* pool) {
  if ((t.dtype != DType::Q8_0 && t.dtype != DType::Q4_0) || t.shape.size() != 2)
    fail("from_gguf: '{}' is not a Q8_0/Q4_0 matrix (dtype {})", t.name, dtype_name(t.dtype));
  const int64_t out = t.rows(), in = t.cols();
  const bool q8 = t.dtype == DType::Q8_0;
  QuantizedMatrix m = QuantizedMatrix::allocate(q8 ? QFormat::Q8_0 : QFormat::Q4_0, out, in, kBlock);
  const int64_t bb = dtype_block_bytes(t.dtype);
  for_row_tiles(pool, out, [&](int64_t r0, int64_t r1) {
    std::vector<int8_t> q(static_cast<size_t>(in));
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = t.row_ptr(r);
      for (int64_t b = 0; b < in / kBlock; ++b) {
        const uint8_t* blk = row + b * bb;
        uint16_t d;
        std::memcpy(&d, blk, 2);
        m.set_scale_bits(r, b, d);
        int8_t* qb = q.data() + b * kBlock;
        if (q8) {
          std::memcpy(qb, blk + 2, kBlock);
        } else {
          for (int j = 0; j < 16; ++j) {
            qb[j] = static_cast<int8_t>(blk[2 + j] & 15);
            qb[j + 16] = static_cast<int8_t>(blk[2 + j] >> 4);
          }
        }
      }
      m.set_row_q(r, q.data());
    }
  });
  return m;
}

QuantizedMatrix quantize(const TensorView& t, QFormat fmt, int group, cpu::ThreadPool* pool) {
  if (t.shape.size() != 2) fail("quantize: '{}' is not a matrix", t.name);
  if (t.layout != MatrixLayout::RowMajor) fail("quantize: '{}' is not row-major", t.name);
  if ((t.dtype == DType::Q8_0 && fmt == QFormat::Q8_0) ||
      (t.dtype == DType::Q4_0 && fmt == QFormat::Q4_0))
    return from_gguf(t, pool);
  const int64_t in = t.cols();
  std::function<const float*(int64_t, float*)> row;
  switch (t.dtype) {
    case DType::F32:
      row = [&](int64_t r, float*) { return reinterpret_cast<const float*>(t.row_ptr(r)); };
      break;
    case DType::F16:
    case DType::BF16:
    case DType::Q8_0:
    case DType::Q4_0:
      row = [&t, in](int64_t r, float* buf) {  // one row at a time through the SIMD converter
        const TensorView one{t.name, t.dtype, {1, in}, t.row_ptr(r), dtype_row_bytes(t.dtype, in)};
        cpu::to_f32(one, buf);
        return static_cast<const float*>(buf);
      };
      break;
    default:
      fail("quantize: '{}' has dtype {}, expected a float or GGUF type", t.name,
           dtype_name(t.dtype));
  }
  return quantize_rows(fmt, t.rows(), in, group, row, pool);
}

// AWQ tensors are [in, out/8]: one int32 holds 8 consecutive output rows of one input.
// Eight outputs 8c..8c+7 lie in one tile (16 % 8 == 0), at bytes 4 apart with the same
// nibble, so each word is scattered with one base offset per input.
QuantizedMatrix from_awq(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales,
                         int64_t in, int64_t out, int group, cpu::ThreadPool* pool) {
  check_awq_shape(in, out, group);
  QuantizedMatrix m = QuantizedMatrix::allocate(QFormat::Int4, out, in, group);
  uint8_t* w = m.w_;
  const int64_t nb = m.nb_, ow = out / 8;
  for_row_tiles(pool, out, [&](int64_t r0, int64_t r1) {
    for (int64_t i = 0; i < in; ++i) {
      const int64_t k = i % kBlock, shift = (k % 8) >= 4 ? 4 : 0;
      const int64_t base = (i / kBlock) * 256 + (k / 8) * 64 + k % 4;
      for (int64_t c = r0 / 8; c < r1 / 8; ++c) {
        const auto word = static_cast<uint32_t>(qweight[i * ow + c]);
        uint8_t* dst = w + (c / 2) * nb * 256 + base + (c % 2) * 32;
        for (int j = 0; j < 8; ++j)
          dst[4 * j] |= static_cast<uint8_t>(((word >> (4 * kAwqPos[j])) & 15) << shift);
      }
    }
    for (int64_t g = 0; g < in / group; ++g)
      for (int64_t o = r0; o < r1; ++o) {
        const auto word = static_cast<uint32_t>(qzeros[g * ow + o / 8]);
        m.set_zero(o, g, static_cast<int>((word >> (4 * kAwqPos[o % 8])) & 15));
        m.set_scale_bits(o, g, scales[g * out + o]);
      }
  });
  return m;
}

QuantizedMatrix from_awq(const AwqTensors& t, cpu::ThreadPool* pool) {
  check_awq_shape(t.in, t.out, t.group);
  const auto ng = static_cast<size_t>(t.in / t.group), ow = static_cast<size_t>(t.out / 8);
  if (t.qweight.size() != static_cast<size_t>(t.in) * ow || t.qzeros.size() != ng * ow ||
      t.scales.size() != ng * static_cast<size_t>(t.out))
    fail("AWQ: tensor sizes do not match in={} out={} group={}", t.in, t.out, t.group);
  return from_awq(t.qweight.data(), t.qzeros.data(), t.scales.data(), t.in, t.out, t.group, pool);
}

AwqTensors to_awq(const QuantizedMatrix& m) {
  if (m.format() != QFormat::Int4) fail("to_awq: needs an int4 matrix, not {}", qformat_name(m.format()));
  AwqTensors t;
  t.in = m.cols();
  t.out = m.rows();
  t.group = m.group();
  check_awq_shape(t.in, t.out, t.group);
  const int64_t ow = t.out / 8, ng = t.in / t.group;
  t.qweight.assign(static_cast<size_t>(t.in * ow), 0);
  t.qzeros.assign(static_cast<size_t>(ng * ow), 0);
  t.scales.assign(static_cast<size_t>(ng * t.out), 0);
  const detail::PackedW p = m.packed();
  for (int64_t i = 0; i < t.in; ++i) {  // the inverse of from_awq's scatter
    const int64_t k = i % kBlock, shift = (k % 8) >= 4 ? 4 : 0;
    const int64_t base = (i / kBlock) * 256 + (k / 8) * 64 + k % 4;
    for (int64_t c = 0; c < ow; ++c) {
      const uint8_t* src = p.w + (c / 2) * p.nb * 256 + base + (c % 2) * 32;
      uint32_t word = 0;
      for (int j = 0; j < 8; ++j) word |= static_cast<uint32_t>((src[4 * j] >> shift) & 15) << (4 * kAwqPos[j]);
      t.qweight[i * ow + c] = static_cast<int32_t>(word);
    }
  }
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t o = 0; o < t.out; ++o) {
      const uint32_t z = static_cast<uint32_t>(m.zero(o, g * t.group)) << (4 * kAwqPos[o % 8]);
      t.qzeros[g * ow + o / 8] = static_cast<int32_t>(static_cast<uint32_t>(t.qzeros[g * ow + o / 8]) | z);
      t.scales[g * t.out + o] = m.scale_bits(o, g);
    }
  return t;
}

}  // namespace troupe::quant
