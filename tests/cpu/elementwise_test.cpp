// rmsnorm, rope, silu_mul, add_inplace, softmax, embedding_row, to_f32 against the
// scalar references (and hand-built quantized blocks with known values).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "cpu/kernels.h"
#include "cpu/kernels_internal.h"
#include "cpu/reference.h"
#include "test_data.h"

using namespace troupe;
using namespace troupe::cpu;
using troupe::test::random_floats;

namespace {

const int64_t kSizes[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 64, 100, 127, 768, 1000, 4099};

void require_close(const std::vector<float>& got, const std::vector<float>& want, double rel,
                   double abs = 0) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = rel * std::fabs(double(want[i])) + abs;
    if (!(std::fabs(double(got[i]) - double(want[i])) <= tol))
      FAIL("[" << i << "] = " << got[i] << ", want " << want[i]);
  }
}

}  // namespace

TEST_CASE("rmsnorm matches reference, in place too", "[cpu][elementwise]") {
  test::for_each_target([&] {
    for (int64_t n : kSizes) {
      INFO("n " << n);
      const auto x = random_floats(n, uint32_t(n), -3, 3);
      const auto w = random_floats(n, uint32_t(n) + 1, 0.5, 1.5);
      std::vector<float> got(n), want(n);
      rmsnorm(x.data(), w.data(), got.data(), n, 1e-6f);
      ref::rmsnorm(x.data(), w.data(), want.data(), n, 1e-6f);
      require_close(got, want, 1e-5);
      std::vector<float> inplace = x;
      rmsnorm(inplace.data(), w.data(), inplace.data(), n, 1e-6f);
      require_close(inplace, want, 1e-5);
    }
  });
}

TEST_CASE("rope matches reference for both styles", "[cpu][elementwise]") {
  test::for_each_target([&] {
    for (RopeStyle style : {RopeStyle::Halves, RopeStyle::Adjacent})
      for (int64_t hd : {2, 6, 16, 40, 64, 80, 128})
        for (int64_t heads : {1, 3, 8})
          for (int64_t pos : {0, 1, 17, 1000, 131071, 1000003}) {
            INFO("style " << int(style) << " hd " << hd << " heads " << heads << " pos " << pos);
            const auto v = random_floats(heads * hd, uint32_t(hd * 7 + pos));
            auto got = v, want = v;
            rope(got.data(), heads, hd, pos, 10000.0f, style);
            ref::rope(want.data(), heads, hd, pos, 10000.0f, style);
            require_close(got, want, 1e-5, 1e-6);
          }
    // pos 0 is the identity
    auto v = random_floats(64, 3);
    auto r = v;
    rope(r.data(), 1, 64, 0, 500000.0f, RopeStyle::Halves);
    CHECK(r == v);
  });
}

TEST_CASE("rope pairs: Halves rotates (i, i+d/2), Adjacent (2i, 2i+1)", "[cpu][elementwise]") {
  // One pair set to (1, 0): after rotation by angle a it must read (cos a, sin a).
  const int64_t hd = 8;
  const int64_t pos = 3;
  const float theta = 100.0f;
  const double a1 = pos * std::pow(100.0, -2.0 * 1 / hd);  // pair j = 1
  std::vector<float> h(hd, 0.0f), a(hd, 0.0f);
  h[1] = 1.0f;  // pair (1, 5)
  a[2] = 1.0f;  // pair (2, 3)
  rope(h.data(), 1, hd, pos, theta, RopeStyle::Halves);
  rope(a.data(), 1, hd, pos, theta, RopeStyle::Adjacent);
  CHECK(h[1] == Approx(std::cos(a1)).epsilon(1e-6));
  CHECK(h[5] == Approx(std::sin(a1)).epsilon(1e-6));
  CHECK(a[2] == Approx(std::cos(a1)).epsilon(1e-6));
  CHECK(a[3] == Approx(std::sin(a1)).epsilon(1e-6));
}

TEST_CASE("silu_mul matches reference", "[cpu][elementwise]") {
  test::for_each_target([&] {
    for (int64_t n : kSizes) {
      INFO("n " << n);
      auto g = random_floats(n, uint32_t(n) + 5, -20, 20);
      if (n > 4) {
        g[0] = -200.0f;  // exp overflow territory
        g[1] = 200.0f;
        g[2] = 0.0f;
        g[3] = -88.5f;
      }
      const auto u = random_floats(n, uint32_t(n) + 6, -2, 2);
      auto got = g, want = g;
      silu_mul(got.data(), u.data(), n);
      ref::silu_mul(want.data(), u.data(), n);
      require_close(got, want, 1e-5, 1e-30);
      // Out of place: the same bits.
      std::vector<float> out(size_t(n), NAN);
      silu_mul_to(out.data(), g.data(), u.data(), n);
      CHECK(std::memcmp(out.data(), got.data(), size_t(n) * sizeof(float)) == 0);
    }
  });
}

TEST_CASE("add_inplace adds", "[cpu][elementwise]") {
  test::for_each_target([&] {
    for (int64_t n : kSizes) {
      auto y = random_floats(n, 1), x = random_floats(n, 2);
      auto want = y;
      for (int64_t i = 0; i < n; ++i) want[i] += x[i];
      add_inplace(y.data(), x.data(), n);
      REQUIRE(y == want);
    }
  });
}

TEST_CASE("softmax matches reference", "[cpu][elementwise]") {
  test::for_each_target([&] {
    for (int64_t n : kSizes) {
      INFO("n " << n);
      for (float spread : {1.0f, 30.0f}) {
        auto x = random_floats(n, uint32_t(n) + 9, -spread, spread);
        if (n > 2) x[n / 2] = 1000.0f;  // large but finite: must not overflow
        auto got = x, want = x;
        softmax(got.data(), n);
        ref::softmax(want.data(), n);
        require_close(got, want, 1e-5, 1e-12);
        double s = 0;
        for (float v : got) s += v;
        CHECK(s == Approx(1.0).epsilon(1e-5));
      }
    }
    softmax(nullptr, 0);  // no-op
  });
}

namespace {

// Builds a [rows, cols] tensor of dtype dt from float values (quantized types get a
// per-block scale of max|v|/127 or /8, the way GGML quantizes).
struct Built {
  std::vector<uint8_t> bytes;
  TensorView view;
};

Built build(DType dt, int64_t rows, int64_t cols, const std::vector<float>& v) {
  Built b;
  b.bytes.resize(static_cast<size_t>(dtype_row_bytes(dt, cols) * rows));
  uint8_t* p = b.bytes.data();
  auto put16 = [](uint8_t* q, uint16_t h) { std::memcpy(q, &h, 2); };
  if (dt == DType::F32) {
    std::memcpy(p, v.data(), v.size() * 4);
  } else if (dt == DType::F16 || dt == DType::BF16) {
    for (size_t i = 0; i < v.size(); ++i)
      put16(p + 2 * i, dt == DType::F16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]));
  } else {
    for (size_t blk = 0; blk < v.size() / 32; ++blk) {
      const float* x = v.data() + blk * 32;
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
      if (dt == DType::Q8_0) {
        const float d = amax / 127;
        put16(p, f32_to_f16(d));
        for (int j = 0; j < 32; ++j)
          p[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(d ? std::lround(x[j] / d) : 0));
        p += 34;
      } else {
        const float d = amax / 8;
        put16(p, f32_to_f16(d));
        for (int j = 0; j < 16; ++j) {
          auto q = [&](float f) { return std::clamp<long>(d ? std::lround(f / d) + 8 : 8, 0, 15); };
          p[2 + j] = static_cast<uint8_t>(q(x[j]) | (q(x[j + 16]) << 4));
        }
        p += 18;
      }
    }
  }
  b.view.name = "emb";
  b.view.dtype = dt;
  b.view.shape = {rows, cols};
  b.view.data = b.bytes.data();
  b.view.nbytes = static_cast<int64_t>(b.bytes.size());
  return b;
}

}  // namespace

TEST_CASE("embedding_row and to_f32 match reference for every dtype", "[cpu][convert]") {
  test::for_each_target([&] {
    for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0})
      for (int64_t cols : {32, 37, 64, 96, 4096}) {
        if ((dt == DType::Q8_0 || dt == DType::Q4_0) && cols % 32) continue;
        INFO(dtype_name(dt) << " cols " << cols);
        const int64_t rows = 5;
        const auto b = build(dt, rows, cols, random_floats(rows * cols, uint32_t(cols), -2, 2));
        std::vector<float> all(rows * cols);
        to_f32(b.view, all.data());
        for (int64_t r = 0; r < rows; ++r) {
          std::vector<float> got(cols), want(cols);
          embedding_row(b.view, r, got.data());
          ref::embedding_row(b.view, r, want.data());
          REQUIRE(got == want);  // conversions are exact
          REQUIRE(std::vector<float>(all.begin() + r * cols, all.begin() + (r + 1) * cols) == want);
        }
      }
  });
}

TEST_CASE("Q8_0 and Q4_0 blocks decode to known values", "[cpu][convert]") {
  // Two blocks per row, two rows: block b has scale d_b = 0.5 * (b + 1).
  SECTION("Q8_0") {
    std::vector<uint8_t> bytes(4 * 34);
    for (int b = 0; b < 4; ++b) {
      const uint16_t d = f32_to_f16(0.5f * float(b + 1));
      std::memcpy(&bytes[b * 34], &d, 2);
      for (int j = 0; j < 32; ++j) bytes[b * 34 + 2 + j] = static_cast<uint8_t>(int8_t(j - 16 + b));
    }
    TensorView t{"q8", DType::Q8_0, {2, 64}, bytes.data(), int64_t(bytes.size())};
    std::vector<float> all(128), row(64);
    to_f32(t, all.data());
    for (int b = 0; b < 4; ++b)
      for (int j = 0; j < 32; ++j)
        REQUIRE(all[b * 32 + j] == float(j - 16 + b) * 0.5f * float(b + 1));
    embedding_row(t, 1, row.data());
    CHECK(std::equal(row.begin(), row.end(), all.begin() + 64));
  }
  SECTION("Q4_0") {
    std::vector<uint8_t> bytes(4 * 18);
    for (int b = 0; b < 4; ++b) {
      const uint16_t d = f32_to_f16(0.5f * float(b + 1));
      std::memcpy(&bytes[b * 18], &d, 2);
      // low nibble j, high nibble 15 - j: element j = j - 8, element j + 16 = 7 - j.
      for (int j = 0; j < 16; ++j) bytes[b * 18 + 2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    }
    TensorView t{"q4", DType::Q4_0, {2, 64}, bytes.data(), int64_t(bytes.size())};
    std::vector<float> all(128), row(64);
    to_f32(t, all.data());
    for (int b = 0; b < 4; ++b)
      for (int j = 0; j < 16; ++j) {
        REQUIRE(all[b * 32 + j] == float(j - 8) * 0.5f * float(b + 1));
        REQUIRE(all[b * 32 + 16 + j] == float(7 - j) * 0.5f * float(b + 1));
      }
    embedding_row(t, 1, row.data());
    CHECK(std::equal(row.begin(), row.end(), all.begin() + 64));
  }
}

TEST_CASE("embedding_row rejects bad rows and dtypes", "[cpu][convert]") {
  std::vector<float> data(8, 1.0f), out(4);
  TensorView t{"e", DType::F32, {2, 4}, data.data(), 32};
  CHECK_THROWS_AS(embedding_row(t, 2, out.data()), troupe::Error);
  t.dtype = DType::I32;
  CHECK_THROWS_AS(embedding_row(t, 0, out.data()), troupe::Error);
  TensorView q{"q", DType::Q8_0, {1, 48}, data.data(), 32};
  CHECK_THROWS_AS(to_f32(q, out.data()), troupe::Error);
}

// The vector exponential of SiLU and the attention softmax (cpu/exp-inl.h): AVX-512 rebuilds
// Highway's Exp with vrndscaleps / vscalefps, other targets run hn::Exp itself. Every target
// must stay within 2.4e-7 relative of e^x (2-4 ulp) and agree with the others to the last
// bit but for the rare x / ln 2 at a rounding half-way point (then within one ulp).
TEST_CASE("exp_f32_n matches std::exp and agrees across targets", "[cpu][elementwise]") {
  std::vector<float> x;
  for (float v = -110.0f; v <= 88.7f; v += 0.0137f) x.push_back(v);
  for (float v : {-INFINITY, -200.0f, -104.0f, -103.9f, -87.4f, -87.3f, -1e-30f, 0.0f, 1e-30f,
                  0.34657359f, -0.34657359f, 88.0f, 88.7f})
    x.push_back(v);
  while (x.size() % 16 != 0) x.push_back(1.0f);  // whole vectors: no std::exp tail
  std::vector<std::vector<float>> per_target;
  test::for_each_target([&] {
    std::vector<float> y(x.size(), NAN);
    detail::exp_f32_n(x.data(), y.data(), int64_t(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      INFO("x " << x[i] << " got " << y[i]);
      const double want = std::exp(double(x[i]));
      if (want >= 1.2e-38)  // normal floats: within 2.4e-7 relative
        REQUIRE(std::fabs(y[i] - want) <= 2.4e-7 * want);
      else  // below the normal range: tiny, never negative or NaN
        REQUIRE((y[i] >= 0.0f && y[i] <= 1.2e-38f));
    }
    // NaN gives 0 on every target, as hn::Exp does (exp-inl.h).
    const float nan_in[16] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN,
                              NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    float nan_out[16];
    detail::exp_f32_n(nan_in, nan_out, 16);
    for (float v : nan_out) REQUIRE(v == 0.0f);
    per_target.push_back(std::move(y));
  });
  for (size_t t = 1; t < per_target.size(); ++t)
    for (size_t i = 0; i < x.size(); ++i) {
      int32_t a, b;
      std::memcpy(&a, &per_target[0][i], 4);
      std::memcpy(&b, &per_target[t][i], 4);
      INFO("x " << x[i]);
      REQUIRE(std::abs(a - b) <= 1);
    }
}
