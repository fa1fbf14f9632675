// Formats: quantizer round trips (error within half a step), GGUF repacking (bit exact),
// AutoAWQ import/export (bit exact) per layer shape and group size.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "cpu/thread_pool.h"
#include "quant/qtensor.h"
#include "quant/reference.h"
#include "quant_test_util.h"

using namespace troupe;
using namespace troupe::quant;

namespace {

// Every dequantized weight within half a step of the original (plus float slack).
void check_half_step(const QuantizedMatrix& m, const std::vector<float>& w) {
  std::vector<float> row(static_cast<size_t>(m.cols()));
  int64_t bad = 0;
  for (int64_t r = 0; r < m.rows(); ++r) {
    m.dequantize_row(r, row.data());
    for (int64_t i = 0; i < m.cols(); ++i) {
      const float s = m.scale(r, i), orig = w[r * m.cols() + i];
      if (std::fabs(row[i] - orig) > 0.5f * s * (1 + 1e-5f) + 1e-6f * std::fabs(orig)) ++bad;
    }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("int8 per-channel quantization round trip", "[quant]") {
  for (auto [out, in] : {std::pair<int64_t, int64_t>{1, 1}, {17, 33}, {64, 128}, {100, 257}}) {
    auto w = test::random_weights(out, in, 7);
    for (int64_t i = 0; i < in; ++i) w[i] = 0.0f;  // an all-zero row
    const QuantizedMatrix m = quantize_int8(w.data(), out, in);
    REQUIRE(m.format() == QFormat::Int8);
    REQUIRE(m.rows() == out);
    REQUIRE(m.cols() == in);
    check_half_step(m, w);
    for (int64_t r = 0; r < out; ++r) {
      float amax = 0;
      for (int64_t i = 0; i < in; ++i) {
        amax = std::max(amax, std::fabs(w[r * in + i]));
        REQUIRE(std::abs(m.q(r, i)) <= 127);
        REQUIRE(m.zero(r, i) == 0);
      }
      REQUIRE(m.scale(r, 0) == amax / 127.0f);
    }
  }
}

TEST_CASE("int4 group-wise quantization round trip", "[quant]") {
  for (int group : {32, 64, 128}) {
    for (auto [out, in] : {std::pair<int64_t, int64_t>{1, 32}, {17, 130}, {64, 128}, {33, 384}}) {
      auto w = test::random_weights(out, in, 11 + group);
      if (out > 1)  // a row entirely above zero: the range is widened to include 0
        for (int64_t i = 0; i < in; ++i) w[in + i] = 0.5f + 0.001f * static_cast<float>(i);
      const QuantizedMatrix m = quantize_int4(w.data(), out, in, group);
      REQUIRE(m.group() == group);
      check_half_step(m, w);
      for (int64_t r = 0; r < out; ++r)
        for (int64_t i = 0; i < in; ++i) {
          REQUIRE(m.q(r, i) >= 0);
          REQUIRE(m.q(r, i) <= 15);
          REQUIRE(m.zero(r, i) >= 0);
          REQUIRE(m.zero(r, i) <= 15);
        }
    }
  }
  const std::vector<float> zeros(64 * 64, 0.0f);
  const QuantizedMatrix z = quantize_int4(zeros.data(), 64, 64, 32);
  std::vector<float> row(64);
  z.dequantize_row(5, row.data());
  CHECK(row == std::vector<float>(64, 0.0f));
}

TEST_CASE("Q8_0 / Q4_0 quantizers round trip", "[quant]") {
  const auto w = test::random_weights(19, 96, 3);
  for (QFormat f : {QFormat::Q8_0, QFormat::Q4_0}) {
    TensorView t{"w", DType::F32, {19, 96}, w.data(), static_cast<int64_t>(w.size() * 4)};
    const QuantizedMatrix m = quantize(t, f);
    REQUIRE(m.format() == f);
    // Q4_0 maps the largest-magnitude value to -8 d, so the opposite extreme can clip by
    // one step (GGML's trade-off): bound the error by one step there.
    std::vector<float> row(96);
    for (int64_t r = 0; r < 19; ++r) {
      m.dequantize_row(r, row.data());
      for (int64_t i = 0; i < 96; ++i)
        REQUIRE(std::fabs(row[i] - w[r * 96 + i]) <=
                (f == QFormat::Q8_0 ? 0.5f : 1.0f) * std::fabs(m.scale(r, i)) * 1.0001f);
    }
  }
}

TEST_CASE("GGUF Q8_0 / Q4_0 repack is bit exact", "[quant]") {
  for (DType dt : {DType::Q8_0, DType::Q4_0}) {
    for (auto [out, in] : {std::pair<int64_t, int64_t>{1, 32}, {17, 64}, {33, 96}, {64, 2048}}) {
      const auto raw = test::random_gguf(dt, out, in, 5);
      const TensorView t{"blk.0.w", dt, {out, in}, raw.data(), static_cast<int64_t>(raw.size())};
      const QuantizedMatrix m = from_gguf(t);
      REQUIRE(m.format() == (dt == DType::Q8_0 ? QFormat::Q8_0 : QFormat::Q4_0));
      std::vector<float> a(static_cast<size_t>(in)), b(static_cast<size_t>(in));
      for (int64_t r = 0; r < out; ++r) {
        m.dequantize_row(r, a.data());
        ref::dequantize_gguf_row(t, r, b.data());
        REQUIRE(std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
      }
      // quantize() to the tensor's own format is the same repack.
      const QuantizedMatrix m2 = quantize(t, m.format());
      for (int64_t r = 0; r < out; ++r) {
        m2.dequantize_row(r, b.data());
        m.dequantize_row(r, a.data());
        REQUIRE(a == b);
      }
    }
  }
}

TEST_CASE("quantize() from F16 / BF16 rows matches quantizing floats", "[quant]") {
  const int64_t out = 20, in = 200;
  const auto w = test::random_weights(out, in, 9);
  std::vector<uint16_t> h(w.size()), bh(w.size());
  std::vector<float> wf(w.size()), wb(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    h[i] = f32_to_f16(w[i]);
    wf[i] = f16_to_f32(h[i]);
    bh[i] = f32_to_bf16(w[i]);
    wb[i] = bf16_to_f32(bh[i]);
  }
  const TensorView th{"h", DType::F16, {out, in}, h.data(), out * in * 2};
  const TensorView tb{"b", DType::BF16, {out, in}, bh.data(), out * in * 2};
  for (QFormat f : {QFormat::Int8, QFormat::Int4}) {
    const QuantizedMatrix a = quantize(th, f, 64);
    const QuantizedMatrix b = f == QFormat::Int8 ? quantize_int8(wf.data(), out, in)
                                                 : quantize_int4(wf.data(), out, in, 64);
    const QuantizedMatrix c = quantize(tb, f, 64);
    const QuantizedMatrix d = f == QFormat::Int8 ? quantize_int8(wb.data(), out, in)
                                                 : quantize_int4(wb.data(), out, in, 64);
    std::vector<float> ra(in), rb(in), rc(in), rd(in);
    for (int64_t r = 0; r < out; ++r) {
      a.dequantize_row(r, ra.data());
      b.dequantize_row(r, rb.data());
      c.dequantize_row(r, rc.data());
      d.dequantize_row(r, rd.data());
      REQUIRE(ra == rb);
      REQUIRE(rc == rd);
    }
  }
}

TEST_CASE("clone is a deep, equal copy", "[quant]") {
  const auto w = test::random_weights(40, 96, 4);
  const QuantizedMatrix a = quantize_int4(w.data(), 40, 96, 32);
  const QuantizedMatrix b = a.clone();
  REQUIRE(b.nbytes() == a.nbytes());
  REQUIRE(b.packed().w != a.packed().w);
  std::vector<float> ra(96), rb(96);
  for (int64_t r = 0; r < 40; ++r) {
    a.dequantize_row(r, ra.data());
    b.dequantize_row(r, rb.data());
    REQUIRE(ra == rb);
  }
}

TEST_CASE("relocated is a deep, equal copy in the owner's storage", "[quant]") {
  const auto w = test::random_weights(40, 96, 4);
  for (const QuantizedMatrix& a : {quantize_int4(w.data(), 40, 96, 32), quantize_int8(w.data(), 40, 96),
                                   quantize(TensorView{"w", DType::F32, {40, 96}, w.data(), 40 * 96 * 4},
                                            QFormat::Q4_0)}) {
    INFO(qformat_name(a.format()));
    // Two matrices back to back in one buffer: a whole one, then the slice of its last tiles.
    const QuantizedMatrix slice = a.row_slice(16, 40);
    REQUIRE(a.storage_bytes() % 64 == 0);
    const int64_t first = a.storage_bytes();
    std::shared_ptr<uint8_t[]> arena(
        static_cast<uint8_t*>(std::aligned_alloc(64, size_t(first + slice.storage_bytes()))),
        [](uint8_t* p) { std::free(p); });
    QuantizedMatrix b = a.relocated(arena.get(), arena);
    QuantizedMatrix c = slice.relocated(arena.get() + first, arena);
    REQUIRE(b.nbytes() == a.nbytes());
    REQUIRE(c.nbytes() == slice.nbytes());
    CHECK(b.packed().w == arena.get());
    CHECK(c.packed().w == arena.get() + first);
    arena.reset();  // the copies keep the buffer alive
    std::vector<float> ra(96), rb(96);
    for (int64_t r = 0; r < 40; ++r) {
      a.dequantize_row(r, ra.data());
      b.dequantize_row(r, rb.data());
      REQUIRE(ra == rb);
      if (r < 16) continue;
      c.dequantize_row(r - 16, rb.data());
      REQUIRE(ra == rb);
    }
    uint8_t* odd = static_cast<uint8_t*>(std::aligned_alloc(64, size_t(a.storage_bytes() + 64)));
    std::shared_ptr<uint8_t[]> owner(odd, [](uint8_t* p) { std::free(p); });
    CHECK_THROWS_WITH(a.relocated(odd + 8, owner), Catch::Contains("64-byte aligned"));
  }
}

namespace {

// Decodes one AutoAWQ element straight from the packed int32 tensors.
float awq_element(const AwqTensors& t, int64_t o, int64_t i) {
  auto nib = [](int32_t word, int64_t col) {
    for (int n = 0; n < 8; ++n)
      if (kAwqOrder[n] == col % 8) return static_cast<int>((static_cast<uint32_t>(word) >> (4 * n)) & 15);
    return -1;
  };
  const int64_t ow = t.out / 8, g = i / t.group;
  const int q = nib(t.qweight[i * ow + o / 8], o), z = nib(t.qzeros[g * ow + o / 8], o);
  return static_cast<float>(q - z) * f16_to_f32(t.scales[g * t.out + o]);
}

}  // namespace

TEST_CASE("AutoAWQ import / export round trip per layer shape", "[quant]") {
  std::mt19937 rng(17);
  std::uniform_int_distribution<uint32_t> word;
  std::uniform_real_distribution<float> u(0.001f, 0.05f);
  for (auto [out, in] : {std::pair<int64_t, int64_t>{64, 128}, {128, 384}, {384, 128},
                         {768, 2048}, {2048, 768}}) {
    for (int group : {32, 64, 128}) {
      DYNAMIC_SECTION(out << "x" << in << " g" << group) {
        AwqTensors a;
        a.in = in;
        a.out = out;
        a.group = group;
        a.qweight.resize(static_cast<size_t>(in * out / 8));
        a.qzeros.resize(static_cast<size_t>(in / group * out / 8));
        a.scales.resize(static_cast<size_t>(in / group * out));
        for (auto& v : a.qweight) v = static_cast<int32_t>(word(rng));
        for (auto& v : a.qzeros) v = static_cast<int32_t>(word(rng));
        for (auto& v : a.scales) v = f32_to_f16(u(rng));

        const QuantizedMatrix m = from_awq(a);
        REQUIRE(m.format() == QFormat::Int4);
        REQUIRE(m.rows() == out);
        REQUIRE(m.cols() == in);
        std::vector<float> row(static_cast<size_t>(in));
        int64_t mismatches = 0;
        for (int64_t o = 0; o < out; ++o) {
          m.dequantize_row(o, row.data());
          for (int64_t i = 0; i < in; ++i) mismatches += row[i] != awq_element(a, o, i);
        }
        REQUIRE(mismatches == 0);

        const AwqTensors b = to_awq(m);
        REQUIRE(b.qweight == a.qweight);
        REQUIRE(b.qzeros == a.qzeros);
        REQUIRE(b.scales == a.scales);

        // Our own quantizer's output survives export + import unchanged.
        const auto w = test::random_weights(out, in, static_cast<uint32_t>(out + in + group));
        const QuantizedMatrix q = quantize_int4(w.data(), out, in, group);
        const QuantizedMatrix q2 = from_awq(to_awq(q));
        std::vector<float> r1(static_cast<size_t>(in)), r2(static_cast<size_t>(in));
        for (int64_t o = 0; o < out; o += 7) {
          q.dequantize_row(o, r1.data());
          q2.dequantize_row(o, r2.data());
          REQUIRE(r1 == r2);
        }
      }
    }
  }
  CHECK_THROWS(to_awq(quantize_int8(std::vector<float>(64 * 64).data(), 64, 64)));
  AwqTensors bad;
  bad.in = 100;
  bad.out = 64;
  CHECK_THROWS(from_awq(bad));
}

TEST_CASE("builders give identical results with a thread pool", "[quant]") {
  cpu::ThreadPool pool(3);
  const int64_t out = 72, in = 320;  // 4.5 tiles: uneven split, partial last tile
  const auto w = test::random_weights(out, in, 12);
  const TensorView tv{"w", DType::F32, {out, in}, w.data(), out * in * 4};
  auto same = [&](const QuantizedMatrix& a, const QuantizedMatrix& b) {
    std::vector<float> ra(in), rb(in);
    for (int64_t r = 0; r < out; ++r) {
      a.dequantize_row(r, ra.data());
      b.dequantize_row(r, rb.data());
      REQUIRE(ra == rb);
    }
  };
  for (QFormat f : {QFormat::Int8, QFormat::Int4, QFormat::Q8_0, QFormat::Q4_0})
    same(quantize(tv, f, 64), quantize(tv, f, 64, &pool));
  const QuantizedMatrix q = quantize_int4(w.data(), out, in, 32, &pool);
  same(q, from_awq(to_awq(q), &pool));
  const auto raw = test::random_gguf(DType::Q4_0, out, in, 8);
  const TensorView tg{"g", DType::Q4_0, {out, in}, raw.data(), static_cast<int64_t>(raw.size())};
  same(from_gguf(tg), from_gguf(tg, &pool));
}
