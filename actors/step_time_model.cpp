#include "actors/step_time_model.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace troupe {

namespace {

// Forgetting factor: the last ~50 steps carry most of the weight.
constexpr double kForget = 0.98;
// Before any measurement: a small model's step on one core (refined within a few steps).
constexpr std::array<double, 3> kPrior = {5.0, 0.2, 0.02};

std::array<double, 3> features(const StepShape& s) { return {1.0, s.tokens, s.context / 1024.0}; }

}  // namespace

// The overrun: its 95th percentile, step size (in log units), bounds and start.
StepTimeModel::StepTimeModel() : theta_(kPrior), raw_(kPrior), overrun_(0.95, 0.05, 1.1, 3.0, 1.5) {
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

namespace {

// Least squares over the features whose mask bit is set (the others fixed at 0); false when
// the normal equations are singular.
bool least_squares(std::span<const TimedStep> steps, unsigned mask, std::array<double, 3>& out) {
  std::array<std::array<double, 4>, 3> a{};  // [A | b]
  for (const TimedStep& t : steps) {
    const auto x = features(t.shape);
    for (size_t i = 0; i < 3; ++i) {
      for (size_t j = 0; j < 3; ++j) a[i][j] += x[i] * x[j];
      a[i][3] += x[i] * t.ms;
    }
  }
  for (size_t i = 0; i < 3; ++i)
    if (!(mask >> i & 1)) {
      a[i] = {0, 0, 0, 0};
      a[i][i] = 1;
      for (size_t r = 0; r < 3; ++r)
        if (r != i) a[r][i] = 0;
    }
  // Gauss-Jordan with partial pivoting on the 3x3 system.
  for (size_t c = 0; c < 3; ++c) {
    size_t piv = c;
    for (size_t r = c + 1; r < 3; ++r)
      if (std::abs(a[r][c]) > std::abs(a[piv][c])) piv = r;
    if (std::abs(a[piv][c]) < 1e-12 * (1 + std::abs(a[c][c]))) return false;
    std::swap(a[c], a[piv]);
    for (size_t r = 0; r < 3; ++r) {
      if (r == c) continue;
      const double f = a[r][c] / a[c][c];
      for (size_t k = c; k < 4; ++k) a[r][k] -= f * a[c][k];
    }
  }
  for (size_t i = 0; i < 3; ++i) out[i] = a[i][3] / a[i][i];
  return true;
}

}  // namespace

void StepTimeModel::fit(std::span<const TimedStep> steps) {
  // Identified only if the context per token varies between steps by a fair factor.
  double lo = 1e300, hi = 0;
  for (const TimedStep& t : steps)
    if (t.shape.tokens > 0) {
      lo = std::min(lo, t.shape.context / t.shape.tokens);
      hi = std::max(hi, t.shape.context / t.shape.tokens);
    }
  std::array<double, 3> c{};
  bool ok = steps.size() >= 3 && hi > 2 * lo && least_squares(steps, 0b111, c);
  // A negative term (noise on a term that is small here): drop it and refit the others.
  for (size_t i = 0; ok && i < 3; ++i)
    if (c[i] < 0) {
      ok = least_squares(steps, 0b111 & ~(1u << i), c);
      for (double& v : c) v = std::max(0.0, v);
    }
  if (!ok) {
    std::vector<std::pair<int64_t, double>> tokens_ms;
    for (const TimedStep& t : steps) tokens_ms.push_back({int64_t(t.shape.tokens), t.ms});
    seed(tokens_ms);
    return;
  }
  theta_ = raw_ = c;
  // Confident in all three measured terms; later steps still refine them.
  p_ = {{{1.0, 0, 0}, {0, 1e-4, 0}, {0, 0, 1e-3}}};
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
double StepTimeModel::overrun() const { return overrun_.value(); }

void StepTimeModel::observe(const StepShape& s, double ms) {
  const auto x = features(s);
  // (Against the prediction the step was planned with, before this step refines it.)
  overrun_.observe(std::max(ms, 1e-6) / std::max(predict(s), 1e-6));
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
