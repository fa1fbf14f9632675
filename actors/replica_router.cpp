#include "actors/replica_router.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <limits>
#include <unordered_map>

namespace troupe {

namespace {

struct Replica {
  std::string name;
  scheduler_actor scheduler;   // null while down
  std::string down_why = "not connected yet";
  int64_t outstanding = 0;     // tokens its requests may still compute
};

struct Routed {
  size_t replica = 0;
  EnqueueSeq seq;              // kept to re-route it while it has produced nothing
  int64_t produced = 0;
  int64_t cost = 0;            // what it adds to `outstanding` now
};

struct RouterState {
  std::vector<Replica> replicas;
  std::unordered_map<int64_t, Routed> requests;
  std::unordered_map<uint64_t, size_t> affinity;  // first-block hash -> replica
  int64_t block_size = 16;
  int64_t received = 0;
  QueueDepth reported;
  SchedulerLinks links;        // output and admission (no executor: the replicas have theirs)
  std::shared_ptr<ClusterStatus> status;
  static inline const char* name = "replica_router";
};

using RouterSelf = replica_router_actor::stateful_pointer<RouterState>;

constexpr size_t kNone = std::numeric_limits<size_t>::max();
constexpr size_t kMaxAffinityEntries = 1 << 16;

std::string label(const RouterState& st, size_t i) { return fmt::format("replica {} ({})", i, st.replicas[i].name); }

void fail_request(RouterSelf self, int64_t request_id, std::string why) {
  SeqUpdate u;
  u.request_id = request_id;
  u.finished = true;
  u.reason = FinishReason::Error;
  u.error_kind = ErrorKind::Internal;
  u.error = std::move(why);
  StepUpdates out;
  out.updates.push_back(std::move(u));
  if (self->state.links.output) self->send(self->state.links.output, std::move(out));
}

void report_depth(RouterSelf self) {
  auto& st = self->state;
  QueueDepth now{0, st.received};
  for (auto& [id, r] : st.requests) now.waiting += r.produced == 0 ? 1 : 0;
  if (st.links.admission && (now.waiting != st.reported.waiting || now.received != st.reported.received)) {
    st.reported = now;
    self->send(st.links.admission, now);
  }
}

size_t pick(RouterState& st, const EnqueueSeq& e, uint64_t* prefix) {
  size_t least = kNone;
  for (size_t i = 0; i < st.replicas.size(); ++i)
    if (st.replicas[i].scheduler && (least == kNone || st.replicas[i].outstanding < st.replicas[least].outstanding))
      least = i;
  *prefix = 0;
  if (least == kNone || int64_t(e.prompt_ids.size()) < st.block_size) return least;
  *prefix = XXH3_64bits(e.prompt_ids.data(), size_t(st.block_size) * sizeof(int32_t));
  const auto it = st.affinity.find(*prefix);
  if (it == st.affinity.end() || !st.replicas[it->second].scheduler) return least;
  const int64_t one = int64_t(e.prompt_ids.size()) + e.params.max_tokens;
  const bool overloaded = st.replicas[it->second].outstanding > 2 * st.replicas[least].outstanding + one;
  return overloaded ? least : it->second;
}

void route(RouterSelf self, EnqueueSeq e) {
  auto& st = self->state;
  uint64_t prefix = 0;
  const size_t i = pick(st, e, &prefix);
  if (i == kNone) {
    std::string why = "no replica is up";
    for (size_t r = 0; r < st.replicas.size(); ++r) why += "; " + label(st, r) + ": " + st.replicas[r].down_why;
    st.requests.erase(e.request_id);
    return fail_request(self, e.request_id, why);
  }
  if (prefix != 0) {
    if (st.affinity.size() >= kMaxAffinityEntries) st.affinity.clear();  // a cheap bound; it relearns
    st.affinity[prefix] = i;
  }
  Routed& r = st.requests[e.request_id];
  r.replica = i;
  r.produced = 0;
  r.cost = int64_t(e.prompt_ids.size()) + e.params.max_tokens;
  st.replicas[i].outstanding += r.cost;
  if (st.status) st.status->add_routed(i);
  r.seq = e;
  self->send(st.replicas[i].scheduler, std::move(e));
}

void on_updates(RouterSelf self, StepUpdates& u) {
  auto& st = self->state;
  for (const SeqUpdate& x : u.updates) {
    auto it = st.requests.find(x.request_id);
    if (it == st.requests.end()) continue;
    Routed& r = it->second;
    const int64_t n = int64_t(x.token_ids.size());
    r.produced += n;
    const int64_t done = std::min(n, r.cost);
    r.cost -= done;
    st.replicas[r.replica].outstanding -= done;
    if (x.finished) {
      st.replicas[r.replica].outstanding -= r.cost;
      st.requests.erase(it);
    } else if (r.produced > 0 && !r.seq.prompt_ids.empty()) {
      r.seq = EnqueueSeq{};  // never re-routed from here on
    }
  }
  if (st.links.output) self->send(st.links.output, std::move(u));
  report_depth(self);
}

void on_down(RouterSelf self, size_t index, const std::string& why) {
  auto& st = self->state;
  Replica& rep = st.replicas[index];
  rep.scheduler = scheduler_actor{};
  rep.down_why = why;
  rep.outstanding = 0;
  std::vector<int64_t> lost;
  for (auto& [id, r] : st.requests)
    if (r.replica == index) lost.push_back(id);
  std::sort(lost.begin(), lost.end());  // oldest first, as they arrived
  for (int64_t id : lost) {
    Routed r = std::move(st.requests.at(id));
    st.requests.erase(id);
    if (r.produced == 0) {
      route(self, std::move(r.seq));  // nothing streamed yet: the client never sees the loss
    } else {
      fail_request(self, id, label(st, index) + " lost: " + why);
    }
  }
  report_depth(self);
}

// Sums the replicas' stats (those that answer).
caf::result<SchedulerStats> merged_stats(RouterSelf self) {
  auto& st = self->state;
  auto rp = self->make_response_promise<SchedulerStats>();
  auto acc = std::make_shared<SchedulerStats>();
  auto pending = std::make_shared<int>(0);
  for (auto& r : st.replicas) *pending += r.scheduler ? 1 : 0;
  if (*pending == 0) {
    rp.deliver(*acc);  // nothing to sum
    return rp;
  }
  auto add = [acc](const SchedulerStats& s) {
    acc->running += s.running, acc->waiting += s.waiting, acc->steps += s.steps;
    acc->prompt_tokens_computed += s.prompt_tokens_computed, acc->generated_tokens += s.generated_tokens;
    acc->preemptions += s.preemptions, acc->finished += s.finished, acc->cancelled += s.cancelled;
    acc->failed += s.failed;
    acc->kv.num_blocks += s.kv.num_blocks, acc->kv.block_size = s.kv.block_size;
    acc->kv.free_blocks += s.kv.free_blocks, acc->kv.evictable_blocks += s.kv.evictable_blocks;
    acc->kv.used_blocks += s.kv.used_blocks, acc->kv.cached_blocks += s.kv.cached_blocks;
    acc->kv.num_sequences += s.kv.num_sequences, acc->kv.prefix_query_tokens += s.kv.prefix_query_tokens;
    acc->kv.prefix_hit_tokens += s.kv.prefix_hit_tokens, acc->kv.evictions += s.kv.evictions;
    acc->kv.cow_copies += s.kv.cow_copies;
    acc->step_wall_ms_total += s.step_wall_ms_total, acc->forward_ms_total += s.forward_ms_total;
    acc->sample_ms_total += s.sample_ms_total;
    acc->prefill_forward_ms_total += s.prefill_forward_ms_total;
    acc->slo += s.slo;
  };
  for (auto& r : st.replicas) {
    if (!r.scheduler) continue;
    self->request(r.scheduler, std::chrono::seconds(10), StatsQuery{})
        .then(
            [rp, acc, pending, add](SchedulerStats& s) mutable {
              add(s);
              if (--*pending == 0) rp.deliver(*acc);
            },
            [rp, acc, pending](caf::error&) mutable {
              if (--*pending == 0) rp.deliver(*acc);
            });
  }
  return rp;
}

replica_router_actor::behavior_type router_behavior(RouterSelf self, std::vector<Replica> replicas,
                                                    int64_t block_size, std::shared_ptr<ClusterStatus> status) {
  self->state.replicas = std::move(replicas);
  self->state.block_size = block_size;
  self->state.status = std::move(status);
  return {
      [self](EnqueueSeq& e) {
        ++self->state.received;
        route(self, std::move(e));
        report_depth(self);
      },
      [self](FinishRequest f) {
        auto& st = self->state;
        auto it = st.requests.find(f.request_id);
        if (it != st.requests.end() && st.replicas[it->second.replica].scheduler)
          self->send(st.replicas[it->second.replica].scheduler, f);
      },
      [](KvLost&) {},  // each replica's scheduler keeps its own cache
      [self](StatsQuery) { return merged_stats(self); },
      [self](SchedulerLinks& l) { self->state.links = std::move(l); },
      [](scheduler_tick_atom) {},
      [self](StepUpdates& u) { on_updates(self, u); },
      [self](ReplicaUp& u) {
        auto& st = self->state;
        if (u.index < 0 || size_t(u.index) >= st.replicas.size()) return;
        st.replicas[size_t(u.index)].scheduler = std::move(u.scheduler);
      },
      [self](ReplicaDown& d) {
        if (d.index < 0 || size_t(d.index) >= self->state.replicas.size()) return;
        on_down(self, size_t(d.index), d.why);
      },
  };
}

}  // namespace

replica_router_actor spawn_replica_router(caf::actor_system& sys, std::vector<std::string> names,
                                          int64_t block_size, std::shared_ptr<ClusterStatus> status) {
  std::vector<Replica> replicas;
  for (auto& n : names) replicas.push_back(Replica{std::move(n), scheduler_actor{}});
  return sys.spawn(router_behavior, std::move(replicas), block_size, std::move(status));
}

}  // namespace troupe
