// MaskPrefetch: masks computed on its thread while "the forward pass runs" must be exactly
// the masks the sampler would compute inline, along random grammatical walks; a sequence
// released while its mask is being prepared must not be freed under the thread.
#include <catch2/catch.hpp>
#include <random>

#include "actors/mask_prefetch.h"
#include "grammar/token_mask.h"

using namespace troupe;

namespace {

std::shared_ptr<const grammar::TokenTable> letters_and_digits() {
  std::vector<std::string> bytes{""};
  const std::string chars = "abcdef0123456789,:{}\" ";
  for (char a : chars) bytes.emplace_back(1, a);
  for (char a : chars)
    for (char b : chars) bytes.push_back(std::string{a, b});
  std::vector<bool> special(bytes.size(), false);
  special[0] = true;
  return std::make_shared<const grammar::TokenTable>(bytes, special, std::vector<int32_t>{0});
}

std::vector<float> random_logits(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

}  // namespace

TEST_CASE("masks prefetched on another thread equal masks computed inline (random walks)", "[actors][grammar]") {
  const auto vocab = letters_and_digits();
  const std::string schema = R"({"type":"object","properties":{"a":{"type":"string","maxLength":5},
    "n":{"type":"array","items":{"type":"integer"},"maxItems":4}},"required":["a","n"]})";
  MaskPrefetch prefetch;
  for (uint32_t walk = 0; walk < 8; ++walk) {
    SamplingParams p;
    p.temperature = walk % 2 ? 0.0f : 1.0f;  // greedy (the fast path) and sampled
    p.seed = walk;
    p.constraint = {"json_schema", schema};
    // A batch of sequences, as the executor has: half prefetched, their twins inline.
    std::vector<std::shared_ptr<Sampler>> ahead, inline_;
    for (int i = 0; i < 4; ++i) {
      p.seed = walk * 10 + uint32_t(i);
      ahead.push_back(std::make_shared<Sampler>(p, std::span<const int32_t>{}, vocab));
      inline_.push_back(std::make_shared<Sampler>(p, std::span<const int32_t>{}, vocab));
    }
    std::mt19937 rng(walk);
    std::vector<bool> done(4, false);
    for (int step = 0; step < 60; ++step) {
      std::vector<std::shared_ptr<const Sampler>> todo;
      for (int i = 0; i < 4; ++i)
        if (!done[size_t(i)]) todo.push_back(ahead[size_t(i)]);
      if (todo.empty()) break;
      prefetch.start(std::move(todo));
      const auto logits = random_logits(size_t(vocab->vocab_size()), rng);  // "the forward pass"
      prefetch.wait();
      for (int i = 0; i < 4; ++i) {
        if (done[size_t(i)]) continue;
        CHECK(ahead[size_t(i)]->mask_ready());
        const int32_t a = ahead[size_t(i)]->sample(logits).token, b = inline_[size_t(i)]->sample(logits).token;
        REQUIRE(a == b);
        if (a == 0) {
          done[size_t(i)] = true;
          continue;
        }
        ahead[size_t(i)]->accept(a);
        inline_[size_t(i)]->accept(b);
      }
    }
  }
}

TEST_CASE("a sequence released while its mask is prepared stays alive until the thread is done", "[actors][grammar]") {
  const auto vocab = letters_and_digits();
  SamplingParams p;
  p.constraint = {"json_object", ""};
  MaskPrefetch prefetch;
  for (int i = 0; i < 20; ++i) {
    auto s = std::make_shared<Sampler>(p, std::span<const int32_t>{}, vocab);
    std::weak_ptr<Sampler> watch = s;
    prefetch.start({s});
    s.reset();  // the executor's ReleaseSeqs dropped it
    prefetch.wait();
    CHECK(watch.expired());  // freed once the thread let go, not before, not leaked
  }
}
