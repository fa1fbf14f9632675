#pragma once
// What a client submits and what it gets back, independent of transport (the Engine API,
// the WebSocket/HTTP daemon and the benchmarks all speak this).
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sampling/sampler.h"

namespace troupe {

using Clock = std::chrono::steady_clock;

// Steady-clock instants as plain integers, for messages (meaningful within one process).
inline int64_t to_ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
inline Clock::time_point from_ns(int64_t ns) {
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}
inline double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct GenerateRequest {
  std::string prompt;                // tokenized by admission (BOS added if the model asks)...
  std::vector<int32_t> prompt_ids;   // ...unless ids are given directly
  // Tokenizing `prompt`: add the model's special tokens (BOS). False for text a chat
  // template rendered, which writes its own.
  bool add_special_tokens = true;
  SamplingParams params;
  int32_t priority = 0;              // lower value runs first (vLLM); FCFS among equals
  std::string user;                  // who asks (OpenAI's `user`): for admission policies such as quotas
  // Speculative decoding for this request when the engine has it: -1 the engine's
  // num_speculative_tokens, 0 none, n at most n drafts per step.
  int32_t num_speculative_tokens = -1;
  // The client chose max_tokens: prompt + max_tokens beyond the model length is an error
  // (vLLM's 400), not a silent cap to what is left.
  bool strict_max_tokens = false;
  // This request's latency targets in ms (0: the server's --slo-ttft-ms / --slo-tpot-ms).
  // Admission refuses targets tighter than the server allows (--slo-min-ttft-ms, ...).
  double slo_ttft_ms = 0;
  double slo_tpot_ms = 0;
  bool operator==(const GenerateRequest&) const = default;  // field by field (protocol tests)
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // served by the prefix cache
  int64_t computed_prompt_tokens = 0;  // prompt tokens run through the model (incl. recompute)
  int64_t preemptions = 0;
  // Speculative decoding (all 0 without it): verification steps that carried drafts,
  // draft tokens proposed, and how many of them the target accepted.
  int64_t spec_num_drafts = 0;
  int64_t spec_num_draft_tokens = 0;
  int64_t spec_num_accepted_tokens = 0;
  // Tokens each verification step produced on average: 1 + accepted / drafts (0: none).
  double spec_mean_accepted_length() const {
    return spec_num_drafts > 0 ? 1.0 + double(spec_num_accepted_tokens) / double(spec_num_drafts) : 0.0;
  }
  bool operator==(const Usage&) const = default;  // field by field (protocol tests)
};

struct Timings {
  double queue_ms = 0;   // arrival -> first scheduled
  double ttft_ms = 0;    // arrival -> first token
  double e2e_ms = 0;     // arrival -> finish
  double tpot_ms = 0;    // mean time per output token after the first
};

// How one request fared against its latency targets, judged by the scheduler when it ended
// normally (the same judgement as the goodput counter). Targets 0: none (not judged).
struct SloOutcome {
  double ttft_target_ms = 0;
  double tpot_target_ms = 0;
  double ttft_ms = 0;  // arrival (admission included) -> first token, as the scheduler saw it
  double tpot_ms = 0;  // mean time per output token after the first
  bool met = true;     // within every target it had
  bool judged() const { return ttft_target_ms > 0 || tpot_target_ms > 0; }
  bool operator==(const SloOutcome&) const = default;
};

// Why a request ended (OpenAI's finish_reason, plus the two ends a client did not ask for).
enum class FinishReason : uint8_t { None, Stop, Length, Cancelled, Error };
// What kind of error ended it (FinishReason::Error); the daemon maps these to HTTP statuses.
enum class ErrorKind : uint8_t { None, InvalidRequest, Overloaded, Internal };

// "stop" | "length" | "cancelled" | "error" ("" for None): the wire names of the OpenAI API.
const char* to_string(FinishReason r);
// "invalid_request" | "overloaded" | "internal" ("" for None).
const char* to_string(ErrorKind k);

// One streamed event. Token events carry new ids/text; the last event has finished = true
// and a finish_reason (with FinishReason::Error, `error` says why and error_kind what kind).
struct TokenEvent {
  int64_t request_id = 0;
  std::vector<int32_t> token_ids;
  std::vector<TokenLogprobs> logprobs;  // one per token id when params.return_logprobs
  // params.prompt_logprobs: one per prompt token (the first has no logprob: rank 0), on
  // the first event only.
  std::vector<TokenLogprobs> prompt_logprobs;
  std::string text;
  bool finished = false;
  FinishReason finish_reason = FinishReason::None;
  std::string error;
  ErrorKind error_kind = ErrorKind::None;
  Usage usage;        // filled on the final event
  Timings timings;    // filled on the final event
  SloOutcome slo;     // on the final event of a request that ended normally with targets
};

// Called from a pipeline actor's thread: must not block (post to your own thread/queue).
using TokenSink = std::function<void(const TokenEvent&)>;

}  // namespace troupe
