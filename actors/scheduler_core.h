#pragma once
// The scheduler's policy, free of actors so it reads (and tests) as one loop:
//   plan()     -> the next step (or nothing to do),
//   complete() -> apply its results: append tokens, retire finished sequences,
//   take_updates() / take_released() -> what the actor sends on (to the output stage, and
//                 to the executor and drafter so they drop retired sequences' state).
// The actor in scheduler.cpp only moves messages in and out of this class.
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "actors/scheduler.h"
#include "actors/sequence.h"
#include "actors/ratio_quantile.h"
#include "actors/step_time_model.h"

namespace troupe {

class SchedulerCore {
 public:
  SchedulerCore(SchedulerConfig cfg, KvCacheShape kv, SpecSchedule spec = {});

  void add(EnqueueSeq seq, Clock::time_point now);
  // Ends a waiting or running request with `reason` (cancel, or a stop string the output
  // stage matched). A sequence inside the step in flight is retired when that step
  // completes (its blocks are freed then, within one step). Unknown ids are ignored: the
  // request may have finished already.
  void finish_request(int64_t request_id, FinishReason reason);
  // The next step, or nullopt when there is nothing to run now. For static batching,
  // `wait_hint` says how long to wait before asking again (batch still filling).
  std::optional<StepPlan> plan(Clock::time_point now, std::optional<Clock::duration>* wait_hint);
  // `now`: when the result arrived (first tokens are stamped with it; a test driving the
  // core on a simulated clock passes its own).
  void complete(const StepPlan& plan, const StepResult& result, Clock::time_point now = Clock::now());
  // How many steps may be in flight now (cfg.max_steps_in_flight; 1 for static batching
  // and speculation, whose plans depend on the previous step's outcome).
  int64_t max_steps_in_flight() const { return max_in_flight_; }
  int64_t steps_in_flight() const { return steps_in_flight_; }

  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  int64_t num_waiting() const { return int64_t(waiting_.size()); }
  int64_t num_running() const { return int64_t(running_.size()); }
  int64_t num_received() const { return arrivals_; }
  SchedulerStats stats() const;
  // After complete(): adds the step's times to the stats and refines the step-time model.
  void record_step_time(double wall_ms, const StepResult& r);
  const StepTimeModel& step_time_model() const { return step_time_; }
  // New tokens and final states since the last call, one entry per request.
  std::vector<SeqUpdate> take_updates();
  // Ids of retired sequences whose executor/drafter state can go (since the last call).
  std::vector<int64_t> take_released();
  // What the last complete() saw (the actor adds wall time and sends it to observers).
  const StepObservation& last_observation() const { return observation_; }
  // The shard's KV memory was lost and rebuilt (a remote stage came back): cached prefixes
  // no longer hold what they say, and running sequences' KV is gone. Those between steps
  // start over at once (recompute, as after a preemption, so outputs stay exact); one
  // inside a step in flight does so when that step is back, dropping what it computed.
  void kv_lost();
  const BlockManager& blocks() const { return blocks_; }  // for tests
  const Sequence* sequence(int64_t id) const;               // waiting or running; for tests

 private:
  std::optional<StepPlan> plan_continuous(Clock::time_point now);
  std::optional<StepPlan> plan_static(Clock::time_point now, std::optional<Clock::duration>* wait_hint);
  bool grow_or_preempt(const SequencePtr& s, int64_t n);
  int64_t max_seqs_this_step() const;
  std::optional<StepPlan> seal(StepPlan plan);
  void add_step(StepPlan& plan, const SequencePtr& s, int64_t n);
  void attach_context(PlannedSeq& p, Sequence& s);
  void start_running(const SequencePtr& s, int64_t cached, Clock::time_point now);
  void plan_drafts(StepPlan& plan, int64_t budget);
  void complete_speculative(Sequence& s, const SeqOutcome& o);
  void emit_tokens(Sequence& s, const SeqOutcome& o);
  void send_prompt_logprobs(Sequence& s);
  void retire(const SequencePtr& s);
  void preempt(SequencePtr victim);
  void finish(Sequence& s, FinishReason reason, ErrorKind kind = ErrorKind::None, const std::string& error = "");
  SeqUpdate& update_for(int64_t id);
  bool static_batch_done() const;
  // Admission's estimate of a new request's time to first token at the current load
  // (infinity: no prefill fits beside the decodes).
  double estimated_ttft(const Sequence& s) const;
  // A running sequence with one token to compute: it decodes.
  static bool decoding(const Sequence& s);
  // The step shape of the decoding running sequences (without those in a step in flight).
  StepShape decode_shape(bool skip_in_step) const;
  // The time the next step may take for decoding sequence `s` under its TPOT target.
  double tpot_allowance(const Sequence& s, Clock::time_point now) const;
  // The tightest allowance among those decoding sequences (infinity: none has a target).
  double tightest_tpot(bool skip_in_step, Clock::time_point now) const;
  // What admission multiplies its TTFT estimates by: learned from the first tokens.
  double ttft_calibration() const;
  void observe_first_token(const Sequence& s);
  // Judges a request that ended against its targets (and counts it for goodput).
  SloOutcome account_slo(const Sequence& s, FinishReason reason);
  Sequence* find(int64_t id);

  SchedulerConfig cfg_;
  // The order of the waiting queue (and of running_, whose back is preempted first).
  struct RunOrder {
    bool longest_output_first = false;
    bool operator()(const SequencePtr& a, const SequencePtr& b) const;
  };
  RunOrder runs_before_;
  BlockManager blocks_;
  std::deque<SequencePtr> waiting_;
  std::vector<SequencePtr> running_;
  std::unordered_map<int64_t, SequencePtr> by_id_;  // every waiting or running sequence
  int64_t next_step_id_ = 0;
  int64_t max_in_flight_ = 1;
  int64_t steps_in_flight_ = 0;
  int64_t arrivals_ = 0;
  SchedulerStats stats_;
  std::optional<spec::SpecController> spec_;  // engaged when speculation is on
  std::vector<int64_t> released_;
  std::vector<SeqUpdate> updates_;
  std::unordered_map<int64_t, size_t> update_index_;  // request id -> its entry in updates_
  StepObservation observation_;
  StepTimeModel step_time_;   // SLO-aware sizing and admission
  StepShape last_shape_;      // of the step complete() saw last
  Clock::time_point completed_at_;  // the `now` complete() was given last
  // Admission's TTFT estimate leaves out what the step-time model cannot see (the network
  // and output stages, the OS, preemption), so it is corrected by the observed ratio of
  // actual to estimated TTFT: a running estimate of that ratio's quantile
  // (cfg_.slo_admission_quantile), so that share of the admitted requests should meet the
  // target the estimate promised.
  RatioQuantile ttft_ratio_;
  // The share of its max_tokens a finished request used (running mean): requests that stop
  // at EOS free their slot sooner than max_tokens says.
  double output_share_ = 1.0;
};

}  // namespace troupe
