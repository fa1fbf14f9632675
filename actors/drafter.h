#pragma once
// Drafter stage (speculative decoding): a step stage in front of the executor.
//   scheduler --StepPlan--> drafter --StepPlan + drafts--> executor --StepResult--> scheduler
// (the drafter delegates: the executor answers the scheduler directly)
// For every planned sequence with num_draft_slots > 0 it asks the proposer (draft model,
// n-gram, or a user's own spec::Proposer) for up to that many drafts, batched across
// sequences, appends them to the sequence's step (tokens and logit rows) and forwards the
// plan; the executor verifies. Detached: a draft model's forward passes block, like the
// shard's.
//
// The scheduler sends a plan here only when it planned drafts (others go straight to the
// executor); such plans carry each drafting sequence's context (SeqContext). The drafter
// keeps, per sequence id, a mirror of the request's sampler (drafts are drawn with the
// request's parameters and seed) until ReleaseSeqs.
#include <caf/all.hpp>

#include <memory>
#include <unordered_map>

#include "actors/protocol.h"
#include "spec/proposer.h"

namespace troupe {

step_actor spawn_drafter(caf::actor_system& sys, step_actor executor, std::shared_ptr<spec::Proposer> proposer,
                         std::shared_ptr<const grammar::TokenTable> vocab = nullptr);

// The drafting itself, outside the actor (tests call it directly): `plan` with the
// proposer's drafts attached. `samplers` holds the drafter's sampler mirrors (updated
// from the plan's contexts); `stats` receives the proposer's timing.
struct DraftSamplers {
  struct Entry {
    std::unique_ptr<Sampler> sampler;
    size_t synced = 0;  // context tokens the sampler has seen
  };
  std::unordered_map<int64_t, Entry> by_seq;
  std::shared_ptr<const grammar::TokenTable> vocab;  // constrained requests draft under the grammar too
  const Sampler& sync(int64_t seq_id, const SeqContext& ctx);
};
void attach_drafts(StepPlan& plan, spec::Proposer& proposer, DraftSamplers& samplers, spec::ProposeStats& stats);

}  // namespace troupe
