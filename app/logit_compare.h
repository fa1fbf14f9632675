#pragma once
// How far a model's next-token distributions are from a reference model's: per-position
// KL(P_ref || P_model) and top-1 agreement. `troupe eval` reports them on a text file;
// `bench stack` on the workload's own prompts, beside each quantized rung's speed.
#include <cstdint>
#include <vector>

#include "model/backend.h"

namespace troupe::app {

// log-softmax of one logits row, in double.
void log_softmax(const float* x, int64_t n, std::vector<double>& out);

// KL(ref || model) of two log-probability rows (clamped at 0: rounding can make an exact 0
// slightly negative), and whether their argmaxes agree.
struct PositionDiff {
  double kl = 0;
  bool top1_agree = false;
};
PositionDiff compare_position(const std::vector<double>& model_lp, const std::vector<double>& ref_lp);

// Nearest-rank percentile (q in [0, 1]) of `v`; 0 when empty.
double nearest_rank_percentile(std::vector<double> v, double q);

// Over every predicted position of every sequence (each run from position 0, so each must
// fit the backends' KV pools): the mean and p99 of the per-token KL, and top-1 agreement.
struct QualityVsReference {
  int64_t tokens = 0;
  double kl_mean = 0, kl_p99 = 0, top1_agreement = 0;
};
QualityVsReference compare_to_reference(Backend& model, Backend& reference,
                                        const std::vector<std::vector<int32_t>>& sequences);

}  // namespace troupe::app
