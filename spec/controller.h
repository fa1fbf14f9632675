#pragma once
// Adaptive speculation: how many drafts each sequence gets in each step, if any.
//
// Per sequence the controller keeps a decayed estimate of alpha, the probability that a draft
// token is accepted given the ones before it were (the maximum-likelihood estimate for
// "accepted a drafts, then a rejection": sum(accepted) / (sum(accepted) + rejections)).
// Per engine it keeps two cost curves, measured at startup and rescaled every step:
//   T(n)  target step of n tokens (decode and verify tokens of every sequence in the step)
//   D(m)  one draft-model forward pass over m tokens (k drafts take k passes)
// Giving sequence s k_s drafts yields 1 + rho_s (alpha_s + ... + alpha_s^k_s) tokens
// instead of 1 (rho_s: how often its proposer comes up with drafts at all; 1 for a model), and costs T(n + sum k_s) + sum over passes D(m_pass) instead of T(n).
// For linear costs the k_s maximising tokens per millisecond keep exactly the drafts whose
// marginal gain rho_s alpha_s^j clears one common threshold, so the controller walks the drafts
// in decreasing alpha_s^j, adding one at a time, evaluates every prefix with the real cost
// curves (the memory-bound knee included) and keeps the best. Speculation happens only when
// that beats the step without drafts by min_gain: k follows acceptance, a sequence whose
// drafts keep failing gets none, and a compute-bound batch where verifying costs as much as
// decoding switches speculation off for the whole step.
//
// A sequence left without drafts is probed with k = 1 after `probe` idle decode steps, the
// interval doubling up to kProbeMax while the controller keeps declining it, so alpha can
// recover when the text becomes predictable again. A probe costs one draft token and, for a
// draft model, the draft's catch-up over every token since its last draft, so probing every
// sequence now and then makes the draft model read the whole text after all: as costly as
// the target for a self-draft of a quantized target (measured: 0.73x the throughput of not
// speculating at batch 32). So model-draft probes are paid from a credit that grows by
// kProbeShare of each step's predicted target time: probing never costs more than that
// share, and a sequence whose catch-up has grown past what the credit can hold is no
// longer probed.
//
// Seeded sampled requests must replay exactly, and their drafts change their outputs, so
// their k never depends on timing or on other requests: it comes from their own alpha (with
// a fixed prior), the static cost ratio (draft/target weight bytes) and a fixed verification
// cost per draft, at batch-1 terms.
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "spec/proposer.h"
#include "spec/step_gate.h"

namespace troupe::spec {

// Time of a step as a function of its tokens: a calibration curve (the closest
// non-decreasing fit to the measured points, piecewise linear between them, extrapolated
// linearly past the last) times a scale tracking what steps take now (longer contexts,
// other load on the machine). Without calibration the curve is flat: extra tokens look
// free, so speculation is tried and measured.
class CostCurve {
 public:
  void set_calibration(std::vector<std::pair<int64_t, double>> points);  // (tokens, ms)
  double curve(double tokens) const;                  // calibrated shape, unscaled
  double predict(double tokens) const { return scale_ * curve(tokens); }
  // Something whose calibrated cost is curve_ms took ms: moves the scale toward their ratio
  // (a geometric moving average, so one step delayed by other load cannot swing it).
  void rescale(double curve_ms, double ms);
  double scale() const { return scale_; }
  bool calibrated() const { return !points_.empty(); }

 private:
  std::vector<std::pair<int64_t, double>> points_;
  double scale_ = 1.0;
  bool observed_ = false;
};

// Per-sequence speculation state (lives in the Sequence).
struct SeqSpecState {
  int32_t k_max = 0;          // this request's K (0: it never speculates)
  bool deterministic = false; // seeded and sampled: k must not depend on timing
  double acc = 0, rej = 0;    // decayed accepted drafts and rejections
  double planned = 0, proposed = 0;  // decayed steps with draft slots, and those that got drafts
  int32_t idle = 0;           // decode steps without drafts since the last step with some
  int32_t probe = 0;          // idle steps before the next probe (0: not set yet)
  bool probing = false;       // the k planned this step is a probe
  int64_t draft_pos = 0;      // tokens the draft cache should hold (catch-up estimate)
  int32_t planned_k = 0;      // k planned for the step in flight
};

struct ControllerConfig {
  int32_t num_speculative_tokens = 0;  // K
  bool adaptive = true;                // false: every candidate gets min(K, its cap)
  bool model_drafts = true;            // drafts cost draft-model passes (false: n-gram)
  double static_cost_ratio = 0;        // draft/target weight bytes, for deterministic sequences
  double min_gain = 1.02;              // speculate only above this predicted speedup
};

struct Candidate {
  SeqSpecState* st = nullptr;
  int32_t cap = 0;       // most drafts this sequence can use now (max_tokens, model length)
  int64_t catchup = 1;   // tokens the draft model runs before its first draft (>= 1)
};

class SpecController {
 public:
  static constexpr int32_t kProbeMin = 4;
  static constexpr int32_t kProbeMax = 64;
  static constexpr double kProbeShare = 0.03;  // of the target's time, at most, on model-draft probes
  static constexpr int32_t kProbeCreditSteps = 64;  // the credit holds at most this many steps' share

  explicit SpecController(ControllerConfig cfg);
  const ControllerConfig& config() const { return cfg_; }
  CostCurve& target_cost() { return target_; }
  CostCurve& draft_cost() { return draft_; }
  const CostCurve& target_cost() const { return target_; }
  const CostCurve& draft_cost() const { return draft_; }

  // Sets k[i] for cands[i] (and their planned_k / probing). The step without drafts
  // computes `base_tokens` tokens and yields `base_outputs` tokens; drafts may add at most
  // `budget` tokens in total.
  void plan(std::span<const Candidate> cands, int64_t base_tokens, int64_t base_outputs,
            int64_t budget, std::vector<int32_t>& k);
  // A sequence's verification: `drafted` drafts were checked, the first `accepted` passed.
  void observe_seq(SeqSpecState& st, int32_t drafted, int32_t accepted);
  // A step that gave the sequence draft slots: did the proposer fill any? (An n-gram
  // lookup often finds nothing; slots it leaves empty still cost a trip to the drafter.)
  void observe_proposal(SeqSpecState& st, bool drafted);
  // A finished decode/verify step: `tokens` target tokens (drafts included) in forward_ms;
  // `draft` is the proposer's timing for it (null when nothing was proposed).
  void observe_step(int64_t tokens, double forward_ms, const ProposeStats* draft);

  // A finished decode/verify step with `outputs` sampling sequences produced `tokens`
  // tokens in `ms` (forward, drafting, verification), with drafts or without: what the
  // step gate (step_gate.h) judges speculation by.
  void observe_outcome(int64_t outputs, bool drafted, int64_t tokens, double ms);
  const StepGate& gate() const { return gate_; }

  double alpha(const SeqSpecState& st) const;  // the sequence's estimate
  double proposal_rate(const SeqSpecState& st) const;  // of its steps with slots, share with drafts
  double alpha_global() const;                 // across sequences: the prior for new ones
  double cost_ratio() const;                   // predicted D(1) / T(1)

 private:
  int32_t deterministic_k(const SeqSpecState& st, int32_t cap) const;
  // deterministic_only: the step gate closed the step; seeded sequences still keep the
  // probe schedule that depends on their own history alone.
  void schedule_probes(std::span<const Candidate> cands, int64_t budget, std::vector<int32_t>& k,
                       bool deterministic_only);

  ControllerConfig cfg_;
  CostCurve target_, draft_;
  StepGate gate_;
  double acc_g_ = 0, rej_g_ = 0;  // decayed counts over every sequence
  double probe_credit_ms_ = 0;    // predicted draft ms that probes may still spend
};

}  // namespace troupe::spec
