// Scheduling claims of actors/request.h and the scheduler: `priority` orders the queue (lower
// first, FCFS among equals, or the most max_tokens first under --schedule-policy lof), and a
// seeded sampled request reproduces across preemption.
#include <catch2/catch.hpp>

#include <algorithm>
#include <mutex>
#include <numeric>

#include "engine_harness.h"
#include "test_util.h"

using namespace troupe;
using troupe::test::Collector;
using troupe::test::greedy_request;

namespace {

// One slot on TinyStories-656K, held by a long blocker request while `queued` (submitted
// once the blocker streams) wait behind it: the order in which requests produce their
// first token is the order they ran in.
struct OneSlot {
  Collector col;
  std::mutex mu;
  std::vector<int64_t> started;
  int64_t blocker = 0;
  Engine engine;  // last: stopped before what its sinks write to goes

  explicit OneSlot(SchedulePolicy policy) : engine(config(policy)) {}
  static EngineConfig config(SchedulePolicy policy) {
    EngineConfig cfg;
    cfg.model = test::model_path("tinystories-656k");
    cfg.scheduler.max_num_seqs = 1;
    cfg.scheduler.schedule_policy = policy;
    return cfg;
  }
  GenerateRequest request(int max_tokens) {
    return greedy_request(engine.tokenizer().encode("Once upon a time", true), max_tokens);
  }
  // Returns the queued requests' ids, once every request has finished.
  std::vector<int64_t> run(const std::vector<GenerateRequest>& queued) {
    auto sink = [this, inner = col.sink()](const TokenEvent& ev) {
      {
        std::lock_guard lk(mu);
        if (std::find(started.begin(), started.end(), ev.request_id) == started.end()) started.push_back(ev.request_id);
      }
      inner(ev);
    };
    blocker = engine.submit(request(480), sink);
    col.wait_tokens(blocker, 1);
    std::vector<int64_t> ids;
    for (const auto& r : queued) ids.push_back(engine.submit(r, sink));
    col.wait_done(1 + queued.size());
    REQUIRE(col.get(blocker).ids.size() == 480);  // they really queued behind it
    return ids;
  }
  std::vector<int64_t> start_order() {
    std::lock_guard lk(mu);
    return started;
  }
};

}  // namespace

TEST_CASE("priority: with one running slot, queued requests start lowest priority first, FCFS among equals",
          "[actors][priority]") {
  OneSlot s(SchedulePolicy::Fcfs);
  const std::vector<int32_t> priorities = {3, 1, 2, 1, 0, 3, 2, -1, 1};
  std::vector<GenerateRequest> queued;
  for (int32_t p : priorities) {
    queued.push_back(s.request(4));
    queued.back().priority = p;
  }
  const std::vector<int64_t> ids = s.run(queued);
  std::vector<size_t> order(priorities.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return priorities[a] < priorities[b]; });
  std::vector<int64_t> want{s.blocker};
  for (size_t i : order) want.push_back(ids[i]);
  CHECK(s.start_order() == want);
  for (int64_t id : ids) CHECK(s.col.get(id).final_event.finish_reason == FinishReason::Length);
}

// --schedule-policy lof through the whole pipeline: the queued requests start with the most
// max_tokens first, arrival order among equals (tests/actors/schedule_policy_test.cpp drives
// the same order by hand).
TEST_CASE("schedule policy lof: queued requests start longest output first", "[actors][schedule-policy]") {
  OneSlot s(SchedulePolicy::LongestOutputFirst);
  const std::vector<int> max_tokens = {3, 9, 5, 9, 1, 6};
  std::vector<GenerateRequest> queued;
  for (int n : max_tokens) queued.push_back(s.request(n));
  const std::vector<int64_t> ids = s.run(queued);
  CHECK(s.start_order() == std::vector<int64_t>{s.blocker, ids[1], ids[3], ids[5], ids[2], ids[0], ids[4]});
  for (size_t i = 0; i < ids.size(); ++i) CHECK(s.col.get(ids[i]).ids.size() == size_t(max_tokens[i]));
}

TEST_CASE("a seeded sampled request gives the same tokens when it is preempted", "[actors][preemption][seed]") {
  EngineConfig cfg;
  cfg.model = test::model_path("tinystories-656k");
  cfg.scheduler.max_num_seqs = 16;
  auto seeded = [](const std::vector<int32_t>& prompt) {
    GenerateRequest r = greedy_request(prompt, 80);
    r.params.temperature = 0.9f;
    r.params.top_p = 0.95f;
    r.params.seed = 1234;
    r.priority = 1;  // the lowest priority: the first one preempted when the pool runs short
    return r;
  };

  std::vector<int32_t> prompt;
  std::vector<int32_t> alone;
  {
    Engine engine(cfg);
    prompt = engine.tokenizer().encode("Once upon a time, there was a little dog named Max.", true);
    Collector col;
    const int64_t id = engine.submit(seeded(prompt), col.sink());
    col.wait_done(1);
    auto o = col.get(id);
    REQUIRE(o.final_event.finish_reason == FinishReason::Length);
    CHECK(o.final_event.usage.preemptions == 0);
    alone = o.ids;
  }
  REQUIRE(alone.size() == 80);

  // A pool of 40 blocks of 4 tokens (160 tokens; 2 KiB of KV per token) and four greedy
  // neighbours of ~90 tokens each: the seeded request, last in priority, is preempted. It
  // is only if the neighbours arrive while it still runs: a submitting thread descheduled
  // for ~50 ms (a loaded machine) lets it finish alone, which proves nothing, so such a run
  // is repeated (up to 5 times; a run with a preemption is the one that counts).
  cfg.kv.block_size = 4;
  cfg.kv.kv_cache_bytes = 40 * 4 * 2048;
  std::vector<std::string> others = {"The dog ran to the park and", "Tom had a big red ball. One day",
                                     "Lily saw a bird in the sky.", "The sun was hot and the"};
  bool preempted = false;
  for (int attempt = 0; attempt < 5 && !preempted; ++attempt) {
    Engine engine(cfg);
    Collector col;
    const int64_t id = engine.submit(seeded(prompt), col.sink());
    for (const auto& p : others) engine.submit(greedy_request(engine.tokenizer().encode(p, true), 80), col.sink());
    col.wait_done(1 + others.size());
    auto o = col.get(id);
    REQUIRE(o.final_event.finish_reason == FinishReason::Length);
    INFO("attempt " << attempt << ", preemptions of the seeded request: " << o.final_event.usage.preemptions);
    CHECK(o.ids == alone);  // preempted or not, the same tokens
    preempted = o.final_event.usage.preemptions > 0;
    if (preempted) CHECK(engine.stats().preemptions >= o.final_event.usage.preemptions);
  }
  REQUIRE(preempted);
}
