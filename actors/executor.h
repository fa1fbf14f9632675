#pragma once
// Executor / verifier stage: runs one planned step on the shard and turns logits into
// tokens. Each planned sequence contributes 1 + k tokens (k = 0 without speculation: a
// prefill chunk or one decode token); the reply says, per sequence, which tokens were
// produced and how many drafts were accepted (spec/verify.h).
//
// It owns every sequence's sampler (seeded counters, penalty counts), keyed by sequence
// id: built from the SeqContext that comes with the first step that samples for the
// sequence, dropped on ReleaseSeqs. A constrained request's grammar state lives in its
// sampler: masked before sampling, advanced on every accepted token; a rejected draft was
// never accepted, so there is nothing to roll back.
#include <caf/all.hpp>

#include "actors/protocol.h"
#include "spec/verify.h"

namespace troupe {

// Spawns the executor in front of `shard`. `verify` is for tests only. `vocab` (the
// tokenizer's token bytes) lets it serve requests with an output constraint.
step_actor spawn_executor(caf::actor_system& sys, shard_actor shard, spec::VerifyOptions verify = {},
                          std::shared_ptr<const grammar::TokenTable> vocab = nullptr);

}  // namespace troupe
