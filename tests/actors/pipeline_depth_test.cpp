// Several steps in flight (--pipeline-depth), driven by hand (no actors, no model): the
// steps cover disjoint sequences in even shares, may come back in any order, and a
// sequence inside a step in flight is never planned again, preempted, or freed until that
// step is back - its stage may still be writing its KV.
#include <catch2/catch.hpp>

#include "actors/scheduler_by_hand.h"

using namespace troupe;
using test::ids_of;
using test::one_token_each;

namespace {

constexpr int64_t kBlock = 4;

SchedulerConfig depth_config(int64_t depth) {
  SchedulerConfig cfg;
  cfg.max_num_seqs = 8;
  cfg.max_num_batched_tokens = 256;
  cfg.max_model_len = 256;
  cfg.enable_prefix_caching = false;
  cfg.max_steps_in_flight = depth;
  return cfg;
}

EnqueueSeq seq(int64_t id, int n_prompt, int max_tokens = 50) { return test::by_hand_seq(id, n_prompt, max_tokens, 256); }

}  // namespace

TEST_CASE("depth 2: two steps over disjoint halves, completed in any order", "[actors][pipeline-depth]") {
  SchedulerCore core(depth_config(2), KvCacheShape{64, kBlock, 0});
  REQUIRE(core.max_steps_in_flight() == 2);
  const auto now = Clock::now();
  for (int64_t id = 1; id <= 4; ++id) core.add(seq(id, 6), now);

  auto a = core.plan(now, nullptr);
  auto b = core.plan(now, nullptr);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(ids_of(*a) == std::set<int64_t>{1, 2});
  CHECK(ids_of(*b) == std::set<int64_t>{3, 4});
  CHECK(a->step_id != b->step_id);
  CHECK(core.steps_in_flight() == 2);
  CHECK_FALSE(core.plan(now, nullptr));  // no room for a third

  // The second step comes back first: its sequences go again while the first is out.
  core.complete(*b, one_token_each(*b));
  auto c = core.plan(now, nullptr);
  REQUIRE(c);
  CHECK(ids_of(*c) == std::set<int64_t>{3, 4});
  for (const auto& p : c->seqs) CHECK(p.step.tokens.size() == 1);  // decodes

  core.complete(*a, one_token_each(*a));
  auto d = core.plan(now, nullptr);
  REQUIRE(d);
  CHECK(ids_of(*d) == std::set<int64_t>{1, 2});
  core.complete(*c, one_token_each(*c));
  core.complete(*d, one_token_each(*d));
  for (int64_t id = 1; id <= 4; ++id) CHECK(core.sequence(id)->num_generated() == 2);
  CHECK(core.steps_in_flight() == 0);
}

TEST_CASE("depth 2: a sequence in a step in flight is never a preemption victim", "[actors][pipeline-depth]") {
  // Four blocks: two 8-token prompts fill the pool; the first to come back needs a fifth.
  SchedulerCore core(depth_config(2), KvCacheShape{4, kBlock, 0});
  const auto now = Clock::now();
  core.add(seq(1, 8), now);
  core.add(seq(2, 8), now);
  auto a = core.plan(now, nullptr);
  auto b = core.plan(now, nullptr);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(ids_of(*a) == std::set<int64_t>{1});
  REQUIRE(ids_of(*b) == std::set<int64_t>{2});
  REQUIRE(core.blocks().num_used_blocks() == 4);

  core.complete(*a, one_token_each(*a));
  // Sequence 1 needs a block for its 9th token. Sequence 2 is lower in priority but its
  // step is still in flight, so sequence 1 gives way instead.
  CHECK_FALSE(core.plan(now, nullptr));
  CHECK(core.blocks().has_sequence(2));
  CHECK_FALSE(core.blocks().has_sequence(1));
  CHECK(core.sequence(1)->num_computed == 0);
  CHECK(core.sequence(1)->usage.preemptions == 1);
  CHECK(core.stats().waiting == 1);

  core.complete(*b, one_token_each(*b));
  auto c = core.plan(now, nullptr);  // sequence 2 decodes (sequence 1 waits for room)
  REQUIRE(c);
  CHECK(ids_of(*c) == std::set<int64_t>{2});
}

TEST_CASE("depth 2: a cancelled sequence keeps its blocks until its step is back", "[actors][pipeline-depth]") {
  SchedulerCore core(depth_config(2), KvCacheShape{64, kBlock, 0});
  const auto now = Clock::now();
  core.add(seq(1, 6), now);
  core.add(seq(2, 6), now);
  auto a = core.plan(now, nullptr);
  auto b = core.plan(now, nullptr);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(ids_of(*a) == std::set<int64_t>{1});

  core.finish_request(1, FinishReason::Cancelled);
  core.complete(*b, one_token_each(*b));
  auto c = core.plan(now, nullptr);  // a step boundary, but sequence 1's step is still out
  REQUIRE(c);
  CHECK(ids_of(*c) == std::set<int64_t>{2});
  CHECK(core.blocks().has_sequence(1));
  const auto updates = core.take_updates();
  const bool cancel_sent = std::any_of(updates.begin(), updates.end(), [](const SeqUpdate& u) {
    return u.request_id == 1 && u.finished && u.reason == FinishReason::Cancelled;
  });
  CHECK(cancel_sent);  // the client hears of it at once

  core.complete(*a, one_token_each(*a));  // its token is dropped: the request has ended
  core.complete(*c, one_token_each(*c));
  CHECK(core.plan(now, nullptr));  // the next boundary frees it
  CHECK_FALSE(core.blocks().has_sequence(1));
  CHECK(core.sequence(1) == nullptr);
}

TEST_CASE("static batching and speculation keep one step in flight", "[actors][pipeline-depth]") {
  SchedulerConfig st = depth_config(3);
  st.scheduling = Scheduling::Static;
  CHECK(SchedulerCore(st, KvCacheShape{64, kBlock, 0}).max_steps_in_flight() == 1);
  SpecSchedule spec;
  spec.controller.num_speculative_tokens = 3;
  CHECK(SchedulerCore(depth_config(3), KvCacheShape{64, kBlock, 0}, spec).max_steps_in_flight() == 1);
  CHECK_THROWS(SchedulerCore(depth_config(0), KvCacheShape{64, kBlock, 0}));
}

TEST_CASE("KV lost (a stage rebuilt): running sequences start over, in-flight ones when back",
          "[actors][pipeline-depth][kv-lost]") {
  SchedulerCore core(depth_config(2), KvCacheShape{64, kBlock, 0});
  const auto now = Clock::now();
  core.add(seq(1, 6), now);
  core.add(seq(2, 6), now);
  auto a = core.plan(now, nullptr);
  auto b = core.plan(now, nullptr);
  REQUIRE(a);
  REQUIRE(b);
  core.complete(*a, one_token_each(*a));  // sequence 1 has its first token, between steps
  core.take_updates();
  REQUIRE(core.sequence(1)->num_computed == 6);

  core.kv_lost();
  CHECK(core.sequence(1)->num_computed == 0);  // recomputes prompt + its token
  CHECK(core.sequence(1)->num_generated() == 1);
  CHECK_FALSE(core.blocks().has_sequence(1));
  CHECK(core.blocks().has_sequence(2));  // its step is still out

  core.complete(*b, one_token_each(*b));  // computed over lost KV: dropped
  CHECK(core.sequence(2)->num_generated() == 0);
  CHECK(core.sequence(2)->num_computed == 0);
  CHECK(core.take_updates().empty());
  CHECK(core.stats().waiting == 2);

  // Both come back with their whole history as the prompt to recompute.
  auto c = core.plan(now, nullptr);
  REQUIRE(c);
  REQUIRE(c->seqs.size() == 1);
  CHECK(c->seqs[0].step.tokens.size() == 7);
  CHECK(c->seqs[0].step.start_pos == 0);
}
