// Speculative decoding through the whole Engine on the real models: greedy outputs are
// identical to decoding without speculation with every proposer (alone and in a mixed
// batch with non-speculating and sampled requests, on 4-token KV blocks so drafts and
// rollbacks cross block boundaries), speculation switches itself off when drafts fail, and
// bad configurations are refused with a clear error.
#include <catch2/catch.hpp>

#include <random>
#include <thread>

#include "actors/engine.h"
#include "actors/engine_harness.h"
#include "core/error.h"
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
  struct Off {
    std::string name;
    SpeculativeConfig spec;
    const std::vector<GenerateRequest>* reqs;
  };
  for (const auto& c : {Off{"n-gram drafts (free) on unpredictable sampled text", ngram(4, true), &hot},
                        Off{"a useless draft model as costly as the target",
                            draft(test::perturbed_copy(model, 4.0, 2, "spec-draft-garbage"), 4, true), &greedy}}) {
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
    CHECK(double(st.spec.k_histogram[0]) >= 0.85 * double(decode_steps));
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
