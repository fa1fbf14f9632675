#pragma once
// The scheduler's policy, free of actors so it reads (and tests) as one loop:
//   plan()     -> the next step (or nothing to do),
//   complete() -> apply its results: append tokens, stream, retire finished sequences.
// The actor in scheduler.cpp only moves messages in and out of this class.
#include <deque>
#include <optional>
#include <vector>

#include "actors/executor.h"
#include "actors/scheduler.h"

namespace troupe {

class SchedulerCore {
 public:
  SchedulerCore(SchedulerConfig cfg, KvCacheShape kv, SpecSchedule spec = {});

  void add(SequencePtr seq);
  // Cancels a waiting or running request; a sequence inside the step in flight is retired
  // when that step completes (its blocks are freed then, within one step).
  void cancel(int64_t request_id);
  // The next step, or nullopt when there is nothing to run now. For static batching,
  // `wait_hint` says how long to wait before asking again (batch still filling).
  std::optional<StepPlan> plan(Clock::time_point now, std::optional<Clock::duration>* wait_hint);
  void complete(const StepPlan& plan, const StepResult& result, Clock::time_point now);

  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  int64_t num_waiting() const { return int64_t(waiting_.size()); }
  SchedulerStats stats() const;
  void record_step_time(double wall_ms, const StepResult& r);
  // Speculation: ids of retired sequences whose draft state can go (since the last call).
  std::vector<int64_t> take_released();
  const BlockManager& blocks() const { return blocks_; }  // for tests

 private:
  std::optional<StepPlan> plan_continuous(Clock::time_point now);
  std::optional<StepPlan> plan_static(Clock::time_point now, std::optional<Clock::duration>* wait_hint);
  bool grow_or_preempt(const SequencePtr& s, int64_t n);
  void add_step(StepPlan& plan, const SequencePtr& s, int64_t n);
  void plan_drafts(StepPlan& plan, int64_t budget);
  void complete_speculative(const PlannedSeq& p, const SeqOutcome& o, Clock::time_point now);
  void retire(const SequencePtr& s);
  void preempt(const SequencePtr& victim);
  void finish(const SequencePtr& s, const std::string& reason, Clock::time_point now,
              const std::string& error = "");
  void emit_token(const SequencePtr& s, int32_t token, Clock::time_point now);
  void sort_waiting();
  bool static_batch_done() const;

  SchedulerConfig cfg_;
  BlockManager blocks_;
  std::deque<SequencePtr> waiting_;
  std::vector<SequencePtr> running_;
  int64_t next_step_id_ = 0;
  int64_t arrivals_ = 0;
  SchedulerStats stats_;
  std::optional<spec::SpecController> spec_;  // engaged when speculation is on
  std::vector<int64_t> released_;
};

}  // namespace troupe
