#include "actors/executor.h"

#include <chrono>

#include "actors/shard.h"

namespace troupe {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Picks the next token of every sequence whose step reached the end of its known tokens.
// Without drafts that is one sampled token from the last row. (Draft verification adds
// rows 1..k and an acceptance prefix here; the message shape already carries them.)
void sample_outcomes(const StepPlan& plan, const StepOutput& out, StepResult& res) {
  int64_t row = 0;
  for (const auto& p : plan.seqs) {
    if (p.step.logit_rows.empty()) continue;
    const int64_t first_row = row;
    row += int64_t(p.step.logit_rows.size());
    if (!p.sample) continue;
    const float* logits = out.row(first_row + int64_t(p.step.logit_rows.size()) - 1);
    SampleResult r = p.seq->sampler.sample({logits, size_t(out.vocab_size)});
    p.seq->sampler.accept(r.token);
    res.outcomes.push_back(SeqOutcome{p.seq->id, {r.token}, 0});
  }
}

caf::behavior executor_actor(caf::event_based_actor* self, caf::actor shard) {
  return {
      [self, shard](StepPlanPtr shared_plan) -> caf::result<StepResult> {
        auto rp = self->make_response_promise<StepResult>();
        ShardStep step;  // a copy: a shard may live on another node
        step.copies = shared_plan->copies;
        step.batch.seqs.reserve(shared_plan->seqs.size());
        for (const auto& p : shared_plan->seqs) step.batch.seqs.push_back(p.step);
        self->request(shard, caf::infinite, std::move(step))
            .then(
                [rp, shared_plan](ShardOutput& o) mutable {
                  StepResult res;
                  res.step_id = shared_plan->step_id;
                  res.forward_ms = o.forward_ms;
                  res.error = o.error;
                  if (res.error.empty()) {
                    const auto t0 = std::chrono::steady_clock::now();
                    sample_outcomes(*shared_plan, o.out, res);
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

caf::actor spawn_executor(caf::actor_system& sys, caf::actor shard) {
  return sys.spawn(executor_actor, std::move(shard));
}

}  // namespace troupe
