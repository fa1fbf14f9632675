// Verification in isolation: greedy acceptance rules, and that speculative sampling keeps
// the target distribution exactly (chi-squared over many seeds) - and visibly does not
// when the residual distribution is skipped.
#include <catch2/catch.hpp>

#include <cmath>

#include "spec/verify.h"
#include "spec_test_util.h"

using namespace troupe;
using namespace troupe::spec;

namespace {

constexpr int64_t V = 6;

std::vector<float> rows_of(const std::vector<float>& row, size_t n) {
  std::vector<float> out;
  for (size_t i = 0; i < n; ++i) out.insert(out.end(), row.begin(), row.end());
  return out;
}

SamplingParams sampled(uint64_t seed) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = seed;
  p.max_tokens = 100;
  return p;
}

}  // namespace

TEST_CASE("greedy verification accepts the matching prefix, then the target's token", "[spec][verify]") {
  SamplingParams g;
  g.temperature = 0;
  const std::vector<float> row0 = {0, 5, 1, 0, 0, 0};  // argmax 1
  const std::vector<float> row1 = {0, 0, 0, 7, 0, 0};  // argmax 3
  const std::vector<float> row2 = {9, 0, 0, 0, 0, 0};  // argmax 0
  std::vector<float> rows = row0;
  rows.insert(rows.end(), row1.begin(), row1.end());
  rows.insert(rows.end(), row2.begin(), row2.end());
  {
    Sampler s(g, {});
    auto r = verify_drafts(s, std::vector<int32_t>{1, 3}, {}, rows, V);
    CHECK(r.accepted == 2);
    CHECK(r.tokens == std::vector<int32_t>{1, 3, 0});  // bonus token from the last row
    CHECK(s.num_generated() == 3);
  }
  {
    Sampler s(g, {});
    auto r = verify_drafts(s, std::vector<int32_t>{1, 2}, {}, rows, V);
    CHECK(r.accepted == 1);
    CHECK(r.tokens == std::vector<int32_t>{1, 3});  // correction at the first mismatch
  }
  {
    Sampler s(g, {});
    auto r = verify_drafts(s, std::vector<int32_t>{4, 3}, {}, rows, V);
    CHECK(r.accepted == 0);
    CHECK(r.tokens == std::vector<int32_t>{1});
    CHECK(s.num_generated() == 1);
  }
}

TEST_CASE("greedy verification applies penalties as of the tokens accepted before", "[spec][verify]") {
  SamplingParams g;
  g.temperature = 0;
  g.presence_penalty = 2.0f;
  // Both rows prefer token 2 by 1.0; once 2 is accepted the penalty makes 3 win on row 1.
  const std::vector<float> row = {0, 0, 3, 2, 0, 0};
  Sampler s(g, {});
  auto r = verify_drafts(s, std::vector<int32_t>{2, 2}, {}, rows_of(row, 3), V);
  CHECK(r.accepted == 1);
  CHECK(r.tokens == std::vector<int32_t>{2, 3});
}

TEST_CASE("draw_from_weights inverts the CDF and skips zero weights", "[spec][verify]") {
  const std::vector<float> w = {0, 1, 0, 3};
  CHECK(draw_from_weights(w, 0.0) == 1);
  CHECK(draw_from_weights(w, 0.24) == 1);
  CHECK(draw_from_weights(w, 0.26) == 3);
  CHECK(draw_from_weights(w, 0.999999) == 3);
  CHECK(draw_from_weights(std::vector<float>{0, 0}, 0.5) == -1);
  CHECK(expected_tokens(0.5, 2) == Approx(1.75));
  CHECK(expected_tokens(1.0, 4) == Approx(5.0));
  CHECK(expected_tokens(0.0, 4) == Approx(1.0));
}

// Two generated tokens per trial, the first from verifying two drafts drawn from q (a
// distribution far from p), completed from p if verification stopped early. Every
// position must be distributed as p, jointly as p x p (the rows do not depend on history).
static test::Chi2 sampled_pairs(bool skip_residual, bool point_mass, int64_t n) {
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, 1.5f};
  std::vector<float> q = {0.05f, 0.4f, 0.05f, 0.3f, 0.1f, 0.1f};
  std::vector<float> p;
  Sampler ref(sampled(0), {});
  ref.probabilities(logits, p);
  std::map<std::pair<int, int>, int64_t> observed;
  VerifyOptions vo;
  vo.skip_residual = skip_residual;
  for (int64_t t = 0; t < n; ++t) {
    Sampler s(sampled(uint64_t(t) + 1), {});
    std::vector<int32_t> drafts;
    std::vector<float> probs;
    for (int j = 0; j < 2; ++j) {
      if (point_mass) {
        drafts.push_back(int32_t(t % 3 == 0 ? 3 : 1));  // fixed guesses, as n-gram makes
      } else {
        drafts.push_back(draw_from_weights(q, s.uniform(j, kDraftStream)));
        probs.insert(probs.end(), q.begin(), q.end());
      }
    }
    auto r = verify_drafts(s, drafts, probs, rows_of(logits, 3), V, vo);
    while (r.tokens.size() < 2) r.tokens.push_back(s.sample(logits).token), s.accept(r.tokens.back());
    observed[{r.tokens[0], r.tokens[1]}]++;
  }
  std::map<std::pair<int, int>, double> expected;
  for (int a = 0; a < V; ++a)
    for (int b = 0; b < V; ++b) expected[{a, b}] = double(p[a]) * double(p[b]);
  return test::chi2_test(observed, expected, n);
}

TEST_CASE("speculative sampling keeps the target distribution; skipping the residual does not", "[spec][verify][chi2]") {
  const int64_t n = 20000;
  for (bool point_mass : {false, true}) {
    INFO((point_mass ? "point-mass drafts (n-gram)" : "drafts sampled from q"));
    const auto good = sampled_pairs(false, point_mass, n);
    INFO("lossless: chi2 " << good.stat << " dof " << good.dof << " p " << good.p_value);
    CHECK(good.p_value > 1e-3);
    const auto bad = sampled_pairs(true, point_mass, n);
    INFO("no residual: chi2 " << bad.stat << " dof " << bad.dof << " p " << bad.p_value);
    CHECK(bad.p_value < 1e-9);
  }
}

TEST_CASE("seeded verification replays exactly", "[spec][verify]") {
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f, 1.5f};
  const std::vector<float> q = {0.05f, 0.4f, 0.05f, 0.3f, 0.1f, 0.1f};
  auto run = [&] {
    Sampler s(sampled(42), {});
    std::vector<int32_t> out;
    for (int step = 0; step < 20; ++step) {
      const int64_t g = s.num_generated();
      std::vector<int32_t> d = {draw_from_weights(q, s.uniform(g, kDraftStream)),
                                draw_from_weights(q, s.uniform(g + 1, kDraftStream))};
      std::vector<float> probs = q;
      probs.insert(probs.end(), q.begin(), q.end());
      auto r = verify_drafts(s, d, probs, rows_of(logits, 3), V);
      out.insert(out.end(), r.tokens.begin(), r.tokens.end());
    }
    return out;
  };
  CHECK(run() == run());
}

TEST_CASE("verification rejects malformed input", "[spec][verify]") {
  Sampler s(sampled(1), {});
  const std::vector<float> row(V, 0.0f);
  CHECK_THROWS(verify_drafts(s, std::vector<int32_t>{1}, {}, row, V));               // one row short
  CHECK_THROWS(verify_drafts(s, std::vector<int32_t>{9}, {}, rows_of(row, 2), V));  // outside the vocabulary
  CHECK_THROWS(verify_drafts(s, std::vector<int32_t>{1}, std::vector<float>(3), rows_of(row, 2), V));
}
