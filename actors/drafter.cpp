#include "actors/drafter.h"

namespace troupe {

StepPlan attach_drafts(const StepPlan& plan, spec::Proposer& proposer, spec::ProposeStats& stats) {
  std::vector<spec::ProposeRequest> reqs;
  std::vector<size_t> where;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const auto& p = plan.seqs[i];
    if (p.num_draft_slots <= 0 || !p.sample) continue;
    // The scheduler does not touch a sequence while its step is in flight, so its tokens
    // and sampler can be read here; the executor advances the sampler only after us.
    reqs.push_back({p.seq->id, p.seq->tokens, p.num_draft_slots, &p.seq->sampler});
    where.push_back(i);
  }
  StepPlan out = plan;
  if (reqs.empty()) return out;
  std::vector<spec::Proposal> props;
  proposer.propose(reqs, props, stats);
  for (size_t j = 0; j < where.size(); ++j) {
    auto& prop = props[j];
    PlannedSeq& p = out.seqs[where[j]];
    if (int32_t(prop.tokens.size()) > p.num_draft_slots) prop.tokens.resize(size_t(p.num_draft_slots));
    if (prop.tokens.empty()) continue;
    // Rows 0..k: the last known token predicts draft 1, draft i predicts draft i + 1, and
    // the last draft predicts the bonus token.
    p.step.tokens.insert(p.step.tokens.end(), prop.tokens.begin(), prop.tokens.end());
    p.step.logit_rows.clear();
    for (size_t r = 0; r < p.step.tokens.size(); ++r) p.step.logit_rows.push_back(int32_t(r));
    p.drafts = std::move(prop.tokens);
    p.draft_probs = std::move(prop.probs);
  }
  return out;
}

namespace {

caf::behavior drafter_actor(caf::event_based_actor* self, caf::actor executor,
                            std::shared_ptr<spec::Proposer> proposer) {
  return {
      [self, executor, proposer](StepPlanPtr plan) -> caf::result<StepResult> {
        auto rp = self->make_response_promise<StepResult>();
        spec::ProposeStats stats;
        StepPlanPtr drafted;
        try {
          drafted = std::make_shared<const StepPlan>(attach_drafts(*plan, *proposer, stats));
        } catch (const std::exception& e) {  // a broken draft model: fail the step, loudly
          StepResult res;
          res.step_id = plan->step_id;
          res.error = std::string("drafter: ") + e.what();
          res.draft = stats;
          rp.deliver(std::move(res));
          return rp;
        }
        self->request(executor, caf::infinite, drafted)
            .then(
                [rp, stats](StepResult& r) mutable {
                  r.draft = std::move(stats);
                  rp.deliver(std::move(r));
                },
                [rp, plan](caf::error& err) mutable {
                  StepResult r;
                  r.step_id = plan->step_id;
                  r.error = "executor failed: " + caf::to_string(err);
                  rp.deliver(std::move(r));
                });
        return rp;
      },
      [proposer](ReleaseDrafts& r) {
        for (int64_t id : r.seq_ids) proposer->release(id);
      },
  };
}

}  // namespace

caf::actor spawn_drafter(caf::actor_system& sys, caf::actor executor,
                         std::shared_ptr<spec::Proposer> proposer) {
  return sys.spawn<caf::detached>(drafter_actor, std::move(executor), std::move(proposer));
}

}  // namespace troupe
