// --schedule-policy (config/scheduler_config.h), driven by hand (no actors, no model): lof
// starts the requests with the most max_tokens first, within a priority; the schedule it
// gives takes the steps static_bound_finite counts for it; static batching, and a
// server-wide TTFT target, refuse it.
#include <catch2/catch.hpp>

#include <algorithm>

#include "actors/engine.h"
#include "actors/scheduler_by_hand.h"
#include "actors/static_batching_bound.h"
#include "core/error.h"

using namespace troupe;
using test::one_token_each;

namespace {

SchedulerConfig policy_config(SchedulePolicy policy, int64_t slots) {
  SchedulerConfig cfg;
  cfg.max_num_seqs = slots;
  cfg.max_num_batched_tokens = 256;
  cfg.max_model_len = 256;
  cfg.enable_prefix_caching = false;
  cfg.schedule_policy = policy;
  return cfg;
}

struct Run {
  std::vector<int64_t> started;  // ids in the order of their first step
  int64_t steps = 0;
};

// Requests 1..n with these output lengths (and priorities), all queued before the first
// step, run to the end: one token a step each, as an executor would.
Run run_all(SchedulePolicy policy, int64_t slots, const std::vector<int>& outs, const std::vector<int32_t>& priorities = {}) {
  SchedulerCore core(policy_config(policy, slots), KvCacheShape{256, 4, 0});
  const auto now = Clock::now();
  for (size_t i = 0; i < outs.size(); ++i) {
    EnqueueSeq e = test::by_hand_seq(int64_t(i + 1), 3, outs[i], 256);
    if (!priorities.empty()) e.priority = priorities[i];
    core.add(std::move(e), now);
  }
  Run run;
  while (auto plan = core.plan(now, nullptr)) {
    for (const auto& p : plan->seqs)
      if (std::find(run.started.begin(), run.started.end(), p.seq_id()) == run.started.end())
        run.started.push_back(p.seq_id());
    core.complete(*plan, one_token_each(*plan), now);
    ++run.steps;
    REQUIRE(run.steps < 1000);
  }
  return run;
}

}  // namespace

TEST_CASE("schedule policy: lof starts the most max_tokens first, arrival order among equals", "[actors][schedule-policy]") {
  const std::vector<int> outs = {3, 9, 5, 9, 1};
  CHECK(run_all(SchedulePolicy::Fcfs, 1, outs).started == std::vector<int64_t>{1, 2, 3, 4, 5});
  CHECK(run_all(SchedulePolicy::LongestOutputFirst, 1, outs).started == std::vector<int64_t>{2, 4, 3, 1, 5});
  // Priority still comes first: request 5 (1 token, priority -1) ahead of all; request 2
  // (priority 1) after the others.
  CHECK(run_all(SchedulePolicy::LongestOutputFirst, 1, outs, {0, 1, 0, 0, -1}).started ==
        std::vector<int64_t>{5, 4, 3, 1, 2});
}

TEST_CASE("schedule policy: the steps the bound's model counts, in either order", "[actors][schedule-policy]") {
  // A request holds its slot for as many steps as it has output tokens (its short prompt and
  // first token share a step), which is static_bound_finite's model; static batching's
  // steps are the sum of each arrival-order batch's longest output.
  for (const auto& outs : {std::vector<int>{4, 1, 1, 4}, std::vector<int>{1, 3, 2, 2}, std::vector<int>{4, 1, 1, 4, 2, 3},
                           std::vector<int>{7, 2, 9, 1, 1, 5, 8, 3, 2}}) {
    const int64_t slots = 2;
    int64_t static_steps = 0;
    for (size_t b = 0; b < outs.size(); b += slots)
      static_steps += *std::max_element(outs.begin() + b, outs.begin() + std::min(outs.size(), b + slots));
    for (SchedulePolicy policy : {SchedulePolicy::Fcfs, SchedulePolicy::LongestOutputFirst}) {
      INFO("outputs " << outs.size() << " from " << outs[0] << ", lof " << (policy == SchedulePolicy::LongestOutputFirst));
      const Run run = run_all(policy, slots, outs);
      CHECK(double(static_steps) / double(run.steps) == Approx(static_bound_finite(outs, slots, policy)));
    }
  }
}

TEST_CASE("schedule policy: lof is refused with static batching and with a server-wide TTFT target", "[actors][schedule-policy]") {
  SchedulerConfig cfg = policy_config(SchedulePolicy::LongestOutputFirst, 2);
  cfg.scheduling = Scheduling::Static;
  CHECK_THROWS_WITH(SchedulerCore(cfg, KvCacheShape{64, 4, 0}), Catch::Contains("static batching"));
  // The engine refuses it before it loads a model (this one does not exist).
  EngineConfig ec;
  ec.model = "/nonexistent/model.gguf";
  ec.scheduler = cfg;
  CHECK_THROWS_WITH(Engine(ec), Catch::Contains("--schedule-policy lof"));
  // Nor with a server-wide TTFT target: every request's own deadline comes first.
  SchedulerConfig slo = policy_config(SchedulePolicy::LongestOutputFirst, 2);
  slo.slo_ttft_ms = 500;
  CHECK_THROWS_WITH(SchedulerCore(slo, KvCacheShape{64, 4, 0}), Catch::Contains("--slo-ttft-ms"));
  slo.slo_ttft_ms = 0;
  slo.slo_min_ttft_ms = 200;  // requests may set their own; those without go by max_tokens
  CHECK_NOTHROW(SchedulerCore(slo, KvCacheShape{64, 4, 0}));
}
