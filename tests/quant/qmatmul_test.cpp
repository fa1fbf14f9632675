// qmatmul against the scalar references, for every kernel family this CPU runs, every
// format, odd row counts, every Int4 group size, T from 1 (GEMV) to 33 (GEMM), with and
// without bias, on pools of 1-3 threads.
//
// Two checks per output:
//  * vs ref::qmatmul_qact (same int8 activations, double sums): float rounding only,
//    |diff| <= 2e-5 * sum|w x|  (the kernels sum a few thousand float terms in float);
//  * vs ref::qmatmul (float activations): within ref::act_error_bound - the worst case of
//    activation rounding, half a step per input - plus the same float slack.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "cpu/host_tuning.h"
#include "cpu/kernels.h"
#include "cpu/thread_pool.h"
#include "quant/qmatmul.h"
#include "quant/reference.h"
#include "quant_test_util.h"

using namespace troupe;
using namespace troupe::quant;

namespace {

struct Case {
  QFormat fmt;
  int64_t out, in;
  int group;
};

QuantizedMatrix make(const Case& c, const std::vector<float>& w, std::vector<uint8_t>& raw) {
  switch (c.fmt) {
    case QFormat::Int8: return quantize_int8(w.data(), c.out, c.in);
    case QFormat::Int4: return quantize_int4(w.data(), c.out, c.in, c.group);
    case QFormat::Q8_0:
    case QFormat::Q4_0: {  // genuine GGUF blocks (full-range quants, incl. -128 for Q8_0)
      const DType dt = c.fmt == QFormat::Q8_0 ? DType::Q8_0 : DType::Q4_0;
      raw = test::random_gguf(dt, c.out, c.in, static_cast<uint32_t>(c.out * 31 + c.in));
      return from_gguf(TensorView{"w", dt, {c.out, c.in}, raw.data(), static_cast<int64_t>(raw.size())});
    }
  }
  return {};
}

// sum_i |w[o, i] x[t, i]|: the scale of float rounding error in output (t, o).
std::vector<double> magnitudes(const QuantizedMatrix& W, const float* x, int64_t T) {
  const int64_t in = W.cols(), out = W.rows();
  std::vector<double> m(static_cast<size_t>(T * out));
  std::vector<float> w(static_cast<size_t>(in));
  for (int64_t o = 0; o < out; ++o) {
    W.dequantize_row(o, w.data());
    for (int64_t t = 0; t < T; ++t) {
      double s = 0;
      for (int64_t i = 0; i < in; ++i) s += std::fabs(static_cast<double>(w[i]) * x[t * in + i]);
      m[t * out + o] = s;
    }
  }
  return m;
}

void check_case(cpu::ThreadPool& pool, const Case& c, int64_t T, bool with_bias) {
  const auto w = test::random_weights(c.out, c.in, static_cast<uint32_t>(c.out + 3 * c.in));
  std::vector<uint8_t> raw;
  const QuantizedMatrix W = make(c, w, raw);
  const auto x = test::random_acts(T, c.in, static_cast<uint32_t>(T + c.in));
  std::vector<float> bias(static_cast<size_t>(c.out));
  for (int64_t o = 0; o < c.out; ++o) bias[o] = 0.01f * static_cast<float>(o % 13) - 0.05f;
  const float* b = with_bias ? bias.data() : nullptr;

  std::vector<float> y(static_cast<size_t>(T * c.out), NAN), yq(y.size()), yf(y.size()), bound(y.size());
  qmatmul(pool, x.data(), T, W, y.data(), b);
  ref::qmatmul_qact(x.data(), T, W, yq.data(), b);
  ref::qmatmul(x.data(), T, W, yf.data(), b);
  ref::act_error_bound(x.data(), T, W, bound.data());
  const auto mag = magnitudes(W, x.data(), T);

  int64_t bad_q = 0, bad_f = 0;
  double worst = 0;
  for (size_t k = 0; k < y.size(); ++k) {
    const double slack = 2e-5 * mag[k] + 1e-7;
    const double dq = std::fabs(static_cast<double>(y[k]) - yq[k]);
    worst = std::max(worst, dq / slack);
    bad_q += !(dq <= slack);  // also catches NaN (unwritten outputs)
    bad_f += !(std::fabs(static_cast<double>(y[k]) - yf[k]) <= bound[k] + slack);
  }
  INFO(qisa_name(current_qisa()) << " " << qformat_name(c.fmt) << " " << c.out << "x" << c.in
       << " g" << c.group << " T=" << T << " bias=" << with_bias << " threads=" << pool.size()
       << " worst/slack=" << worst);
  REQUIRE(bad_q == 0);
  REQUIRE(bad_f == 0);
}

std::vector<QIsa> isas() {
  std::vector<QIsa> v{QIsa::Scalar};
  if (best_qisa() >= QIsa::Avx2) v.push_back(QIsa::Avx2);
  if (best_qisa() >= QIsa::Avx512Vnni) v.push_back(QIsa::Avx512Vnni);
  return v;
}

// Tokens of x [T][in] whose outputs from one qmatmul of all T differ in any bit from the
// token's own qmatmul (T = 1).
int64_t tokens_unlike_alone(cpu::ThreadPool& pool, const QuantizedMatrix& W,
                            const std::vector<float>& x, int64_t T, const float* bias) {
  const int64_t in = W.cols(), out = W.rows();
  std::vector<float> all(static_cast<size_t>(T * out)), one(static_cast<size_t>(out));
  qmatmul(pool, x.data(), T, W, all.data(), bias);
  int64_t differ = 0;
  for (int64_t t = 0; t < T; ++t) {
    qmatmul(pool, x.data() + t * in, 1, W, one.data(), bias);
    differ += !std::equal(one.begin(), one.end(), all.begin() + t * out);
  }
  return differ;
}

struct IsaGuard {
  QIsa saved = current_qisa();
  ~IsaGuard() { set_qisa(saved); }
};

}  // namespace

TEST_CASE("qmatmul matches the references on every kernel family", "[quant]") {
  IsaGuard guard;
  const std::vector<Case> cases = {
      {QFormat::Int8, 1, 32, 0},     {QFormat::Int8, 17, 33, 0},   {QFormat::Int8, 33, 257, 0},
      {QFormat::Int8, 64, 128, 0},   {QFormat::Int4, 1, 128, 128}, {QFormat::Int4, 15, 130, 32},
      {QFormat::Int4, 31, 256, 64},  {QFormat::Int4, 48, 384, 128}, {QFormat::Int4, 100, 96, 32},
      {QFormat::Q8_0, 1, 32, 32},    {QFormat::Q8_0, 19, 96, 32},  {QFormat::Q8_0, 64, 256, 32},
      {QFormat::Q4_0, 3, 64, 32},    {QFormat::Q4_0, 45, 160, 32}, {QFormat::Q4_0, 64, 512, 32},
  };
  cpu::ThreadPool pool1(1), pool2(2), pool3(3);
  for (QIsa isa : isas()) {
    set_qisa(isa);
    for (const Case& c : cases)
      for (int64_t T : {1, 2, 3, 4, 5, 8, 13, 33})
        for (bool bias : {false, true}) {
          cpu::ThreadPool& pool = T % 3 == 0 ? pool3 : T % 2 == 0 ? pool2 : pool1;
          check_case(pool, c, T, bias);
        }
  }
}

TEST_CASE("qmatmul on layer-sized shapes", "[quant]") {
  IsaGuard guard;
  cpu::ThreadPool pool(2);
  for (QIsa isa : isas()) {
    set_qisa(isa);
    for (QFormat f : {QFormat::Int8, QFormat::Int4, QFormat::Q8_0, QFormat::Q4_0})
      for (int64_t T : {1, 32}) {
        check_case(pool, {f, 768, 2048, 128}, T, false);
        check_case(pool, {f, 2048, 768, f == QFormat::Int4 ? 64 : 32}, T, true);
      }
  }
}

// A long prompt: qmatmul feeds the kernels L2-sized chunks of tokens (64 at in = 4096), so
// T = 150 runs as chunks of 64, 64 and 22 tokens. Every output must match the references and
// equal the same token's output computed alone (the chunk offsets of activations, scales,
// offsets and group sums, and of y, all line up).
TEST_CASE("qmatmul over several token chunks equals one token at a time", "[quant]") {
  IsaGuard guard;
  cpu::ThreadPool pool(2);
  const int64_t T = 150, out = 40, in = 4096;
  for (QIsa isa : isas()) {
    set_qisa(isa);
    for (QFormat f : {QFormat::Int8, QFormat::Int4, QFormat::Q8_0, QFormat::Q4_0}) {
      const Case c{f, out, in, 128};
      check_case(pool, c, T, true);
      const auto w = test::random_weights(out, in, 5);
      std::vector<uint8_t> raw;
      const QuantizedMatrix W = make(c, w, raw);
      const auto x = test::random_acts(T, in, 6);
      INFO(qisa_name(isa) << " " << qformat_name(f));
      CHECK(tokens_unlike_alone(pool, W, x, T, nullptr) == 0);
    }
  }
}

// Batch invariance across kernels: the AVX-512 GEMM runs pairs of tiles over passes of 2-5
// tokens (2, 3 and 4 = one pass, 2 and 3 with two dot chains per token; 5 = 5, 6 = 4 + 2,
// 7 = 4 + 3, 9 = 5 + 4, 13 = 5 + 4 + 4) and an odd tile one tile at a time, while T = 1
// runs the GEMV. A token's outputs must be the same bits
// whichever of them computed it: row counts with a partial second tile of a pair (17), a
// pair and an odd partial tile (33), and whole tiles only (48), on 1 and 2 threads, with
// bias.
TEST_CASE("qmatmul gives a token the same bits alone and in any batch", "[quant]") {
  IsaGuard guard;
  cpu::ThreadPool p1(1), p2(2);
  const int64_t in = 256;
  for (QIsa isa : isas()) {
    set_qisa(isa);
    for (QFormat f : {QFormat::Int8, QFormat::Int4, QFormat::Q8_0, QFormat::Q4_0})
      for (int64_t out : {17, 33, 48})
        for (int64_t T : {2, 3, 4, 5, 6, 7, 9, 13})
          for (cpu::ThreadPool* pool : {&p1, &p2}) {
            const Case c{f, out, in, 128};
            const auto w = test::random_weights(out, in, 7);
            std::vector<uint8_t> raw;
            const QuantizedMatrix W = make(c, w, raw);
            const auto x = test::random_acts(T, in, 8);
            const std::vector<float> bias(static_cast<size_t>(out), 0.125f);
            INFO(qisa_name(isa) << " " << qformat_name(f) << " out=" << out << " T=" << T
                                << " threads=" << pool->size());
            CHECK(tokens_unlike_alone(*pool, W, x, T, bias.data()) == 0);
          }
  }
}

// The host tuning tables (cpu/host_tuning.h) change how the AVX-512 GEMV fetches ahead,
// into L1 or paced into L2, and nothing else: under each, a token's GEMV outputs are the
// bits the batched kernel (which neither table touches) gives it.
TEST_CASE("the GEMV computes the same bits under every host tuning table", "[quant]") {
  IsaGuard guard;
  const cpu::HostTuning saved = cpu::host_tuning();
  cpu::ThreadPool p1(1), p2(2);
  const int64_t in = 512;  // 8 KiB ahead of a tile's first line lies past Q4_0's 4 KiB tile
  for (QIsa isa : isas()) {
    set_qisa(isa);
    for (const cpu::HostTuning& tuning : {cpu::amd_host_tuning(), cpu::intel_host_tuning()}) {
      cpu::set_host_tuning(tuning);
      for (QFormat f : {QFormat::Int8, QFormat::Int4, QFormat::Q8_0, QFormat::Q4_0})
        for (int64_t out : {17, 48})
          for (cpu::ThreadPool* pool : {&p1, &p2}) {
            std::vector<uint8_t> raw;
            const QuantizedMatrix W = make({f, out, in, 128}, test::random_weights(out, in, 9), raw);
            const auto x = test::random_acts(5, in, 10);
            INFO(qisa_name(isa) << " " << tuning.name << " " << qformat_name(f) << " out=" << out
                                << " threads=" << pool->size());
            CHECK(tokens_unlike_alone(*pool, W, x, 5, nullptr) == 0);
          }
    }
  }
  cpu::set_host_tuning(saved);
}

// qmatmul_glu (the feed-forward's gate/up and down matmuls in one call, gate and up outputs
// never written out) gives the bits of the three steps it replaces: qmatmul of the stacked
// gate/up matrix, silu_mul_to on each row, qmatmul of down. Units of 128 to 2560 channels
// (1, 2 and 3 threads; one chunk of T <= 32 tokens, or chunks of 32-64 for T = 33 and 70),
// a last unit of 16 channels (a partial block) or ending inside an Int4 group, formats
// mixed between gate/up and down, gate and up as the stack's two halves and as two
// matrices, on every kernel family.
TEST_CASE("qmatmul_glu equals gate/up, silu_mul_to and down one after another", "[quant]") {
  IsaGuard guard;
  struct GluCase {
    QFormat gu, dn;
    int gu_group, dn_group;
    int64_t hidden, I;
  };
  cpu::ThreadPool pool1(1), pool2(2), pool3(3);
  for (QIsa isa : isas()) {
    set_qisa(isa);
    for (const GluCase& c : {GluCase{QFormat::Int4, QFormat::Int4, 128, 128, 128, 640},
                             GluCase{QFormat::Int8, QFormat::Int8, 0, 0, 96, 144},
                             GluCase{QFormat::Int4, QFormat::Int4, 32, 64, 256, 1040},
                             GluCase{QFormat::Q8_0, QFormat::Q4_0, 32, 32, 256, 1024},
                             GluCase{QFormat::Q4_0, QFormat::Int8, 32, 0, 128, 2560}}) {
      std::vector<uint8_t> raw_g, raw_u, raw_d;
      const QuantizedMatrix gate = make({c.gu, c.I, c.hidden, c.gu_group}, test::random_weights(c.I, c.hidden, 21), raw_g);
      const QuantizedMatrix up = make({c.gu, c.I, c.hidden, c.gu_group}, test::random_weights(c.I, c.hidden, 22), raw_u);
      const QuantizedMatrix down = make({c.dn, c.hidden, c.I, c.dn_group}, test::random_weights(c.hidden, c.I, 23), raw_d);
      const QuantizedMatrix* parts[] = {&gate, &up};
      const QuantizedMatrix gate_up = concat_rows(parts);
      REQUIRE(!gate_up.empty());
      // As the backend runs them: the halves of the stack (views), and unstacked.
      const QuantizedMatrix gate_view = gate_up.row_slice(0, c.I), up_view = gate_up.row_slice(c.I, 2 * c.I);
      const std::vector<float> bias(static_cast<size_t>(c.hidden), 0.25f);
      for (cpu::ThreadPool* pool : {&pool1, &pool2, &pool3})
        for (int64_t T : {1, 2, 5, 33, 70}) {
          const auto x = test::random_acts(T, c.hidden, 24);
          std::vector<float> gu(static_cast<size_t>(T * 2 * c.I)), act(static_cast<size_t>(T * c.I));
          std::vector<float> expected(static_cast<size_t>(T * c.hidden)), fused(expected.size(), NAN);
          qmatmul(*pool, x.data(), T, gate_up, gu.data());
          for (int64_t t = 0; t < T; ++t)
            cpu::silu_mul_to(act.data() + t * c.I, gu.data() + t * 2 * c.I, gu.data() + t * 2 * c.I + c.I, c.I);
          qmatmul(*pool, act.data(), T, down, expected.data(), bias.data());
          INFO(qisa_name(isa) << " " << qformat_name(c.gu) << "/" << qformat_name(c.dn) << " I " << c.I
                              << " T " << T << " threads " << pool->size());
          REQUIRE(qmatmul_glu_fits(gate_view, up_view, down));
          qmatmul_glu(*pool, x.data(), T, gate_view, up_view, cpu::silu_mul_to, down, fused.data(), bias.data());
          CHECK(fused == expected);
          std::fill(fused.begin(), fused.end(), NAN);
          qmatmul_glu(*pool, x.data(), T, gate, up, cpu::silu_mul_to, down, fused.data(), bias.data());
          CHECK(fused == expected);
        }
    }
  }
}

// The activation scratch is per thread and shared by every matrix a thread multiplies: an
// Int4 matmul must not pick up the integer start values a Q4_0 matmul of the same width
// left there (the AVX2 kernel read them, so an Int4 matrix after a Q4_0 one came out wrong).
TEST_CASE("an Int4 qmatmul gives the same bits after a Q4_0 qmatmul on the same thread", "[quant]") {
  IsaGuard guard;
  cpu::ThreadPool pool(1);
  const int64_t out = 48, in = 256, T = 3;
  std::vector<uint8_t> raw;
  const QuantizedMatrix q4_0 = make({QFormat::Q4_0, out, in, 32}, {}, raw);
  const QuantizedMatrix int4 = quantize_int4(test::random_weights(out, in, 5).data(), out, in, 128);
  const auto x = test::random_acts(T, in, 6);
  std::vector<float> before(size_t(T * out)), after(before.size()), other(before.size());
  for (QIsa isa : isas()) {
    set_qisa(isa);
    std::thread([&] {  // a fresh thread: a fresh scratch
      cpu::ThreadPool fresh(1);
      qmatmul(fresh, x.data(), T, int4, before.data());
    }).join();
    qmatmul(pool, x.data(), T, q4_0, other.data());
    qmatmul(pool, x.data(), T, int4, after.data());
    INFO(qisa_name(isa));
    CHECK(after == before);
  }
}

TEST_CASE("qmatmul_glu rejects gate and up that do not match down or each other", "[quant]") {
  cpu::ThreadPool pool(1);
  const auto w = test::random_weights(48, 64, 1);
  const QuantizedMatrix gate = quantize_int8(w.data(), 48, 64), up4 = quantize_int4(w.data(), 48, 64, 32);
  const QuantizedMatrix down = quantize_int8(test::random_weights(64, 64, 2).data(), 64, 64);
  const QuantizedMatrix down48 = quantize_int8(test::random_weights(64, 48, 3).data(), 64, 48);
  std::vector<float> x(64, 0.5f), y(64);
  CHECK(!qmatmul_glu_fits(gate, gate, down));  // 48 rows for 64 inputs
  CHECK(!qmatmul_glu_fits(gate, up4, down48));  // INT8 beside INT4
  CHECK(qmatmul_glu_fits(gate, gate, down48));
  REQUIRE_THROWS_WITH(qmatmul_glu(pool, x.data(), 1, gate, gate, cpu::silu_mul_to, down, y.data()),
                      Catch::Contains("as many rows as down has inputs (64)"));
  REQUIRE_THROWS_WITH(qmatmul_glu(pool, x.data(), 1, gate, up4, cpu::silu_mul_to, down48, y.data()),
                      Catch::Contains("must be alike"));
}

TEST_CASE("qmatmul kernel families agree and threads do not change results", "[quant]") {
  IsaGuard guard;
  const auto w = test::random_weights(77, 320, 1);
  const auto x = test::random_acts(6, 320, 2);
  const QuantizedMatrix W = quantize_int4(w.data(), 77, 320, 64);
  cpu::ThreadPool p1(1), p2(2);
  std::vector<float> a(6 * 77), b(6 * 77);
  for (QIsa isa : isas()) {
    set_qisa(isa);
    qmatmul(p1, x.data(), 6, W, a.data());
    qmatmul(p2, x.data(), 6, W, b.data());
    REQUIRE(a == b);  // tiles are independent: the split cannot change the sums
  }
}

TEST_CASE("qmatmul edge shapes", "[quant]") {
  cpu::ThreadPool pool(2);
  const std::vector<float> x(64, 1.0f), bias(5, 0.25f);
  std::vector<float> y(5, NAN);
  const QuantizedMatrix W = quantize_int8(std::vector<float>(5 * 64, 0.0f).data(), 5, 64);
  qmatmul(pool, x.data(), 1, W, y.data(), bias.data());
  CHECK(y == bias);
  qmatmul(pool, x.data(), 0, W, y.data());  // no tokens: nothing written
  CHECK(y == bias);
}

// Accuracy cost of int8 activations next to the cost of the weight quantization itself,
// on a realistic layer (normal weights with outliers) for three activation distributions:
// plain normal; a few outlier channels (x20 in 1 of 256, like the "massive activations" of
// LLMs); and the harsh test distribution (an outlier channel in every third block).
TEST_CASE("int8 activation error is small next to the weight quantization error", "[quant]") {
  const int64_t out = 768, in = 2048, T = 4;
  const auto w = test::random_weights(out, in, 21);
  std::mt19937 rng(22);
  std::normal_distribution<float> n(0.0f, 1.0f);
  cpu::ThreadPool pool(2);
  for (int every : {0, 256, 97}) {
    std::vector<float> x = test::random_acts(T, in, 22);
    if (every != 97)
      for (int64_t k = 0; k < T * in; ++k) x[k] = n(rng) * (every && (k % in) % every == 5 ? 20.0f : 1.0f);
    std::vector<double> exact(static_cast<size_t>(T * out));
    double norm = 0;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t o = 0; o < out; ++o) {
        double s = 0;
        for (int64_t i = 0; i < in; ++i) s += static_cast<double>(w[o * in + i]) * x[t * in + i];
        exact[t * out + o] = s;
        norm += s * s;
      }
    auto rel_rms = [&](const std::vector<float>& a, const std::vector<float>& b) {
      double e = 0;
      for (size_t k = 0; k < a.size(); ++k)
        e += (static_cast<double>(a[k]) - b[k]) * (static_cast<double>(a[k]) - b[k]);
      return std::sqrt(e / norm);
    };
    for (QFormat f : {QFormat::Int8, QFormat::Int4, QFormat::Q8_0, QFormat::Q4_0}) {
      TensorView tv{"w", DType::F32, {out, in}, w.data(), out * in * 4};
      const QuantizedMatrix W = quantize(tv, f, 128);
      std::vector<float> yk(exact.size()), yf(exact.size()), ye(exact.begin(), exact.end());
      qmatmul(pool, x.data(), T, W, yk.data());
      ref::qmatmul(x.data(), T, W, yf.data());
      const double werr = rel_rms(yf, ye), aerr = rel_rms(yk, yf), total = rel_rms(yk, ye);
      std::printf("acts %-17s %-5s rel. RMS error: weights %.2e  int8 acts %.2e  total %.2e\n",
                  every == 0 ? "normal" : every == 256 ? "outliers 1/256" : "outliers 1/97",
                  std::string(qformat_name(f)).c_str(), werr, aerr, total);
      // 4-bit: the activations add a small fraction of the weight error. 8-bit: both sides
      // are 8-bit per 32-block, so the activation error is of the weight error's order.
      if (is_4bit(f))
        CHECK(aerr < 0.15 * werr);
      else
        CHECK(aerr < 0.015);
    }
  }
}
