#include "actors/stage_chain.h"

#include <fmt/format.h>

#include <unordered_map>

namespace troupe {

namespace {

struct Stage {
  std::string name;
  shard_actor shard;      // null while down
  std::string down_why = "not connected yet";
};

// One step on its way through the stages.
struct InFlight {
  caf::typed_response_promise<ShardOutput> rp;
  StepBatch batch;
  std::vector<BlockCopy> copies;
  std::vector<float> hidden;
  double forward_ms = 0;
};

struct ChainState {
  std::vector<Stage> stages;
  std::unordered_map<uint64_t, InFlight> in_flight;
  uint64_t next_id = 1;
  scheduler_actor scheduler;
  static inline const char* name = "stage_chain";
};

using ChainSelf = stage_chain_actor::stateful_pointer<ChainState>;

std::string label(const ChainState& st, size_t i) {
  return fmt::format("pipeline stage {} ({})", i, st.stages[i].name);
}

void fail_step(ChainSelf self, uint64_t id, std::string why) {
  auto it = self->state.in_flight.find(id);
  if (it == self->state.in_flight.end()) return;
  ShardOutput o;
  o.error = std::move(why);
  it->second.rp.deliver(std::move(o));
  self->state.in_flight.erase(it);
}

// Sends step `id` to stage i; its reply moves it to stage i + 1 or back to the executor.
void advance(ChainSelf self, uint64_t id, size_t i) {
  auto& st = self->state;
  InFlight& f = st.in_flight.at(id);
  const bool last = i + 1 == st.stages.size();
  ShardStep msg;
  msg.batch = last ? std::move(f.batch) : f.batch;
  msg.copies = last ? std::move(f.copies) : f.copies;  // every stage holds its layers' KV
  msg.hidden = std::move(f.hidden);
  self->request(st.stages[i].shard, caf::infinite, std::move(msg))
      .then(
          [self, id, i, last](ShardOutput& o) {
            auto it = self->state.in_flight.find(id);
            if (it == self->state.in_flight.end()) return;  // failed meanwhile (stage down)
            if (!o.error.empty()) return fail_step(self, id, label(self->state, i) + ": " + o.error);
            it->second.forward_ms += o.forward_ms;
            if (last) {
              o.forward_ms = it->second.forward_ms;
              it->second.rp.deliver(std::move(o));
              self->state.in_flight.erase(it);
              return;
            }
            it->second.hidden = std::move(o.hidden);
            advance(self, id, i + 1);
          },
          [self, id, i](caf::error& e) {
            fail_step(self, id, label(self->state, i) + " failed: " + caf::to_string(e));
          });
}

stage_chain_actor::behavior_type chain_behavior(ChainSelf self, std::vector<Stage> stages) {
  self->state.stages = std::move(stages);
  return {
      [self](ShardStep& s) -> caf::result<ShardOutput> {
        auto& st = self->state;
        for (size_t i = 0; i < st.stages.size(); ++i)
          if (!st.stages[i].shard) {
            ShardOutput o;
            o.error = label(st, i) + " is unavailable: " + st.stages[i].down_why;
            return o;
          }
        const uint64_t id = st.next_id++;
        InFlight f{self->make_response_promise<ShardOutput>(), std::move(s.batch), std::move(s.copies),
                   std::move(s.hidden), 0};
        auto rp = f.rp;
        st.in_flight.emplace(id, std::move(f));
        advance(self, id, 0);
        return rp;
      },
      [self](StageUp& u) {
        auto& st = self->state;
        if (u.index < 0 || size_t(u.index) >= st.stages.size()) return;
        st.stages[size_t(u.index)].shard = std::move(u.shard);
        if (u.kv_lost && st.scheduler) self->send(st.scheduler, KvLost{label(st, size_t(u.index)) + " was rebuilt"});
      },
      [self](StageDown& d) {
        auto& st = self->state;
        if (d.index < 0 || size_t(d.index) >= st.stages.size()) return;
        Stage& stage = st.stages[size_t(d.index)];
        stage.shard = shard_actor{};
        stage.down_why = d.why;
        // Every step in flight loses what this stage held for it (its layers' KV writes).
        std::vector<uint64_t> ids;
        for (auto& [id, f] : st.in_flight) ids.push_back(id);
        for (uint64_t id : ids) fail_step(self, id, label(st, size_t(d.index)) + " lost: " + d.why);
      },
      [self](ChainLinks& l) { self->state.scheduler = std::move(l.scheduler); },
  };
}

}  // namespace

stage_chain_actor spawn_stage_chain(caf::actor_system& sys, std::vector<std::string> names) {
  std::vector<Stage> stages;
  for (auto& n : names) stages.push_back(Stage{std::move(n), shard_actor{}});
  return sys.spawn(chain_behavior, std::move(stages));
}

stage_chain_actor spawn_stage_chain(caf::actor_system& sys, const std::vector<shard_actor>& shards) {
  std::vector<Stage> stages;
  for (size_t i = 0; i < shards.size(); ++i) stages.push_back(Stage{fmt::format("local {}", i), shards[i], ""});
  return sys.spawn(chain_behavior, std::move(stages));
}

}  // namespace troupe
