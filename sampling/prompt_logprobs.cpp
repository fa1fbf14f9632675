// prompt_token_logprobs: one prompt position's entry for vLLM's prompt_logprobs. It reads
// the logits as they are: a prompt token was not sampled, so no penalty or temperature
// applies to it (vLLM reports the raw log-softmax too).
#include "core/error.h"
#include "sampling/distribution.h"
#include "sampling/sampler.h"

namespace troupe {

namespace sd = sampling_detail;

TokenLogprobs prompt_token_logprobs(std::span<const float> logits, int32_t target, int32_t n) {
  if (target < 0 || size_t(target) >= logits.size())
    fail("prompt token {} is outside the vocabulary ({} ids)", target, logits.size());
  const sd::PeakLse peak = sd::find_peak_lse(logits);  // validates (NaN, +inf)
  const float x = logits[size_t(target)];
  TokenLogprobs r;
  r.token = target;
  r.logprob = static_cast<float>(double(x) - peak.lse);
  // vLLM's rank: 1 + the tokens strictly more likely.
  int32_t above = 0;
  for (float v : logits) above += v > x;
  r.rank = above + 1;
  if (n > 0) {
    std::vector<int32_t> top;
    sd::top_ids(logits, size_t(n), top);
    r.top.reserve(top.size());
    for (int32_t id : top) r.top.push_back({id, static_cast<float>(double(logits[size_t(id)]) - peak.lse)});
  }
  return r;
}

}  // namespace troupe
