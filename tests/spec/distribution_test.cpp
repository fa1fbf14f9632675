// Sampled outputs keep the target's distribution under speculation: thousands of seeded
// requests on TinyStories-656K with a deliberately different draft model, the joint
// distribution of their first three tokens against the exact one computed from the target
// (chi-squared). The same test fails when verification skips the residual distribution
// (the test-only switch), so it can tell.
#include <catch2/catch.hpp>

#include <array>
#include <numeric>

#include "actors/engine.h"
#include "actors/engine_harness.h"
#include "cpu/cpu_backend.h"
#include "model/weights.h"
#include "spec_test_util.h"

using namespace troupe;

namespace {

using Triple = std::array<int32_t, 3>;

SamplingParams params() {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 4;  // 64 possible triples: enough samples per cell for a sharp test
  p.max_tokens = 4;
  p.ignore_eos = true;
  return p;
}

// P(t1, t2, t3) under the target with params(), from fresh forward passes.
std::map<Triple, double> exact_distribution(const std::string& model, const std::vector<int32_t>& prompt) {
  cpu::CpuBackendOptions bo;
  bo.num_threads = 1;
  bo.num_blocks = 8;
  cpu::CpuBackend b(load_model(model), bo);
  Sampler s(params(), prompt);
  auto probs_after = [&](const std::vector<int32_t>& ctx) {
    StepBatch batch;
    StepSeq q;
    q.tokens = ctx;
    q.block_table.resize((ctx.size() + 15) / 16);
    std::iota(q.block_table.begin(), q.block_table.end(), 0);
    q.logit_rows = {int32_t(ctx.size()) - 1};
    batch.seqs.push_back(q);
    StepOutput out;
    b.run_step(batch, out);
    std::vector<float> p;
    s.probabilities(out.logits, p);
    std::vector<std::pair<int32_t, double>> support;
    for (size_t i = 0; i < p.size(); ++i)
      if (p[i] > 0) support.push_back({int32_t(i), p[i]});
    return support;
  };
  std::map<Triple, double> out;
  for (auto [a, pa] : probs_after(prompt)) {
    auto c1 = prompt;
    c1.push_back(a);
    for (auto [b2, pb] : probs_after(c1)) {
      auto c2 = c1;
      c2.push_back(b2);
      for (auto [c, pc] : probs_after(c2)) out[{a, b2, c}] = pa * pb * pc;
    }
  }
  return out;
}

struct Sampled {
  std::map<Triple, int64_t> counts;
  SchedulerStats stats;
};

Sampled sample(const std::string& model, const SpeculativeConfig& spec, const std::vector<int32_t>& prompt,
               int64_t n, uint64_t seed0) {
  EngineConfig cfg;
  cfg.model = model;
  cfg.scheduler.max_num_seqs = 64;
  cfg.scheduler.max_num_batched_tokens = 1024;
  cfg.max_waiting = 100000;  // every request is submitted at once
  cfg.speculative = spec;
  Engine engine(cfg);
  test::Collector col;
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < n; ++i) {
    GenerateRequest r;
    r.prompt_ids = prompt;
    r.params = params();
    r.params.seed = seed0 + uint64_t(i);
    ids.push_back(engine.submit(r, col.sink()));
  }
  col.wait_done(size_t(n));
  Sampled out;
  for (auto id : ids) {
    const auto o = col.get(id);
    REQUIRE(o.ids.size() == 4);
    out.counts[{o.ids[0], o.ids[1], o.ids[2]}]++;
  }
  out.stats = engine.stats();
  return out;
}

}  // namespace

TEST_CASE("speculative sampling keeps the target's distribution (chi-squared, 3000 samples)", "[spec][engine][chi2]") {
  const auto model = test::model_path("tinystories-656k");
  const auto draft = test::perturbed_copy(model, 0.15, 3, "spec-chi2-draft");
  const auto prompt = test::fixture_prompts("tinystories-656k")[0].prompt_ids;
  const auto expected = exact_distribution(model, prompt);
  const int64_t n = 3000;

  SpeculativeConfig spec;
  spec.method = "draft";
  spec.model = draft;
  spec.num_speculative_tokens = 2;  // after the first token, drafts for tokens 2 and 3
  spec.adaptive = false;            // seeded sampled requests with this draft would not speculate otherwise

  const auto plain = sample(model, SpeculativeConfig{}, prompt, n, 1);
  const auto chi_plain = test::chi2_test(plain.counts, expected, n);
  INFO("without speculation: chi2 " << chi_plain.stat << " dof " << chi_plain.dof << " p " << chi_plain.p_value);
  CHECK(chi_plain.p_value > 1e-3);

  const auto with = sample(model, spec, prompt, n, 100000);
  const auto chi = test::chi2_test(with.counts, expected, n);
  const auto& m = with.stats.spec;
  INFO("with speculation: chi2 " << chi.stat << " dof " << chi.dof << " p " << chi.p_value << "; drafts "
                                 << m.num_draft_tokens << ", accepted " << m.num_accepted_tokens);
  // The residual path must really have been exercised: many drafts, many rejected.
  CHECK(m.num_drafts >= n);
  CHECK(m.num_rejections >= n / 5);
  CHECK(chi.p_value > 1e-3);

  auto broken = spec;
  broken.test_skip_residual = true;
  const auto bad = sample(model, broken, prompt, n, 100000);
  const auto chi_bad = test::chi2_test(bad.counts, expected, n);
  INFO("without the residual: chi2 " << chi_bad.stat << " dof " << chi_bad.dof << " p " << chi_bad.p_value);
  CHECK(chi_bad.p_value < 1e-6);
}
