#include "app/logit_compare.h"

#include <algorithm>
#include <cmath>

#include "app/text_data.h"

namespace troupe::app {

void log_softmax(const float* x, int64_t n, std::vector<double>& out) {
  out.resize(static_cast<size_t>(n));
  const double mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = double(x[i]) - lse;
}

PositionDiff compare_position(const std::vector<double>& lm, const std::vector<double>& lr) {
  PositionDiff d;
  for (size_t j = 0; j < lr.size(); ++j) d.kl += std::exp(lr[j]) * (lr[j] - lm[j]);
  d.kl = std::max(d.kl, 0.0);
  d.top1_agree = std::max_element(lm.begin(), lm.end()) - lm.begin() == std::max_element(lr.begin(), lr.end()) - lr.begin();
  return d;
}

double nearest_rank_percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  size_t k = size_t(std::ceil(q * double(v.size())));
  k = std::min(v.size() - 1, k > 0 ? k - 1 : 0);
  std::nth_element(v.begin(), v.begin() + long(k), v.end());
  return v[k];
}

QualityVsReference compare_to_reference(Backend& model, Backend& reference,
                                        const std::vector<std::vector<int32_t>>& sequences) {
  const int64_t V = model.config().vocab_size;
  std::vector<double> token_kl, lm, lr;
  int64_t agree = 0;
  for (const auto& ids : sequences) {
    if (ids.size() < 2) continue;
    const auto lg = forward_sequence(model, ids, true);
    const auto rg = forward_sequence(reference, ids, true);
    for (size_t t = 0; t + 1 < ids.size(); ++t) {
      log_softmax(lg.data() + t * V, V, lm);
      log_softmax(rg.data() + t * V, V, lr);
      const PositionDiff d = compare_position(lm, lr);
      token_kl.push_back(d.kl);
      agree += d.top1_agree;
    }
  }
  QualityVsReference q;
  q.tokens = int64_t(token_kl.size());
  if (q.tokens == 0) return q;
  for (double k : token_kl) q.kl_mean += k;
  q.kl_mean /= double(q.tokens);
  q.kl_p99 = nearest_rank_percentile(token_kl, 0.99);
  q.top1_agreement = double(agree) / double(q.tokens);
  return q;
}

}  // namespace troupe::app
