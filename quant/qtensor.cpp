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
#include "quant/reference.h"

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

int clamp_int(float v, int lo, int hi) {
  const float r = std::nearbyint(v);
  return r < lo ? lo : r > hi ? hi : static_cast<int>(r);
}

void quant_row_int8(QuantizedMatrix& m, int64_t r, const float* w, int64_t in) {
  float amax = 0.0f;
  for (int64_t i = 0; i < in; ++i) amax = std::max(amax, std::fabs(w[i]));
  const float s = amax / 127.0f;
  m.set_row_scale(r, s);
  if (s == 0.0f) return;
  for (int64_t i = 0; i < in; ++i) m.set_q(r, i, clamp_int(w[i] / s, -127, 127));
}

// min/max asymmetric RTN. The range is widened to include 0 so that the integer zero
// point lands in [0, 15] (0 is then exactly representable); for the usual groups that
// straddle zero this is AutoAWQ's pseudo_quantize_tensor.
void quant_row_int4(QuantizedMatrix& m, int64_t r, const float* w, int64_t in, int group) {
  for (int64_t g0 = 0, g = 0; g0 < in; g0 += group, ++g) {
    const int64_t g1 = std::min<int64_t>(in, g0 + group);
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = g0; i < g1; ++i) lo = std::min(lo, w[i]), hi = std::max(hi, w[i]);
    const uint16_t sb = f16_at_least((hi - lo) / 15.0f);
    const float s = f16_to_f32(sb);
    m.set_scale_bits(r, g, sb);
    if (!(s > 0.0f) || !std::isfinite(s)) continue;  // all-zero group: q = z = 0
    const int z = clamp_int(-lo / s, 0, 15);
    m.set_zero(r, g, z);
    for (int64_t i = g0; i < g1; ++i) m.set_q(r, i, clamp_int(w[i] / s, -z, 15 - z) + z);
  }
}

void quant_row_q8_0(QuantizedMatrix& m, int64_t r, const float* w, int64_t in) {
  for (int64_t b = 0; b * kBlock < in; ++b) {
    const float* x = w + b * kBlock;
    float amax = 0.0f;
    for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
    const uint16_t db = f16_at_least(amax / 127.0f);
    const float d = f16_to_f32(db);
    m.set_scale_bits(r, b, db);
    if (d > 0.0f)
      for (int j = 0; j < kBlock; ++j) m.set_q(r, b * kBlock + j, clamp_int(x[j] / d, -127, 127));
  }
}

// GGML's Q4_0 choice: d = (value of largest magnitude) / -8, so that value maps to q = 0
// exactly and the opposite side gets the 7 remaining steps (+ clamping of 8 to 7).
void quant_row_q4_0(QuantizedMatrix& m, int64_t r, const float* w, int64_t in) {
  for (int64_t b = 0; b * kBlock < in; ++b) {
    const float* x = w + b * kBlock;
    float vmax = 0.0f;
    for (int j = 0; j < kBlock; ++j)
      if (std::fabs(x[j]) > std::fabs(vmax)) vmax = x[j];
    const uint16_t db = f32_to_f16(vmax / -8.0f);
    const float d = f16_to_f32(db);
    m.set_scale_bits(r, b, db);
    for (int j = 0; j < kBlock; ++j)
      m.set_q(r, b * kBlock + j, d != 0.0f ? clamp_int(x[j] / d + 8.0f, 0, 15) : 8);
  }
}

// Quantizes `out` rows produced one at a time by row(r, scratch) -> pointer to `in` floats.
QuantizedMatrix quantize_rows(QFormat fmt, int64_t out, int64_t in, int group,
                              const std::function<const float*(int64_t, float*)>& row) {
  QuantizedMatrix m = QuantizedMatrix::allocate(fmt, out, in, group);
  std::vector<float> buf(static_cast<size_t>(in));
  for (int64_t r = 0; r < out; ++r) {
    const float* w = row(r, buf.data());
    switch (fmt) {
      case QFormat::Int8: quant_row_int8(m, r, w, in); break;
      case QFormat::Int4: quant_row_int4(m, r, w, in, group); break;
      case QFormat::Q8_0: quant_row_q8_0(m, r, w, in); break;
      case QFormat::Q4_0: quant_row_q4_0(m, r, w, in); break;
    }
  }
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

QuantizedMatrix QuantizedMatrix::allocate(QFormat fmt, int64_t rows, int64_t cols, int group) {
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

  const int64_t tile_slots = m.tiles_ * kTileRows;
  const int64_t w_bytes = m.tiles_ * m.nb_ * tile_block_bytes(fmt);
  const int64_t d16_bytes = fmt == QFormat::Int8 ? 0 : tile_slots * m.ng_ * 2;
  const int64_t s32_bytes = fmt == QFormat::Int8 ? tile_slots * 4 : 0;
  const int64_t z_bytes = fmt == QFormat::Int4 ? tile_slots * m.ng_ : 0;
  m.bytes_ = w_bytes + d16_bytes + s32_bytes + z_bytes;
  const int64_t o_d16 = round_up(w_bytes, 64), o_s32 = o_d16 + round_up(d16_bytes, 64);
  const int64_t o_z = o_s32 + round_up(s32_bytes, 64);
  const int64_t total = std::max<int64_t>(64, o_z + round_up(z_bytes, 64));
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(64, static_cast<size_t>(total)));
  if (!p) fail("quantized matrix: out of memory ({} bytes)", total);
  m.buf_ = std::shared_ptr<uint8_t[]>(p, [](uint8_t* q) { std::free(q); });
  m.alloc_ = total;
  std::memset(p, 0, static_cast<size_t>(total));
  if (!is_4bit(fmt)) std::memset(p, 0x80, static_cast<size_t>(w_bytes));  // q = 0
  m.w_ = p;
  m.d16_ = d16_bytes ? reinterpret_cast<uint16_t*>(p + o_d16) : nullptr;
  m.s32_ = s32_bytes ? reinterpret_cast<float*>(p + o_s32) : nullptr;
  m.z_ = z_bytes ? p + o_z : nullptr;
  return m;
}

QuantizedMatrix QuantizedMatrix::clone() const {
  QuantizedMatrix m = allocate(fmt_, rows_, cols_, group_);
  if (alloc_ > 0) std::memcpy(m.buf_.get(), buf_.get(), static_cast<size_t>(alloc_));
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

QuantizedMatrix quantize_int8(const float* w, int64_t out, int64_t in) {
  return quantize_rows(QFormat::Int8, out, in, 0,
                       [&](int64_t r, float*) { return w + r * in; });
}

QuantizedMatrix quantize_int4(const float* w, int64_t out, int64_t in, int group) {
  return quantize_rows(QFormat::Int4, out, in, group,
                       [&](int64_t r, float*) { return w + r * in; });
}

QuantizedMatrix from_gguf(const TensorView& t) {
  if ((t.dtype != DType::Q8_0 && t.dtype != DType::Q4_0) || t.shape.size() != 2)
    fail("from_gguf: '{}' is not a Q8_0/Q4_0 matrix (dtype {})", t.name, dtype_name(t.dtype));
  const int64_t out = t.rows(), in = t.cols();
  const bool q8 = t.dtype == DType::Q8_0;
  QuantizedMatrix m = QuantizedMatrix::allocate(q8 ? QFormat::Q8_0 : QFormat::Q4_0, out, in, kBlock);
  const int64_t bb = dtype_block_bytes(t.dtype);
  for (int64_t r = 0; r < out; ++r) {
    const uint8_t* row = t.row_ptr(r);
    for (int64_t b = 0; b < in / kBlock; ++b) {
      const uint8_t* blk = row + b * bb;
      uint16_t d;
      std::memcpy(&d, blk, 2);
      m.set_scale_bits(r, b, d);
      for (int j = 0; j < kBlock; ++j) {
        const int q = q8 ? static_cast<int8_t>(blk[2 + j])
                         : (j < 16 ? blk[2 + j] & 15 : blk[2 + j - 16] >> 4);
        m.set_q(r, b * kBlock + j, q);
      }
    }
  }
  return m;
}

QuantizedMatrix quantize(const TensorView& t, QFormat fmt, int group) {
  if (t.shape.size() != 2) fail("quantize: '{}' is not a matrix", t.name);
  if ((t.dtype == DType::Q8_0 && fmt == QFormat::Q8_0) ||
      (t.dtype == DType::Q4_0 && fmt == QFormat::Q4_0))
    return from_gguf(t);
  const int64_t in = t.cols();
  std::function<const float*(int64_t, float*)> row;
  switch (t.dtype) {
    case DType::F32:
      row = [&](int64_t r, float*) { return reinterpret_cast<const float*>(t.row_ptr(r)); };
      break;
    case DType::F16:
    case DType::BF16: {
      const bool f16 = t.dtype == DType::F16;
      row = [&t, in, f16](int64_t r, float* buf) {
        const auto* h = reinterpret_cast<const uint16_t*>(t.row_ptr(r));
        for (int64_t i = 0; i < in; ++i) buf[i] = f16 ? f16_to_f32(h[i]) : bf16_to_f32(h[i]);
        return static_cast<const float*>(buf);
      };
      break;
    }
    case DType::Q8_0:
    case DType::Q4_0:
      row = [&t](int64_t r, float* buf) {
        ref::dequantize_gguf_row(t, r, buf);
        return static_cast<const float*>(buf);
      };
      break;
    default:
      fail("quantize: '{}' has dtype {}, expected a float or GGUF type", t.name,
           dtype_name(t.dtype));
  }
  return quantize_rows(fmt, t.rows(), in, group, row);
}

QuantizedMatrix from_awq(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales,
                         int64_t in, int64_t out, int group) {
  check_awq_shape(in, out, group);
  QuantizedMatrix m = QuantizedMatrix::allocate(QFormat::Int4, out, in, group);
  const int64_t ow = out / 8;
  // Input-major walk: the 16 rows of a tile that one input touches share a cache line.
  for (int64_t i = 0; i < in; ++i)
    for (int64_t o = 0; o < out; ++o) {
      const auto word = static_cast<uint32_t>(qweight[i * ow + o / 8]);
      m.set_q(o, i, static_cast<int>((word >> (4 * kAwqPos[o % 8])) & 15));
    }
  for (int64_t g = 0; g < in / group; ++g)
    for (int64_t o = 0; o < out; ++o) {
      const auto word = static_cast<uint32_t>(qzeros[g * ow + o / 8]);
      m.set_zero(o, g, static_cast<int>((word >> (4 * kAwqPos[o % 8])) & 15));
      m.set_scale_bits(o, g, scales[g * out + o]);
    }
  return m;
}

QuantizedMatrix from_awq(const AwqTensors& t) {
  check_awq_shape(t.in, t.out, t.group);
  const auto ng = static_cast<size_t>(t.in / t.group), ow = static_cast<size_t>(t.out / 8);
  if (t.qweight.size() != static_cast<size_t>(t.in) * ow || t.qzeros.size() != ng * ow ||
      t.scales.size() != ng * static_cast<size_t>(t.out))
    fail("AWQ: tensor sizes do not match in={} out={} group={}", t.in, t.out, t.group);
  return from_awq(t.qweight.data(), t.qzeros.data(), t.scales.data(), t.in, t.out, t.group);
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
  auto put = [](int32_t& word, int64_t o, int v) {
    word = static_cast<int32_t>(static_cast<uint32_t>(word) |
                                (static_cast<uint32_t>(v) << (4 * kAwqPos[o % 8])));
  };
  for (int64_t i = 0; i < t.in; ++i)
    for (int64_t o = 0; o < t.out; ++o) put(t.qweight[i * ow + o / 8], o, m.q(o, i));
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t o = 0; o < t.out; ++o) {
      put(t.qzeros[g * ow + o / 8], o, m.zero(o, g * t.group));
      t.scales[g * t.out + o] = m.scale_bits(o, g);
    }
  return t;
}

}  // namespace troupe::quant
