#include "actors/pipeline.h"

#include "actors/drafter.h"
#include "actors/executor.h"
#include "actors/output.h"
#include "actors/shard.h"
#include "actors/wire_relay.h"
#include "core/error.h"

namespace troupe {

void add_protocol_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::troupe_protocol>();
}

caf::actor_system_config& configure_actor_system(caf::actor_system_config& cfg) {
  // Hand-offs from non-pool threads (callers of submit(), the shard's thread) take ~100 us
  // under the default work-stealing policy and ~10 us under `sharing` (measured on CAF 0.17.6).
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("scheduler.max-threads", 2);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  add_protocol_types(cfg);
  return cfg;
}

void Pipeline::submit(int64_t request_id, GenerateRequest req, TokenSink sink) const {
  const int64_t now = to_ns(Clock::now());
  // Both messages leave this thread in order, so the stream exists before admission (or
  // anything after it) can answer.
  caf::anon_send(output, OpenStream{request_id, std::move(sink), req.params.stop, now});
  caf::anon_send(admission, AdmitRequest{request_id, std::move(req), now});
}

void Pipeline::cancel(int64_t request_id) const {
  caf::anon_send(admission, FinishRequest{request_id, FinishReason::Cancelled});
}

void Pipeline::stop() const {
  for (const auto& a : owned) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

PipelineBuilder& PipelineBuilder::tokenizer(std::shared_ptr<const Tokenizer> tok) {
  tok_ = std::move(tok);
  return *this;
}
PipelineBuilder& PipelineBuilder::backend(std::shared_ptr<Backend> backend) {
  kv_ = backend->kv_shape();
  backend_ = std::move(backend);
  return *this;
}
PipelineBuilder& PipelineBuilder::shard(shard_actor shard, KvCacheShape kv) {
  shard_ = std::move(shard);
  kv_ = kv;
  return *this;
}
PipelineBuilder& PipelineBuilder::scheduler(SchedulerConfig cfg) {
  sched_ = cfg;
  return *this;
}
PipelineBuilder& PipelineBuilder::scheduler_stage(scheduler_actor stage) {
  scheduler_stage_ = std::move(stage);
  return *this;
}
PipelineBuilder& PipelineBuilder::admission(AdmissionConfig cfg) {
  adm_ = cfg;
  return *this;
}
PipelineBuilder& PipelineBuilder::admission_policy(AdmissionPolicy policy) {
  policy_ = std::move(policy);
  return *this;
}
PipelineBuilder& PipelineBuilder::speculation(std::shared_ptr<spec::Proposer> proposer, SpecSchedule schedule) {
  proposer_ = std::move(proposer);
  // (Step timings given to step_timings() stay unless the schedule brings its own.)
  if (schedule.step_timings.empty()) schedule.step_timings = std::move(spec_.step_timings);
  spec_ = std::move(schedule);
  return *this;
}
PipelineBuilder& PipelineBuilder::step_timings(std::vector<TimedStep> steps) {
  spec_.step_timings = std::move(steps);
  return *this;
}
PipelineBuilder& PipelineBuilder::observer(observer_actor obs) {
  observers_.push_back(std::move(obs));
  return *this;
}
PipelineBuilder& PipelineBuilder::verify_options(spec::VerifyOptions vo) {
  verify_ = vo;
  return *this;
}
PipelineBuilder& PipelineBuilder::serialize_messages(bool on) {
  serialize_ = on;
  return *this;
}

template <class Handle>
Handle PipelineBuilder::maybe_relay(Pipeline& p, Handle h) {
  p.owned.push_back(caf::actor_cast<caf::actor>(h));
  if (!serialize_) return h;
  Handle relay = spawn_wire_relay(sys_, std::move(h));
  p.owned.push_back(caf::actor_cast<caf::actor>(relay));
  return relay;
}

Pipeline PipelineBuilder::build() {
  if (!tok_) fail("pipeline: no tokenizer");
  if (!backend_ && !shard_ && !scheduler_stage_) fail("pipeline: no backend or shard");
  if (!scheduler_stage_ && kv_.num_blocks <= 0) fail("pipeline: the KV pool has no blocks");
  if (scheduler_stage_ && proposer_) fail("pipeline: speculation needs troupe's scheduler, not a scheduler stage");
  if (adm_.vocab_size <= 0) adm_.vocab_size = tok_->vocab_size();
  if (adm_.max_model_len <= 0) adm_.max_model_len = sched_.max_model_len;
  if (sched_.max_model_len <= 0) sched_.max_model_len = adm_.max_model_len;
  if (adm_.max_model_len <= 0) fail("pipeline: max_model_len is not set");
  if (!proposer_) spec_.controller.num_speculative_tokens = 0;  // nobody to draft

  Pipeline p;
  if (scheduler_stage_) {
    p.scheduler = scheduler_stage_;  // owned by whoever made it
  } else {
    if (backend_) shard_ = spawn_shard(sys_, std::move(backend_));
    p.shard = maybe_relay(p, shard_);
    auto vocab = grammar::TokenTable::from_tokenizer(*tok_);  // constrained requests' masks
    p.executor = maybe_relay(p, spawn_executor(sys_, p.shard, verify_, vocab));
    if (proposer_) p.drafter = maybe_relay(p, spawn_drafter(sys_, p.executor, proposer_, vocab));
  }
  p.output = maybe_relay(p, spawn_output(sys_, tok_));
  if (!scheduler_stage_) p.scheduler = maybe_relay(p, spawn_scheduler(sys_, sched_, kv_, std::move(spec_)));
  admission_actor next = maybe_relay(p, spawn_admission(sys_, tok_, adm_));
  p.admission = next;
  if (policy_) {
    p.admission = policy_(sys_, next, p.output);
    p.owned.push_back(caf::actor_cast<caf::actor>(p.admission));
  }
  for (auto& o : observers_) p.owned.push_back(caf::actor_cast<caf::actor>(o));  // ended with the pipeline
  // Wiring goes out before anything can reach the stages (build() has not returned yet),
  // so every stage knows its peers before its first request.
  caf::anon_send(p.scheduler, SchedulerLinks{p.executor, p.drafter, p.output, next, observers_});
  caf::anon_send(p.output, OutputLinks{p.scheduler});
  caf::anon_send(next, AdmissionLinks{p.scheduler, p.output});
  return p;
}

}  // namespace troupe
