#pragma once
// A relay that forces every message to a stage, and every reply from it, through CAF's
// binary serializer and back, as if the stage ran in another process. The pipeline
// builder puts one in front of each stage when PipelineOptions::serialize_messages is
// set; tests use it to prove the pipeline works on values alone (a pointer, an
// unregistered type or a field inspect() forgot would change the outputs or fail).
#include <caf/all.hpp>

#include <vector>

#include "actors/protocol.h"

namespace troupe {

// Serializes `msg` into bytes and deserializes a fresh message from them (throws
// troupe::Error when either direction fails, e.g. a type without a registered type ID).
caf::message wire_roundtrip(caf::actor_system& sys, const caf::message& msg);

// The bytes one message takes on the wire (tests and benchmarks).
std::vector<char> wire_bytes(caf::actor_system& sys, const caf::message& msg);

// A relay in front of `target`, with the same interface.
template <class Handle>
Handle spawn_wire_relay(caf::actor_system& sys, Handle target);

caf::actor spawn_wire_relay_untyped(caf::actor_system& sys, caf::actor target);

template <class Handle>
Handle spawn_wire_relay(caf::actor_system& sys, Handle target) {
  return caf::actor_cast<Handle>(spawn_wire_relay_untyped(sys, caf::actor_cast<caf::actor>(std::move(target))));
}

}  // namespace troupe
