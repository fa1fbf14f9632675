// The adaptive controller on synthetic costs: k follows acceptance within [0, K], drafts
// stop when they do not pay (low alpha, costly drafts, compute-bound batches), probes
// back off, and seeded sampled sequences ignore timing.
#include <catch2/catch.hpp>

#include "spec/controller.h"
#include "spec/verify.h"

using namespace troupe::spec;

namespace {

// Memory-bound target: a step costs 10 ms whatever its tokens up to 64, then 0.5 ms each.
std::vector<std::pair<int64_t, double>> memory_bound() {
  return {{1, 10.0}, {64, 10.0}, {128, 42.0}};
}
// Compute-bound target: every token costs 1 ms.
std::vector<std::pair<int64_t, double>> compute_bound() {
  return {{1, 1.0}, {256, 256.0}};
}

SpecController make(int32_t K, double draft_ms, std::vector<std::pair<int64_t, double>> target) {
  ControllerConfig c;
  c.num_speculative_tokens = K;
  SpecController ctl(c);
  ctl.target_cost().set_calibration(std::move(target));
  ctl.draft_cost().set_calibration({{1, draft_ms}, {64, draft_ms * 2}});
  return ctl;
}

// Feeds `steps` verifications where every draft is accepted with probability alpha
// (deterministically: the first floor(alpha * k + 0.5) pass).
void train(SpecController& ctl, SeqSpecState& st, double alpha, int steps, int32_t k) {
  for (int i = 0; i < steps; ++i) {
    const int32_t acc = int32_t(alpha * k + 0.5);
    ctl.observe_seq(st, k, std::min(acc, k));
  }
}

// Probes of `n` declined sequences over `steps` decode steps, each probe's draft catch-up
// being the tokens since that sequence's last draft: (probes, catch-up tokens drafted).
std::pair<int64_t, int64_t> probe_load(SpecController& ctl, int n, int steps) {
  std::vector<SeqSpecState> st(static_cast<size_t>(n));
  for (auto& s : st) {
    s.k_max = 4;
    train(ctl, s, 0.0, 30, 2);
  }
  std::vector<int64_t> since(size_t(n), 40);  // the prompts: never drafted yet
  int64_t probes = 0, caught_up = 0;
  std::vector<int32_t> k;
  for (int step = 0; step < steps; ++step) {
    std::vector<Candidate> cands;
    for (int i = 0; i < n; ++i) cands.push_back({&st[size_t(i)], 4, since[size_t(i)]});
    ctl.plan(cands, n, n, 1000, k);
    for (int i = 0; i < n; ++i) {
      if (k[size_t(i)] > 0) {
        probes++;
        caught_up += since[size_t(i)];
        since[size_t(i)] = 1;
        ctl.observe_seq(st[size_t(i)], 1, 0);
      } else {
        since[size_t(i)]++;
      }
    }
  }
  return {probes, caught_up};
}

}  // namespace

TEST_CASE("k follows acceptance within [0, K] when drafts are cheap", "[spec][controller]") {
  auto ctl = make(6, 0.1, memory_bound());
  SeqSpecState st;
  st.k_max = 6;
  std::vector<int32_t> k;
  Candidate c{&st, 6, 1};
  train(ctl, st, 1.0, 20, 6);  // everything accepted
  ctl.plan({&c, 1}, 1, 1, 1000, k);
  CHECK(k[0] == 6);
  SeqSpecState mid = st;
  train(ctl, mid, 0.5, 20, 4);  // half of them
  Candidate cm{&mid, 6, 1};
  ctl.plan({&cm, 1}, 1, 1, 1000, k);
  CHECK(k[0] >= 1);
  CHECK(k[0] <= 6);
  // Nothing ever accepted (here and across the engine): even drafts this cheap do not pay.
  auto cold = make(6, 0.1, memory_bound());
  SeqSpecState bad;
  bad.k_max = 6;
  train(cold, bad, 0.0, 50, 2);
  Candidate cb{&bad, 6, 1};
  cold.plan({&cb, 1}, 1, 1, 1000, k);
  CHECK(k[0] == 0);
  // The cap (max_tokens, model length) and the budget bound k too.
  Candidate capped{&st, 2, 1};
  ctl.plan({&capped, 1}, 1, 1, 1000, k);
  CHECK(k[0] == 2);
  ctl.plan({&c, 1}, 1, 1, 3, k);
  CHECK(k[0] == 3);
}

TEST_CASE("costly drafts switch speculation off even at high acceptance", "[spec][controller]") {
  // A draft pass as slow as the target step: E(k)/(1 + k) < 1 for any alpha < 1.
  auto ctl = make(4, 10.0, memory_bound());
  SeqSpecState st;
  st.k_max = 4;
  train(ctl, st, 0.75, 20, 4);
  std::vector<int32_t> k;
  Candidate c{&st, 4, 1};
  ctl.plan({&c, 1}, 1, 1, 1000, k);
  CHECK(k[0] == 0);
}

TEST_CASE("a compute-bound batch turns speculation off for the step", "[spec][controller]") {
  auto ctl = make(4, 0.01, compute_bound());
  std::vector<SeqSpecState> st(32);
  std::vector<Candidate> cands;
  for (auto& s : st) {
    s.k_max = 4;
    train(ctl, s, 0.5, 20, 4);
    cands.push_back({&s, 4, 1});
  }
  std::vector<int32_t> k;
  ctl.plan(cands, 32, 32, 1000, k);
  // Each draft costs a full token of target time and yields alpha^j < 1 tokens.
  for (int32_t x : k) CHECK(x == 0);
  // The same batch on a memory-bound target speculates.
  auto mem = make(4, 0.01, memory_bound());
  for (auto& s : st) s.idle = 0;
  mem.plan(cands, 32, 32, 1000, k);
  int64_t total = 0;
  for (int32_t x : k) total += x;
  CHECK(total > 0);
  CHECK(total <= 32 * 4);
}

TEST_CASE("probes of a costly draft model take a bounded share of the target's time", "[spec][controller]") {
  // Compute-bound target (1 ms per token), 32 declined sequences, and drafts costing a
  // share of that per token: the catch-up of every probe is paid.
  ControllerConfig cc;
  cc.num_speculative_tokens = 4;
  const int n = 32, steps = 2000;
  auto run = [&](double per_token) {
    SpecController ctl(cc);
    ctl.target_cost().set_calibration(compute_bound());
    ctl.draft_cost().set_calibration({{1, per_token}, {256, 256 * per_token}});
    const auto [probes, caught_up] = probe_load(ctl, n, steps);
    // Draft time spent on probes against the target's (n ms a step).
    const double share = per_token * double(caught_up) / (double(n) * steps);
    INFO("draft " << per_token << " ms per token: probes " << probes << ", catch-up tokens " << caught_up
                  << ", share of the target's time " << share);
    CHECK(share <= SpecController::kProbeShare * 1.1);
    return probes;
  };
  // As costly as the target (a quantized self-draft of a quantized target): a sequence's
  // catch-up grows faster than the credit, so speculation stays off.
  run(1.0);
  // A quarter of the target per token (an INT4 self-draft of an F16 target): still probed.
  CHECK(run(0.25) > n);
  // A hundredth: the full schedule, one probe per sequence every kProbeMax steps once backed off.
  CHECK(run(0.01) >= int64_t(n) * (steps / SpecController::kProbeMax - 4));
}

TEST_CASE("sequences left without drafts are probed, less and less often", "[spec][controller]") {
  auto ctl = make(4, 0.1, memory_bound());
  SeqSpecState st;
  st.k_max = 4;
  train(ctl, st, 0.0, 30, 2);
  Candidate c{&st, 4, 1};
  std::vector<int32_t> k;
  std::vector<int> probes;
  for (int step = 0; step < 200; ++step) {
    ctl.plan({&c, 1}, 1, 1, 1000, k);
    CHECK(k[0] <= 1);
    if (k[0] == 1) {
      CHECK(st.probing);
      probes.push_back(step);
      ctl.observe_seq(st, 1, 0);  // the probe fails too
    }
  }
  REQUIRE(probes.size() >= 3);
  CHECK(probes.size() <= 10);  // intervals 4, 8, 16, 32, 64, 64...
  for (size_t i = 2; i < probes.size(); ++i)
    CHECK(probes[i] - probes[i - 1] >= probes[i - 1] - probes[i - 2]);
  CHECK(probes.back() - probes[probes.size() - 2] <= SpecController::kProbeMax);
  // A successful stretch brings speculation back.
  train(ctl, st, 1.0, 10, 4);
  ctl.plan({&c, 1}, 1, 1, 1000, k);
  CHECK(k[0] > 1);
  CHECK(!st.probing);
}

TEST_CASE("seeded sampled sequences get k from their own history, not from timing", "[spec][controller]") {
  ControllerConfig cfg;
  cfg.num_speculative_tokens = 4;
  cfg.static_cost_ratio = 0.05;
  SpecController fast(cfg), slow(cfg);
  fast.target_cost().set_calibration(memory_bound());
  slow.target_cost().set_calibration(compute_bound());
  slow.draft_cost().set_calibration({{1, 5.0}});
  SeqSpecState a, b;
  a.k_max = b.k_max = 4;
  a.deterministic = b.deterministic = true;
  train(fast, a, 0.75, 10, 4);
  train(slow, b, 0.75, 10, 4);
  // Other sequences' history moves the global prior, which deterministic ones ignore.
  SeqSpecState other;
  train(slow, other, 0.0, 50, 4);
  std::vector<int32_t> ka, kb;
  Candidate ca{&a, 4, 1}, cb{&b, 4, 1};
  fast.plan({&ca, 1}, 1, 1, 1000, ka);
  slow.plan({&cb, 1}, 1, 1, 1000, kb);
  CHECK(ka[0] == kb[0]);
  CHECK(ka[0] > 0);
}

TEST_CASE("fixed k when adaptation is off; cost curves rescale to what steps take", "[spec][controller]") {
  ControllerConfig cfg;
  cfg.num_speculative_tokens = 3;
  cfg.adaptive = false;
  SpecController ctl(cfg);
  SeqSpecState st;
  st.k_max = 3;
  train(ctl, st, 0.0, 10, 3);
  std::vector<int32_t> k;
  Candidate c{&st, 5, 1};
  ctl.plan({&c, 1}, 1, 1, 1000, k);
  CHECK(k[0] == 3);

  CostCurve curve;
  curve.set_calibration({{1, 2.0}, {10, 2.0}, {20, 4.0}});
  CHECK(curve.predict(5) == Approx(2.0));
  CHECK(curve.predict(15) == Approx(3.0));
  CHECK(curve.predict(30) == Approx(6.0));  // extrapolates the last segment
  for (int i = 0; i < 100; ++i) curve.rescale(curve.curve(15), 6.0);  // steps take twice as long
  CHECK(curve.predict(15) == Approx(6.0).epsilon(0.01));
  CHECK(curve.predict(5) == Approx(4.0).epsilon(0.01));
}

TEST_CASE("cost curves keep real cliffs and smooth noisy points into a monotone fit", "[spec][controller]") {
  CostCurve curve;
  // A kernel switch at 33 tokens (real: +40%) and a noisy slow point at 3.
  curve.set_calibration({{1, 10.0}, {2, 10.0}, {3, 16.0}, {4, 10.0}, {32, 12.0}, {33, 17.0}, {64, 18.0}});
  CHECK(curve.predict(33) == Approx(17.0));              // the cliff survives
  CHECK(curve.predict(3) == Approx(38.0 / 3).epsilon(1e-9));  // pooled with the points after it
  CHECK(curve.predict(4) == Approx(38.0 / 3).epsilon(1e-9));
  CHECK(curve.predict(32) == Approx(38.0 / 3).epsilon(1e-9));
  CHECK(curve.predict(2) <= curve.predict(3));     // monotone
  CHECK(curve.predict(48) > curve.predict(33));
}

TEST_CASE("a proposer that rarely comes up with drafts is not asked every step", "[spec][controller]") {
  // Verification is not free here (+10% per token), so an empty ask is not worth it either.
  auto ctl = make(4, 0.0, {{1, 10.0}, {2, 11.0}, {5, 14.0}});
  SeqSpecState st;
  st.k_max = 4;
  Candidate c{&st, 4, 1};
  std::vector<int32_t> k;
  ctl.plan({&c, 1}, 1, 1, 1000, k);
  CHECK(k[0] > 0);  // optimistic at first
  for (int i = 0; i < 30; ++i) ctl.observe_proposal(st, i % 10 == 0);  // drafts 1 step in 10
  CHECK(ctl.proposal_rate(st) < 0.3);
  ctl.plan({&c, 1}, 1, 1, 1000, k);
  CHECK(k[0] == 0);
}

TEST_CASE("the step gate runs the policy that delivered more tokens per ms, and tries the other", "[spec][gate]") {
  StepGate gate;
  // No figures yet: speculate (steps without drafts bring the other figure by themselves).
  CHECK(gate.allow(32));
  // Batch 32: steps with drafts delivered 40 tokens in 150 ms, without 32 in 100 ms.
  for (int i = 0; i < 5; ++i) {
    gate.observe(32, true, 40, 150.0);
    gate.observe(32, false, 32, 100.0);
  }
  CHECK(gate.rate(32, true) == Approx(40.0 / 150.0));
  CHECK(gate.rate(32, false) == Approx(0.32));
  std::vector<int> tried;
  for (int step = 0; step < 64; ++step)
    if (gate.allow(40)) tried.push_back(step);  // 40 shares the bucket of 32..63
  // Tried after 8 steps at first, then 16, then 32: half as often each time it loses.
  CHECK(tried == std::vector<int>{7, 23, 55});
  // Batch 1 is another bucket: there speculation has no figure yet, so it is allowed.
  CHECK(gate.allow(1));
  // When the drafts start paying (acceptance rose), the lead changes within a few steps
  // and the plain policy becomes the one that is tried now and then.
  for (int i = 0; i < 20; ++i) gate.observe(32, true, 80, 150.0);
  int spec_steps = 0;
  for (int step = 0; step < 16; ++step) spec_steps += gate.allow(32) ? 1 : 0;
  CHECK(spec_steps == 15);
}
