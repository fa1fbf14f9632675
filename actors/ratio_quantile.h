#pragma once
// A running quantile of a positive ratio (actual / predicted), for estimates the scheduler
// scales its predictions by: admission's TTFT calibration and the step-time model's overrun.
// A stochastic quantile estimate in log terms: up by q x eta when an observation is above
// it, down by (1 - q) x eta otherwise, so it settles where a share q of the observations
// fall below; bounded so a burst of outliers cannot push it past [lo, hi].
#include <algorithm>
#include <cmath>

namespace troupe {

class RatioQuantile {
 public:
  RatioQuantile(double q, double eta, double lo, double hi, double start)
      : q_(q), eta_(eta), log_lo_(std::log(lo)), log_hi_(std::log(hi)), log_(std::log(start)) {}
  void observe(double ratio) {
    const double x = std::log(std::max(ratio, 1e-9));
    log_ += x > log_ ? eta_ * q_ : -eta_ * (1 - q_);
    log_ = std::clamp(log_, log_lo_, log_hi_);
  }
  double value() const { return std::exp(log_); }

 private:
  double q_, eta_, log_lo_, log_hi_, log_;
};

}  // namespace troupe
