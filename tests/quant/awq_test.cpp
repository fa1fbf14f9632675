// The AWQ building blocks (quant/awq.h), the INT8 checkpoint conversion (quant/stored.h) and
// the quantization options.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/awq.h"
#include "quant/options.h"
#include "quant/stored.h"
#include "quant_test_util.h"

using namespace troupe;
using namespace troupe::quant;

namespace {

awq::Matrix random_matrix(int64_t out, int64_t in, uint32_t seed) {
  return awq::Matrix{out, in, test::random_weights(out, in, seed)};
}

}  // namespace

TEST_CASE("fake_quantize is exactly dequantize(quantize)", "[quant][awq]") {
  cpu::ThreadPool pool(2);
  for (auto [out, in] : {std::pair<int64_t, int64_t>{48, 128}, {64, 384}, {40, 256}}) {
    for (int bits : {4, 8}) {
      for (int group : {32, 64, 128}) {
        if (bits == 8 && group != 128) continue;
        DYNAMIC_SECTION(out << "x" << in << " " << bits << "-bit g" << group) {
          awq::Matrix m = random_matrix(out, in, uint32_t(out * 7 + in + bits + group));
          // Scaled columns as the search produces them: a wide dynamic range per group.
          for (int64_t r = 0; r < out; ++r)
            for (int64_t i = 0; i < in; ++i) m.w[r * in + i] *= std::pow(3.0f, float(i % 5) - 2.0f);
          awq::Config cfg;
          cfg.bits = bits;
          cfg.group = group;
          std::vector<float> fq(m.w.size()), row(static_cast<size_t>(in));
          awq::fake_quantize(m.w.data(), out, in, cfg, fq.data(), &pool);
          const QuantizedMatrix q = awq::quantize(m, cfg, &pool);
          REQUIRE(q.format() == (bits == 8 ? QFormat::Int8 : QFormat::Int4));
          int64_t diff = 0;
          for (int64_t r = 0; r < out; ++r) {
            q.dequantize_row(r, row.data());
            for (int64_t i = 0; i < in; ++i) diff += row[i] != fq[r * in + i];
          }
          REQUIRE(diff == 0);
        }
      }
    }
  }
}

TEST_CASE("AWQ scale search beats RTN on outlier activation channels", "[quant][awq]") {
  cpu::ThreadPool pool(2);
  const int64_t in = 256, rows = 256;
  const awq::Matrix a = random_matrix(96, in, 1), b = random_matrix(64, in, 2);
  // Activations whose channels differ in magnitude by up to ~30x, as residual streams do.
  std::vector<float> x = test::random_acts(rows, in, 3);
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t i = 0; i < in; ++i) x[t * in + i] *= 0.2f + float((i * 37) % 11) / 2.0f;
  awq::InputStats st(in, rows, 0);
  st.add(x.data(), rows);
  REQUIRE(st.rows() == rows);

  for (int group : {32, 128}) {
    awq::Config cfg;
    cfg.bits = 4;
    cfg.group = group;
    const awq::Matrix* ws[] = {&a, &b};
    const auto res = awq::search_scale(pool, ws, st.mean_abs(), st.samples(), rows, cfg);
    INFO("group " << group << " alpha " << res.alpha << " rtn " << res.err_rtn << " awq " << res.err_best);
    // alpha = 0 is plain RTN: its error is the independently computed RTN error.
    std::vector<float> fa(a.w.size()), fb(b.w.size());
    awq::fake_quantize(a.w.data(), a.out, in, cfg, fa.data());
    awq::fake_quantize(b.w.data(), b.out, in, cfg, fb.data());
    const double rtn = (awq::output_error(pool, x.data(), rows, a.w.data(), fa.data(), a.out, in) * a.out +
                        awq::output_error(pool, x.data(), rows, b.w.data(), fb.data(), b.out, in) * b.out) /
                       double(a.out + b.out);
    REQUIRE(res.err_rtn == Approx(rtn).epsilon(1e-9));
    CHECK(res.alpha > 0.0f);
    CHECK(res.err_best < 0.85 * res.err_rtn);

    // Folded the way `troupe quantize` folds them (W diag(s), x / s), the scales give the
    // error the search reported.
    std::vector<float> xs = x;
    awq::divide_samples(xs, rows, res.scales);
    double folded = 0;
    for (const awq::Matrix* w : ws) {
      awq::Matrix sw = *w;
      awq::scale_columns(sw, res.scales);
      std::vector<float> fs(sw.w.size());
      awq::fake_quantize(sw.w.data(), sw.out, in, cfg, fs.data());
      folded += awq::output_error(pool, xs.data(), rows, sw.w.data(), fs.data(), sw.out, in) * sw.out;
    }
    CHECK(folded / double(a.out + b.out) == Approx(res.err_best).epsilon(1e-3));
  }
}

TEST_CASE("AWQ clipping search never increases the output error", "[quant][awq]") {
  cpu::ThreadPool pool(2);
  const int64_t in = 256, rows = 128;
  const std::vector<float> x = test::random_acts(rows, in, 5);
  for (int bits : {4, 8}) {
    awq::Matrix m = random_matrix(80, in, 6);  // has a few 8-sigma outlier weights
    const awq::Matrix orig = m;
    awq::Config cfg;
    cfg.bits = bits;
    cfg.group = 64;
    const auto r = awq::search_and_apply_clip(pool, m, x, rows, cfg);
    INFO(bits << "-bit: " << r.err_before << " -> " << r.err_after << ", mean ratio " << r.mean_ratio);
    CHECK(r.err_after <= r.err_before);
    if (bits == 4) CHECK(r.err_after < 0.95 * r.err_before);
    // Clipping only ever moves weights toward zero.
    for (size_t i = 0; i < m.w.size(); ++i) REQUIRE(std::fabs(m.w[i]) <= std::fabs(orig.w[i]));
  }
}

TEST_CASE("o_proj statistics are shared by the heads of one KV head", "[quant][awq]") {
  // 4 heads of dim 2 over 2 KV heads: heads {0,1} and {2,3} share.
  const std::vector<float> m = {1, 2, 3, 4, 5, 6, 7, 8};
  const auto t = awq::tie_to_kv_heads(m, 4, 2, 2);
  REQUIRE(t == std::vector<float>{2, 3, 2, 3, 6, 7, 6, 7});
  CHECK_THROWS_AS(awq::tie_to_kv_heads(m, 3, 2, 2), Error);
}

TEST_CASE("calibration statistics: mean |x| and a bounded reservoir of real rows", "[quant][awq]") {
  const int64_t n = 8;
  awq::InputStats st(n, 4, 1);
  std::vector<float> x(static_cast<size_t>(20 * n));
  for (int64_t t = 0; t < 20; ++t)
    for (int64_t i = 0; i < n; ++i) x[t * n + i] = float(t * 100 + i) * (i % 2 ? -1.0f : 1.0f);
  st.add(x.data(), 7);
  st.add(x.data() + 7 * n, 13);
  REQUIRE(st.tokens() == 20);
  REQUIRE(st.rows() == 4);
  const auto mean = st.mean_abs();
  for (int64_t i = 0; i < n; ++i) CHECK(mean[i] == Approx(950.0 + double(i)));
  for (int64_t r = 0; r < 4; ++r) {  // every kept row is one of the inputs, whole
    const float* row = st.samples().data() + r * n;
    const int64_t t = int64_t(std::fabs(row[0])) / 100;
    for (int64_t i = 0; i < n; ++i) REQUIRE(row[i] == x[t * n + i]);
  }
}

TEST_CASE("troupe INT8 checkpoint tensors round trip and are validated", "[quant]") {
  const int64_t out = 40, in = 96;
  const auto w = test::random_weights(out, in, 9);
  const QuantizedMatrix m = quantize_int8(w.data(), out, in);
  const Int8Tensors t = to_int8(m);
  REQUIRE(t.q.size() == size_t(out * in));
  for (int64_t r = 0; r < out; ++r) {
    REQUIRE(t.s[r] == m.scale(r, 0));
    for (int64_t i = 0; i < in; ++i) REQUIRE(t.q[r * in + i] == m.q(r, i));
  }
  cpu::ThreadPool pool(2);
  const QuantizedMatrix back = from_int8(t.q.data(), t.s.data(), out, in, &pool);
  std::vector<float> a(static_cast<size_t>(in)), b(static_cast<size_t>(in));
  for (int64_t r = 0; r < out; ++r) {
    m.dequantize_row(r, a.data());
    back.dequantize_row(r, b.data());
    REQUIRE(a == b);
  }
  std::vector<int8_t> bad = t.q;
  bad[5] = -128;
  CHECK_THROWS_AS(from_int8(bad.data(), t.s.data(), out, in), Error);
}

TEST_CASE("quantization options parse and validate", "[quant]") {
  CHECK(parse_method("int4") == Method::Int4);
  CHECK(parse_method("awq") == Method::Awq);
  CHECK_THROWS_AS(parse_method("gptq"), Error);
  CHECK(parse_lm_head("float") == LmHead::Float);
  Options o;
  o.method = Method::Int4;
  o.group_size = 48;
  CHECK_THROWS_AS(validate(o), Error);
  o.group_size = 64;
  validate(o);
  CHECK(describe(o) == "int4-g64");
}
