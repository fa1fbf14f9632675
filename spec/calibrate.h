#pragma once
// Startup measurement of a backend's step time against the number of tokens in the step,
// for the controller's cost curves (controller.h). On a CPU the curve is flat while weight
// streaming dominates and turns linear once compute does; where the knee sits decides how
// much verifying k extra tokens costs, so it is measured rather than assumed.
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "model/backend.h"

namespace troupe::spec {

// Token counts worth measuring up to max_tokens: every count to 64, then 1/8 steps.
std::vector<int64_t> calibration_sizes(int64_t max_tokens);

// One measured step: its token count, the positions its attention reads (summed over its
// tokens), and its lower-median time.
struct StepTiming {
  int64_t tokens = 0;
  double context = 0;
  double ms = 0;
};

// Runs a step of n tokens for each n in `sizes`, as sequences of at most `chunk` tokens that
// start at position `start` (clamped to the model's positions; every row asks for logits),
// `reps` rounds over all sizes (fewer past ~6 s, at least 2). Overwrites KV blocks from 0
// up: call it before the backend serves anything. Sizes the pool cannot hold are skipped.
std::vector<StepTiming> time_steps(Backend& backend, std::span<const int64_t> sizes, int64_t start,
                                   int64_t chunk, int reps);

// time_steps() as decode and short prefill chunks see it: chunks of up to 64 tokens after a
// context of up to 128 positions; returns (n, ms).
std::vector<std::pair<int64_t, double>> calibrate_backend(Backend& backend, std::span<const int64_t> sizes,
                                                          int reps = 5);

}  // namespace troupe::spec
