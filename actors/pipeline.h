#pragma once
// The pipeline builder: spawns the stages, wires them (protocol.h) and returns their
// handles. troupe::Engine is one use of it; a library user can swap or add stages without
// touching troupe's sources:
//   - a custom proposer (any spec::Proposer) for the drafter stage,
//   - an admission policy: a stage in front of the default admission (quotas, routing...),
//   - observers that receive a StepObservation after every step,
//   - the shard: a local backend, or any shard_actor (a remote one, a user's own).
//
//   auto p = PipelineBuilder(sys)
//                .tokenizer(tok).backend(backend)          // or .shard(handle, kv_shape)
//                .scheduler(sched_cfg).admission(adm_cfg)
//                .speculation(proposer, schedule)          // optional
//                .admission_policy(make_quota_stage)       // optional
//                .observer(csv_writer)                     // optional, repeatable
//                .build();
//   caf::anon_send(p.output, OpenStream{id, sink, stops, to_ns(Clock::now())});
//   caf::anon_send(p.admission, AdmitRequest{id, request, to_ns(Clock::now())});
#include <caf/all.hpp>

#include <functional>
#include <memory>
#include <vector>

#include "actors/admission.h"
#include "actors/protocol.h"
#include "actors/scheduler.h"
#include "model/backend.h"
#include "spec/proposer.h"
#include "spec/verify.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

// The handles of a built pipeline. Send requests to `admission` (after an OpenStream to
// `output`); `scheduler` answers StatsQuery.
struct Pipeline {
  admission_actor admission;  // the front: the policy stage if one was given
  output_actor output;
  scheduler_actor scheduler;
  step_actor drafter;         // null without speculation
  step_actor executor;
  shard_actor shard;
  std::vector<caf::actor> owned;  // every actor the builder spawned (stop() ends them)

  // Registers the sink with the output stage, then submits (never blocks).
  void submit(int64_t request_id, GenerateRequest req, TokenSink sink) const;
  void cancel(int64_t request_id) const;
  // Sends every owned actor an exit message (then await_all_actors_done on the system).
  void stop() const;
};

// Builds a stage in front of the default admission: it receives every AdmitRequest and
// FinishRequest first, forwards what it accepts to `next`, and rejects through `output`.
using AdmissionPolicy =
    std::function<admission_actor(caf::actor_system& sys, admission_actor next, output_actor output)>;

class PipelineBuilder {
 public:
  explicit PipelineBuilder(caf::actor_system& sys) : sys_(sys) {}

  PipelineBuilder& tokenizer(std::shared_ptr<const Tokenizer> tok);
  // A local shard over `backend` (the shard owns it from then on).
  PipelineBuilder& backend(std::shared_ptr<Backend> backend);
  // Any shard: remote, or a user's own; `kv` is the KV pool it manages.
  PipelineBuilder& shard(shard_actor shard, KvCacheShape kv);
  PipelineBuilder& scheduler(SchedulerConfig cfg);
  // A stage of the user's (or troupe's replica router) in place of the scheduler, executor
  // and shard: it gets EnqueueSeq/FinishRequest and SchedulerLinks (output, admission; no
  // executor) and must send StepUpdates to the output. scheduler() still sets
  // max_model_len for admission; no backend or shard is needed.
  PipelineBuilder& scheduler_stage(scheduler_actor stage);
  PipelineBuilder& admission(AdmissionConfig cfg);
  PipelineBuilder& admission_policy(AdmissionPolicy policy);
  // Speculative decoding with `proposer` (its controller settings and cost curves in
  // `schedule`; schedule.controller.num_speculative_tokens > 0).
  PipelineBuilder& speculation(std::shared_ptr<spec::Proposer> proposer, SpecSchedule schedule);
  // The backend's steps timed at startup against tokens and context (spec::time_steps):
  // where SLO-aware scheduling's step-time model starts.
  PipelineBuilder& step_timings(std::vector<TimedStep> steps);
  PipelineBuilder& observer(observer_actor obs);
  PipelineBuilder& verify_options(spec::VerifyOptions vo);  // tests only
  // Puts a relay in front of every stage that sends each message and reply through CAF's
  // binary serializer, as if each stage ran in its own process (wire_relay.h).
  PipelineBuilder& serialize_messages(bool on = true);

  Pipeline build();

 private:
  template <class Handle>
  Handle maybe_relay(Pipeline& p, Handle h);

  caf::actor_system& sys_;
  std::shared_ptr<const Tokenizer> tok_;
  std::shared_ptr<Backend> backend_;
  shard_actor shard_;
  scheduler_actor scheduler_stage_;
  KvCacheShape kv_;
  SchedulerConfig sched_;
  AdmissionConfig adm_;
  AdmissionPolicy policy_;
  std::shared_ptr<spec::Proposer> proposer_;
  SpecSchedule spec_;
  std::vector<observer_actor> observers_;
  spec::VerifyOptions verify_;
  bool serialize_ = false;
};

// The CAF settings troupe's stages are tuned for (the `sharing` scheduler policy; see
// pipeline.cpp) with every protocol type registered. Build actor systems from this.
caf::actor_system_config& configure_actor_system(caf::actor_system_config& cfg);

}  // namespace troupe
