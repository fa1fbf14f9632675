#include "spec/controller.h"

#include <algorithm>
#include <cmath>

#include "spec/verify.h"

namespace troupe::spec {

namespace {

constexpr double kSeqForget = 0.8;      // per verification: a sequence's alpha follows its text
constexpr double kGlobalForget = 0.98;  // the engine-wide prior moves slowly
constexpr double kPriorWeight = 2.0;    // pseudo-observations of the prior in a sequence's alpha
constexpr double kDeterministicPrior = 0.5;
constexpr double kScaleForget = 0.9;
// Deterministic sequences cannot use measured costs; they assume each verified draft costs
// a tenth of a decode step (what a 77M-parameter F32 model measures on 2 cores is 5-12%,
// docs/benchmarks.md), on top of the draft's static cost ratio.
constexpr double kStaticVerifyCost = 0.1;

}  // namespace

void CostCurve::set_calibration(std::vector<std::pair<int64_t, double>> points) {
  std::sort(points.begin(), points.end());
  points_.clear();
  for (auto& p : points)
    if (p.first > 0 && p.second > 0 && (points_.empty() || points_.back().first != p.first)) points_.push_back(p);
  // Costs never fall with more tokens, but measurements on a busy machine do: fit the
  // closest non-decreasing curve (pool adjacent violators). A running maximum instead would
  // turn one slow outlier into a plateau on which extra tokens look free.
  std::vector<std::pair<double, double>> blocks;  // (mean, weight) of pooled runs
  for (const auto& p : points_) {
    blocks.push_back({p.second, 1.0});
    while (blocks.size() > 1 && blocks[blocks.size() - 2].first > blocks.back().first) {
      auto [m1, w1] = blocks[blocks.size() - 2];
      auto [m2, w2] = blocks.back();
      blocks.pop_back();
      blocks.back() = {(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2};
    }
  }
  size_t i = 0;
  for (const auto& [mean, weight] : blocks)
    for (int j = 0; j < int(weight); ++j) points_[i++].second = mean;
  scale_ = 1.0;
  observed_ = false;
}

double CostCurve::curve(double x) const {
  if (points_.empty()) return 1.0;
  if (x <= double(points_.front().first)) return points_.front().second;
  for (size_t i = 1; i < points_.size(); ++i) {
    const auto [x1, y1] = points_[i];
    if (x <= double(x1)) {
      const auto [x0, y0] = points_[i - 1];
      return y0 + (y1 - y0) * (x - double(x0)) / double(x1 - x0);
    }
  }
  if (points_.size() == 1) return points_[0].second * x / double(points_[0].first);
  const auto [x0, y0] = points_[points_.size() - 2];
  const auto [x1, y1] = points_.back();
  return y1 + (y1 - y0) / double(x1 - x0) * (x - double(x1));
}

void CostCurve::rescale(double curve_ms, double ms) {
  if (!(curve_ms > 0) || !(ms > 0)) return;
  const double r = ms / curve_ms;
  scale_ = observed_ ? std::exp(kScaleForget * std::log(scale_) + (1 - kScaleForget) * std::log(r)) : r;
  observed_ = true;
}

SpecController::SpecController(ControllerConfig cfg) : cfg_(cfg) {}

double SpecController::alpha_global() const { return (acc_g_ + 1.0) / (acc_g_ + rej_g_ + 2.0); }

double SpecController::alpha(const SeqSpecState& st) const {
  const double prior = st.deterministic ? kDeterministicPrior : alpha_global();
  return (st.acc + kPriorWeight * prior) / (st.acc + st.rej + kPriorWeight);
}

double SpecController::cost_ratio() const {
  if (!cfg_.model_drafts) return 0.0;
  return draft_.predict(1) / target_.predict(1);
}

void SpecController::observe_seq(SeqSpecState& st, int32_t drafted, int32_t accepted) {
  if (drafted <= 0) return;
  const double rejected = accepted < drafted ? 1.0 : 0.0;
  st.acc = kSeqForget * st.acc + accepted;
  st.rej = kSeqForget * st.rej + rejected;
  acc_g_ = kGlobalForget * acc_g_ + accepted;
  rej_g_ = kGlobalForget * rej_g_ + rejected;
}

void SpecController::observe_proposal(SeqSpecState& st, bool drafted) {
  st.planned = kSeqForget * st.planned + 1.0;
  st.proposed = kSeqForget * st.proposed + (drafted ? 1.0 : 0.0);
}

double SpecController::proposal_rate(const SeqSpecState& st) const {
  return (st.proposed + 1.0) / (st.planned + 1.0);  // one optimistic pseudo-observation
}

void SpecController::observe_step(int64_t tokens, double forward_ms, const ProposeStats* draft) {
  if (tokens > 0) target_.rescale(target_.curve(double(tokens)), forward_ms);
  if (draft && !draft->passes.empty()) {
    // The whole proposer call against its passes' calibrated cost: sampling the drafts and
    // the drafter's bookkeeping are charged to the passes.
    double curve_ms = 0;
    for (const auto& p : draft->passes) curve_ms += draft_.curve(double(p.tokens));
    draft_.rescale(curve_ms, draft->total_ms);
  }
}

void SpecController::observe_outcome(int64_t outputs, bool drafted, int64_t tokens, double ms) {
  if (cfg_.adaptive) gate_.observe(outputs, drafted, tokens, ms);
}

int32_t SpecController::deterministic_k(const SeqSpecState& st, int32_t cap) const {
  const double a = alpha(st), rho = proposal_rate(st);
  const double c = (cfg_.model_drafts ? cfg_.static_cost_ratio : 0.0) + kStaticVerifyCost;
  int32_t best = 0;
  double best_gain = cfg_.min_gain;
  for (int32_t k = 1; k <= cap; ++k) {
    const double g = (1.0 + rho * (expected_tokens(a, k) - 1.0)) / (1.0 + double(k) * c);
    if (g > best_gain) best_gain = g, best = k;
  }
  return best;
}

void SpecController::plan(std::span<const Candidate> cands, int64_t base_tokens, int64_t base_outputs,
                          int64_t budget, std::vector<int32_t>& k) {
  const int32_t K = cfg_.num_speculative_tokens;
  const size_t n = cands.size();
  k.assign(n, 0);
  for (const auto& c : cands) c.st->probing = false;
  auto cap_of = [&](const Candidate& c) {
    return std::max(0, std::min({c.cap, c.st->k_max, K}));
  };
  int64_t used = 0;
  auto finish = [&] {
    for (size_t i = 0; i < n; ++i) cands[i].st->planned_k = k[i];
  };
  if (K <= 0 || n == 0 || budget <= 0) return finish();
  if (cfg_.model_drafts) {
    const double share = kProbeShare * target_.predict(double(base_tokens));
    probe_credit_ms_ = std::min(probe_credit_ms_ + share, kProbeCreditSteps * share);
  }

  if (!cfg_.adaptive) {  // fixed k: the configured K, as far as each sequence can take it
    for (size_t i = 0; i < n && used < budget; ++i) {
      k[i] = int32_t(std::min<int64_t>(cap_of(cands[i]), budget - used));
      used += k[i];
    }
    return finish();
  }

  // Draft passes: m[j] tokens in pass j. D(0) = 0: a pass nobody needs is not run.
  std::vector<int64_t> m(size_t(K) + 1, 0);
  double draft_ms = 0;
  auto grow_pass = [&](size_t j, int64_t by) {
    if (!cfg_.model_drafts || by == 0) return;
    const double before = m[j] ? draft_.predict(double(m[j])) : 0.0;
    m[j] += by;
    draft_ms += draft_.predict(double(m[j])) - before;
  };
  int64_t tokens = base_tokens;
  double outputs = double(base_outputs);
  auto add_draft = [&](size_t i, double gain) {
    const size_t j = size_t(k[i]);  // this draft is produced by pass j
    if (j == 0) grow_pass(0, cands[i].catchup - 1);  // catch-up rides on the first pass
    grow_pass(j, 1);
    k[i]++;
    tokens++;
    used++;
    outputs += gain;
  };

  // Deterministic sequences first: their k is fixed, the rest is planned around them.
  std::vector<double> alphas(n), rhos(n);
  for (size_t i = 0; i < n; ++i) {
    alphas[i] = alpha(*cands[i].st);
    rhos[i] = proposal_rate(*cands[i].st);
    if (!cands[i].st->deterministic) continue;
    const int32_t want = int32_t(std::min<int64_t>(deterministic_k(*cands[i].st, cap_of(cands[i])), budget - used));
    for (int32_t j = 1; j <= want; ++j) add_draft(i, rhos[i] * std::pow(alphas[i], j));
  }
  // Measured outcomes overrule the plan: where steps without drafts have been delivering
  // more tokens per ms at this batch size, only the seeded sequences above draft.
  if (!gate_.allow(base_outputs)) {
    schedule_probes(cands, budget - used, k, /*deterministic_only=*/true);  // theirs follow their own history
    return finish();
  }
  const double base_rate = outputs / (target_.predict(double(tokens)) + draft_ms);

  // Every further draft j of sequence i adds rho_i alpha_i^j expected tokens; best first.
  struct Item {
    double gain;
    size_t seq;
    int32_t j;
  };
  std::vector<Item> items;
  for (size_t i = 0; i < n; ++i) {
    if (cands[i].st->deterministic) continue;
    for (int32_t j = 1; j <= cap_of(cands[i]); ++j) items.push_back({rhos[i] * std::pow(alphas[i], j), i, j});
  }
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.gain > b.gain || (a.gain == b.gain && a.j < b.j);
  });
  const std::vector<int32_t> fixed = k;
  const auto fixed_m = m;
  const double fixed_draft_ms = draft_ms;
  const int64_t fixed_tokens = tokens, fixed_used = used;
  const double fixed_outputs = outputs;
  double best_rate = base_rate * cfg_.min_gain;
  size_t best_count = 0;
  for (size_t c = 0; c < items.size() && used < budget; ++c) {
    add_draft(items[c].seq, items[c].gain);
    const double rate = outputs / (target_.predict(double(tokens)) + draft_ms);
    if (rate > best_rate) best_rate = rate, best_count = c + 1;
  }
  // Replay the best prefix.
  k = fixed;
  m = fixed_m;
  draft_ms = fixed_draft_ms;
  tokens = fixed_tokens;
  used = fixed_used;
  outputs = fixed_outputs;
  for (size_t c = 0; c < best_count; ++c) add_draft(items[c].seq, items[c].gain);
  schedule_probes(cands, budget - used, k, /*deterministic_only=*/false);
  finish();
}

void SpecController::schedule_probes(std::span<const Candidate> cands, int64_t budget, std::vector<int32_t>& k,
                                     bool deterministic_only) {
  int64_t pass = 0;  // catch-up tokens of the probes so far: they share one draft pass
  for (size_t i = 0; i < cands.size(); ++i) {
    SeqSpecState& st = *cands[i].st;
    if (deterministic_only && !st.deterministic) continue;
    if (st.probe == 0) st.probe = kProbeMin;
    if (k[i] > 0) {  // chosen on its merits: speculation pays for this sequence now
      st.idle = 0;
      st.probe = kProbeMin;
      continue;
    }
    if (std::min(cands[i].cap, st.k_max) <= 0) continue;
    if (++st.idle < st.probe || budget <= 0) continue;
    if (cfg_.model_drafts && !st.deterministic) {  // seeded sequences' probes must not depend on timing
      const int64_t with = pass + cands[i].catchup;
      const double cost = draft_.predict(double(with)) - (pass ? draft_.predict(double(pass)) : 0.0);
      if (cost > probe_credit_ms_) continue;  // due, and probed once the credit allows
      probe_credit_ms_ -= cost;
      pass = with;
    }
    k[i] = 1;
    budget--;
    st.probing = true;
    st.idle = 0;
    st.probe = std::min(2 * st.probe, kProbeMax);
  }
}

}  // namespace troupe::spec
