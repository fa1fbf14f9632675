#pragma once
// Helpers for tests that drive SchedulerCore by hand (no actors, no model): requests with
// distinct prompts, and the executor's answer to a plan.
#include <set>

#include "actors/scheduler_core.h"

namespace troupe::test {

// A greedy request of `n_prompt` tokens no other request shares a prefix with.
inline EnqueueSeq by_hand_seq(int64_t id, int n_prompt, int max_tokens, int64_t max_model_len) {
  EnqueueSeq e;
  e.request_id = id;
  e.params.temperature = 0;
  e.params.max_tokens = max_tokens;
  e.params.ignore_eos = true;
  for (int i = 0; i < n_prompt; ++i) e.prompt_ids.push_back(int32_t(10000 * id + i));
  e.max_model_len = max_model_len;
  return e;
}

// What the executor would answer: one new token for every sequence that samples.
inline StepResult one_token_each(const StepPlan& plan) {
  StepResult r;
  r.step_id = plan.step_id;
  for (const auto& p : plan.seqs)
    if (p.sample) r.outcomes.push_back(SeqOutcome{p.seq_id(), {7}, 0, 0, {}});
  return r;
}

inline std::set<int64_t> ids_of(const StepPlan& plan) {
  std::set<int64_t> ids;
  for (const auto& p : plan.seqs) ids.insert(p.seq_id());
  return ids;
}

}  // namespace troupe::test
