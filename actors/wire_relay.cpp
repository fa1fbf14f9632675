#include "actors/wire_relay.h"

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "core/error.h"

namespace troupe {

std::vector<char> wire_bytes(caf::actor_system& sys, const caf::message& msg) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  caf::message copy = msg;
  if (auto err = sink(copy)) fail("serializing {}: {}", caf::to_string(msg), sys.render(err));
  return buf;
}

caf::message wire_roundtrip(caf::actor_system& sys, const caf::message& msg) {
  const std::vector<char> buf = wire_bytes(sys, msg);
  caf::message out;
  caf::binary_deserializer source{sys, buf};
  if (auto err = source(out)) fail("deserializing {}: {}", caf::to_string(msg), sys.render(err));
  if (out.size() != msg.size()) fail("deserializing {}: {} elements came back", caf::to_string(msg), out.size());
  return out;
}

namespace {

// Requests get their replies relayed (and serialized) too; one-way messages are forwarded
// in arrival order. OpenStream carries a callback and is the one message never serialized.
template <class Reply, class Request>
caf::result<Reply> relay_request(caf::event_based_actor* self, const caf::actor& target, Request& req) {
  auto rp = self->make_response_promise<Reply>();
  auto& sys = self->system();
  self->request(target, caf::infinite, wire_roundtrip(sys, caf::make_message(std::move(req))))
      .then(
          [rp, &sys](Reply& r) mutable {
            rp.deliver(wire_roundtrip(sys, caf::make_message(std::move(r))).template get_as<Reply>(0));
          },
          [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
  return rp;
}

caf::behavior wire_relay(caf::event_based_actor* self, caf::actor target) {
  auto forward = [self, target](auto& m) {
    self->send(target, wire_roundtrip(self->system(), caf::make_message(std::move(m))));
  };
  return {
      [self, target](ShardStep& m) { return relay_request<ShardOutput>(self, target, m); },
      [self, target](StepPlan& m) { return relay_request<StepResult>(self, target, m); },
      [self, target](StatsQuery& m) { return relay_request<SchedulerStats>(self, target, m); },
      [forward](ReleaseSeqs& m) { forward(m); },
      [forward](AdmitRequest& m) { forward(m); },
      [forward](FinishRequest& m) { forward(m); },
      [forward](EnqueueSeq& m) { forward(m); },
      [forward](KvLost& m) { forward(m); },
      [forward](QueueDepth& m) { forward(m); },
      [forward](StepUpdates& m) { forward(m); },
      [forward](StepObservation& m) { forward(m); },
      [forward](SchedulerLinks& m) { forward(m); },
      [forward](OutputLinks& m) { forward(m); },
      [forward](AdmissionLinks& m) { forward(m); },
      [self, target](OpenStream& m) { self->send(target, std::move(m)); },
      [self, target](scheduler_tick_atom a) { self->send(target, a); },
  };
}

}  // namespace

caf::actor spawn_wire_relay_untyped(caf::actor_system& sys, caf::actor target) {
  return sys.spawn(wire_relay, std::move(target));
}

}  // namespace troupe
