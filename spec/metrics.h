#pragma once
// Speculative-decoding counters, named after vLLM's spec_decode_* metrics so the daemon can
// export them as is. One instance per engine (SchedulerStats::spec); Usage carries the
// per-request subset.
#include <cstdint>
#include <vector>

namespace troupe::spec {

struct SpecMetrics {
  int64_t max_k = 0;                  // K: the engine's num_speculative_tokens (0: speculation off)
  int64_t num_drafts = 0;             // sequence-steps verified with >= 1 draft token
  int64_t num_draft_tokens = 0;       // draft tokens proposed and verified
  int64_t num_accepted_tokens = 0;    // of those, accepted by the target
  int64_t num_emitted_tokens = 0;     // tokens produced by those verifications (accepted + 1 each)
  int64_t num_rejections = 0;         // verifications that ended at a rejected draft
  std::vector<int64_t> drafted_per_pos;   // [K]: verifications with a draft at position i (0-based)
  std::vector<int64_t> accepted_per_pos;  // [K]: of those, how many accepted it (and all before it)
  // [K + 1]: decode steps of speculation-enabled sequences by the k planned for them
  // (0: the controller skipped speculation for that sequence in that step).
  std::vector<int64_t> k_histogram;
  int64_t spec_steps = 0;             // engine steps that carried any draft
  int64_t draft_passes = 0;           // draft-model forward passes (0 for n-gram)
  double draft_ms_total = 0;          // proposer wall time (all passes, sampling included)
  // Controller gauges at the time of the snapshot.
  double alpha_estimate = 0;          // per-token acceptance probability (decayed)
  double cost_ratio = 0;              // measured draft pass / target decode step time
  // The controller's current cost model: target step of n tokens for n = 1..K+1 (startup
  // calibration rescaled to recent steps), i.e. what verifying n-1 drafts costs.
  std::vector<double> target_step_ms;

  explicit SpecMetrics(int64_t k = 0);
  void record_plan(int32_t k_planned);
  // One verified sequence-step: `drafted` tokens proposed, the first `accepted` accepted.
  void record_verify(int32_t drafted, int32_t accepted);

  double acceptance_rate() const;           // accepted / drafted
  double mean_accepted_length() const;      // tokens per verification: 1 + accepted / drafts
  std::vector<double> acceptance_rate_per_pos() const;  // accepted_per_pos / drafted_per_pos
  // Per-token acceptance probability: accepted / (accepted + rejections), the maximum-
  // likelihood alpha of "each draft passes with probability alpha until one fails".
  double alpha() const;
  bool operator==(const SpecMetrics&) const = default;  // field by field (protocol tests)
};

}  // namespace troupe::spec
