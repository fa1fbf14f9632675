// Speculative decoding through the whole Engine on the real models: greedy outputs are
// identical to decoding without speculation with every proposer (alone and in a mixed
// batch with non-speculating and sampled requests, on 4-token KV blocks so drafts and
// rollbacks cross block boundaries), speculation switches itself off when drafts fail,
// adaptive k drafts where drafting pays and stops after its probes where it does not (exact
// counts on seeded requests), and bad configurations are refused with a clear error.
#include <catch2/catch.hpp>

#include <random>
#include <thread>

#include "actors/engine.h"
#include "actors/engine_harness.h"
#include "core/error.h"
#include "model/synth.h"
#include "spec_test_util.h"

using namespace troupe;
using troupe::test::Collector;
using troupe::test::greedy_request;
using troupe::test::run_alone;

namespace {

EngineConfig base_config(const std::string& model) {
  EngineConfig c;
  c.model = model;
  c.kv.block_size = 4;
  c.scheduler.max_num_seqs = 16;
  c.scheduler.max_num_batched_tokens = 256;
  return c;
}

SpeculativeConfig draft(const std::string& model, int k, bool adaptive) {
  SpeculativeConfig s;
  s.method = "draft";
  s.model = model;
  s.num_speculative_tokens = k;
  s.adaptive = adaptive;
  return s;
}

SpeculativeConfig ngram(int k, bool adaptive) {
  SpeculativeConfig s;
  s.method = "ngram";
  s.ngram_min = 1;
  s.ngram_max = 3;
  s.num_speculative_tokens = k;
  s.adaptive = adaptive;
  return s;
}

// Runs requests (all at once, slightly staggered) and returns their outputs and final events.
std::vector<test::Outcome> run(const EngineConfig& cfg, const std::vector<GenerateRequest>& reqs,
                               SchedulerStats* stats = nullptr) {
  Engine engine(cfg);
  Collector col;
  std::vector<int64_t> ids;
  for (size_t i = 0; i < reqs.size(); ++i) {
    ids.push_back(engine.submit(reqs[i], col.sink()));
    if (i % 4 == 3) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  col.wait_done(reqs.size());
  std::vector<test::Outcome> out;
  for (auto id : ids) out.push_back(col.get(id));
  if (stats) *stats = engine.stats();
  return out;
}

// The fixture prompts (greedy, 48 tokens), then greedy requests that opt out of
// speculation, sampled seeded requests, and greedy ones with longer prompts.
std::vector<GenerateRequest> mixed_batch(const std::vector<test::FixturePrompt>& fx, int vocab) {
  std::mt19937 rng(99);
  std::vector<GenerateRequest> reqs;
  for (auto& f : fx) reqs.push_back(greedy_request(f.prompt_ids, 48));
  for (int i = 0; i < 9; ++i) {
    auto ids = fx[size_t(i) % fx.size()].prompt_ids;
    for (int j = 0, n = int(rng() % 20); j < n; ++j) ids.push_back(3 + int(rng() % uint32_t(vocab - 3)));
    auto r = greedy_request(ids, 10 + int(rng() % 40));
    if (i % 3 == 0) r.num_speculative_tokens = 0;  // shares the batch without speculating
    if (i % 3 == 1) {
      r.params.temperature = 0.9f;
      r.params.top_p = 0.9f;
      r.params.seed = uint64_t(i);
    }
    reqs.push_back(r);
  }
  return reqs;
}

struct Case {
  std::string name;
  SpeculativeConfig spec;
  bool expect_drafts;      // fixed k: drafts must actually have been verified
  bool expect_rejections;  // and some rejected: the rollback paths ran
};

void check_greedy_identity(const std::string& model, const std::string& key, int vocab, const std::vector<Case>& cases) {
  const auto fx = test::fixture_prompts(key);
  const auto reqs = mixed_batch(fx, vocab);
  const EngineConfig plain = base_config(model);
  const auto reference = run_alone(plain, reqs);
  for (const auto& c : cases) {
    INFO(key << " with " << c.name);
    EngineConfig cfg = plain;
    cfg.speculative = c.spec;
    // Alone: each fixture prompt by itself.
    const auto alone = run_alone(cfg, {reqs.begin(), reqs.begin() + ptrdiff_t(fx.size())});
    for (size_t i = 0; i < fx.size(); ++i) {
      INFO("fixture prompt " << i << " alone");
      CHECK(alone[i] == reference[i]);
    }
    // Mixed batch: every greedy request, speculating or not, as without speculation.
    SchedulerStats st;
    const auto mixed = run(cfg, reqs, &st);
    int64_t accepted = 0;
    for (size_t i = 0; i < reqs.size(); ++i) {
      INFO("request " << i << " in the mixed batch");
      CHECK(mixed[i].final_event.finish_reason == FinishReason::Length);
      CHECK(int(mixed[i].ids.size()) == reqs[i].params.max_tokens);
      if (reqs[i].params.greedy()) CHECK(mixed[i].ids == reference[i]);
      if (reqs[i].num_speculative_tokens == 0) CHECK(mixed[i].final_event.usage.spec_num_draft_tokens == 0);
      accepted += mixed[i].final_event.usage.spec_num_accepted_tokens;
    }
    CHECK(st.kv.used_blocks == 0);
    CHECK(accepted == st.spec.num_accepted_tokens);  // the done events' usage adds up
    INFO("drafts " << st.spec.num_draft_tokens << ", accepted " << st.spec.num_accepted_tokens << ", rejections "
                   << st.spec.num_rejections);
    if (c.expect_drafts) {
      CHECK(st.spec.num_draft_tokens > 0);
      CHECK(st.spec.num_accepted_tokens > 0);
    }
    if (c.expect_rejections) CHECK(st.spec.num_rejections > 10);
  }
}

// A seeded sampled request: its k comes from its own history alone (controller.h), never
// from timing or calibration, so what it drafts is reproducible to the token.
GenerateRequest seeded(const std::vector<int32_t>& ids, int max_tokens, float temperature, uint64_t seed) {
  GenerateRequest r = greedy_request(ids, max_tokens);
  r.params.temperature = temperature;
  r.params.seed = seed;
  return r;
}

// Probes the controller gives a sequence it declines in `steps` consecutive decode steps
// (controller.h): one after kProbeMin idle steps, the gap doubling up to kProbeMax.
int64_t probes_within(int64_t steps) {
  int64_t n = 0, at = 0;
  for (int64_t gap = spec::SpecController::kProbeMin; (at += gap) <= steps;
       gap = std::min<int64_t>(2 * gap, spec::SpecController::kProbeMax))
    ++n;
  return n;
}

// Steps in which the controller itself plans drafts (k > 0) for a seeded sequence whose
// free proposer (n-gram) never comes up with anything, over `steps` decode steps: its
// optimistic start, until the decayed proposal rate rules drafting out, then its probes.
int64_t ngram_slots_when_nothing_matches(int32_t K, int64_t steps) {
  spec::ControllerConfig cc;
  cc.num_speculative_tokens = K;
  cc.adaptive = true;
  cc.model_drafts = false;
  spec::SpecController ctl(cc);
  spec::SeqSpecState st;
  st.k_max = K;
  st.deterministic = true;
  const spec::Candidate c{&st, K, 1};
  std::vector<int32_t> k;
  int64_t planned = 0;
  for (int64_t i = 0; i < steps; ++i) {
    ctl.plan({&c, 1}, 1, 1, 1 << 20, k);
    if (k[0] == 0) continue;
    ++planned;
    ctl.observe_proposal(st, false);
  }
  return planned;
}

}  // namespace

TEST_CASE("greedy with speculation is identical to greedy without (TinyStories-656K)", "[spec][engine][greedy]") {
  const auto model = test::model_path("tinystories-656k");
  const auto noisy = test::perturbed_copy(model, 0.15, 1, "spec-draft-noisy");
  check_greedy_identity(model, "tinystories-656k", 2048,
                        {{"a perturbed draft model, fixed k", draft(noisy, 4, false), true, true},
                         {"a perturbed draft model, adaptive k", draft(noisy, 4, true), false, false},
                         {"n-gram prompt lookup", ngram(4, false), true, true},
                         {"self:int8", draft("self:int8", 3, false), true, false},
                         {"self:int4", draft("self:int4", 3, false), true, false}});
}

TEST_CASE("greedy with speculation is identical to greedy without (stories260K GGUF)", "[spec][engine][greedy]") {
  const auto model = test::model_path("stories260k/stories260K.gguf");
  check_greedy_identity(model, "stories260k", 512,
                        {{"itself as the draft model", draft(model, 5, false), true, false},
                         {"n-gram prompt lookup, adaptive", ngram(3, true), false, false},
                         {"self:int4", draft("self:int4", 4, false), true, false},
                         {"self:int8, adaptive", draft("self:int8", 4, true), false, false}});
  // (The adaptive cases here are greedy: their k follows measured timing, so whether they
  // draft is not asserted here; seeded requests, whose k does not depend on timing, pin down
  // where adaptive speculation drafts and where it stops: the next test case.)
}

TEST_CASE("adaptive speculation drafts where it pays and stops where it does not", "[spec][engine][adaptive]") {
  // Every request is seeded and sampled, so its k is the controller's deterministic choice
  // (controller.h): its own decayed alpha and proposal rate with a fixed prior of 0.5, the
  // static draft/target weight-byte ratio plus a fixed verification cost of 0.1 per draft.
  // The counts below are therefore exact and repeatable, whatever the machine's load.
  constexpr int32_t K = 4;
  const auto model = test::model_path("tinystories-656k");
  const auto fx = test::fixture_prompts("tinystories-656k");
  std::mt19937 rng(5);
  std::vector<GenerateRequest> stories_96, stories_192, random_hot;
  for (uint64_t i = 0; i < 4; ++i) {
    const auto& p = fx[i % fx.size()].prompt_ids;
    stories_96.push_back(seeded(p, 96, 0.3f, 20 + i));
    // At low temperature TinyStories-656K soon repeats its own sentences: text n-gram lookup
    // predicts from the sequence itself.
    for (float t : {0.2f, 0.3f}) stories_192.push_back(seeded(p, 192, t, 10 + i));
    std::vector<int32_t> ids = {1};
    for (int j = 0; j < 60; ++j) ids.push_back(3 + int(rng() % 2045));
    random_hot.push_back(seeded(ids, 120, 1.0f, 30 + i));
  }
  struct Counts {
    int64_t generated = 0, drafted = 0, accepted = 0, k_steps = 0, decode_steps = 0;
    std::vector<int64_t> drafted_per_seq;
  };
  auto go = [&](const SpeculativeConfig& spec, const std::vector<GenerateRequest>& reqs) {
    EngineConfig cfg = base_config(model);
    cfg.speculative = spec;
    SchedulerStats st;
    const auto out = run(cfg, reqs, &st);
    Counts c;
    for (size_t i = 0; i < reqs.size(); ++i) {
      CHECK(int(out[i].ids.size()) == reqs[i].params.max_tokens);
      c.generated += int64_t(out[i].ids.size());
      c.drafted_per_seq.push_back(out[i].final_event.usage.spec_num_draft_tokens);
    }
    c.drafted = st.spec.num_draft_tokens;
    c.accepted = st.spec.num_accepted_tokens;
    for (size_t k = 0; k < st.spec.k_histogram.size(); ++k) {
      c.decode_steps += st.spec.k_histogram[k];
      if (k > 0) c.k_steps += st.spec.k_histogram[k];
    }
    return c;
  };
  auto describe = [](const Counts& c) {
    std::string per;
    for (auto d : c.drafted_per_seq) per += " " + std::to_string(d);
    return "generated " + std::to_string(c.generated) + ", drafted " + std::to_string(c.drafted) + " (per sequence" +
           per + "), accepted " + std::to_string(c.accepted) + ", decode steps with drafts planned " +
           std::to_string(c.k_steps) + " of " + std::to_string(c.decode_steps);
  };

  SECTION("where drafting pays, it happens") {
    {
      // The int8 copy of the model predicts it almost exactly at a quarter of its weight
      // bytes: every sequence keeps drafting, nearly always at full K (measured: 74-75 drafts
      // of 96 tokens per sequence, 294 of 298 accepted).
      const Counts c = go(draft("self:int8", K, true), stories_96);
      INFO("self:int8: " << describe(c));
      for (auto d : c.drafted_per_seq) CHECK(d >= 96 / 2);
      CHECK(c.accepted >= c.drafted * 9 / 10);
      CHECK(c.k_steps >= c.decode_steps * 3 / 4);
    }
    {
      // N-gram drafts are free; on text that repeats itself they are accepted often enough to
      // keep them coming (measured: 508 drafts over 1536 tokens, 269 accepted).
      const Counts c = go(ngram(K, true), stories_192);
      INFO("n-gram on self-repeating text: " << describe(c));
      CHECK(c.drafted >= c.generated / 5);
      CHECK(c.accepted >= c.drafted / 3);
      CHECK(c.accepted >= c.generated / 8);
    }
  }

  SECTION("where drafting does not pay, it stops after the controller's probes") {
    {
      // A random-weight draft model (synth "tiny" with the same tokenizer) cheaper than the
      // target: with the 0.5 prior its first decode step drafts (at most K), its rejection
      // drops alpha below what pays, and from then on it only gets the probes (measured:
      // 1 + 4 drafts per sequence).
      SynthOptions so;
      so.shape = "tiny";
      so.tokenizer = model;
      so.out = test::temp_dir("spec-draft-random");
      const auto random_draft = synth_model(so);
      const Counts c = go(draft(random_draft, K, true), stories_96);
      const int64_t probes = probes_within(96 - 1);
      INFO("random-weight draft model: " << describe(c) << "; probes within 95 steps: " << probes);
      for (auto d : c.drafted_per_seq) CHECK(d <= K + probes);
      CHECK(c.k_steps <= int64_t(stories_96.size()) * (1 + probes));
      CHECK(c.accepted <= c.drafted / 4);
    }
    {
      // A useless draft as costly as the target (static cost ratio 1): no k pays even at
      // alpha = 1, since each draft adds at most one token and costs 1.1 steps. It drafts
      // only its probes.
      const Counts c = go(draft(test::perturbed_copy(model, 4.0, 2, "spec-draft-garbage"), K, true), stories_96);
      const int64_t probes = probes_within(96 - 1);
      INFO("perturbed draft as large as the target: " << describe(c) << "; probes: " << probes);
      for (auto d : c.drafted_per_seq) CHECK(d <= probes);
      CHECK(c.k_steps <= int64_t(stories_96.size()) * probes);
    }
    {
      // N-gram lookups on random prompts sampled at temperature 1 rarely match: the decayed
      // proposal rate switches the slots off after a few steps, then only probes remain. The
      // bound is the controller's own plan for a sequence that never gets a proposal
      // (measured: 9 steps with slots per sequence, 2 draft tokens in all).
      const Counts c = go(ngram(K, true), random_hot);
      const int64_t slots = ngram_slots_when_nothing_matches(K, 120 - 1);
      INFO("n-gram on random text at temperature 1: " << describe(c) << "; controller bound per sequence: "
                                                       << slots);
      REQUIRE(slots <= 12);  // a handful of optimistic steps and the probes: not every step
      CHECK(c.k_steps <= int64_t(random_hot.size()) * slots);
      CHECK(c.drafted <= c.generated / 20);
    }
  }
}

TEST_CASE("speculation switches itself off when drafts fail", "[spec][engine][adaptive]") {
  const auto model = test::model_path("tinystories-656k");
  std::mt19937 rng(5);
  std::vector<GenerateRequest> greedy, hot;
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> ids = {1};
    for (int j = 0; j < 60; ++j) ids.push_back(3 + int(rng() % 2045));
    greedy.push_back(greedy_request(ids, 120));
    GenerateRequest h = greedy_request(ids, 120);
    h.params.temperature = 1.5f;  // unpredictable text (unseeded: timing may steer k)
    hot.push_back(h);
  }
  EngineConfig cfg = base_config(model);
  const auto reference = run_alone(cfg, greedy);
  // min_k0: the share of decode steps that must plan no drafts. The n-gram requests are
  // unseeded, so measured step times steer their plan: alone, 429-455 of 472 steps planned
  // none; beside a kernel test under `ctest -j2`, 400 of 472 once (session 38, where 0.85
  // failed). A controller that kept the slots open would plan them in nearly every step,
  // which 2/3 still catches. The costly draft model's probes wait for credit: 472 of 472.
  struct Off {
    std::string name;
    SpeculativeConfig spec;
    const std::vector<GenerateRequest>* reqs;
    double min_k0;
  };
  for (const auto& c : {Off{"n-gram drafts (free) on unpredictable sampled text", ngram(4, true), &hot, 2.0 / 3},
                        Off{"a useless draft model as costly as the target",
                            draft(test::perturbed_copy(model, 4.0, 2, "spec-draft-garbage"), 4, true), &greedy,
                            0.85}}) {
    INFO(c.name);
    cfg.speculative = c.spec;
    SchedulerStats st;
    const auto out = run(cfg, *c.reqs, &st);
    for (size_t i = 0; i < c.reqs->size(); ++i) {
      CHECK(out[i].ids.size() == 120);
      if ((*c.reqs)[i].params.greedy()) CHECK(out[i].ids == reference[i]);
    }
    int64_t decode_steps = 0;
    for (auto n : st.spec.k_histogram) decode_steps += n;
    INFO("k histogram k=0: " << st.spec.k_histogram[0] << " of " << decode_steps << ", drafts "
                             << st.spec.num_draft_tokens << ", accepted " << st.spec.num_accepted_tokens);
    REQUIRE(decode_steps > 400);
    // What costs time is drafted tokens the target must verify, and steps sent through the
    // drafter. A costly draft model must be switched off outright (k = 0); so must free
    // n-gram lookups that rarely match or whose matches fail: the controller learns how
    // often the proposer comes up with anything (proposal_rate), not only acceptance.
    CHECK(double(st.spec.k_histogram[0]) >= c.min_k0 * double(decode_steps));
    CHECK(st.spec.num_draft_tokens <= decode_steps / 4);
  }
}

TEST_CASE("seeded sampled requests replay exactly with speculation, whatever the batch", "[spec][engine][seed]") {
  const auto model = test::model_path("tinystories-656k");
  // A repetitive prompt, so n-gram drafts exist and get accepted sometimes.
  std::vector<int32_t> prompt = test::fixture_prompts("tinystories-656k")[0].prompt_ids;
  for (int i = 0; i < 3; ++i) prompt.insert(prompt.end(), prompt.begin() + 1, prompt.begin() + 12);
  GenerateRequest r = greedy_request(prompt, 60);
  r.params.temperature = 0.7f;
  r.params.seed = 1234;
  std::vector<GenerateRequest> crowd = {r};
  for (int i = 0; i < 8; ++i) {
    GenerateRequest o = r;
    o.params.seed = uint64_t(i);
    o.params.max_tokens = 20 + 5 * i;
    crowd.push_back(o);
  }
  // Fixed k drafts every step; adaptive k must depend on the sequence's own history only
  // (it may well decide not to draft at all on this text).
  for (bool adaptive : {false, true}) {
    INFO((adaptive ? "adaptive k" : "fixed k"));
    EngineConfig cfg = base_config(model);
    cfg.speculative = ngram(4, adaptive);
    const auto alone = run(cfg, {r});
    const auto together = run(cfg, crowd);
    CHECK(alone[0].ids == together[0].ids);
    if (!adaptive) CHECK(alone[0].final_event.usage.spec_num_draft_tokens > 0);
    CHECK(alone[0].final_event.usage.spec_num_draft_tokens == together[0].final_event.usage.spec_num_draft_tokens);
  }
}

TEST_CASE("bad speculative configurations are refused with a clear error", "[spec][engine][errors]") {
  const auto model = test::model_path("tinystories-656k");
  auto expect_error = [&](SpeculativeConfig s, const std::string& needle) {
    EngineConfig cfg = base_config(model);
    cfg.speculative = s;
    try {
      Engine e(cfg);
      FAIL("no error for " << needle);
    } catch (const Error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
  };
  expect_error(draft(test::model_path("stories260k/stories260K.gguf"), 4, true), "vocabulary");
  expect_error(draft("self:int3", 4, true), "self:int8 or self:int4");
  auto with_model = ngram(4, true);
  with_model.model = model;
  expect_error(with_model, "--speculative-model");
  auto bad_ngram = ngram(4, true);
  bad_ngram.ngram_min = 3;
  bad_ngram.ngram_max = 2;
  expect_error(bad_ngram, "ngram");
  auto bad_method = ngram(4, true);
  bad_method.method = "medusa";
  expect_error(bad_method, "draft or ngram");
}

