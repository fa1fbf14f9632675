#include "quant/stored.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/error.h"

namespace troupe::quant {

QuantizedMatrix from_stored(const StoredQuantLinear& s, cpu::ThreadPool* pool) {
  switch (s.format) {
    case StoredQuantLinear::Format::Awq4:
      return from_awq(static_cast<const int32_t*>(s.qweight.data),
                      static_cast<const int32_t*>(s.qzeros.data),
                      static_cast<const uint16_t*>(s.scales.data), s.in, s.out, s.group, pool);
    case StoredQuantLinear::Format::Int8:
      return from_int8(static_cast<const int8_t*>(s.qweight.data),
                       static_cast<const float*>(s.scales.data), s.out, s.in, pool);
    case StoredQuantLinear::Format::Float: break;
  }
  fail("from_stored: {} is a float layer", s.qweight.name);
}

QuantizedMatrix from_int8(const int8_t* q, const float* s, int64_t out, int64_t in,
                          cpu::ThreadPool* pool) {
  QuantizedMatrix m = QuantizedMatrix::allocate(QFormat::Int8, out, in, 0);
  // The format is symmetric (q in [-127, 127], what Int8 promises the kernels); a -128
  // means the file was not written for it.
  std::atomic<bool> bad{false};
  auto rows = [&](int, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int8_t* src = q + r * in;
      if (std::find(src, src + in, int8_t(-128)) != src + in) bad = true;
      m.set_row_q(r, src);
      m.set_row_scale(r, s[r]);
    }
  };
  // Whole 16-row tiles per chunk: two threads never write the same packed bytes.
  const int64_t tiles = (out + kTileRows - 1) / kTileRows;
  auto tile_rows = [&](int th, int64_t t0, int64_t t1) {
    rows(th, t0 * kTileRows, std::min(out, t1 * kTileRows));
  };
  if (pool && tiles > 1)
    pool->parallel_for(tiles, 1, tile_rows);
  else
    tile_rows(0, 0, tiles);
  if (bad) fail("int8 weights: q = -128 is outside the symmetric range [-127, 127]");
  return m;
}

Int8Tensors to_int8(const QuantizedMatrix& m) {
  if (m.format() != QFormat::Int8) fail("to_int8: needs an int8 matrix, not {}", qformat_name(m.format()));
  Int8Tensors t;
  const int64_t out = m.rows(), in = m.cols();
  t.q.resize(static_cast<size_t>(out * in));
  t.s.resize(static_cast<size_t>(out));
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t i = 0; i < in; ++i) t.q[r * in + i] = static_cast<int8_t>(m.q(r, i));
    t.s[r] = m.scale(r, 0);
  }
  return t;
}

namespace {

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

}  // namespace

std::vector<StoredTensor> stored_tensors(const std::string& module, const QuantizedMatrix& m, int bits,
                                         int group) {
  if (bits == 4) {
    if (m.format() != QFormat::Int4 || m.group() != group)
      fail("checkpoint: {} is {} (group {}), the AWQ layout needs int4 with group {}", module,
           qformat_name(m.format()), m.group(), group);
    AwqTensors a = to_awq(m);
    return {{module + ".qweight", DType::I32, {a.in, a.out / 8}, as_bytes(a.qweight)},
            {module + ".qzeros", DType::I32, {a.in / a.group, a.out / 8}, as_bytes(a.qzeros)},
            {module + ".scales", DType::F16, {a.in / a.group, a.out}, as_bytes(a.scales)}};
  }
  if (m.format() != QFormat::Int8) fail("checkpoint: {} is {}, not int8", module, qformat_name(m.format()));
  Int8Tensors t = to_int8(m);
  return {{module + ".qweight", DType::I8, {m.rows(), m.cols()}, as_bytes(t.q)},
          {module + ".scales", DType::F32, {m.rows()}, as_bytes(t.s)}};
}

}  // namespace troupe::quant
