#include "actors/static_batching_bound.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <queue>
#include <random>
#include <vector>

#include "core/error.h"

namespace troupe {

double static_bound_sampled(std::span<const int> output_lens, int64_t batch) {
  if (output_lens.empty()) return 1.0;
  if (batch < 1) fail("static batching bound: batch size {} must be positive", batch);
  double sum_max = 0, sum = 0;
  for (size_t b = 0; b < output_lens.size(); b += size_t(batch)) {
    const auto end = output_lens.begin() + std::min(output_lens.size(), b + size_t(batch));
    sum_max += *std::max_element(output_lens.begin() + b, end);
  }
  for (int o : output_lens) sum += o;
  // A workload smaller than one batch is one batch of its own size.
  const double n = double(std::min<int64_t>(batch, int64_t(output_lens.size())));
  return sum > 0 ? n * sum_max / sum : 1.0;
}

double static_bound_uniform(int lo, int hi, int64_t batch) {
  if (lo > hi || lo < 0 || batch < 1)
    fail("static batching bound: bad range [{}, {}] or batch {}", lo, hi, batch);
  if (lo + hi == 0) return 1.0;
  // P(max <= k) = ((k - lo + 1) / width)^batch; E[max] = hi - sum_{k<hi} P(max <= k).
  const double width = double(hi - lo + 1);
  double e_max = hi;
  for (int k = lo; k < hi; ++k) e_max -= std::pow(double(k - lo + 1) / width, double(batch));
  return e_max / ((double(lo) + double(hi)) / 2.0);
}

double static_bound_empirical(std::span<const int> output_lens, int64_t batch) {
  if (output_lens.empty()) return 1.0;
  if (batch < 1) fail("static batching bound: batch size {} must be positive", batch);
  std::map<int, int64_t> count;
  double sum = 0;
  for (int o : output_lens) {
    ++count[o];
    sum += o;
  }
  const double n = double(output_lens.size());
  // E[max] = sum_v v * (F(v)^batch - F(v-)^batch), F the empirical CDF.
  double e_max = 0, below = 0;
  for (const auto& [v, c] : count) {
    const double upto = below + double(c);
    e_max += v * (std::pow(upto / n, double(batch)) - std::pow(below / n, double(batch)));
    below = upto;
  }
  const double mean = sum / n;
  return mean > 0 ? e_max / mean : 1.0;
}

namespace {

// Steps of static batching (arrival-order batches, each as long as its longest output) and
// of continuous batching's schedule in the policy's order (its makespan).
std::pair<int64_t, int64_t> static_and_continuous_steps(std::span<const int> output_lens, int64_t batch,
                                                        SchedulePolicy policy) {
  int64_t static_steps = 0;
  for (size_t b = 0; b < output_lens.size(); b += size_t(batch)) {
    const auto end = output_lens.begin() + std::min(output_lens.size(), b + size_t(batch));
    static_steps += *std::max_element(output_lens.begin() + b, end);
  }
  // The steps at which each slot comes free; a request starts on the earliest.
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<>> free_at;
  for (int64_t s = 0; s < batch; ++s) free_at.push(0);
  std::vector<int> order(output_lens.begin(), output_lens.end());
  if (policy == SchedulePolicy::LongestOutputFirst) std::stable_sort(order.begin(), order.end(), std::greater<>());
  int64_t makespan = 0;
  for (int o : order) {
    const int64_t end = free_at.top() + o;
    free_at.pop();
    free_at.push(end);
    makespan = std::max(makespan, end);
  }
  return {static_steps, makespan};
}

}  // namespace

double static_bound_finite(std::span<const int> output_lens, int64_t batch, SchedulePolicy policy) {
  if (batch < 1) fail("static batching bound: batch size {} must be positive", batch);
  const auto [static_steps, makespan] = static_and_continuous_steps(output_lens, batch, policy);
  return makespan > 0 ? double(static_steps) / double(makespan) : 1.0;
}

double static_bound_finite_expected(std::span<const int> pool, size_t num_requests, int64_t batch, int draws,
                                    SchedulePolicy policy) {
  if (pool.empty() || num_requests == 0) return 1.0;
  if (batch < 1 || draws < 1) fail("static batching bound: batch {} and draws {} must be positive", batch, draws);
  std::mt19937_64 rng(19);  // the same draws on every standard library, unlike its distributions
  std::vector<int> outs(num_requests);
  double sum = 0;
  for (int d = 0; d < draws; ++d) {
    for (int& o : outs) o = pool[rng() % pool.size()];
    sum += static_bound_finite(outs, batch, policy);
  }
  return sum / draws;
}

double static_estimate_with_prefill(double bound, double prefill_ms, double decode_ms) {
  if (!(bound >= 1) || !(prefill_ms >= 0) || !(decode_ms >= 0))
    fail("static batching bound: bad bound {} or times {} / {} ms", bound, prefill_ms, decode_ms);
  const double total = prefill_ms + decode_ms;
  return total > 0 ? total / (prefill_ms + decode_ms / bound) : 1.0;
}

}  // namespace troupe
