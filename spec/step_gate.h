#pragma once
// The last word on whether a step speculates: measured outcomes, not predictions.
//
// The controller (controller.h) plans drafts from cost curves measured at startup and from
// acceptance. On a CPU whose step time jumps with a few more rows (kernels switch from
// GEMV to GEMM, caches overflow) and whose other load shifts by the minute, a prediction
// that speculation pays can be wrong, and the goal is never to be more than a few percent
// slower than not speculating. So the gate keeps, per batch size, the tokens per
// millisecond that steps actually delivered with drafts and without them (decayed sums),
// runs the better policy, and now and then tries the other one to keep its figure fresh:
// every 8 steps at first, half as often each time the loser loses again (up to 1 in 128).
// Seeded sampled sequences are not gated (their k must not depend on timing).
#include <array>
#include <cstdint>

namespace troupe::spec {

class StepGate {
 public:
  // Whether this step may speculate (false: plan no drafts). `outputs` is how many
  // sequences produce a token in it, which picks the batch-size bucket.
  bool allow(int64_t outputs);
  // A decode/verify step finished: it produced `tokens` tokens in `ms` (target forward,
  // drafting, sampling), with drafts or without.
  void observe(int64_t outputs, bool drafted, int64_t tokens, double ms);

  double rate(int64_t outputs, bool drafted) const;  // tokens/ms (0: no data yet)

 private:
  static constexpr int kBuckets = 8;  // outputs 1, 2-3, 4-7, ..., 128+
  static int bucket(int64_t outputs);
  struct Rate {
    double tokens = 0, ms = 0;
    int64_t steps = 0;
    double value() const { return ms > 0 ? tokens / ms : 0.0; }
  };
  struct Bucket {
    Rate with, without;
    int32_t since_explore = 0;
    int32_t explore_every = 8;
    bool last_winner_spec = true;
  };
  std::array<Bucket, kBuckets> buckets_{};
};

}  // namespace troupe::spec
