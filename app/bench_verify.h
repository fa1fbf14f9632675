#pragma once
// `troupe bench decode --verify-rows K`: what a speculative verification step costs next to
// a plain decode step. The speculation formula (docs/benchmarks.md) assumes that verifying
// 1 + k tokens of one sequence costs one decode step; this measures T(1 + k) / T(1).
#include <cstdint>
#include <vector>

#include "model/backend.h"

namespace troupe::app {

struct VerifyRowCost {
  int k = 0;                  // draft tokens: the step has 1 + k rows
  double step_ms_median = 0;  // median over the rounds of this step's time
  double ratio_median = 0;    // median over the rounds of T(1 + k) / T(1) in the same round
  double step_ms_best = 0;    // fastest round: other load only ever adds time, so under load
  double ratio_best = 0;      // best T(1 + k) / best T(1) is the steadier figure
};

struct VerifyCost {
  int64_t context = 0;        // positions already in the cache before the step
  int rounds = 0;
  double single_row_ms_median = 0;  // T(1): the decode step
  double single_row_ms_best = 0;
  std::vector<VerifyRowCost> rows;  // k = 1 .. max_k
};

// Prefills `context` tokens of one sequence, then times batch-1 steps of 1 + k rows at
// position `context` (rows 0..k all ask for logits, as the verifier does) for k = 0..max_k,
// round robin in `rounds` rounds, alternating the order from round to round so that a
// burst of other load lands on all sizes alike. Each round's ratios are taken against that
// round's single-row step (paired), and the median ratio over the rounds is reported.
// The steps rewrite the same cache positions, so every round sees the same context.
// Fails unless `context` positions and 1 + max_k rows fit the model and its KV cache.
void check_verify_fits(const Backend& backend, int64_t context, int max_k);

VerifyCost time_verify_steps(Backend& backend, int64_t context, int max_k, int rounds);

}  // namespace troupe::app
