#pragma once
// Internal numeric building blocks of the sampler (not part of the public API). Everything
// here works on already-penalised logits and is shared by Sampler::sample and
// Sampler::probabilities, so that what is sampled is exactly what is reported.
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "sampling/sampler.h"

namespace troupe::sampling_detail {

// Temperature 0 is greedy; so is a temperature so small (denormal) that 1/T overflows:
// the tempered distribution is one-hot at the argmax anyway.
inline bool effectively_greedy(const SamplingParams& p) {
  return p.greedy() || !std::isfinite(1.0f / p.temperature);
}

// Logit validation, shared by all paths: NaN or +inf is a numerical bug upstream (sampling
// from it would be garbage), so it throws troupe::Error naming the token, as does a vector
// where every logit is -inf. -inf itself is legitimate: it is how callers mask tokens out.
// Returns the largest logit.
float checked_max(std::span<const float> x);

// The argmax (lowest id among ties), validated like checked_max: what a greedy step needs
// when nobody reads its logprob (find_peak_lse without the sum).
int32_t find_peak(std::span<const float> x);

// One pass over memory: the argmax (lowest id among ties) and log(sum(exp(x))): a greedy
// step that reports its logprob. Validates like checked_max.
struct PeakLse {
  float max;
  int32_t id;
  double lse;
};
PeakLse find_peak_lse(std::span<const float> x);

// Ids of the `n` largest logits in descending order (ties: lower id first), skipping -inf.
// Small n uses a bounded heap in one pass; large n uses nth_element, never a full sort.
void top_ids(std::span<const float> x, size_t n, std::vector<int32_t>& out);

// The final sampling distribution as unnormalised weights exp((x - max) / T); the most
// likely token has weight exactly 1.
// Sparse form: the kept ids with their weights (after top-k or top-p), in draw order.
// Dense form: one weight per vocabulary id, zeros outside the kept set (when nothing needs
// an ordering: temperature and min-p only), with per-block totals for fast draws.
struct Distribution {
  bool dense = false;
  std::vector<int32_t> ids;          // sparse form
  std::vector<float> weights;        // sparse form, parallel to ids
  std::vector<float> vocab_weights;  // dense form (and the scratch the sparse form is cut from)
  std::vector<double> block_totals;  // dense form: sum per kBlock ids
  std::vector<int32_t> boundary;     // scratch for the top-p boundary bucket
  double total = 0.0;                // sum of kept weights
};

// Applies temperature/top-k/top-p/min-p (params must not be effectively greedy; `max` from
// checked_max). Returns sum(exp(x - max)) over the whole vocabulary (the raw temperature-1
// normaliser) when `want_raw_sum`, fused into the passes that run anyway; otherwise 0.
double build_distribution(std::span<const float> x, const SamplingParams& params, float max,
                          Distribution& d, bool want_raw_sum);

// Inverse CDF: the kept token at which the running weight first exceeds u * total.
int32_t draw(const Distribution& d, double u);

// Normalised probabilities over a vocabulary of `vocab` ids (zeros outside the kept set).
void to_probs(const Distribution& d, size_t vocab, std::vector<float>& probs);

}  // namespace troupe::sampling_detail
