#include "actors/executor.h"

#include <chrono>

#include "actors/shard.h"

namespace troupe {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Picks the next token(s) of every sequence whose step reached the end of its known tokens.
// Without drafts that is one sampled token from the last row; with k drafts the rows are
// [last token, drafts...] and verification accepts a prefix of the drafts plus one token.
void sample_outcomes(const StepPlan& plan, const StepOutput& out, const spec::VerifyOptions& vo,
                     StepResult& res) {
  int64_t row = 0;
  for (const auto& p : plan.seqs) {
    if (p.step.logit_rows.empty()) continue;
    const int64_t first_row = row;
    row += int64_t(p.step.logit_rows.size());
    if (!p.sample) continue;
    if (!p.drafts.empty()) {
      const size_t k = p.drafts.size();
      const std::span<const float> rows(out.row(first_row), (k + 1) * size_t(out.vocab_size));
      auto v = spec::verify_drafts(p.seq->sampler, p.drafts, p.draft_probs, rows, out.vocab_size, vo);
      res.outcomes.push_back(SeqOutcome{p.seq->id, std::move(v.tokens), v.accepted, int32_t(k)});
      continue;
    }
    const float* logits = out.row(first_row + int64_t(p.step.logit_rows.size()) - 1);
    SampleResult r = p.seq->sampler.sample({logits, size_t(out.vocab_size)});
    p.seq->sampler.accept(r.token);
    res.outcomes.push_back(SeqOutcome{p.seq->id, {r.token}, 0});
  }
}

caf::behavior executor_actor(caf::event_based_actor* self, caf::actor shard, spec::VerifyOptions vo) {
  return {
      [self, shard, vo](StepPlanPtr shared_plan) -> caf::result<StepResult> {
        auto rp = self->make_response_promise<StepResult>();
        ShardStep step;  // a copy: a shard may live on another node
        step.copies = shared_plan->copies;
        step.batch.seqs.reserve(shared_plan->seqs.size());
        for (const auto& p : shared_plan->seqs) step.batch.seqs.push_back(p.step);
        self->request(shard, caf::infinite, std::move(step))
            .then(
                [rp, shared_plan, vo](ShardOutput& o) mutable {
                  StepResult res;
                  res.step_id = shared_plan->step_id;
                  res.forward_ms = o.forward_ms;
                  res.error = o.error;
                  if (res.error.empty()) {
                    const auto t0 = std::chrono::steady_clock::now();
                    try {
                      sample_outcomes(*shared_plan, o.out, vo, res);
                    } catch (const std::exception& e) {  // malformed drafts: fail the step, loudly
                      res.outcomes.clear();
                      res.error = std::string("verify: ") + e.what();
                    }
                    res.sample_ms = ms_since(t0);
                  }
                  rp.deliver(std::move(res));
                },
                [rp, shared_plan](caf::error& err) mutable {
                  StepResult res;
                  res.step_id = shared_plan->step_id;
                  res.error = "shard failed: " + caf::to_string(err);
                  rp.deliver(std::move(res));
                });
        return rp;
      },
  };
}

}  // namespace

caf::actor spawn_executor(caf::actor_system& sys, caf::actor shard, spec::VerifyOptions verify) {
  return sys.spawn(executor_actor, std::move(shard), verify);
}

}  // namespace troupe
