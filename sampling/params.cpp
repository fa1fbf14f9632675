// SamplingParams::validate: reject out-of-range request values up front, with a message that
// names the field, so a bad request fails at admission rather than producing garbage tokens.
#include <cmath>

#include "core/error.h"
#include "sampling/sampler.h"

namespace troupe {

namespace {

// Above this the distribution is uniform for all practical purposes; larger values are
// almost certainly a unit mistake by the client.
constexpr float kMaxTemperature = 100.0f;
// OpenAI's documented cap on top_logprobs.
constexpr int32_t kMaxLogprobs = 20;

// Written as "!(in range)" so that NaN is rejected too.
bool in_closed(float v, float lo, float hi) { return v >= lo && v <= hi; }

}  // namespace

void SamplingParams::validate() const {
  if (!in_closed(temperature, 0.0f, kMaxTemperature))
    fail("temperature must be in [0, {}], got {}", kMaxTemperature, temperature);
  if (!(top_p > 0.0f && top_p <= 1.0f)) fail("top_p must be in (0, 1], got {}", top_p);
  if (top_k < -1) fail("top_k must be -1 or 0 (disabled) or positive, got {}", top_k);
  if (!in_closed(min_p, 0.0f, 1.0f)) fail("min_p must be in [0, 1], got {}", min_p);
  if (!(repetition_penalty > 0.0f && std::isfinite(repetition_penalty)))
    fail("repetition_penalty must be > 0, got {}", repetition_penalty);
  if (!in_closed(presence_penalty, -2.0f, 2.0f))
    fail("presence_penalty must be in [-2, 2], got {}", presence_penalty);
  if (!in_closed(frequency_penalty, -2.0f, 2.0f))
    fail("frequency_penalty must be in [-2, 2], got {}", frequency_penalty);
  if (max_tokens < 1) fail("max_tokens must be >= 1, got {}", max_tokens);
  if (logprobs < 0 || logprobs > kMaxLogprobs)
    fail("logprobs must be in [0, {}], got {}", kMaxLogprobs, logprobs);
  if (prompt_logprobs < -1 || prompt_logprobs > kMaxLogprobs)
    fail("prompt_logprobs must be in [0, {}], got {}", kMaxLogprobs, prompt_logprobs);
  for (const TokenBias& b : logit_bias) {
    if (b.id < 0) fail("logit_bias token ids must be non-negative, got {}", b.id);
    if (!in_closed(b.bias, -100.0f, 100.0f)) fail("logit_bias values must be in [-100, 100], got {}", b.bias);
  }
  if (min_tokens < 0 || min_tokens > max_tokens)
    fail("min_tokens must be in [0, max_tokens = {}], got {}", max_tokens, min_tokens);
  for (size_t i = 0; i < stop_token_ids.size(); ++i) {
    if (stop_token_ids[i] < 0)
      fail("stop_token_ids must be non-negative, got {} at index {}", stop_token_ids[i], i);
  }
  for (size_t i = 0; i < stop.size(); ++i) {
    if (stop[i].empty()) fail("stop strings must be non-empty, stop[{}] is empty", i);
  }
  if (!constraint.empty()) grammar::compile(constraint);  // cached; throws naming the problem
}

}  // namespace troupe
