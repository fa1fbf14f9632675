#pragma once
// Shared helpers for the sampling tests: hand-made logits, an obviously-correct reference
// distribution (full sort), and a chi-squared goodness-of-fit statistic.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "sampling/sampler.h"

namespace troupe::test {

// Logits whose softmax is exactly `probs` (up to float rounding); the offset shows that only
// differences between logits matter.
inline std::vector<float> logits_of(const std::vector<double>& probs, double offset = 3.0) {
  std::vector<float> x;
  for (double p : probs) x.push_back(static_cast<float>(std::log(p) + offset));
  return x;
}

inline std::vector<float> random_logits(size_t vocab, uint32_t seed, float scale = 3.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(vocab);
  for (float& v : x) v = normal(gen);
  return x;
}

inline SamplingParams params_with(float temperature, int32_t top_k = 0, float top_p = 1.0f,
                                  float min_p = 0.0f, uint64_t seed = 1234) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.seed = seed;
  return p;
}

// The documented pipeline written the slow, obvious way: full sort, softmax in double,
// top-k, top-p on the top-k-renormalised mass (with the same 1e-6 decimal slack), min-p.
inline std::vector<double> reference_probs(const std::vector<float>& x, const SamplingParams& p) {
  std::vector<int32_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
  const double max = x[order[0]];
  std::vector<double> w;
  for (int32_t id : order) w.push_back(std::exp((x[id] - max) / p.temperature));
  size_t n = w.size();
  if (p.top_k > 0) n = std::min(n, static_cast<size_t>(p.top_k));
  const double mass = std::accumulate(w.begin(), w.begin() + static_cast<ptrdiff_t>(n), 0.0);
  if (p.top_p < 1.0f) {
    double cum = 0;
    for (size_t j = 0; j < n; ++j) {
      cum += w[j];
      if (cum >= (p.top_p - 1e-6) * mass) {
        n = j + 1;
        break;
      }
    }
  }
  size_t m = 1;
  while (m < n && w[m] >= p.min_p * w[0]) ++m;
  n = m;
  const double kept = std::accumulate(w.begin(), w.begin() + static_cast<ptrdiff_t>(n), 0.0);
  std::vector<double> probs(x.size(), 0.0);
  for (size_t j = 0; j < n; ++j) probs[order[j]] = w[j] / kept;
  return probs;
}

// Pearson chi-squared of observed counts against expected probabilities, pooling the
// categories with an expected count below 5 (where the chi-squared approximation breaks).
// Returns {statistic, degrees of freedom}. Counts in zero-probability categories make it inf.
inline std::pair<double, int> chi_squared(const std::map<int32_t, int>& counts,
                                          const std::vector<double>& probs, int draws) {
  double stat = 0, pooled_obs = 0, pooled_exp = 0;
  int cells = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    const auto it = counts.find(static_cast<int32_t>(i));
    const double obs = it == counts.end() ? 0 : it->second;
    const double expected = probs[i] * draws;
    if (expected == 0 && obs > 0) return {INFINITY, 1};
    if (expected < 5) {
      pooled_obs += obs;
      pooled_exp += expected;
      continue;
    }
    stat += (obs - expected) * (obs - expected) / expected;
    ++cells;
  }
  if (pooled_exp > 0) {
    stat += (pooled_obs - pooled_exp) * (pooled_obs - pooled_exp) / pooled_exp;
    ++cells;
  }
  return {stat, std::max(cells - 1, 1)};
}

// Upper critical value of chi-squared at significance 0.001 (Wilson-Hilferty approximation,
// within a few percent of the tables for df >= 3; 18.47 at df = 4).
inline double chi_squared_critical(int df) {
  const double z = 3.090;  // standard normal quantile for 0.999
  const double k = df;
  const double c = 1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k));
  return k * c * c * c;
}

}  // namespace troupe::test
