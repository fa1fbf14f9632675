#include "actors/executor.h"

#include <chrono>
#include <memory>
#include <unordered_map>

#include "actors/mask_prefetch.h"
#include "core/error.h"

namespace troupe {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

using Samplers = std::unordered_map<int64_t, std::shared_ptr<Sampler>>;

// The sampler of a planned sequence, built from its context the first time.
const std::shared_ptr<Sampler>& sampler_ptr(Samplers& samplers, const PlannedSeq& p,
                                            const std::shared_ptr<const grammar::TokenTable>& vocab) {
  auto it = samplers.find(p.seq_id());
  if (it != samplers.end()) return it->second;
  if (!p.has_context) fail("sequence {} samples without its context (parameters, prompt)", p.seq_id());
  const auto& c = p.context;
  const size_t prompt_len = size_t(std::min<int64_t>(c.prompt_len, int64_t(c.tokens.size())));
  auto s = std::make_shared<Sampler>(c.params, std::span<const int32_t>(c.tokens.data(), prompt_len), vocab);
  // Replaying the generated tokens also replays the grammar state (after preemption, say).
  for (size_t i = prompt_len; i < c.tokens.size(); ++i) s->accept(c.tokens[i]);
  return samplers.emplace(p.seq_id(), std::move(s)).first->second;
}

Sampler& sampler_for(Samplers& samplers, const PlannedSeq& p, const std::shared_ptr<const grammar::TokenTable>& vocab) {
  return *sampler_ptr(samplers, p, vocab);
}

// Picks the next token(s) of every sequence whose step reached the end of its known tokens.
// Without drafts that is one sampled token from the last row; with k drafts the rows are
// [last token, drafts...] and verification accepts a prefix of the drafts plus one token.
void sample_outcomes(const StepPlan& plan, const StepOutput& out, Samplers& samplers,
                     const std::shared_ptr<const grammar::TokenTable>& vocab, const spec::VerifyOptions& vo,
                     StepResult& res) {
  int64_t row = 0;
  for (const auto& p : plan.seqs) {
    if (p.step.logit_rows.empty()) continue;
    int64_t first_row = row;
    row += int64_t(p.step.logit_rows.size());
    if (!p.prompt_targets.empty()) {
      // prompt_logprobs: reduced here, so only the entries travel on to the scheduler.
      auto& pl = res.prompt_logprobs.emplace_back(SeqPromptLogprobs{p.seq_id(), {}});
      pl.entries.reserve(p.prompt_targets.size());
      for (size_t i = 0; i < p.prompt_targets.size(); ++i)
        pl.entries.push_back(prompt_token_logprobs({out.row(first_row + int64_t(i)), size_t(out.vocab_size)},
                                                   p.prompt_targets[i], p.prompt_logprobs));
      first_row += int64_t(p.prompt_targets.size());  // the sampling rows follow
    }
    if (!p.sample) continue;
    Sampler& sampler = sampler_for(samplers, p, vocab);
    if (!p.drafts.empty()) {
      const size_t k = p.drafts.size();
      const std::span<const float> rows(out.row(first_row), (k + 1) * size_t(out.vocab_size));
      auto v = spec::verify_drafts(sampler, p.drafts, p.draft_probs, rows, out.vocab_size, vo);
      // (Requests that want logprobs never draft: admission turns speculation off for them.)
      res.outcomes.push_back(SeqOutcome{p.seq_id(), std::move(v.tokens), v.accepted, int32_t(k), {}});
      continue;
    }
    const float* logits = out.row(row - 1);  // the last row
    SampleResult r = sampler.sample({logits, size_t(out.vocab_size)});
    sampler.accept(r.token);
    SeqOutcome& o = res.outcomes.emplace_back(SeqOutcome{p.seq_id(), {r.token}, 0, 0, {}});
    if (sampler.params().return_logprobs) o.logprobs.push_back({r.token, r.logprob, std::move(r.top)});
  }
}

// The constrained samplers this step will sample from whose mask is not computed yet.
std::vector<std::shared_ptr<const Sampler>> masks_to_prefetch(const StepPlan& plan, Samplers& samplers,
                                                              const std::shared_ptr<const grammar::TokenTable>& vocab) {
  std::vector<std::shared_ptr<const Sampler>> out;
  if (!vocab) return out;  // no vocabulary: no constrained requests
  for (const auto& p : plan.seqs) {
    if (!p.sample || p.step.logit_rows.empty()) continue;
    if (!samplers.contains(p.seq_id()) && (!p.has_context || p.context.params.constraint.empty())) continue;
    try {
      const auto& s = sampler_ptr(samplers, p, vocab);
      if (!s->mask_ready()) out.push_back(s);
    } catch (const std::exception&) {
      // (sampling this sequence will raise the same error where the step reports it)
    }
  }
  return out;
}

struct ExecutorState {
  Samplers samplers;
  std::shared_ptr<const grammar::TokenTable> vocab;  // for constrained requests' masks
  std::unique_ptr<MaskPrefetch> prefetch;            // started with the first constrained step
  static inline const char* name = "executor";
};

step_actor::behavior_type executor_behavior(step_actor::stateful_pointer<ExecutorState> self, shard_actor shard,
                                            spec::VerifyOptions vo, std::shared_ptr<const grammar::TokenTable> vocab) {
  self->state.vocab = std::move(vocab);
  return {
      [self, shard, vo](StepPlan& plan) -> caf::result<StepResult> {
        auto rp = self->make_response_promise<StepResult>();
        const int64_t step_id = plan.step_id;
        ShardStep step;
        step.copies = plan.copies;
        step.batch.seqs.reserve(plan.seqs.size());
        for (const auto& p : plan.seqs) step.batch.seqs.push_back(p.step);
        // The grammar masks of this step, computed while the forward pass runs.
        if (auto todo = masks_to_prefetch(plan, self->state.samplers, self->state.vocab); !todo.empty()) {
          if (!self->state.prefetch) self->state.prefetch = std::make_unique<MaskPrefetch>();
          self->state.prefetch->start(std::move(todo));
        }
        self->request(shard, caf::infinite, std::move(step))
            .then(
                [self, rp, plan = std::move(plan), vo](ShardOutput& o) mutable {
                  StepResult res;
                  res.step_id = plan.step_id;
                  res.draft = std::move(plan.draft_stats);
                  res.forward_ms = o.forward_ms;
                  res.error = o.error;
                  if (self->state.prefetch) self->state.prefetch->wait();  // before any sampler is touched
                  if (res.error.empty()) {
                    const auto t0 = std::chrono::steady_clock::now();
                    try {
                      sample_outcomes(plan, o.out, self->state.samplers, self->state.vocab, vo, res);
                    } catch (const std::exception& e) {  // malformed drafts or plan: fail the step, loudly
                      res.outcomes.clear();
                      res.error = std::string("executor: ") + e.what();
                    }
                    res.sample_ms = ms_since(t0);
                  }
                  rp.deliver(std::move(res));
                },
                [rp, step_id](caf::error& err) mutable {
                  StepResult res;
                  res.step_id = step_id;  // (the drafter's timing is lost with the step)
                  res.error = "shard failed: " + caf::to_string(err);
                  rp.deliver(std::move(res));
                });
        return rp;
      },
      [self](ReleaseSeqs& r) {
        for (int64_t id : r.seq_ids) self->state.samplers.erase(id);
      },
  };
}

}  // namespace

step_actor spawn_executor(caf::actor_system& sys, shard_actor shard, spec::VerifyOptions verify,
                          std::shared_ptr<const grammar::TokenTable> vocab) {
  return sys.spawn(executor_behavior, std::move(shard), verify, std::move(vocab));
}

}  // namespace troupe
