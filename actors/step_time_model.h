#pragma once
// Predicts a step's wall time from its shape, for SLO-aware scheduling (--slo-tpot-ms,
// --slo-ttft-ms):
//   ms = base + per_token * tokens + per_kctx * context / 1024
// `tokens`: tokens computed in the step (decodes, prefill chunks); `context`: positions the
// step's attention reads, summed over its tokens. It starts from the startup measurement of
// step time against tokens (spec/calibrate.h) and is refined after every step by recursive
// least squares with forgetting, so it follows the machine's real speed (other load, a
// remote stage, long contexts) within tens of steps.
#include <array>
#include <cstdint>
#include <span>
#include <utility>

#include "actors/ratio_quantile.h"

namespace troupe {

struct StepShape {
  double tokens = 0;
  double context = 0;
  StepShape& operator+=(const StepShape& o) {
    tokens += o.tokens;
    context += o.context;
    return *this;
  }
};

// The shape a chunk of n tokens of one sequence adds when it starts at position `start`.
inline StepShape chunk_shape(int64_t start, int64_t n) {
  return {double(n), double(n) * (double(start) + double(n + 1) / 2)};
}

struct TimedStep {
  StepShape shape;
  double ms = 0;
};

class StepTimeModel {
 public:
  StepTimeModel();
  // (tokens, ms) pairs from a startup measurement (context ~ 128 positions per token).
  void seed(std::span<const std::pair<int64_t, double>> tokens_ms);
  // Steps measured at startup at different depths (spec::time_steps): all three terms by
  // least squares, none negative. Falls back to seed() on the token counts when the steps
  // do not vary context independently of tokens.
  void fit(std::span<const TimedStep> steps);
  double predict(const StepShape& s) const;
  void observe(const StepShape& s, double ms);
  // The most tokens (up to `limit`) a chunk starting at `start` may have so its added time
  // stays within `room_ms` (0 when not even one fits).
  int64_t max_chunk_within(double room_ms, int64_t start, int64_t limit) const;
  // The added time of a chunk alone (predict() without the base).
  double chunk_ms(int64_t start, int64_t n) const;
  // How far a step overruns its prediction: the running 95th percentile of actual /
  // predicted time (at least 1.1, at most 3; 1.5 before any step is observed).
  double overrun() const;
  const std::array<double, 3>& coefficients() const { return theta_; }  // base, per token, per 1K context
  int64_t observations() const { return observations_; }

 private:
  std::array<double, 3> theta_;  // what predictions use: raw_'s non-negative part
  std::array<double, 3> raw_;    // the RLS estimate
  std::array<std::array<double, 3>, 3> p_;  // inverse information (RLS)
  std::array<double, 3> p_max_;             // p_'s diagonal at the start: its bound
  int64_t observations_ = 0;
  RatioQuantile overrun_;  // actual / predicted step time
};

}  // namespace troupe
