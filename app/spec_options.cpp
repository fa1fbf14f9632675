#include "app/spec_options.h"

#include <cmath>
#include <cstdio>

namespace troupe::app {

double theoretical_speedup(double alpha, double k, double c) {
  const double tokens = alpha >= 1.0 ? k + 1.0 : (1.0 - std::pow(alpha, k + 1.0)) / (1.0 - alpha);
  return tokens / (k * c + 1.0);
}

double mean_k(const spec::SpecMetrics& m) {
  double n = 0, sum = 0;
  for (size_t k = 0; k < m.k_histogram.size(); ++k) {
    n += double(m.k_histogram[k]);
    sum += double(k) * double(m.k_histogram[k]);
  }
  return n > 0 ? sum / n : 0.0;
}

void print_spec_metrics(const spec::SpecMetrics& m) {
  if (m.max_k <= 0) return;
  std::printf("speculative decoding (K=%lld)\n", (long long)m.max_k);
  std::printf("  verifications %lld, draft tokens %lld, accepted %lld (%.1f%%), mean accepted length %.2f\n",
              (long long)m.num_drafts, (long long)m.num_draft_tokens, (long long)m.num_accepted_tokens,
              100.0 * m.acceptance_rate(), m.mean_accepted_length());
  std::printf("  alpha (per-token acceptance) %.3f, measured cost ratio c %.4f, steps with drafts %lld, "
              "draft passes %lld, draft time %.1f ms\n",
              m.alpha(), m.cost_ratio, (long long)m.spec_steps, (long long)m.draft_passes, m.draft_ms_total);
  if (!m.target_step_ms.empty()) {
    std::printf("  target step cost model T(n) for n = 1..K+1 (ms):");
    for (double t : m.target_step_ms) std::printf(" %.2f", t);
    std::printf("\n");
  }
  std::printf("  acceptance rate per position:");
  for (double r : m.acceptance_rate_per_pos()) std::printf(" %.3f", r);
  std::printf("\n  k histogram (k: decode steps):");
  for (size_t k = 0; k < m.k_histogram.size(); ++k) std::printf(" %zu:%lld", k, (long long)m.k_histogram[k]);
  std::printf("  (mean k %.2f)\n", mean_k(m));
}

boost::json::object spec_metrics_json(const spec::SpecMetrics& m) {
  boost::json::array rate, drafted, accepted, hist, cost;
  for (double t : m.target_step_ms) cost.push_back(t);
  for (double r : m.acceptance_rate_per_pos()) rate.push_back(r);
  for (auto v : m.drafted_per_pos) drafted.push_back(v);
  for (auto v : m.accepted_per_pos) accepted.push_back(v);
  for (auto v : m.k_histogram) hist.push_back(v);
  return {{"num_speculative_tokens", m.max_k},
          {"num_drafts", m.num_drafts},
          {"num_draft_tokens", m.num_draft_tokens},
          {"num_accepted_tokens", m.num_accepted_tokens},
          {"acceptance_rate", m.acceptance_rate()},
          {"mean_accepted_length", m.mean_accepted_length()},
          {"alpha", m.alpha()},
          {"cost_ratio", m.cost_ratio},
          {"acceptance_rate_per_pos", rate},
          {"drafted_per_pos", drafted},
          {"accepted_per_pos", accepted},
          {"k_histogram", hist},
          {"mean_k", mean_k(m)},
          {"spec_steps", m.spec_steps},
          {"draft_passes", m.draft_passes},
          {"draft_ms_total", m.draft_ms_total},
          {"target_step_ms", cost}};
}

}  // namespace troupe::app
