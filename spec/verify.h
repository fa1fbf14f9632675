#pragma once
// Lossless verification of draft tokens against the target's logits.
//
// Greedy requests: accept while the draft equals the target's (penalised) argmax; the first
// mismatch emits the target's token, and when all k drafts pass the last row gives a bonus
// token - exactly the tokens decoding without speculation would produce.
//
// Sampled requests: standard speculative sampling. Draft x_i was drawn from q_i; the target's
// p_i is computed with the request's penalties/temperature/top-k/top-p/min-p applied, as the
// drafter applied them to q_i. x_i is accepted with probability min(1, p_i(x)/q_i(x)); on the
// first rejection a token is drawn from normalize(max(p_i - q_i, 0)) and verification stops.
// Every output token is then distributed exactly as p, whatever q is. A proposer that gives
// no q (n-gram) means q is a point mass on x.
//
// Randomness is the sampler's counter-based stream: generated token number j draws its draft
// with uniform(j, kDraftStream), its acceptance test with uniform(j, kAcceptStream) and its
// residual with uniform(j, kResidualStream); a token sampled directly from p (bonus, or no
// draft) keeps the sampler's own stream 0. A seeded request therefore replays exactly given
// the same drafts.
#include <cstdint>
#include <span>
#include <vector>

#include "sampling/sampler.h"

namespace troupe::spec {

inline constexpr uint64_t kDraftStream = 1;
inline constexpr uint64_t kAcceptStream = 2;
inline constexpr uint64_t kResidualStream = 3;

struct VerifyOptions {
  // TEST ONLY: on rejection draw from p instead of the residual max(p - q, 0). This is the
  // classic bug that skews outputs toward the draft; the distribution test uses it to show
  // that it can fail. Never set it in production.
  bool skip_residual = false;
};

struct VerifyResult {
  std::vector<int32_t> tokens;  // accepted drafts, then one token from the target
  int32_t accepted = 0;
};

// Verifies `drafts` against `rows` ([drafts.size() + 1] x vocab target logits: row i
// predicts the token after drafts[i - 1]). `draft_probs` is [drafts.size() x vocab] q for
// sampled requests from a model proposer, empty for a point-mass proposer (ignored for greedy
// requests). Advances `sampler` (accept) over every emitted token.
VerifyResult verify_drafts(Sampler& sampler, std::span<const int32_t> drafts,
                           std::span<const float> draft_probs, std::span<const float> rows,
                           int64_t vocab, const VerifyOptions& opts = {});

// Inverse-CDF draw from unnormalised non-negative weights: the first index whose running
// sum exceeds u * total. Returns -1 when every weight is zero.
int32_t draw_from_weights(std::span<const float> w, double u);

// Expected tokens one verification yields with k drafts and per-token acceptance alpha:
// 1 + alpha + ... + alpha^k = (1 - alpha^(k+1)) / (1 - alpha).
double expected_tokens(double alpha, int32_t k);

}  // namespace troupe::spec
