#include "spec/metrics.h"

#include <algorithm>

namespace troupe::spec {

SpecMetrics::SpecMetrics(int64_t k)
    : max_k(k), drafted_per_pos(size_t(k), 0), accepted_per_pos(size_t(k), 0),
      k_histogram(size_t(k) + 1, 0) {}

void SpecMetrics::record_plan(int32_t k_planned) {
  const size_t i = size_t(std::clamp<int64_t>(k_planned, 0, max_k));
  if (i < k_histogram.size()) k_histogram[i]++;
}

void SpecMetrics::record_verify(int32_t drafted, int32_t accepted) {
  if (drafted <= 0) return;
  num_drafts++;
  num_draft_tokens += drafted;
  num_accepted_tokens += accepted;
  num_emitted_tokens += accepted + 1;
  if (accepted < drafted) num_rejections++;
  for (int32_t i = 0; i < drafted && size_t(i) < drafted_per_pos.size(); ++i) {
    drafted_per_pos[size_t(i)]++;
    if (i < accepted) accepted_per_pos[size_t(i)]++;
  }
}

double SpecMetrics::acceptance_rate() const {
  return num_draft_tokens ? double(num_accepted_tokens) / double(num_draft_tokens) : 0.0;
}

double SpecMetrics::mean_accepted_length() const {
  return num_drafts ? 1.0 + double(num_accepted_tokens) / double(num_drafts) : 0.0;
}

double SpecMetrics::alpha() const {
  const double acc = double(num_accepted_tokens);
  return acc + double(num_rejections) > 0 ? acc / (acc + double(num_rejections)) : 0.0;
}

std::vector<double> SpecMetrics::acceptance_rate_per_pos() const {
  std::vector<double> r(drafted_per_pos.size(), 0.0);
  for (size_t i = 0; i < r.size(); ++i)
    if (drafted_per_pos[i]) r[i] = double(accepted_per_pos[i]) / double(drafted_per_pos[i]);
  return r;
}

}  // namespace troupe::spec
