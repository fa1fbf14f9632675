#pragma once
// A request inside the scheduler, which alone owns it. Other stages know a sequence only
// by id and by what a step plan carries (protocol.h).
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "actors/protocol.h"
#include "spec/controller.h"

namespace troupe {

struct Sequence {
  explicit Sequence(EnqueueSeq e, Clock::time_point enqueued_)
      : id(e.request_id), params(std::move(e.params)), priority(e.priority),
        num_speculative_tokens(e.num_speculative_tokens), tokens(std::move(e.prompt_ids)),
        prompt_len(int64_t(tokens.size())), eos_ids(std::move(e.eos_ids)), max_model_len(e.max_model_len),
        admit_ms(e.admit_ms), slo_ttft_ms(e.slo_ttft_ms), slo_tpot_ms(e.slo_tpot_ms), enqueued(enqueued_) {}

  int64_t id;
  SamplingParams params;
  int32_t priority = 0;
  int32_t num_speculative_tokens = -1;
  std::vector<int32_t> tokens;  // prompt then generated ids
  int64_t prompt_len;
  std::vector<int32_t> eos_ids;  // end the sequence (unless params.ignore_eos)
  int64_t max_model_len = 0;     // prompt + generated may not exceed this
  double admit_ms = 0;
  double slo_ttft_ms = 0;       // latency targets (0: none)
  double slo_tpot_ms = 0;
  // When the first token is due (enqueued + the TTFT target not spent in admission; the
  // far future without a target): the waiting queue runs earliest deadline first.
  Clock::time_point deadline = Clock::time_point::max();
  double estimated_ttft_ms = 0;  // admission's estimate (0: none); calibrates later ones

  int64_t num_computed = 0;     // tokens whose KV is cached
  int64_t arrival_order = 0;    // FCFS tie-break (admission order)
  // Set by a FinishRequest (cancel, or a stop string the output stage matched): the
  // sequence ends at the next step boundary with this reason.
  std::optional<FinishReason> abort;
  bool finished = false;        // final update sent (static batching: may still hold its slot)
  bool executor_has_context = false;  // the executor built this sequence's sampler
  // Inside a step that has not come back yet (with several steps in flight, the others
  // may not touch it: not plan it, preempt it, or free its blocks).
  bool in_step = false;
  // The shard's KV memory was rebuilt while this sequence was in a step: what that step
  // computed read lost KV, so it is dropped and the sequence starts over (SchedulerCore::kv_lost).
  bool kv_stale = false;
  // params.prompt_logprobs: entries for prompt positions 1.. as steps compute them, sent
  // once with the first token (a recompute after preemption neither recomputes nor resends).
  std::vector<TokenLogprobs> prompt_logprobs;
  bool prompt_logprobs_sent = false;
  Usage usage;
  spec::SeqSpecState spec;      // speculative decoding: this request's K, acceptance, probes
  Clock::time_point enqueued, first_scheduled{}, first_token{};

  int64_t num_generated() const { return int64_t(tokens.size()) - prompt_len; }
  bool aborted() const { return abort.has_value(); }
  bool wants_prompt_logprobs() const { return params.prompt_logprobs >= 0 && !prompt_logprobs_sent; }
};

using SequencePtr = std::shared_ptr<Sequence>;

}  // namespace troupe
