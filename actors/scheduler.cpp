#include "actors/scheduler.h"

#include <algorithm>

#include "actors/drafter.h"
#include "actors/scheduler_core.h"

namespace troupe {

namespace {

using tick_atom = caf::atom_constant<caf::atom("tick")>;

struct SchedulerState {
  std::unique_ptr<SchedulerCore> core;
  caf::actor executor;
  caf::actor drafter;  // null without speculation
  std::shared_ptr<std::atomic<int64_t>> waiting_gauge;
  bool in_flight = false;     // one step at a time: the next is planned when it returns
  bool timer_pending = false; // static batching waits for its batch to fill
  int64_t reported_waiting = 0;  // our share of waiting_gauge (admission adds its own)
  static inline const char* name = "scheduler";
};

using SchedulerActor = caf::stateful_actor<SchedulerState>;

// Plans and sends the next step if none is in flight. Continuous batching is this loop:
// the step result comes back, finished sequences leave, waiting ones join, and the next
// step goes out at once.
// Admission increments the gauge when it sends a sequence; we move it by our queue's changes.
void sync_gauge(SchedulerState& st) {
  const int64_t now = st.core->num_waiting();
  st.waiting_gauge->fetch_add(now - st.reported_waiting);
  st.reported_waiting = now;
}

void kick(SchedulerActor* self) {
  auto& st = self->state;
  if (st.in_flight) return;
  std::optional<Clock::duration> wait_hint;
  auto plan = st.core->plan(Clock::now(), &wait_hint);
  sync_gauge(st);
  // Retired sequences: messages from here to the drafter arrive in order, so the proposer
  // drops their state before it sees the next plan.
  if (auto released = st.core->take_released(); !released.empty() && st.drafter)
    self->send(st.drafter, ReleaseDrafts{std::move(released)});
  if (!plan) {
    if (wait_hint && !st.timer_pending) {
      st.timer_pending = true;
      self->delayed_send(self, std::chrono::duration_cast<std::chrono::microseconds>(*wait_hint) +
                                   std::chrono::microseconds(100), tick_atom::value);
    }
    return;
  }
  st.in_flight = true;
  const bool drafts = st.drafter && std::any_of(plan->seqs.begin(), plan->seqs.end(),
                                                [](const PlannedSeq& p) { return p.num_draft_slots > 0; });
  auto shared = std::make_shared<const StepPlan>(std::move(*plan));
  const auto t0 = Clock::now();
  auto done = [self, shared, t0](const StepResult& r) {
    auto& st = self->state;
    st.in_flight = false;
    const auto now = Clock::now();
    st.core->record_step_time(std::chrono::duration<double, std::milli>(now - t0).count(), r);
    st.core->complete(*shared, r, now);
    kick(self);
  };
  self->request(drafts ? st.drafter : st.executor, caf::infinite, StepPlanPtr(shared))
      .then([done](StepResult& r) { done(r); },
            [done](caf::error& e) {
              StepResult r;
              r.error = "executor failed: " + caf::to_string(e);
              done(r);
            });
}

caf::behavior scheduler_actor(SchedulerActor* self, caf::actor executor, SchedulerConfig cfg,
                              KvCacheShape kv, std::shared_ptr<std::atomic<int64_t>> gauge,
                              caf::actor drafter, SpecSchedule spec) {
  if (!drafter) spec.controller.num_speculative_tokens = 0;  // nobody to draft
  self->state.core = std::make_unique<SchedulerCore>(cfg, kv, std::move(spec));
  self->state.executor = std::move(executor);
  self->state.drafter = std::move(drafter);
  self->state.waiting_gauge = std::move(gauge);
  return {
      [self](EnqueueSeq& e) {
        self->state.core->add(std::move(e.seq));
        self->state.reported_waiting += 1;  // admission already counted this one
        sync_gauge(self->state);
        kick(self);
      },
      [self](CancelRequest c) {
        self->state.core->cancel(c.request_id);
        sync_gauge(self->state);
        kick(self);
      },
      [self](StatsQuery) -> SchedulerStats { return self->state.core->stats(); },
      [self](tick_atom) {
        self->state.timer_pending = false;
        kick(self);
      },
  };
}

}  // namespace

caf::actor spawn_scheduler(caf::actor_system& sys, caf::actor executor, SchedulerConfig cfg,
                           KvCacheShape kv, std::shared_ptr<std::atomic<int64_t>> waiting_gauge,
                           caf::actor drafter, SpecSchedule spec) {
  return sys.spawn(scheduler_actor, std::move(executor), cfg, kv, std::move(waiting_gauge),
                   std::move(drafter), std::move(spec));
}

}  // namespace troupe
