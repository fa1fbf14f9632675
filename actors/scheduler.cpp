#include "actors/scheduler.h"

#include <algorithm>
#include <unordered_map>

#include "actors/scheduler_core.h"

namespace troupe {

namespace {

// A step sent to the executor and not back yet: what complete() needs of its plan (the
// message itself went to the executor; see kept_for_completion) and when it left.
struct StepInFlight {
  StepPlan plan;
  Clock::time_point sent_at;
};

struct SchedulerState {
  std::unique_ptr<SchedulerCore> core;
  SchedulerLinks links;
  // Usually one step at a time (the next is planned when it returns); with pipeline
  // stages, up to core->max_steps_in_flight() over disjoint sequences.
  std::unordered_map<int64_t, StepInFlight> in_flight;  // by step id
  bool timer_pending = false; // static batching waits for its batch to fill
  QueueDepth reported;        // last QueueDepth sent to admission
  static inline const char* name = "scheduler";
};

using SchedulerSelf = scheduler_actor::stateful_pointer<SchedulerState>;

// Sends what the core produced since the last call: token updates to the output stage,
// retired ids to the stages that keep per-sequence state, and the queue depth to admission
// when it changed.
void flush(SchedulerSelf self) {
  auto& st = self->state;
  if (auto updates = st.core->take_updates(); !updates.empty() && st.links.output)
    self->send(st.links.output, StepUpdates{std::move(updates)});
  // Retired sequences: messages from here to the drafter arrive in order, so the proposer
  // drops their state before it sees the next plan.
  if (auto released = st.core->take_released(); !released.empty()) {
    if (st.links.drafter) self->send(st.links.drafter, ReleaseSeqs{released});
    if (st.links.executor) self->send(st.links.executor, ReleaseSeqs{std::move(released)});
  }
  const QueueDepth now{st.core->num_waiting(), st.core->num_received()};
  if (st.links.admission && (now.waiting != st.reported.waiting || now.received != st.reported.received)) {
    st.reported = now;
    self->send(st.links.admission, now);
  }
}

void on_result(SchedulerSelf self, int64_t step_id, StepResult& r);

// What complete() reads of the plan in flight: each sequence's step and flags. Not the
// contexts (a drafting sequence's whole token history), which only the receivers need.
StepPlan kept_for_completion(const StepPlan& plan) {
  StepPlan kept;
  kept.step_id = plan.step_id;
  kept.seqs.reserve(plan.seqs.size());
  for (const auto& p : plan.seqs) {
    PlannedSeq& k = kept.seqs.emplace_back();
    k.step = p.step;
    k.sample = p.sample;
    k.num_draft_slots = p.num_draft_slots;
  }
  return kept;
}

// Plans and sends steps while there is room for one in flight. Continuous batching is this
// loop: the step result comes back, finished sequences leave, waiting ones join, and the
// next step goes out at once.
void kick(SchedulerSelf self) {
  auto& st = self->state;
  if (!st.links.executor) return;
  while (st.core->steps_in_flight() < st.core->max_steps_in_flight()) {
    std::optional<Clock::duration> wait_hint;
    auto plan = st.core->plan(Clock::now(), &wait_hint);
    flush(self);
    if (!plan) {
      if (wait_hint && !st.timer_pending) {
        st.timer_pending = true;
        self->delayed_send(self, std::chrono::duration_cast<std::chrono::microseconds>(*wait_hint) +
                                     std::chrono::microseconds(100), scheduler_tick_atom::value);
      }
      return;
    }
    const bool drafts = st.links.drafter && std::any_of(plan->seqs.begin(), plan->seqs.end(),
                                                        [](const PlannedSeq& p) { return p.num_draft_slots > 0; });
    const int64_t step_id = plan->step_id;
    st.in_flight[step_id] = StepInFlight{kept_for_completion(*plan), Clock::now()};
    self->request(drafts ? st.links.drafter : st.links.executor, caf::infinite, std::move(*plan))
        .then([self, step_id](StepResult& r) { on_result(self, step_id, r); },
              [self, step_id](caf::error& e) {
                StepResult r;
                r.step_id = step_id;
                r.error = "executor failed: " + caf::to_string(e);
                on_result(self, step_id, r);
              });
  }
}

void on_result(SchedulerSelf self, int64_t step_id, StepResult& r) {
  auto& st = self->state;
  auto it = st.in_flight.find(step_id);
  if (it == st.in_flight.end()) return;  // (cannot happen: each step is answered once)
  StepInFlight done = std::move(it->second);
  st.in_flight.erase(it);
  const auto now = Clock::now();
  const double wall_ms = std::chrono::duration<double, std::milli>(now - done.sent_at).count();
  st.core->complete(done.plan, r);
  st.core->record_step_time(wall_ms, r);
  if (!st.links.observers.empty()) {
    StepObservation obs = st.core->last_observation();
    obs.wall_ms = wall_ms;
    obs.waiting = st.core->num_waiting();
    obs.running = st.core->num_running();
    for (auto& o : st.links.observers) self->send(o, obs);
  }
  kick(self);
}

scheduler_actor::behavior_type scheduler_behavior(SchedulerSelf self, SchedulerConfig cfg, KvCacheShape kv,
                                                  SpecSchedule spec) {
  self->state.core = std::make_unique<SchedulerCore>(cfg, kv, std::move(spec));
  return {
      [self](EnqueueSeq& e) {
        self->state.core->add(std::move(e), Clock::now());
        kick(self);
        flush(self);
      },
      [self](FinishRequest f) {
        self->state.core->finish_request(f.request_id, f.reason);
        kick(self);
        flush(self);
      },
      [self](KvLost&) {
        self->state.core->kv_lost();
        kick(self);
      },
      [self](StatsQuery) -> SchedulerStats { return self->state.core->stats(); },
      [self](SchedulerLinks& links) {
        self->state.links = std::move(links);
        kick(self);
      },
      [self](scheduler_tick_atom) {
        self->state.timer_pending = false;
        kick(self);
      },
  };
}

}  // namespace

scheduler_actor spawn_scheduler(caf::actor_system& sys, SchedulerConfig cfg, KvCacheShape kv, SpecSchedule spec) {
  return sys.spawn(scheduler_behavior, cfg, kv, std::move(spec));
}

}  // namespace troupe
