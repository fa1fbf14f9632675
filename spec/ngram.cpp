#include "spec/ngram.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace troupe::spec {

NgramProposer::NgramProposer(int32_t ngram_min, int32_t ngram_max) : min_(ngram_min), max_(ngram_max) {
  if (min_ < 1 || max_ < min_)
    fail("n-gram proposer: need 1 <= --ngram-min <= --ngram-max, got {} and {}", min_, max_);
}

std::vector<int32_t> NgramProposer::lookup(std::span<const int32_t> tokens, int32_t k) const {
  const int64_t L = int64_t(tokens.size());
  // Longer n-grams first: a longer match is a more specific (likelier right) context.
  for (int64_t n = std::min<int64_t>(max_, L - 1); n >= min_; --n) {
    const auto tail = tokens.subspan(size_t(L - n));
    // Latest match first (nearest context), never the tail itself; the match must leave at
    // least one token after it to propose.
    for (int64_t start = L - n - 1; start >= 0; --start) {
      if (!std::equal(tail.begin(), tail.end(), tokens.begin() + start)) continue;
      const int64_t from = start + n;
      const int64_t len = std::min<int64_t>(k, L - from);
      return {tokens.begin() + from, tokens.begin() + from + len};
    }
  }
  return {};
}

void NgramProposer::propose(std::span<const ProposeRequest> reqs, std::vector<Proposal>& out,
                            ProposeStats& stats) {
  const auto t0 = std::chrono::steady_clock::now();
  out.assign(reqs.size(), Proposal{});
  for (size_t i = 0; i < reqs.size(); ++i)
    if (reqs[i].k > 0) out[i].tokens = lookup(reqs[i].tokens, reqs[i].k);
  stats.total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace troupe::spec
