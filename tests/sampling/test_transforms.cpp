// The individual transforms on hand-made logits: greedy, temperature, top-k, top-p, min-p,
// penalties, and the reported logprobs.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "helpers.h"
#include "sampling/sampler.h"

using namespace troupe;
using troupe::test::logits_of;
using troupe::test::params_with;
using troupe::test::random_logits;

namespace {

std::vector<float> probs_of(const Sampler& s, const std::vector<float>& logits) {
  std::vector<float> probs;
  s.probabilities(logits, probs);
  return probs;
}

int32_t argmax(const std::vector<float>& x) {
  return static_cast<int32_t>(std::max_element(x.begin(), x.end()) - x.begin());  // first max
}

}  // namespace

TEST_CASE("greedy picks the argmax, lowest id on ties", "[sampling]") {
  SamplingParams with_logprobs = params_with(0.0f);
  with_logprobs.return_logprobs = true;
  Sampler s(with_logprobs, {});
  const std::vector<float> x = {1.0f, 5.0f, 3.0f, 5.0f, -2.0f};
  const SampleResult r = s.sample(x);
  CHECK(r.token == 1);
  // Without logprobs asked for, the same token and no logprob (the normaliser is skipped),
  // also where the tie and the max sit in a later block of the vocabulary.
  Sampler plain(params_with(0.0f), {});
  const SampleResult q = plain.sample(x);
  CHECK(q.token == 1);
  CHECK(std::isnan(q.logprob));
  for (uint32_t seed = 0; seed < 10; ++seed) {
    auto y = random_logits(5000, seed);
    y[4000] = y[4700] = 40.0f;
    if (seed % 2) y[1500] = 40.0f;
    CHECK(plain.sample(y).token == argmax(y));
    CHECK(plain.sample(y).token == s.sample(y).token);
  }
  double z = 0;
  for (float v : x) z += std::exp(v);
  CHECK(r.logprob == Approx(5.0 - std::log(z)).margin(1e-6));
  CHECK(probs_of(s, x) == std::vector<float>{0, 1, 0, 0, 0});

  // Greedy ignores top-k/top-p/min-p entirely (they cannot change the argmax).
  Sampler t(params_with(0.0f, 3, 0.1f, 0.9f), {});
  for (uint32_t seed = 0; seed < 20; ++seed) {
    const auto y = random_logits(1000, seed);
    CHECK(t.sample(y).token == argmax(y));
  }
}

TEST_CASE("masked (-inf) tokens are never chosen; NaN and all -inf are errors", "[sampling]") {
  const float ninf = -std::numeric_limits<float>::infinity();
  const std::vector<float> x = {ninf, 0.0f, ninf, 0.0f};
  Sampler s(params_with(1.0f), {});
  const auto probs = probs_of(s, x);
  CHECK(probs == std::vector<float>{0, 0.5f, 0, 0.5f});
  for (int i = 0; i < 50; ++i) {
    const int32_t t = s.sample(x).token;
    CHECK((t == 1 || t == 3));
    s.accept(t);
  }
  for (float temperature : {0.0f, 1.0f}) {
    Sampler g(params_with(temperature), {});
    CHECK_THROWS_AS(g.sample(std::vector<float>{ninf, ninf}), Error);
    CHECK_THROWS_AS(g.sample(std::vector<float>{0.0f, NAN}), Error);
    CHECK_THROWS_AS(g.sample(std::vector<float>{}), Error);
  }
}

TEST_CASE("temperature -> 0 approaches greedy; high temperature flattens", "[sampling]") {
  const std::vector<float> x = {0.5f, 2.0f, 1.0f, 1.5f};
  double previous = 0;
  for (float t : {2.0f, 1.0f, 0.5f, 0.1f}) {
    const double p_max = probs_of(Sampler(params_with(t), {}), x)[1];
    CHECK(p_max > previous);  // strictly sharper as the temperature falls
    previous = p_max;
  }
  for (float t : {1e-3f, 1e-6f, 1e-20f}) {
    Sampler s(params_with(t), {});
    CHECK(probs_of(s, x) == std::vector<float>{0, 1, 0, 0});
    for (int i = 0; i < 20; ++i) {
      CHECK(s.sample(x).token == 1);
      s.accept(1);
    }
  }
  const auto flat = probs_of(Sampler(params_with(100.0f), {}), x);
  for (float p : flat) CHECK(p == Approx(0.25).epsilon(0.01));
}

TEST_CASE("top_k = 1 equals greedy", "[sampling]") {
  Sampler s(params_with(1.0f, 1), {});
  for (uint32_t seed = 0; seed < 50; ++seed) {
    const auto x = random_logits(5000, seed);
    CHECK(s.sample(x).token == argmax(x));
    s.accept(0);
  }
  CHECK(s.sample(std::vector<float>{1.0f, 3.0f, 3.0f}).token == 1);  // tie -> lower id
}

TEST_CASE("top_k keeps the k most likely, renormalised", "[sampling]") {
  const auto x = logits_of({0.1, 0.4, 0.05, 0.3, 0.15});
  const auto probs = probs_of(Sampler(params_with(1.0f, 2), {}), x);
  CHECK(probs[1] == Approx(4.0 / 7));
  CHECK(probs[3] == Approx(3.0 / 7));
  CHECK(probs[0] + probs[2] + probs[4] == 0.0f);
  // k >= vocab and k = -1 are no-ops.
  for (int32_t k : {5, 100, -1}) {
    const auto all = probs_of(Sampler(params_with(1.0f, k), {}), x);
    CHECK(all[2] == Approx(0.05));
  }
}

TEST_CASE("top_p keeps the smallest set reaching top_p", "[sampling]") {
  // Deliberately not in sorted order.
  const auto x = logits_of({0.1, 0.4, 0.05, 0.3, 0.15});
  auto kept = [&](float top_p, int32_t top_k = 0) {
    return probs_of(Sampler(params_with(1.0f, top_k, top_p), {}), x);
  };
  // 0.4 + 0.3 reaches 0.7 exactly: the decimal boundary must not drag in a third token.
  auto p = kept(0.7f);
  CHECK(p[1] == Approx(4.0 / 7));
  CHECK(p[3] == Approx(3.0 / 7));
  CHECK(p[0] + p[2] + p[4] == 0.0f);
  p = kept(0.71f);  // needs 0.15 too
  CHECK(p[4] == Approx(0.15 / 0.85));
  CHECK(p[0] + p[2] == 0.0f);
  p = kept(0.05f);  // always at least one token
  CHECK(p[1] == 1.0f);
  p = kept(0.999f);
  CHECK(p[2] == Approx(0.05));

  // After top-k, top_p applies to the top-k-renormalised mass (vLLM's order): top-3 mass 0.85,
  // (0.4 + 0.3) / 0.85 = 0.82 >= 0.8, so the third token goes; without top-k it stays.
  p = kept(0.8f, 3);
  CHECK(p[4] == 0.0f);
  CHECK(p[1] == Approx(4.0 / 7));
  p = kept(0.8f);
  CHECK(p[4] == Approx(0.15 / 0.85));
}

TEST_CASE("top_p is applied after temperature", "[sampling]") {
  // At temperature 0.5 the weights square: 0.16, 0.09, 0.0225, ... -> 0.16/0.2975 = 0.54 alone
  // reaches top_p 0.5, which at temperature 1 (0.4) would need a second token.
  const auto x = logits_of({0.4, 0.3, 0.15, 0.1, 0.05});
  const auto p = probs_of(Sampler(params_with(0.5f, 0, 0.5f), {}), x);
  CHECK(p[0] == 1.0f);
  const auto q = probs_of(Sampler(params_with(1.0f, 0, 0.5f), {}), x);
  CHECK(q[1] == Approx(3.0 / 7));
}

TEST_CASE("min_p keeps tokens with p >= min_p * p_max", "[sampling]") {
  const auto x = logits_of({0.5, 0.2, 0.1, 0.15, 0.05});
  // threshold 0.25 * 0.5 = 0.125: keeps 0.5, 0.2, 0.15.
  auto p = probs_of(Sampler(params_with(1.0f, 0, 1.0f, 0.25f), {}), x);
  CHECK(p[0] == Approx(0.5 / 0.85));
  CHECK(p[1] == Approx(0.2 / 0.85));
  CHECK(p[3] == Approx(0.15 / 0.85));
  CHECK(p[2] + p[4] == 0.0f);
  // After temperature 2 the ratios to the top are sqrt(p / 0.5): 0.63, 0.45, 0.55, 0.32; so
  // min_p 0.4 drops only the last one.
  p = probs_of(Sampler(params_with(2.0f, 0, 1.0f, 0.4f), {}), x);
  CHECK(p[4] == 0.0f);
  CHECK(p[2] > 0.0f);
  // min_p = 1 keeps only the top token.
  p = probs_of(Sampler(params_with(1.0f, 0, 1.0f, 1.0f), {}), x);
  CHECK(p[0] == 1.0f);
}

TEST_CASE("repetition penalty covers prompt and generated tokens", "[sampling][penalties]") {
  SamplingParams params = params_with(1.0f);
  params.repetition_penalty = 2.0f;
  const std::vector<int32_t> prompt = {0, 0, 7};  // 7 is beyond this vocab: ignored
  Sampler s(params, prompt);
  s.accept(1);
  std::vector<float> x = {2.0f, -2.0f, 1.0f, 0.5f, -1.0f};
  s.apply_penalties(x);
  // positive logits are divided, negative multiplied: both become less likely
  CHECK(x == std::vector<float>{1.0f, -4.0f, 1.0f, 0.5f, -1.0f});
}

TEST_CASE("presence and frequency penalties count generated tokens only", "[sampling][penalties]") {
  SamplingParams params = params_with(1.0f);
  params.presence_penalty = 0.5f;
  params.frequency_penalty = 0.25f;
  Sampler s(params, std::vector<int32_t>{4});
  s.accept(2);
  s.accept(3);
  s.accept(2);
  std::vector<float> x = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  s.apply_penalties(x);
  // token 2: 1 - (0.5 + 2 * 0.25); token 3: 1 - (0.5 + 0.25); prompt token 4 untouched
  CHECK(x == std::vector<float>{1.0f, 1.0f, 0.0f, 0.25f, 1.0f});
  CHECK(s.num_generated() == 3);

  // Negative values encourage repetition.
  params.presence_penalty = -1.0f;
  params.frequency_penalty = 0.0f;
  Sampler e(params, {});
  e.accept(0);
  std::vector<float> y = {0.0f, 0.0f};
  e.apply_penalties(y);
  CHECK(y == std::vector<float>{1.0f, 0.0f});
}

TEST_CASE("repetition then presence/frequency, and sample() applies them",
          "[sampling][penalties]") {
  SamplingParams params = params_with(0.0f);
  params.repetition_penalty = 2.0f;
  params.presence_penalty = 1.0f;
  params.return_logprobs = true;
  Sampler s(params, std::vector<int32_t>{0});
  // Token 0 is in the prompt: 3 / 2 = 1.5 < 2.5, so greedy now prefers token 1.
  const std::vector<float> x = {3.0f, 2.5f};
  CHECK(s.sample(x).token == 1);
  s.accept(1);
  // Token 1: 2.5 / 2 - 1 = 0.25 (repetition first, then presence); token 0 stays 1.5.
  std::vector<float> y = x;
  s.apply_penalties(y);
  CHECK(y == std::vector<float>{1.5f, 0.25f});
  const SampleResult r = s.sample(x);
  CHECK(r.token == 0);
  // The reported logprob is under the penalised logits.
  CHECK(r.logprob == Approx(1.5 - std::log(std::exp(1.5) + std::exp(0.25))).margin(1e-6));
  // The caller's logits are not modified.
  CHECK(x == std::vector<float>{3.0f, 2.5f});
}

TEST_CASE("bad token ids are rejected", "[sampling][penalties]") {
  SamplingParams params = params_with(1.0f);
  params.repetition_penalty = 1.1f;
  CHECK_THROWS_AS(Sampler(params, std::vector<int32_t>{3, -1}), Error);
  Sampler s(params, {});
  CHECK_THROWS_AS(s.accept(-5), Error);
  CHECK_THROWS_AS(s.accept(1 << 30), Error);
}

TEST_CASE("logprobs are the raw log-softmax and sum to one", "[sampling][logprobs]") {
  const auto x = random_logits(20, 7);
  for (float temperature : {0.0f, 0.3f, 1.0f, 1.7f}) {
    SamplingParams params = params_with(temperature, 5, 0.9f);
    params.logprobs = 20;
    Sampler s(params, {});
    const SampleResult r = s.sample(x);
    REQUIRE(r.top.size() == 20);  // the whole vocabulary
    double sum = 0;
    for (size_t i = 0; i < r.top.size(); ++i) {
      sum += std::exp(r.top[i].logprob);
      if (i > 0) CHECK(r.top[i - 1].logprob >= r.top[i].logprob);
    }
    CHECK(sum == Approx(1.0).epsilon(1e-5));
    CHECK(r.top[0].id == argmax(x));
    // The chosen token's logprob is the raw one regardless of temperature and truncation.
    double z = 0;
    for (float v : x) z += std::exp(static_cast<double>(v));
    CHECK(r.logprob == Approx(x[r.token] - std::log(z)).margin(1e-5));
  }
}

TEST_CASE("top logprobs over a large vocabulary", "[sampling][logprobs]") {
  const auto x = random_logits(152064, 11);
  SamplingParams params = params_with(0.8f);
  params.logprobs = 5;
  Sampler s(params, {});
  const SampleResult r = s.sample(x);
  std::vector<int32_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + 5, order.end(),
                    [&](int32_t a, int32_t b) { return x[a] > x[b]; });
  double z = 0;
  for (float v : x) z += std::exp(static_cast<double>(v));
  REQUIRE(r.top.size() == 5);
  for (size_t i = 0; i < 5; ++i) {
    CHECK(r.top[i].id == order[i]);
    CHECK(r.top[i].logprob == Approx(x[order[i]] - std::log(z)).margin(1e-4));
  }
}

TEST_CASE("without logprobs asked for, sampling draws the same tokens and reports no logprob",
          "[sampling][logprobs]") {
  struct Case {
    float temperature;
    int32_t top_k;
    float top_p, min_p;
  };
  for (const Case c : {Case{0.0f, 0, 1.0f, 0.0f}, Case{0.8f, 0, 1.0f, 0.0f}, Case{1.0f, 0, 1.0f, 0.0f},
                       Case{1.3f, 0, 0.9f, 0.0f}, Case{0.7f, 40, 1.0f, 0.0f}, Case{0.9f, 0, 1.0f, 0.05f}}) {
    INFO("T=" << c.temperature << " top_k=" << c.top_k << " top_p=" << c.top_p << " min_p=" << c.min_p);
    SamplingParams plain = params_with(c.temperature, c.top_k, c.top_p, c.min_p, 11);
    SamplingParams asked = plain;
    asked.return_logprobs = true;
    Sampler a(plain, {}), b(asked, {});
    for (uint32_t step = 0; step < 40; ++step) {
      const auto x = random_logits(3000, step + 5);
      const SampleResult ra = a.sample(x), rb = b.sample(x);
      REQUIRE(ra.token == rb.token);
      CHECK(std::isnan(ra.logprob));
      CHECK(std::isfinite(rb.logprob));
      a.accept(ra.token);
      b.accept(rb.token);
    }
  }
}
