#include "actors/step_time_model.h"

#include <algorithm>

namespace troupe {

namespace {

// Forgetting factor: the last ~50 steps carry most of the weight.
constexpr double kForget = 0.98;
// Before any measurement: a small model's step on one core (refined within a few steps).
constexpr std::array<double, 3> kPrior = {5.0, 0.2, 0.02};

std::array<double, 3> features(const StepShape& s) { return {1.0, s.tokens, s.context / 1024.0}; }

}  // namespace

StepTimeModel::StepTimeModel() : theta_(kPrior), raw_(kPrior) {
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) p_[i][j] = i == j ? 100.0 : 0.0;
  for (size_t i = 0; i < 3; ++i) p_max_[i] = p_[i][i];
}

// The startup curve only varies the token count (its context grows with it), so it fixes
// the base and the per-token cost (a least-squares line); the context term starts at its
// prior and is learned from real steps, whose contexts vary independently.
void StepTimeModel::seed(std::span<const std::pair<int64_t, double>> tokens_ms) {
  if (tokens_ms.size() < 2) return;
  double sn = 0, sm = 0, snn = 0, snm = 0;
  for (const auto& [n, ms] : tokens_ms) {
    sn += double(n), sm += ms, snn += double(n) * double(n), snm += double(n) * ms;
  }
  const double k = double(tokens_ms.size());
  const double var = snn - sn * sn / k;
  if (var <= 0) return;
  const double slope = std::max(0.0, (snm - sn * sm / k) / var);
  theta_ = {std::max(0.0, (sm - slope * sn) / k), slope, kPrior[2] * slope / kPrior[1]};
  raw_ = theta_;
  // Confident in the measured line, open on the context term.
  p_ = {{{1.0, 0, 0}, {0, 1e-4, 0}, {0, 0, 1e-2}}};
  for (size_t i = 0; i < 3; ++i) p_max_[i] = p_[i][i];
}

double StepTimeModel::predict(const StepShape& s) const {
  const auto x = features(s);
  return theta_[0] * x[0] + theta_[1] * x[1] + theta_[2] * x[2];
}

double StepTimeModel::chunk_ms(int64_t start, int64_t n) const {
  const StepShape s = chunk_shape(start, n);
  return predict(s) - theta_[0];
}

int64_t StepTimeModel::max_chunk_within(double room_ms, int64_t start, int64_t limit) const {
  if (limit < 1 || chunk_ms(start, 1) > room_ms) return 0;
  int64_t lo = 1, hi = limit;  // chunk_ms grows with n: the largest n that fits
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (chunk_ms(start, mid) <= room_ms) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// Recursive least squares with exponential forgetting, made safe for a scheduler that
// trusts it (both failure modes were seen: admission turning away most requests on an idle,
// merely busy machine):
//  - the estimate itself is not clamped (clamping the state breaks RLS's bookkeeping and,
//    with the next point, made it diverge to 1e40); predictions use its non-negative part
//    (a step never gets cheaper with more tokens or context);
//  - the inverse information matrix is kept within its prior size: steps of one shape
//    carry no information on the other directions, which forgetting would otherwise inflate
//    without bound until one odd step swings the estimate wildly ("wind-up");
//  - a step the OS descheduled can take many times its cost; its residual is clipped to
//    the prediction itself (at least 1 ms), so outliers barely move the model while a
//    lasting slowdown is still learned within tens of steps.
void StepTimeModel::observe(const StepShape& s, double ms) {
  const auto x = features(s);
  std::array<double, 3> px{};
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) px[i] += p_[i][j] * x[j];
  double denom = kForget;
  for (size_t i = 0; i < 3; ++i) denom += x[i] * px[i];
  // (The residual is against the raw estimate, whose bookkeeping this is.)
  double raw_predicted = 0;
  for (size_t i = 0; i < 3; ++i) raw_predicted += raw_[i] * x[i];
  const double bound = std::max(1.0, predict(s));
  const double err = std::clamp(ms - raw_predicted, -bound, bound);
  for (size_t i = 0; i < 3; ++i) raw_[i] += px[i] / denom * err;
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) p_[i][j] = (p_[i][j] - px[i] * px[j] / denom) / kForget;
  double grow = 1;
  for (size_t i = 0; i < 3; ++i) grow = std::max(grow, p_[i][i] / p_max_[i]);
  if (grow > 1)
    for (auto& row : p_)
      for (double& v : row) v /= grow;
  for (size_t i = 0; i < 3; ++i) theta_[i] = std::max(0.0, raw_[i]);
  observations_++;
}

}  // namespace troupe
