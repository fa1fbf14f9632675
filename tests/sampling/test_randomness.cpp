// Seeded randomness and the statistics of sampling: reproducibility, and that draws follow
// exactly the distribution probabilities() reports (checked with chi-squared tests that a
// wrong implementation provably fails).
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <vector>

#include "helpers.h"
#include "sampling/sampler.h"

using namespace troupe;
using troupe::test::chi_squared;
using troupe::test::logits_of;
using troupe::test::params_with;
using troupe::test::random_logits;

namespace {

std::vector<int32_t> generate(Sampler& s, const std::vector<float>& logits, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(s.sample(logits).token);
    s.accept(out.back());
  }
  return out;
}

std::map<int32_t, int> histogram(Sampler& s, const std::vector<float>& logits, int n) {
  std::map<int32_t, int> counts;
  for (int32_t t : generate(s, logits, n)) ++counts[t];
  return counts;
}

// Chi-squared critical value for 4 degrees of freedom at significance 0.001 (tables).
constexpr double kCritical4 = 18.47;
constexpr int kDraws = 20000;

const std::vector<double> kFive = {0.4, 0.25, 0.15, 0.12, 0.08};

}  // namespace

TEST_CASE("uniform is a pure function of (seed, step, stream)", "[sampling][random]") {
  Sampler a(params_with(1.0f, 0, 1.0f, 0.0f, 42), {});
  Sampler b(params_with(1.0f, 0, 1.0f, 0.0f, 42), {});
  Sampler c(params_with(1.0f, 0, 1.0f, 0.0f, 43), {});
  // Queried in different orders, and after b has advanced: same values.
  b.accept(0);
  const double b7 = b.uniform(7);
  const double b3 = b.uniform(3, 5);
  CHECK(a.uniform(3, 5) == b3);
  CHECK(a.uniform(7) == b7);
  CHECK(a.uniform(7) != c.uniform(7));
  CHECK(a.uniform(7, 0) != a.uniform(7, 1));
  CHECK(a.uniform(7) != a.uniform(8));

  // Range and rough uniformity.
  double sum = 0;
  int low = 0;
  for (int64_t i = 0; i < 100000; ++i) {
    const double u = a.uniform(i, static_cast<uint64_t>(i % 3));
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    sum += u;
    low += u < 0.1;
  }
  CHECK(sum / 100000 == Approx(0.5).margin(0.005));
  CHECK(low / 100000.0 == Approx(0.1).margin(0.005));
}

TEST_CASE("same seed reproduces the same tokens, different seeds differ", "[sampling][random]") {
  const auto x = random_logits(50, 3, 1.0f);
  Sampler a(params_with(1.0f, 0, 1.0f, 0.0f, 42), {});
  Sampler b(params_with(1.0f, 0, 1.0f, 0.0f, 42), {});
  Sampler c(params_with(1.0f, 0, 1.0f, 0.0f, 43), {});
  const auto seq_a = generate(a, x, 100);
  // Interleave b with unrelated work on another sampler: nothing shared leaks between them.
  std::vector<int32_t> seq_b;
  Sampler other(params_with(0.7f, 10, 0.9f, 0.0f, 42), {});
  for (int i = 0; i < 100; ++i) {
    other.accept(other.sample(random_logits(1000, static_cast<uint32_t>(i))).token);
    seq_b.push_back(b.sample(x).token);
    b.accept(seq_b.back());
  }
  CHECK(seq_a == seq_b);
  CHECK(seq_a != generate(c, x, 100));

  // Unseeded samplers draw their own seeds.
  SamplingParams unseeded = params_with(1.0f);
  unseeded.seed.reset();
  Sampler u2(unseeded, {}), u3(unseeded, {});
  CHECK(generate(u2, x, 100) != generate(u3, x, 100));
}

TEST_CASE("draws at temperature 1 follow softmax (chi-squared)", "[sampling][random]") {
  const auto x = logits_of(kFive);
  Sampler s(params_with(1.0f, 0, 1.0f, 0.0f, 2024), {});
  const auto counts = histogram(s, x, kDraws);
  const auto [stat, df] = chi_squared(counts, kFive, kDraws);
  REQUIRE(df == 4);
  CHECK(stat < kCritical4);

  // The test has teeth: the same counts are rejected against a slightly different
  // distribution (0.42/0.23 instead of 0.4/0.25), and against temperature 0.8.
  CHECK(chi_squared(counts, {0.42, 0.23, 0.15, 0.12, 0.08}, kDraws).first > kCritical4);
  const auto cooler = test::reference_probs(x, params_with(0.8f));
  CHECK(chi_squared(counts, cooler, kDraws).first > kCritical4);
}

TEST_CASE("draws follow the renormalised top-p set (chi-squared)", "[sampling][random]") {
  const auto x = logits_of(kFive);
  SamplingParams params = params_with(1.0f, 0, 0.75f, 0.0f, 99);  // keeps 0.4, 0.25, 0.15
  Sampler s(params, {});
  std::vector<float> probs;
  s.probabilities(x, probs);
  const std::vector<double> expected = {0.5, 0.3125, 0.1875, 0, 0};
  for (size_t i = 0; i < 5; ++i) CHECK(probs[i] == Approx(expected[i]).margin(1e-6));

  const auto counts = histogram(s, x, kDraws);
  CHECK(counts.count(3) == 0);
  CHECK(counts.count(4) == 0);
  const auto [stat, df] = chi_squared(counts, expected, kDraws);
  CHECK(df == 2);
  CHECK(stat < 13.82);  // chi-squared, 2 degrees of freedom, significance 0.001

  // A sampler that walks the kept set with the un-renormalised probabilities (leftover mass
  // falling on the last kept token) uses the same uniform draws but must fail the test.
  std::map<int32_t, int> wrong;
  for (int64_t step = 0; step < kDraws; ++step) {
    const double u = s.uniform(step);
    const int32_t t = u < 0.4 ? 0 : u < 0.65 ? 1 : 2;
    ++wrong[t];
  }
  CHECK(chi_squared(wrong, expected, kDraws).first > 13.82);
}

TEST_CASE("draws match probabilities() under combined truncation", "[sampling][random]") {
  // 200 tokens, several transforms at once: the empirical distribution must match what
  // probabilities() reports (what speculative decoding relies on).
  const auto x = random_logits(200, 5, 2.0f);
  struct Case {
    float t;
    int32_t k;
    float p, min_p;
  };
  for (const Case& c : {Case{0.8f, 50, 0.9f, 0.05f}, Case{1.3f, 0, 0.95f, 0.0f},
                        Case{1.0f, 0, 1.0f, 0.02f}, Case{0.6f, 300, 1.0f, 0.0f}}) {
    Sampler s(params_with(c.t, c.k, c.p, c.min_p, 7), {});
    std::vector<float> probs;
    s.probabilities(x, probs);
    const std::vector<double> expected(probs.begin(), probs.end());
    const auto counts = histogram(s, x, kDraws);
    const auto [stat, df] = chi_squared(counts, expected, kDraws);
    INFO("t=" << c.t << " k=" << c.k << " p=" << c.p << " min_p=" << c.min_p << " df=" << df);
    CHECK(stat < test::chi_squared_critical(df));
  }
}

TEST_CASE("probabilities match a full-sort reference on a 152k vocabulary", "[sampling][random]") {
  const size_t vocab = 152064;
  // Peaked heads with long flat tails: the nucleus ends inside a huge bucket of ties, or (at
  // top_p 0.999 with the tail at e^-17 < 2^-24 of the head) in the shared lowest bucket.
  std::vector<float> tail(vocab, 0.0f), deep_tail(vocab, 0.0f);
  tail[123] = 10.0f;
  deep_tail[5] = 17.0f;
  const std::vector<std::vector<float>> inputs = {random_logits(vocab, 17), tail, deep_tail};
  struct Case {
    float t;
    int32_t k;
    float p, min_p;
  };
  for (const auto& x : inputs) {
    for (const Case& c :
         {Case{1.0f, 0, 0.9f, 0.0f}, Case{0.7f, 0, 0.5f, 0.0f}, Case{1.5f, 40, 0.9f, 0.0f},
          Case{1.0f, 1000, 0.95f, 0.0f}, Case{1.0f, 0, 0.9f, 0.05f}, Case{0.9f, 0, 1.0f, 0.1f},
          Case{1.2f, 0, 1.0f, 0.0f}, Case{1.0f, 20000, 1.0f, 0.0f}, Case{1.0f, 0, 0.999f, 0.0f}}) {
      INFO("t=" << c.t << " k=" << c.k << " p=" << c.p << " min_p=" << c.min_p);
      const SamplingParams params = params_with(c.t, c.k, c.p, c.min_p);
      std::vector<float> probs;
      Sampler(params, {}).probabilities(x, probs);
      const auto ref = test::reference_probs(x, params);
      size_t mismatched_support = 0;
      double max_err = 0;
      for (size_t i = 0; i < vocab; ++i) {
        mismatched_support += (probs[i] > 0) != (ref[i] > 0);
        max_err = std::max(max_err, std::abs(probs[i] - ref[i]));
      }
      CHECK(mismatched_support == 0);
      CHECK(max_err < 1e-6);
    }
  }
}

TEST_CASE("draws across many blocks follow the distribution (chi-squared)", "[sampling][random]") {
  // Heavy tokens spread over several 1024-id blocks (including block edges and a partial last
  // block) and a light tail: exercises the block-skipping draw of the dense form.
  std::vector<float> x(5000, -4.0f);
  const std::vector<int32_t> heavy = {10, 1023, 1024, 2047, 3500, 4999};
  for (size_t j = 0; j < heavy.size(); ++j) x[heavy[j]] = static_cast<float>(j) * 0.3f;
  for (const auto& params :
       {params_with(1.0f, 0, 1.0f, 0.0f, 5), params_with(0.9f, 0, 1.0f, 0.01f, 6),
        params_with(1.1f, 0, 0.97f, 0.0f, 8)}) {
    Sampler s(params, {});
    std::vector<float> probs;
    s.probabilities(x, probs);
    const std::vector<double> expected(probs.begin(), probs.end());
    const auto counts = histogram(s, x, kDraws);
    const auto [stat, df] = chi_squared(counts, expected, kDraws);
    INFO("df=" << df);
    CHECK(df >= 4);
    CHECK(stat < test::chi_squared_critical(df));
  }
}

TEST_CASE("top_p on a flat distribution keeps exactly that fraction, lowest ids first",
          "[sampling][random]") {
  const std::vector<float> flat(152064, 0.25f);
  std::vector<float> probs;
  Sampler(params_with(1.0f, 0, 0.5f), {}).probabilities(flat, probs);
  size_t kept = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] > 0) {
      ++kept;
      CHECK(i < 76032);
    }
  }
  CHECK(kept == 76032);
}
