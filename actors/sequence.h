#pragma once
// A request inside the pipeline. The scheduler owns it; the executor only touches its
// sampler while a step that includes it is in flight (one step at a time per sequence).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/request.h"
#include "sampling/sampler.h"
#include "spec/controller.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

struct Sequence {
  Sequence(int64_t id_, GenerateRequest req_, std::vector<int32_t> prompt, TokenSink sink_,
           const Tokenizer& tok, Clock::time_point arrival_)
      : id(id_), req(std::move(req_)), tokens(std::move(prompt)), prompt_len(int64_t(tokens.size())),
        sink(std::move(sink_)), sampler(req.params, tokens), detok(tok), stops(req.params.stop),
        arrival(arrival_) {}

  int64_t id;
  GenerateRequest req;
  std::vector<int32_t> tokens;  // prompt then generated ids
  int64_t prompt_len;
  TokenSink sink;
  Sampler sampler;
  IncrementalDecoder detok;
  StopMatcher stops;

  std::vector<int32_t> eos_ids;  // end the sequence (unless params.ignore_eos)
  int64_t max_model_len = 0;     // prompt + generated may not exceed this

  int64_t num_computed = 0;     // tokens whose KV is cached
  int64_t arrival_order = 0;    // FCFS tie-break (admission order)
  bool cancelled = false;
  bool finished = false;        // final event sent (static batching: may still hold its slot)
  Usage usage;
  spec::SeqSpecState spec;      // speculative decoding: this request's K, acceptance, probes
  Clock::time_point arrival, first_scheduled{}, first_token{}, last_token{};

  int64_t num_generated() const { return int64_t(tokens.size()) - prompt_len; }
};

using SequencePtr = std::shared_ptr<Sequence>;

}  // namespace troupe
