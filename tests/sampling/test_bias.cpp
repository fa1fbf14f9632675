// logit_bias and min_tokens: applied with the penalties, so sample() and the building
// blocks speculative verification uses (apply_penalties + probabilities) agree.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "helpers.h"
#include "sampling/sampler.h"

using namespace troupe;
using troupe::test::params_with;
using troupe::test::random_logits;

TEST_CASE("logit_bias shifts the logits it names, and the reported logprobs with them", "[sampling][bias]") {
  SamplingParams p = params_with(0.0f);
  p.logit_bias = {{1, 2.0f}, {3, -100.0f}};
  p.return_logprobs = true;
  Sampler s(p, {});
  const std::vector<float> x = {1.0f, 0.5f, 0.0f, 5.0f};
  std::vector<float> y = x;
  s.apply_penalties(y);
  CHECK(y == std::vector<float>{1.0f, 2.5f, 0.0f, -95.0f});
  const SampleResult r = s.sample(x);
  CHECK(r.token == 1);  // 0.5 + 2 beats 1.0; 5 - 100 is out
  double z = 0;
  for (float v : y) z += std::exp(double(v));
  CHECK(r.logprob == Approx(2.5 - std::log(z)).margin(1e-6));
  CHECK(x == std::vector<float>{1.0f, 0.5f, 0.0f, 5.0f});  // the caller's logits are untouched
  // An id past the vocabulary is ignored (a smaller draft vocabulary, say).
  p.logit_bias = {{99, 5.0f}};
  Sampler far(p, {});
  CHECK(far.sample(x).token == 3);
}

TEST_CASE("min_tokens bans the stop ids until that many tokens were accepted", "[sampling][bias]") {
  SamplingParams p = params_with(0.7f);
  p.min_tokens = 2;
  p.min_tokens_stop_ids = {0};
  Sampler s(p, {});
  std::vector<float> x = random_logits(8, 3);
  x[0] = 50.0f;  // the stop token would win every draw
  for (int step = 0; step < 2; ++step) {
    std::vector<float> probs;
    std::vector<float> y = x;
    s.apply_penalties(y);
    s.probabilities(y, probs);
    CHECK(probs[0] == 0.0f);
    const SampleResult r = s.sample(x);
    CHECK(r.token != 0);
    s.accept(r.token);
  }
  CHECK(s.sample(x).token == 0);  // from the third token on, it may end
}

TEST_CASE("logit_bias and min_tokens are validated", "[sampling][bias]") {
  // The validation message ("" when valid).
  auto invalid = [](auto edit) {
    SamplingParams p;
    edit(p);
    try {
      p.validate();
      return std::string();
    } catch (const Error& e) {
      return std::string(e.what());
    }
  };
  CHECK(invalid([](SamplingParams& p) { p.logit_bias = {{1, 100.5f}}; }).find("logit_bias") == 0);
  CHECK(invalid([](SamplingParams& p) { p.logit_bias = {{-1, 1.0f}}; }).find("logit_bias") == 0);
  CHECK(invalid([](SamplingParams& p) { p.min_tokens = -1; }).find("min_tokens") == 0);
  CHECK(invalid([](SamplingParams& p) { p.min_tokens = 17; }).find("min_tokens") == 0);  // > max_tokens (16)
  CHECK(invalid([](SamplingParams& p) { p.min_tokens = 16; }).empty());
}
