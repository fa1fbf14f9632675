#include "actors/drafter.h"

#include "core/error.h"

namespace troupe {

const Sampler& DraftSamplers::sync(int64_t seq_id, const SeqContext& ctx) {
  auto& e = by_seq[seq_id];
  const size_t prompt_len = size_t(std::min<int64_t>(ctx.prompt_len, int64_t(ctx.tokens.size())));
  if (!e.sampler || e.synced > ctx.tokens.size()) {
    e.sampler = std::make_unique<Sampler>(ctx.params, std::span<const int32_t>(ctx.tokens.data(), prompt_len), vocab);
    e.synced = prompt_len;
  }
  for (; e.synced < ctx.tokens.size(); ++e.synced) e.sampler->accept(ctx.tokens[e.synced]);
  return *e.sampler;
}

void attach_drafts(StepPlan& plan, spec::Proposer& proposer, DraftSamplers& samplers, spec::ProposeStats& stats) {
  std::vector<spec::ProposeRequest> reqs;
  std::vector<size_t> where;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const auto& p = plan.seqs[i];
    if (p.num_draft_slots <= 0 || !p.sample) continue;
    if (!p.has_context) fail("sequence {} has draft slots but no context", p.seq_id());
    const Sampler& sampler = samplers.sync(p.seq_id(), p.context);
    reqs.push_back({p.seq_id(), p.context.tokens, p.num_draft_slots, &sampler});
    where.push_back(i);
  }
  if (reqs.empty()) return;
  std::vector<spec::Proposal> props;
  proposer.propose(reqs, props, stats);
  for (size_t j = 0; j < where.size(); ++j) {
    auto& prop = props[j];
    PlannedSeq& p = plan.seqs[where[j]];
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
}

namespace {

struct DrafterState {
  DraftSamplers samplers;
  static inline const char* name = "drafter";
};

step_actor::behavior_type drafter_behavior(step_actor::stateful_pointer<DrafterState> self, step_actor executor,
                                           std::shared_ptr<spec::Proposer> proposer,
                                           std::shared_ptr<const grammar::TokenTable> vocab) {
  self->state.samplers.vocab = std::move(vocab);
  return {
      [self, executor, proposer](StepPlan& plan) -> caf::result<StepResult> {
        try {
          attach_drafts(plan, *proposer, self->state.samplers, plan.draft_stats);
        } catch (const std::exception& e) {  // a broken draft model: fail the step, loudly
          StepResult res;
          res.step_id = plan.step_id;
          res.error = std::string("drafter: ") + e.what();
          res.draft = plan.draft_stats;
          return res;
        }
        // The executor answers the scheduler directly; the drafter's timing rides in the plan.
        return self->delegate(executor, std::move(plan));
      },
      [self, proposer](ReleaseSeqs& r) {
        for (int64_t id : r.seq_ids) {
          proposer->release(id);
          self->state.samplers.by_seq.erase(id);
        }
      },
  };
}

}  // namespace

step_actor spawn_drafter(caf::actor_system& sys, step_actor executor, std::shared_ptr<spec::Proposer> proposer,
                         std::shared_ptr<const grammar::TokenTable> vocab) {
  return sys.spawn<caf::detached>(drafter_behavior, std::move(executor), std::move(proposer), std::move(vocab));
}

}  // namespace troupe
