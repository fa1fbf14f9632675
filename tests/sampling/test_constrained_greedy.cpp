// Greedy sampling under a grammar: the fast path (peak and log-sum-exp over the mask's set
// bits only, no copy of the row) must pick exactly what the full path picks - the lowest id
// of the largest allowed logit - and report the same logprob up to rounding.
#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "grammar/token_mask.h"
#include "helpers.h"
#include "sampling/sampler.h"

using namespace troupe;

namespace {

// A vocabulary of ~2k tokens: the end token, single bytes, and two- and three-byte strings,
// so some grammar positions allow a handful of tokens and others hundreds.
std::shared_ptr<const grammar::TokenTable> small_vocabulary() {
  std::vector<std::string> bytes{""};
  for (int c = 32; c < 127; ++c) bytes.emplace_back(1, char(c));
  const std::string letters = "abcdefghij0123456789,\" ";
  for (char a : letters)
    for (char b : letters) bytes.push_back(std::string{a, b});
  for (char a : std::string("abc0,\""))
    for (char b : letters)
      for (char c : std::string("ab1\""))
        bytes.push_back(std::string{a, b, c});
  std::vector<bool> special(bytes.size(), false);
  special[0] = true;
  return std::make_shared<const grammar::TokenTable>(bytes, special, std::vector<int32_t>{0});
}

// The full path's choice, written out: every forbidden logit -inf, then the first maximum.
std::pair<int32_t, double> reference_greedy(const Sampler& s, const std::vector<float>& logits) {
  std::vector<float> x = logits;
  s.apply_penalties(x);
  int32_t best = 0;
  for (size_t i = 1; i < x.size(); ++i)
    if (x[i] > x[size_t(best)]) best = int32_t(i);
  double sum = 0;
  for (float v : x)
    if (v > -INFINITY) sum += std::exp(double(v) - x[size_t(best)]);
  return {best, -std::log(sum)};
}

}  // namespace

TEST_CASE("constrained greedy picks what the masked full row picks", "[sampling][grammar]") {
  const auto vocab = small_vocabulary();
  for (const char* pattern : {"[a-c]{1,6}(,[0-9]+)*\"?", "(ab|a\"|0,)+1?", "[ -~]{0,40}"}) {
    INFO(pattern);
    SamplingParams p = test::params_with(0.0f);
    p.max_tokens = 64;
    p.constraint = {"regex", pattern};
    p.return_logprobs = true;
    Sampler s(p, {}, vocab);
    // A few extra logits past the tokenizer (padded rows) must stay unpickable.
    const size_t rows = size_t(vocab->vocab_size()) + 5;
    for (int step = 0; step < 40; ++step) {
      auto logits = test::random_logits(rows, uint32_t(step * 7 + 1));
      if (step % 5 == 0) logits[3] = logits[4] = 50.0f;  // ties go to the lower id
      const auto [want, want_logprob] = reference_greedy(s, logits);
      const SampleResult got = s.sample(logits);
      REQUIRE(got.token == want);
      CHECK(got.logprob == Approx(want_logprob).margin(1e-4));
      if (want == 0) break;  // the end token
      s.accept(got.token);
    }
  }
}

TEST_CASE("a prepared mask is the mask computed inline", "[sampling][grammar]") {
  const auto vocab = small_vocabulary();
  SamplingParams p = test::params_with(0.8f, 0, 1.0f, 0.0f, 99);
  p.constraint = {"regex", "[a-c]{1,6}(,[0-9]+)*\"?"};
  Sampler ahead(p, {}, vocab), inline_(p, {}, vocab);
  for (int step = 0; step < 30; ++step) {
    ahead.prepare_mask();
    CHECK(ahead.mask_ready());
    const auto logits = test::random_logits(size_t(vocab->vocab_size()), uint32_t(step + 100));
    const SampleResult a = ahead.sample(logits), b = inline_.sample(logits);
    REQUIRE(a.token == b.token);
    if (a.token == 0) break;
    ahead.accept(a.token);
    inline_.accept(b.token);
    CHECK_FALSE(ahead.mask_ready());  // a new step: the mask is stale until prepared
  }
}

TEST_CASE("constrained sampling over a small allowed set draws what the masked full row draws",
          "[sampling][grammar]") {
  const auto vocab = small_vocabulary();
  // '~' is never allowed by these patterns: a bias on it leaves the distribution as it is
  // but sends the reference sampler down the full path (a copied, masked, biased row).
  const int32_t never = 1 + ('~' - 32);
  struct Case {
    float temperature, top_p, min_p;
    int32_t top_k, logprobs;
  };
  for (const Case c : {Case{0.8f, 1.0f, 0.0f, 0, 0}, Case{1.3f, 0.9f, 0.0f, 0, 3}, Case{0.7f, 1.0f, 0.05f, 5, 2}}) {
    for (const char* pattern : {"[a-c]{1,6}(,[0-9]+)*\"?", "(ab|a\"|0,)+1?"}) {
      INFO(pattern << " T=" << c.temperature << " top_p=" << c.top_p << " min_p=" << c.min_p << " top_k=" << c.top_k);
      for (uint64_t seed = 1; seed <= 12; ++seed) {
        SamplingParams p = test::params_with(c.temperature, c.top_k, c.top_p, c.min_p, seed);
        p.max_tokens = 64;
        p.logprobs = c.logprobs;
        p.return_logprobs = true;  // the logprobs are compared too
        p.constraint = {"regex", pattern};
        SamplingParams q = p;
        q.logit_bias = {{never, 0.5f}};
        Sampler fast(p, {}, vocab), full(q, {}, vocab);
        for (int step = 0; step < 24; ++step) {
          const auto logits = test::random_logits(size_t(vocab->vocab_size()) + 3, uint32_t(seed * 131 + step));
          const SampleResult a = fast.sample(logits), b = full.sample(logits);
          REQUIRE(a.token == b.token);
          CHECK(a.logprob == Approx(b.logprob).margin(1e-5));
          REQUIRE(a.top.size() == b.top.size());
          for (size_t i = 0; i < a.top.size(); ++i) {
            CHECK(a.top[i].id == b.top[i].id);
            CHECK(a.top[i].logprob == Approx(b.top[i].logprob).margin(1e-5));
          }
          if (a.token == 0) break;
          fast.accept(a.token);
          full.accept(b.token);
        }
      }
    }
  }
}
