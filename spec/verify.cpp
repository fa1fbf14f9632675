#include "spec/verify.h"

#include <cmath>

#include "core/error.h"

namespace troupe::spec {

namespace {

// Scratch reused across calls on the verifying thread (a vocabulary-sized buffer per call
// would be allocated per draft token otherwise).
struct Scratch {
  std::vector<float> logits, p, residual;
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// p for one row: the request's penalties on a copy, then its sampling transforms. Exactly
// the distribution Sampler::sample would draw from with the sampler in its current state.
void target_probs(const Sampler& sampler, std::span<const float> row, Scratch& s) {
  s.logits.assign(row.begin(), row.end());
  sampler.apply_penalties(s.logits);
  sampler.probabilities(s.logits, s.p);
}

}  // namespace

int32_t draw_from_weights(std::span<const float> w, double u) {
  double total = 0;
  for (float x : w) total += x;
  if (!(total > 0)) return -1;
  const double target = u * total;
  double cum = 0;
  int32_t last = -1;
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] <= 0) continue;
    cum += w[i];
    last = int32_t(i);
    if (cum > target) return last;
  }
  return last;  // rounding left target at the very end
}

double expected_tokens(double alpha, int32_t k) {
  if (k <= 0) return 1.0;
  if (alpha >= 1.0) return double(k) + 1.0;
  if (alpha <= 0.0) return 1.0;
  return (1.0 - std::pow(alpha, k + 1)) / (1.0 - alpha);
}

VerifyResult verify_drafts(Sampler& sampler, std::span<const int32_t> drafts,
                           std::span<const float> draft_probs, std::span<const float> rows,
                           int64_t vocab, const VerifyOptions& opts) {
  const size_t k = drafts.size();
  if (rows.size() != (k + 1) * size_t(vocab))
    fail("verify: {} logit values for {} drafts of vocabulary {}", rows.size(), k, vocab);
  const bool greedy = sampler.params().greedy();
  const bool point_mass = draft_probs.empty();
  if (!greedy && !point_mass && draft_probs.size() != k * size_t(vocab))
    fail("verify: {} draft probabilities for {} drafts of vocabulary {}", draft_probs.size(), k, vocab);
  VerifyResult out;
  Scratch& s = scratch();
  for (size_t i = 0; i < k; ++i) {
    const auto row = rows.subspan(i * size_t(vocab), size_t(vocab));
    const int32_t x = drafts[i];
    if (x < 0 || x >= vocab) fail("verify: draft token {} outside the vocabulary of {}", x, vocab);
    if (greedy) {
      // sample() applies the penalties as of the tokens accepted so far, as decoding would.
      const int32_t y = sampler.sample(row).token;
      sampler.accept(y);
      out.tokens.push_back(y);
      if (y != x) return out;
      out.accepted++;
      continue;
    }
    const int64_t step = sampler.num_generated();
    target_probs(sampler, row, s);
    const double q = point_mass ? 1.0 : double(draft_probs[i * size_t(vocab) + size_t(x)]);
    // Accept with probability min(1, p/q), written without the division (q may be 0 when
    // rounding left x out of q's support; then any p(x) > 0 accepts).
    if (sampler.uniform(step, kAcceptStream) * q < double(s.p[size_t(x)])) {
      sampler.accept(x);
      out.tokens.push_back(x);
      out.accepted++;
      continue;
    }
    // Rejected: the correction token comes from the part of p that q under-covers.
    int32_t y = -1;
    const double u = sampler.uniform(step, kResidualStream);
    if (!opts.skip_residual) {
      s.residual.resize(size_t(vocab));
      for (size_t v = 0; v < size_t(vocab); ++v) {
        const float qv = point_mass ? (int32_t(v) == x ? 1.0f : 0.0f) : draft_probs[i * size_t(vocab) + v];
        s.residual[v] = std::max(s.p[v] - qv, 0.0f);
      }
      y = draw_from_weights(s.residual, u);
    }
    // p == q up to rounding leaves no residual mass (rejection then had probability ~0):
    // any draw from p is correct.
    if (y < 0) y = draw_from_weights(s.p, u);
    sampler.accept(y);
    out.tokens.push_back(y);
    return out;
  }
  // Every draft accepted: the last row gives one more token, drawn as plain decoding would.
  const int32_t bonus = sampler.sample(rows.subspan(k * size_t(vocab), size_t(vocab))).token;
  sampler.accept(bonus);
  out.tokens.push_back(bonus);
  return out;
}

}  // namespace troupe::spec
