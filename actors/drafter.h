#pragma once
// Drafter stage (speculative decoding), between the scheduler and the executor/verifier:
//   scheduler --StepPlanPtr--> drafter --StepPlanPtr + drafts--> executor --StepResult--> back
// For every planned sequence with num_draft_slots > 0 it asks the proposer (draft model,
// n-gram, ...) for up to that many drafts, batched across sequences, appends them to the
// sequence's step (tokens and logit rows) and forwards the plan; the executor verifies.
// Detached: a draft model's forward passes block, like the shard's.
//
// The scheduler sends a plan here only when it planned drafts (others go straight to the
// executor), and sends ReleaseDrafts for retired sequences so the proposer drops their
// state (the draft model's KV).
#include <caf/all.hpp>

#include <memory>
#include <vector>

#include "actors/executor.h"
#include "spec/proposer.h"

namespace troupe {

struct ReleaseDrafts {
  std::vector<int64_t> seq_ids;
};

caf::actor spawn_drafter(caf::actor_system& sys, caf::actor executor,
                         std::shared_ptr<spec::Proposer> proposer);

// The drafting itself, outside the actor (tests call it directly): a copy of `plan` with
// the proposer's drafts attached. `stats` receives the proposer's timing.
StepPlan attach_drafts(const StepPlan& plan, spec::Proposer& proposer, spec::ProposeStats& stats);

}  // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::ReleaseDrafts)
