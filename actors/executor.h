#pragma once
// Executor / verifier stage: runs one planned step on the shard(s) and turns logits into
// tokens. Each planned sequence contributes 1 + k tokens (k = 0 without speculation: a
// prefill chunk or one decode token); the reply says, per sequence, which tokens were
// produced and how many drafts were accepted. With speculation the scheduler reserves KV
// slots for up to num_draft_slots drafts, the drafter (drafter.h) fills `drafts` in and
// appends them to step.tokens, and the executor verifies them (spec/verify.h).
#include <caf/all.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "actors/sequence.h"
#include "kv/block_manager.h"
#include "model/step.h"
#include "spec/proposer.h"
#include "spec/verify.h"

namespace troupe {

struct PlannedSeq {
  SequencePtr seq;
  StepSeq step;                 // tokens to compute, positions, block table, logit rows
  bool sample = false;          // the step reaches the end of the known tokens: pick one
  std::vector<int32_t> drafts;  // speculative tokens appended to step.tokens (verify them)
  // Set by the scheduler: KV slots reserved after the last token, so at most this many
  // drafts. 0: no speculation for this sequence in this step.
  int32_t num_draft_slots = 0;
  // Set by the drafter: [drafts.size() x vocab] q of each draft for sampled requests of a
  // model proposer; empty for greedy requests and point-mass (n-gram) drafts.
  std::vector<float> draft_probs;
};

struct StepPlan {
  int64_t step_id = 0;
  std::vector<PlannedSeq> seqs;
  std::vector<BlockCopy> copies;  // copy-on-write, run before the step
};

// Sent as a shared pointer: the scheduler keeps the same plan to apply the results.
using StepPlanPtr = std::shared_ptr<const StepPlan>;

struct SeqOutcome {
  int64_t seq_id = 0;
  std::vector<int32_t> tokens;    // new tokens: accepted drafts then one sampled token
  int32_t accepted_drafts = 0;
  int32_t num_drafts = 0;         // drafts verified (0: a plain decode or prefill sample)
};

struct StepResult {
  int64_t step_id = 0;
  std::vector<SeqOutcome> outcomes;  // one per planned seq with sample == true, in plan order
  double forward_ms = 0;             // backend time inside the shard
  double sample_ms = 0;              // sampling and draft verification
  spec::ProposeStats draft;          // the drafter's time for this step (no passes: none ran)
  std::string error;                 // non-empty: the step failed, nothing was computed
};

// Spawns the executor in front of `shard` (see shard.h). `verify` is for tests only.
caf::actor spawn_executor(caf::actor_system& sys, caf::actor shard, spec::VerifyOptions verify = {});

}  // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::StepPlanPtr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::StepResult)
