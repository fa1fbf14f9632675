#include "spec/step_gate.h"

#include <algorithm>
#include <bit>

namespace troupe::spec {

namespace {
constexpr double kForget = 0.9;       // per observed step: about the last ten steps count
constexpr int64_t kMinSteps = 3;      // observations of a policy before it is judged
constexpr int32_t kExploreMin = 8;
constexpr int32_t kExploreMax = 128;
}  // namespace

int StepGate::bucket(int64_t outputs) {
  const int b = int(std::bit_width(uint64_t(std::max<int64_t>(1, outputs)))) - 1;
  return std::min(b, kBuckets - 1);
}

double StepGate::rate(int64_t outputs, bool drafted) const {
  const Bucket& b = buckets_[size_t(bucket(outputs))];
  return (drafted ? b.with : b.without).value();
}

bool StepGate::allow(int64_t outputs) {
  Bucket& b = buckets_[size_t(bucket(outputs))];
  // Until both policies have a figure, speculate: steps the controller plans without
  // drafts supply the other figure by themselves.
  if (b.with.steps < kMinSteps || b.without.steps < kMinSteps) return true;
  const bool spec_wins = b.with.value() >= b.without.value();
  if (spec_wins != b.last_winner_spec) {  // the lead changed: watch the loser closely again
    b.last_winner_spec = spec_wins;
    b.explore_every = kExploreMin;
    b.since_explore = 0;
  }
  if (++b.since_explore >= b.explore_every) {
    b.since_explore = 0;
    b.explore_every = std::min(2 * b.explore_every, kExploreMax);
    return !spec_wins;
  }
  return spec_wins;
}

void StepGate::observe(int64_t outputs, bool drafted, int64_t tokens, double ms) {
  if (tokens <= 0 || !(ms > 0)) return;
  Rate& r = drafted ? buckets_[size_t(bucket(outputs))].with : buckets_[size_t(bucket(outputs))].without;
  r.tokens = kForget * r.tokens + double(tokens);
  r.ms = kForget * r.ms + ms;
  r.steps++;
}

}  // namespace troupe::spec
