#pragma once
// The pipeline's protocol: one typed CAF interface per stage and the messages they exchange.
// Every message is a plain value (ids, token ids, positions, block ids, parameters, raw
// float tensors), never a pointer into another stage's state, so any stage can live in
// another process: each type has an inspect() overload and a type ID (troupe_protocol
// block below), and tests/actors/protocol_test.cpp round-trips every one through CAF's
// binary serializer. The single exception is OpenStream, which hands a C++ callback to the
// local output stage; it never leaves the process that owns the client connection.
//
//   client ─▶ admission ─EnqueueSeq─▶ scheduler ─StepPlan─▶ [drafter] ─StepPlan─▶ executor
//                                        ▲   │                                      │ ShardStep
//                       FinishRequest    │   │ StepUpdates           StepResult     ▼
//                  (cancel, stop string) │   ▼                     ◀──────────────  shard
//                                       output ─TokenEvent─▶ sink (net/, Engine users)
//
// Who owns what (stated once, here):
//   scheduler  sequences (tokens, status, params), queues, KV block tables, prefix cache
//   executor   sampler state (seeded counters, penalty counts), by sequence id
//   drafter    the proposer and its state (a draft model's weights and KV), by sequence id
//   shard      weights and KV memory; a compute thread
//   output     sinks, detokenizer state, stop-string matching, client-facing timings
//   admission  validation, tokenization, the waiting-queue limit
#include <caf/all.hpp>

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "actors/request.h"
#include "actors/scheduler_stats.h"
#include "kv/block_manager.h"
#include "model/step.h"
#include "sampling/sampler.h"
#include "spec/metrics.h"
#include "spec/proposer.h"

namespace troupe {

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

// Engine/net -> admission: a new request. `arrival_ns` is the frontend's steady clock
// (only frontend stages, admission and output, read it).
struct AdmitRequest {
  int64_t request_id = 0;
  GenerateRequest req;
  int64_t arrival_ns = 0;
  bool operator==(const AdmitRequest&) const = default;
};

// Engine/net -> admission -> scheduler: stop a request (the scheduler answers with a final
// update). Output -> scheduler with reason Stop when a stop string matched.
struct FinishRequest {
  int64_t request_id = 0;
  FinishReason reason = FinishReason::Cancelled;
  bool operator==(const FinishRequest&) const = default;
};

// Admission -> scheduler: a validated, tokenized request.
struct EnqueueSeq {
  int64_t request_id = 0;
  std::vector<int32_t> prompt_ids;
  SamplingParams params;              // max_tokens already capped by the model length
  int32_t priority = 0;
  int32_t num_speculative_tokens = -1;
  std::vector<int32_t> eos_ids;       // end the sequence (unless params.ignore_eos)
  int64_t max_model_len = 0;
  double admit_ms = 0;                // arrival -> admission done (counted in queue time)
  // Latency targets in ms (0: none), resolved by admission from the request and the server.
  double slo_ttft_ms = 0;
  double slo_tpot_ms = 0;
  bool operator==(const EnqueueSeq&) const = default;
};

// Scheduler -> admission: its waiting queue, and how many EnqueueSeq it has received in
// all, so admission knows how many it sent that are not counted yet (exact, no round trip).
struct QueueDepth {
  int64_t waiting = 0;
  int64_t received = 0;
  bool operator==(const QueueDepth&) const = default;
};

struct StatsQuery {
  bool operator==(const StatsQuery&) const = default;
};

// Shard (a pipeline of remote stages) -> scheduler: a stage was rebuilt with empty KV
// memory, so the prefix cache must forget what it holds.
struct KvLost {
  std::string why;
  bool operator==(const KvLost&) const = default;
};

// What a stage may not know about a sequence yet: sent with a planned step when the
// executor first samples for it (to build its sampler) and whenever the drafter drafts
// for it (a proposer reads the whole context).
struct SeqContext {
  SamplingParams params;
  std::vector<int32_t> tokens;  // prompt + generated so far
  int64_t prompt_len = 0;
  bool operator==(const SeqContext&) const = default;
};

struct PlannedSeq {
  StepSeq step;                 // tokens to compute, positions, block table, logit rows
  bool sample = false;          // the step reaches the end of the known tokens: pick one
  // KV slots reserved after the last token, so at most this many drafts (0: none).
  int32_t num_draft_slots = 0;
  std::vector<int32_t> drafts;  // set by the drafter, appended to step.tokens
  // Set by the drafter: [drafts.size() x vocab] q of each draft for sampled requests of a
  // model proposer; empty for greedy requests and point-mass (n-gram) drafts.
  std::vector<float> draft_probs;
  bool has_context = false;     // `context` is filled (see SeqContext)
  SeqContext context;
  // prompt_logprobs: the first prompt_targets.size() logit rows are prompt positions whose
  // next prompt token is prompt_targets[i]; the executor reduces them to logprob, rank and
  // the top `prompt_logprobs` (the rows' logits never leave it).
  int32_t prompt_logprobs = -1;
  std::vector<int32_t> prompt_targets;

  int64_t seq_id() const { return step.seq_id; }
  bool operator==(const PlannedSeq&) const = default;
};

// Scheduler -> [drafter ->] executor, one per iteration.
struct StepPlan {
  int64_t step_id = 0;
  std::vector<PlannedSeq> seqs;
  std::vector<BlockCopy> copies;  // copy-on-write, run before the step
  spec::ProposeStats draft_stats; // set by the drafter; the executor returns it in StepResult::draft
  bool operator==(const StepPlan&) const = default;
};

// Scheduler -> executor and drafter: these sequences are gone; drop their state.
struct ReleaseSeqs {
  std::vector<int64_t> seq_ids;
  bool operator==(const ReleaseSeqs&) const = default;
};

struct SeqOutcome {
  int64_t seq_id = 0;
  std::vector<int32_t> tokens;    // new tokens: accepted drafts then one sampled token
  int32_t accepted_drafts = 0;
  int32_t num_drafts = 0;         // drafts verified (0: a plain decode or prefill sample)
  std::vector<TokenLogprobs> logprobs;  // one per token when the request asked (return_logprobs)
  bool operator==(const SeqOutcome&) const = default;
};

// The prompt logprobs one step computed for a sequence (its planned prompt_targets, in order).
struct SeqPromptLogprobs {
  int64_t seq_id = 0;
  std::vector<TokenLogprobs> entries;
  bool operator==(const SeqPromptLogprobs&) const = default;
};

// Executor -> scheduler, the reply to a StepPlan.
struct StepResult {
  int64_t step_id = 0;
  std::vector<SeqOutcome> outcomes;  // one per planned seq with sample == true, in plan order
  double forward_ms = 0;             // backend time inside the shard
  double sample_ms = 0;              // sampling and draft verification
  spec::ProposeStats draft;          // the drafter's time for this step (no passes: none ran)
  std::string error;                 // non-empty: the step failed, nothing was computed
  std::vector<SeqPromptLogprobs> prompt_logprobs;  // one per planned seq with prompt_targets, in plan order
  bool operator==(const StepResult&) const = default;
};

// Executor -> shard.
struct ShardStep {
  StepBatch batch;
  std::vector<BlockCopy> copies;  // run first, in order
  // Pipeline stages after the first: [num_tokens, hidden_size] activations from the stage
  // before (raw bytes on the wire); empty for a whole-model shard or the first stage.
  std::vector<float> hidden;
  bool operator==(const ShardStep&) const = default;
};

// Shard -> executor, the reply to a ShardStep.
struct ShardOutput {
  StepOutput out;       // logits of the requested rows (raw bytes on the wire); last stage
  std::vector<float> hidden;  // stages before the last: activations for the next stage
  double forward_ms = 0;
  std::string error;    // non-empty: the backend rejected the step
  bool operator==(const ShardOutput&) const = default;
};

// Scheduler (or admission, for rejections) -> output: what happened to one request.
struct SeqUpdate {
  int64_t request_id = 0;
  std::vector<int32_t> token_ids;           // new tokens, in order
  bool finished = false;
  FinishReason reason = FinishReason::None; // with finished
  ErrorKind error_kind = ErrorKind::None;
  std::string error;
  Usage usage;                              // with finished
  double queue_ms = 0;                      // with finished: arrival -> first scheduled
  std::vector<TokenLogprobs> logprobs;      // one per token id when the request asked
  // params.prompt_logprobs: one per prompt token (the first has no logprob: rank 0), once,
  // with the first token (or the final update when there is none).
  std::vector<TokenLogprobs> prompt_logprobs;
  SloOutcome slo;                           // with finished: judged against its targets
  bool operator==(const SeqUpdate&) const = default;
};

// One message per step (and per admission rejection).
struct StepUpdates {
  std::vector<SeqUpdate> updates;
  bool operator==(const StepUpdates&) const = default;
};

// Scheduler -> observers, after every step.
struct StepObservation {
  int64_t step_id = 0;
  int64_t num_seqs = 0;          // sequences in the step
  int64_t num_tokens = 0;        // tokens computed (prefill chunks + decodes + drafts)
  int64_t num_prefill_tokens = 0;
  int64_t num_outputs = 0;       // sequences that got new tokens
  int64_t num_generated = 0;     // tokens they got
  int64_t num_draft_tokens = 0;  // drafts verified
  int64_t num_accepted = 0;      // of those, accepted
  int64_t waiting = 0, running = 0;
  double wall_ms = 0;            // plan sent -> result back
  double forward_ms = 0, sample_ms = 0, draft_ms = 0;
  std::string error;
  bool operator==(const StepObservation&) const = default;
};

// The one local-only message: Engine/net -> output, before the request's AdmitRequest.
// Holds the client's callback; a remote frontend would keep its own output stage.
struct OpenStream {
  int64_t request_id = 0;
  TokenSink sink;
  std::vector<std::string> stop;  // stop strings (matched on the detokenized text)
  int64_t arrival_ns = 0;
};

// ---------------------------------------------------------------------------------------
// Stage interfaces
// ---------------------------------------------------------------------------------------

// A shard: runs steps on a backend it owns (local CPU today; GPU or remote later).
using shard_actor = caf::typed_actor<caf::replies_to<ShardStep>::with<ShardOutput>>;

// A step stage: takes a plan, answers with its result. The executor implements it; a
// drafter is a step stage in front of the executor (it adds drafts, then forwards).
using step_actor = caf::typed_actor<caf::replies_to<StepPlan>::with<StepResult>,
                                    caf::reacts_to<ReleaseSeqs>>;

using observer_actor = caf::typed_actor<caf::reacts_to<StepObservation>>;

struct OutputLinks;
struct SchedulerLinks;
struct AdmissionLinks;
struct StageUp;
struct StageDown;
struct ChainLinks;
struct ReplicaUp;
struct ReplicaDown;

// A pipeline of shard stages (each a slice of the layers, on this node or another) behind
// one shard interface (actors/stage_chain.h); StageUp/StageDown come from whoever keeps
// the stages alive (cluster/ for remote workers).
using stage_chain_actor = shard_actor::extend<caf::reacts_to<StageUp>, caf::reacts_to<StageDown>,
                                              caf::reacts_to<ChainLinks>>;

using output_actor = caf::typed_actor<caf::reacts_to<OpenStream>, caf::reacts_to<StepUpdates>,
                                      caf::reacts_to<OutputLinks>>;

using scheduler_tick_atom = caf::atom_constant<caf::atom("tsched")>;

using scheduler_actor =
    caf::typed_actor<caf::reacts_to<EnqueueSeq>, caf::reacts_to<FinishRequest>, caf::reacts_to<KvLost>,
                     caf::replies_to<StatsQuery>::with<SchedulerStats>,
                     caf::reacts_to<SchedulerLinks>, caf::reacts_to<scheduler_tick_atom>>;

// Engine replicas (each a scheduler with its own executor, shard and KV, on this node or a
// worker) behind one scheduler interface (actors/replica_router.h). Replicas send their
// StepUpdates to the router, which forwards them to the output stage.
using replica_router_actor =
    scheduler_actor::extend<caf::reacts_to<StepUpdates>, caf::reacts_to<ReplicaUp>, caf::reacts_to<ReplicaDown>>;

using admission_actor = caf::typed_actor<caf::reacts_to<AdmitRequest>, caf::reacts_to<FinishRequest>,
                                         caf::reacts_to<QueueDepth>, caf::reacts_to<AdmissionLinks>>;

// Wiring, sent once by the pipeline builder right after it spawns the stages (the stages
// point at each other, so they cannot all be spawn arguments).
struct SchedulerLinks {
  step_actor executor;              // plans without drafts go here
  step_actor drafter;               // plans with drafts (null: no speculation)
  output_actor output;
  admission_actor admission;        // receives QueueDepth (null: nobody limits the queue)
  std::vector<observer_actor> observers;
  bool operator==(const SchedulerLinks&) const = default;
};
struct OutputLinks {
  scheduler_actor scheduler;        // receives FinishRequest when a stop string matched
  bool operator==(const OutputLinks&) const = default;
};
struct AdmissionLinks {
  scheduler_actor scheduler;
  output_actor output;              // receives rejections
  bool operator==(const AdmissionLinks&) const = default;
};

// -> stage chain: stage `index` serves (again) through `shard`. kv_lost: it was rebuilt
// after a loss, so its KV memory is empty (the chain tells the scheduler: KvLost).
struct StageUp {
  int32_t index = 0;
  shard_actor shard;
  bool kv_lost = false;
  bool operator==(const StageUp&) const = default;
};
// -> stage chain: stage `index` is gone; steps in flight fail with `why`, and so does every
// step until it is up again.
struct StageDown {
  int32_t index = 0;
  std::string why;
  bool operator==(const StageDown&) const = default;
};
struct ChainLinks {
  scheduler_actor scheduler;        // receives KvLost
  bool operator==(const ChainLinks&) const = default;
};

// -> replica router: replica `index` serves (again) through `scheduler`.
struct ReplicaUp {
  int32_t index = 0;
  scheduler_actor scheduler;
  bool operator==(const ReplicaUp&) const = default;
};
// -> replica router: replica `index` is gone; its requests that produced no token yet go to
// another replica, the others end with `why`.
struct ReplicaDown {
  int32_t index = 0;
  std::string why;
  bool operator==(const ReplicaDown&) const = default;
};


// ---------------------------------------------------------------------------------------
// inspect() overloads (CAF 0.17): field lists for the serializer, deep_to_string and logs
// ---------------------------------------------------------------------------------------

namespace wire {

// Float tensors go over the wire as raw bytes: CAF serializes a std::vector<float> element
// by element (~120 MB/s measured here), bytes at ~1.5 GB/s. Little-endian hosts only.
struct RawFloats {
  std::vector<float>* v;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, RawFloats& x) {
  if constexpr (std::is_base_of_v<caf::serializer, Inspector>) {
    size_t n = x.v->size();
    if (auto e = f.begin_sequence(n)) return e;
    if (n > 0)
      if (auto e = f.apply_raw(n * sizeof(float), x.v->data())) return e;
    return f.end_sequence();
  } else if constexpr (std::is_base_of_v<caf::deserializer, Inspector>) {
    size_t n = 0;
    if (auto e = f.begin_sequence(n)) return e;
    x.v->resize(n);
    if (n > 0)
      if (auto e = f.apply_raw(n * sizeof(float), x.v->data())) return e;
    return f.end_sequence();
  } else {
    return f(*x.v);
  }
}

// std::optional<uint64_t> (the sampling seed) as a flag and a value.
struct OptionalU64 {
  std::optional<uint64_t>* v;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, OptionalU64& x) {
  bool has = x.v->has_value();
  uint64_t value = x.v->value_or(0);
  if constexpr (std::is_base_of_v<caf::deserializer, Inspector>) {
    auto e = f(has, value);
    if (!e) *x.v = has ? std::optional<uint64_t>(value) : std::nullopt;
    return e;
  } else {
    return f(has, value);
  }
}

}  // namespace wire

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SamplingParams& x) {
  wire::OptionalU64 seed{&x.seed};
  return f(caf::meta::type_name("SamplingParams"), x.temperature, x.top_k, x.top_p, x.min_p,
           x.repetition_penalty, x.presence_penalty, x.frequency_penalty, seed, x.max_tokens,
           x.stop_token_ids, x.stop, x.ignore_eos, x.logprobs, x.return_logprobs, x.logit_bias, x.min_tokens,
           x.min_tokens_stop_ids, x.constraint.kind, x.constraint.text, x.prompt_logprobs);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TokenBias& x) {
  return f(caf::meta::type_name("TokenBias"), x.id, x.bias);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TokenLogprob& x) {
  return f(caf::meta::type_name("TokenLogprob"), x.id, x.logprob);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, TokenLogprobs& x) {
  return f(caf::meta::type_name("TokenLogprobs"), x.token, x.logprob, x.top, x.rank);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, GenerateRequest& x) {
  return f(caf::meta::type_name("GenerateRequest"), x.prompt, x.prompt_ids, x.add_special_tokens, x.params,
           x.priority, x.user, x.num_speculative_tokens, x.strict_max_tokens, x.slo_ttft_ms, x.slo_tpot_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SloOutcome& x) {
  return f(caf::meta::type_name("SloOutcome"), x.ttft_target_ms, x.tpot_target_ms, x.ttft_ms, x.tpot_ms, x.met);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Usage& x) {
  return f(caf::meta::type_name("Usage"), x.prompt_tokens, x.completion_tokens, x.cached_prompt_tokens,
           x.computed_prompt_tokens, x.preemptions, x.spec_num_drafts, x.spec_num_draft_tokens,
           x.spec_num_accepted_tokens);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StepSeq& x) {
  return f(caf::meta::type_name("StepSeq"), x.seq_id, x.tokens, x.start_pos, x.block_table, x.logit_rows);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StepBatch& x) {
  return f(caf::meta::type_name("StepBatch"), x.seqs);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StepOutput& x) {
  wire::RawFloats logits{&x.logits};
  return f(caf::meta::type_name("StepOutput"), x.vocab_size, logits);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, BlockCopy& x) {
  return f(caf::meta::type_name("BlockCopy"), x.src, x.dst);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, BlockManagerStats& x) {
  return f(caf::meta::type_name("BlockManagerStats"), x.num_blocks, x.block_size, x.free_blocks,
           x.evictable_blocks, x.used_blocks, x.cached_blocks, x.num_sequences, x.prefix_query_tokens,
           x.prefix_hit_tokens, x.evictions, x.cow_copies);
}

namespace spec {
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, DraftPass& x) {
  return f(caf::meta::type_name("DraftPass"), x.tokens, x.ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ProposeStats& x) {
  return f(caf::meta::type_name("ProposeStats"), x.passes, x.total_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SpecMetrics& x) {
  return f(caf::meta::type_name("SpecMetrics"), x.max_k, x.num_drafts, x.num_draft_tokens,
           x.num_accepted_tokens, x.num_emitted_tokens, x.num_rejections, x.drafted_per_pos,
           x.accepted_per_pos, x.k_histogram, x.spec_steps, x.draft_passes, x.draft_ms_total,
           x.alpha_estimate, x.cost_ratio, x.target_step_ms);
}
}  // namespace spec

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, AdmitRequest& x) {
  return f(caf::meta::type_name("AdmitRequest"), x.request_id, x.req, x.arrival_ns);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, FinishRequest& x) {
  return f(caf::meta::type_name("FinishRequest"), x.request_id, x.reason);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, EnqueueSeq& x) {
  return f(caf::meta::type_name("EnqueueSeq"), x.request_id, x.prompt_ids, x.params, x.priority,
           x.num_speculative_tokens, x.eos_ids, x.max_model_len, x.admit_ms, x.slo_ttft_ms, x.slo_tpot_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, QueueDepth& x) {
  return f(caf::meta::type_name("QueueDepth"), x.waiting, x.received);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StatsQuery&) {
  return f(caf::meta::type_name("StatsQuery"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, KvLost& x) {
  return f(caf::meta::type_name("KvLost"), x.why);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SeqContext& x) {
  return f(caf::meta::type_name("SeqContext"), x.params, x.tokens, x.prompt_len);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, PlannedSeq& x) {
  wire::RawFloats probs{&x.draft_probs};
  return f(caf::meta::type_name("PlannedSeq"), x.step, x.sample, x.num_draft_slots, x.drafts, probs,
           x.has_context, x.context, x.prompt_logprobs, x.prompt_targets);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StepPlan& x) {
  return f(caf::meta::type_name("StepPlan"), x.step_id, x.seqs, x.copies, x.draft_stats);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ReleaseSeqs& x) {
  return f(caf::meta::type_name("ReleaseSeqs"), x.seq_ids);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SeqOutcome& x) {
  return f(caf::meta::type_name("SeqOutcome"), x.seq_id, x.tokens, x.accepted_drafts, x.num_drafts, x.logprobs);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SeqPromptLogprobs& x) {
  return f(caf::meta::type_name("SeqPromptLogprobs"), x.seq_id, x.entries);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StepResult& x) {
  return f(caf::meta::type_name("StepResult"), x.step_id, x.outcomes, x.forward_ms, x.sample_ms, x.draft,
           x.error, x.prompt_logprobs);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ShardStep& x) {
  wire::RawFloats hidden{&x.hidden};
  return f(caf::meta::type_name("ShardStep"), x.batch, x.copies, hidden);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ShardOutput& x) {
  wire::RawFloats hidden{&x.hidden};
  return f(caf::meta::type_name("ShardOutput"), x.out, hidden, x.forward_ms, x.error);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SeqUpdate& x) {
  return f(caf::meta::type_name("SeqUpdate"), x.request_id, x.token_ids, x.finished, x.reason, x.error_kind,
           x.error, x.usage, x.queue_ms, x.logprobs, x.prompt_logprobs, x.slo);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StepUpdates& x) {
  return f(caf::meta::type_name("StepUpdates"), x.updates);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StepObservation& x) {
  return f(caf::meta::type_name("StepObservation"), x.step_id, x.num_seqs, x.num_tokens,
           x.num_prefill_tokens, x.num_outputs, x.num_generated, x.num_draft_tokens, x.num_accepted,
           x.waiting, x.running, x.wall_ms, x.forward_ms, x.sample_ms, x.draft_ms, x.error);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SloStats& x) {
  return f(caf::meta::type_name("SloStats"), x.met, x.missed, x.rejected, x.ttft_missed, x.tpot_missed,
           x.step_tokens_histogram, x.step_tokens_sum);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SchedulerStats& x) {
  return f(caf::meta::type_name("SchedulerStats"), x.running, x.waiting, x.steps, x.prompt_tokens_computed,
           x.generated_tokens, x.preemptions, x.finished, x.cancelled, x.failed, x.kv, x.step_wall_ms_total,
           x.forward_ms_total, x.sample_ms_total, x.prefill_forward_ms_total, x.spec, x.slo);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SchedulerLinks& x) {
  return f(caf::meta::type_name("SchedulerLinks"), x.executor, x.drafter, x.output, x.admission, x.observers);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, OutputLinks& x) {
  return f(caf::meta::type_name("OutputLinks"), x.scheduler);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, AdmissionLinks& x) {
  return f(caf::meta::type_name("AdmissionLinks"), x.scheduler, x.output);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageUp& x) {
  return f(caf::meta::type_name("StageUp"), x.index, x.shard, x.kv_lost);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StageDown& x) {
  return f(caf::meta::type_name("StageDown"), x.index, x.why);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ChainLinks& x) {
  return f(caf::meta::type_name("ChainLinks"), x.scheduler);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ReplicaUp& x) {
  return f(caf::meta::type_name("ReplicaUp"), x.index, x.scheduler);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ReplicaDown& x) {
  return f(caf::meta::type_name("ReplicaDown"), x.index, x.why);
}

// Registers every protocol type with an actor system (both ends of a remote link must).
void add_protocol_types(caf::actor_system_config& cfg);

}  // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::OpenStream)

CAF_BEGIN_TYPE_ID_BLOCK(troupe_protocol, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::AdmitRequest))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::FinishRequest))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::EnqueueSeq))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::QueueDepth))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::StatsQuery))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::KvLost))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::SchedulerStats))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::StepPlan))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::ReleaseSeqs))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::StepResult))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::ShardStep))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::ShardOutput))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::StepUpdates))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::StepObservation))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::SchedulerLinks))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::OutputLinks))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::AdmissionLinks))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::StageUp))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::StageDown))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::ChainLinks))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::ReplicaUp))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::ReplicaDown))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::shard_actor))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::step_actor))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::scheduler_actor))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::admission_actor))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::output_actor))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::observer_actor))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::stage_chain_actor))
  CAF_ADD_TYPE_ID(troupe_protocol, (troupe::replica_router_actor))
CAF_END_TYPE_ID_BLOCK(troupe_protocol)
