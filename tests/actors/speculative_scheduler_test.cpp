// The scheduler's side of speculative decoding, driven by hand (no actors, no model): draft
// slots come from leftover budget and free blocks only, and completing a verification
// commits exactly the accepted tokens and rolls the target's KV back - across block
// boundaries - so rejected drafts never reach the prefix cache.
#include <catch2/catch.hpp>

#include "actors/scheduler_core.h"
#include "model/tokenizer_loader.h"
#include "test_util.h"

using namespace troupe;

namespace {

constexpr int64_t kBlock = 4;

struct Fixture {
  std::shared_ptr<Tokenizer> tok = load_tokenizer(test::model_path("tinystories-656k"));
  SchedulerConfig cfg;
  SpecSchedule spec;
  Fixture() {
    cfg.max_num_seqs = 8;
    cfg.max_num_batched_tokens = 64;
    cfg.max_model_len = 256;
    spec.controller.num_speculative_tokens = 5;
    spec.controller.adaptive = false;  // always K: the bookkeeping is what is tested here
  }
  EnqueueSeq seq(int64_t id, int n_prompt, int max_tokens, int32_t spec_tokens = -1) {
    EnqueueSeq e;
    e.request_id = id;
    e.params.temperature = 0;
    e.params.max_tokens = max_tokens;
    e.params.ignore_eos = true;
    e.num_speculative_tokens = spec_tokens;
    for (int i = 0; i < n_prompt; ++i) e.prompt_ids.push_back(10 + i);
    e.eos_ids = tok->eos_ids();
    e.max_model_len = cfg.max_model_len;
    return e;
  }
};

int64_t blocks_for(int64_t n) { return (n + kBlock - 1) / kBlock; }

// The result the executor would send: per sampling sequence, these tokens and counts.
StepResult result_of(const StepPlan& plan, const std::vector<SeqOutcome>& outcomes) {
  StepResult r;
  r.step_id = plan.step_id;
  r.outcomes = outcomes;
  return r;
}

}  // namespace

TEST_CASE("verification commits accepted drafts and rolls KV back across blocks", "[actors][spec][kv]") {
  Fixture f;
  SchedulerCore core(f.cfg, KvCacheShape{32, kBlock, 0}, f.spec);
  auto now = Clock::now();
  core.add(f.seq(1, 7, 40), now);
  const Sequence* s = core.sequence(1);

  auto plan = core.plan(now, nullptr);  // prefill: no drafts yet
  REQUIRE(plan);
  REQUIRE(plan->seqs.size() == 1);
  CHECK(plan->seqs[0].num_draft_slots == 0);
  core.complete(*plan, result_of(*plan, {{1, {100}, 0, 0, {}}}));
  REQUIRE(s->tokens.size() == 8);

  // Decode with K = 5 draft slots: positions 7..12 span blocks 1..3.
  plan = core.plan(now, nullptr);
  REQUIRE(plan);
  auto& p = plan->seqs[0];
  CHECK(p.num_draft_slots == 5);
  CHECK(p.step.tokens.size() == 1);  // the drafter appends the drafts
  CHECK(int64_t(p.step.block_table.size()) == blocks_for(8 + 5));
  CHECK(core.blocks().num_used_blocks() == 4);
  // One draft accepted, then the target's correction: KV valid for 9 tokens.
  core.complete(*plan, result_of(*plan, {{1, {200, 201}, 1, 5, {}}}));
  CHECK(s->tokens.size() == 10);
  CHECK(s->num_computed == 9);
  const auto table = core.blocks().block_table(1);
  CHECK(int64_t(table.size()) == blocks_for(9));
  CHECK(core.blocks().num_used_blocks() == 3);  // the block holding only rejected drafts is free
  CHECK(core.blocks().block_info(table[0]).cached);
  CHECK(core.blocks().block_info(table[1]).cached);   // tokens 4..7: all confirmed
  CHECK(!core.blocks().block_info(table[2]).cached);  // partial: 8 confirmed, 9.. not
  core.blocks().check_invariants();

  // Nothing accepted.
  plan = core.plan(now, nullptr);
  REQUIRE(plan);
  CHECK(plan->seqs[0].num_draft_slots == 5);
  core.complete(*plan, result_of(*plan, {{1, {300}, 0, 5, {}}}));
  CHECK(s->num_computed == 10);
  CHECK(int64_t(core.blocks().block_table(1).size()) == blocks_for(10));

  // Everything accepted plus the bonus token: KV for the last token and the 5 drafts.
  plan = core.plan(now, nullptr);
  REQUIRE(plan);
  core.complete(*plan, result_of(*plan, {{1, {1, 2, 3, 4, 5, 6}, 5, 5, {}}}));
  CHECK(s->tokens.size() == 17);
  CHECK(s->num_computed == 16);
  CHECK(int64_t(core.blocks().block_table(1).size()) == blocks_for(16));
  for (int32_t b : core.blocks().block_table(1)) CHECK(core.blocks().block_info(b).cached);
  core.blocks().check_invariants();

  // The drafter proposed nothing (e.g. no n-gram match): the reserved slots go back.
  plan = core.plan(now, nullptr);
  REQUIRE(plan);
  CHECK(int64_t(plan->seqs[0].step.block_table.size()) == blocks_for(17 + 5));
  core.complete(*plan, result_of(*plan, {{1, {7}, 0, 0, {}}}));
  CHECK(s->num_computed == 17);
  CHECK(int64_t(core.blocks().block_table(1).size()) == blocks_for(17));

  const auto st = core.stats();
  CHECK(st.spec.num_drafts == 3);
  CHECK(st.spec.num_draft_tokens == 15);
  CHECK(st.spec.num_accepted_tokens == 6);
  CHECK(st.spec.k_histogram[5] == 4);
  CHECK(s->usage.spec_num_draft_tokens == 15);
  CHECK(s->usage.spec_num_accepted_tokens == 6);
  CHECK(s->usage.completion_tokens == 18 - 7);
}

TEST_CASE("drafts never preempt, exceed the budget, or reach requests that opted out", "[actors][spec]") {
  Fixture f;
  f.cfg.max_num_batched_tokens = 4;  // three decodes leave one token of budget for drafts
  SchedulerCore core(f.cfg, KvCacheShape{64, kBlock, 0}, f.spec);
  auto now = Clock::now();
  for (auto s : {f.seq(1, 3, 30), f.seq(2, 3, 30, 0), f.seq(3, 3, 30)}) core.add(std::move(s), now);
  // Prefill (the budget lets them in over a few steps).
  for (int i = 0; i < 4; ++i) {
    auto plan = core.plan(now, nullptr);
    REQUIRE(plan);
    std::vector<SeqOutcome> outs;
    for (auto& p : plan->seqs)
      if (p.sample) outs.push_back({p.seq_id(), {50}, 0, 0, {}});
    core.complete(*plan, result_of(*plan, outs));
  }
  auto plan = core.plan(now, nullptr);
  REQUIRE(plan);
  int64_t drafts = 0, tokens = 0;
  for (auto& p : plan->seqs) {
    drafts += p.num_draft_slots;
    tokens += int64_t(p.step.tokens.size());
    if (p.seq_id() == 2) CHECK(p.num_draft_slots == 0);
  }
  CHECK(tokens + drafts <= f.cfg.max_num_batched_tokens);
  CHECK(core.stats().preemptions == 0);

  // A pool with no room for drafts: decoding goes on without them, nobody is preempted.
  Fixture g;
  SchedulerCore tight(g.cfg, KvCacheShape{3, kBlock, 0}, g.spec);
  tight.add(g.seq(9, 7, 20), now);
  auto p1 = tight.plan(now, nullptr);
  tight.complete(*p1, result_of(*p1, {{9, {60}, 0, 0, {}}}));
  auto p2 = tight.plan(now, nullptr);
  REQUIRE(p2);
  CHECK(p2->seqs[0].num_draft_slots == 4);  // 12 slots: last token at 7, drafts at 8..11
  CHECK(tight.stats().preemptions == 0);
}
