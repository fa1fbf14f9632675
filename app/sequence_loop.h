#pragma once
// Generation of one sequence straight on a backend: prefill the prompt in one step, then
// decode token by token. This is the plain reference path (no scheduler, no batching) used
// by `troupe generate` and `troupe bench decode`; the actor pipeline produces the same
// tokens with many sequences in flight.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "actors/request.h"
#include "model/backend.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace troupe::app {

struct SequenceResult {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> token_ids;
  std::string text;
  FinishReason finish_reason = FinishReason::None;  // Stop (EOS, stop id or stop string) or Length
  double prefill_s = 0, decode_s = 0, ttft_s = 0;
  int64_t decode_steps = 0;   // forward passes after the prefill
};

// `on_text` receives streamed text (UTF-8 complete, stop strings withheld).
SequenceResult run_sequence(Backend& backend, const Tokenizer& tok,
                            std::vector<int32_t> prompt_ids, const SamplingParams& params,
                            const std::function<void(const std::string&)>& on_text = {});

}  // namespace troupe::app
