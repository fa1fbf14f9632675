#pragma once
// Turning logits into the next token: penalties, temperature, top-k, top-p, min-p, seeded
// randomness, top-n logprobs, and stop conditions. Everything is per request.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "grammar/constraint.h"

namespace troupe {

// OpenAI's logit_bias entry: added to the token's logit before sampling.
struct TokenBias {
  int32_t id = -1;
  float bias = 0.0f;  // [-100, 100]
  bool operator==(const TokenBias&) const = default;
};

struct SamplingParams {
  float temperature = 1.0f;        // 0 = greedy
  int32_t top_k = 0;               // 0 or <0: disabled
  float top_p = 1.0f;              // 1: disabled
  float min_p = 0.0f;              // 0: disabled
  float repetition_penalty = 1.0f; // HF/vLLM semantics: logits of seen tokens /= p (or *= p if < 0)
  float presence_penalty = 0.0f;   // OpenAI semantics, over generated tokens
  float frequency_penalty = 0.0f;
  std::optional<uint64_t> seed;    // same seed -> same output
  int32_t max_tokens = 16;
  std::vector<int32_t> stop_token_ids;
  std::vector<std::string> stop;   // stop strings (not included in the output)
  bool ignore_eos = false;
  int32_t logprobs = 0;            // top-n logprobs per generated token (0 = none)
  bool return_logprobs = false;    // report each generated token's logprob (and the top-n)
  // vLLM's prompt_logprobs: -1 none; N >= 0: each prompt token's logprob given the tokens
  // before it (the first has none), its rank and the top N, from the raw log-softmax.
  int32_t prompt_logprobs = -1;
  std::vector<TokenBias> logit_bias;
  // vLLM's min_tokens: before this many tokens, none of `min_tokens_stop_ids` (the model's
  // end-of-sequence ids unless ignore_eos, and stop_token_ids: admission fills them in)
  // can be sampled.
  int32_t min_tokens = 0;
  std::vector<int32_t> min_tokens_stop_ids;
  // Structured output: the text must follow this grammar (JSON schema, regex, choices,
  // GBNF). Tokens it forbids are masked out before any other transform; EOS (and the
  // stop_token_ids) only where the grammar may end.
  grammar::ConstraintSpec constraint;

  bool greedy() const { return temperature <= 0.0f; }
  // Throws troupe::Error with a message naming the field if a value is out of range.
  void validate() const;
  bool operator==(const SamplingParams&) const = default;  // field by field (protocol tests)
};

struct TokenLogprob {
  int32_t id = -1;
  float logprob = 0.0f;
  bool operator==(const TokenLogprob&) const = default;
};

// What a client that asked for logprobs gets for one generated token (SampleResult's view).
struct TokenLogprobs {
  int32_t token = -1;
  float logprob = 0.0f;
  std::vector<TokenLogprob> top;  // params.logprobs entries, most likely first
  int32_t rank = 0;               // 1 + tokens more likely than `token` (prompt logprobs; 0: not computed)
  bool operator==(const TokenLogprobs&) const = default;
};

struct SampleResult {
  int32_t token = -1;
  float logprob = 0.0f;                 // of the chosen token under the raw (penalised,
                                        // temperature-1) log-softmax, as OpenAI reports it;
                                        // NaN for a request that asked for no logprobs
                                        // (not computed)
  std::vector<TokenLogprob> top;        // top-n (if params.logprobs > 0), from raw log-softmax
};

// Per-request sampling state. Randomness is counter-based: the uniform draw for generated
// token number `step` is a pure function of (seed, step), so a request reproduces exactly
// whatever batch it runs in (and speculative decoding can re-derive draws).
class Sampler {
 public:
  // `vocab` (the model's token bytes) is needed when params.constraint is set.
  Sampler(SamplingParams params, std::span<const int32_t> prompt_ids,
          std::shared_ptr<const grammar::TokenTable> vocab = nullptr);
  const SamplingParams& params() const { return params_; }

  // Applies penalties and the sampling transforms to a copy of `logits` and picks a token.
  SampleResult sample(std::span<const float> logits);
  // Records an accepted token (updates penalty counts, advances the step counter and the
  // grammar state).
  void accept(int32_t token);
  bool constrained() const { return masker_ != nullptr; }
  // Computes the grammar's mask for the current step now (constrained samplers only; a
  // no-op when it is already there). The mask depends only on the tokens accepted so far,
  // so the executor calls this on another thread while the step's forward pass runs; the
  // caller must not touch the sampler from elsewhere until it returns.
  void prepare_mask() const;
  bool mask_ready() const { return !masker_ || mask_step_ == step_; }
  // The grammar state (constrained samplers only): tests and tool-call parsing read it.
  const grammar::Matcher* grammar_state() const { return matcher_ ? &*matcher_ : nullptr; }
  int32_t num_generated() const { return step_; }

  // Building blocks (public for speculative decoding and tests):
  // penalties in place (uses prompt+generated for repetition, generated for presence/frequency),
  // then logit_bias, then min_tokens' ban on stop ids, then the grammar's mask (-inf for
  // every token the constraint forbids here)
  void apply_penalties(std::span<float> logits) const;
  // probs over the vocabulary after temperature/top-k/top-p/min-p (zeros outside the kept set)
  void probabilities(std::span<const float> logits, std::vector<float>& probs) const;
  double uniform(int64_t step, uint64_t stream = 0) const;  // in [0, 1)

 private:
  // Whether the request reads the chosen token's logprob (return_logprobs or top-n): else
  // sample() skips the normaliser and reports NaN.
  bool wants_logprob() const { return params_.return_logprobs || params_.logprobs > 0; }
  // Greedy over a small allowed set: the peak and log-sum-exp over the mask's set bits
  // only, without copying or masking the whole row. False when it does not apply (other
  // transforms, logprobs, a large allowed set, or values the full path must reject).
  bool sample_greedy_in_mask(std::span<const float> logits, SampleResult& r) const;
  // Sampling (temperature, top-k/p, min-p, logprobs) over a small allowed set: the
  // distribution is built over the allowed logits alone, gathered in id order, instead of
  // over a copy of the whole row that is -inf everywhere else. False when it does not apply.
  bool sample_in_mask(std::span<const float> logits, SampleResult& r) const;
  // Whether the mask alone decides which tokens count (no penalty or bias rewrites the
  // row) and allows at most 1/16 of the `n` ids: then the fast paths above apply.
  bool small_mask_only(size_t n) const;
  // Calls visit(id, logit) for every allowed id below n, in id order; false (having
  // stopped) at a NaN or +inf logit, which the full path must reject.
  template <class Visit>
  bool for_each_allowed(std::span<const float> logits, size_t n, Visit&& visit) const;

  SamplingParams params_;
  uint64_t seed_;
  int32_t step_ = 0;
  std::unordered_map<int32_t, int32_t> generated_counts_;
  std::vector<uint8_t> seen_;           // prompt or generated (repetition penalty)
  std::vector<int32_t> seen_ids_;       // the ids set in seen_, each once
  // Structured output: the shared compiled grammar + mask cache, this sequence's state, and
  // the mask for the current step (computed once per step, however often it is applied).
  std::shared_ptr<const grammar::TokenMasker> masker_;
  std::optional<grammar::Matcher> matcher_;
  mutable grammar::TokenBitmask mask_;
  mutable int32_t mask_step_ = -1;
};

// A prompt token's entry (params.prompt_logprobs): `target`'s logprob and rank under the raw
// log-softmax of `logits` (no penalties, temperature 1, as vLLM reports), and the top n.
TokenLogprobs prompt_token_logprobs(std::span<const float> logits, int32_t target, int32_t n);

// Whether `token` ends generation on its own: an end-of-sequence id of the model (unless
// params.ignore_eos) or one of params.stop_token_ids. The token is not part of the output.
bool is_stop_token(const SamplingParams& params, std::span<const int32_t> eos_ids, int32_t token);

// Finds stop strings in streamed text. Text that might be the start of a stop string is
// held back until it is known not to be one.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  // Feed new text; returns the part safe to emit. Sets stopped() when a stop string
  // appears (the emitted text ends right before it).
  std::string push(std::string_view text);
  std::string flush();  // the held-back tail at the end of generation
  bool stopped() const { return stopped_; }
  const std::string& matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace troupe
