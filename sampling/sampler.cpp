// Sampler: per-request penalties, counter-based randomness, and the sample/accept cycle.
// The numeric work lives in distribution.cpp; this file decides what runs when.
#include "sampling/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <utility>

#include "core/error.h"
#include "sampling/distribution.h"

namespace troupe {

namespace sd = sampling_detail;

namespace {

// Token ids beyond this are a caller bug (the largest real vocabularies are ~256k); refusing
// them keeps a stray id from growing the seen-token bitmap to gigabytes.
constexpr int32_t kMaxTokenId = (1 << 24) - 1;

// Per-thread buffers reused across calls: a 152k vocabulary means ~600 KB per buffer, which
// should neither be allocated per token nor kept per request (hundreds may be in flight).
struct Scratch {
  std::vector<float> logits;  // penalised copy, or the allowed logits of a small mask
  std::vector<int32_t> ids;   // ...and their ids
  sd::Distribution dist;
  std::vector<int32_t> top;
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// splitmix64's finaliser: a bijection on 64 bits with full avalanche, so chaining it over
// (seed, step, stream) gives independent-looking streams for every combination.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void check_token_id(int32_t id, const char* what) {
  if (id < 0 || id > kMaxTokenId) fail("sampler: {} token id {} is out of range", what, id);
}

// Marks id in `seen` and, the first time, appends it to `ids` (each id once, so the
// penalty visits the seen ids alone rather than the whole vocabulary).
void mark_seen(std::vector<uint8_t>& seen, std::vector<int32_t>& ids, int32_t id) {
  // Grown lazily to the largest id seen: the vocabulary size is only known from the logits.
  if (static_cast<size_t>(id) >= seen.size()) seen.resize(static_cast<size_t>(id) + 1, 0);
  if (seen[static_cast<size_t>(id)]) return;
  seen[static_cast<size_t>(id)] = 1;
  ids.push_back(id);
}

}  // namespace

Sampler::Sampler(SamplingParams params, std::span<const int32_t> prompt_ids,
                 std::shared_ptr<const grammar::TokenTable> vocab)
    : params_(std::move(params)) {
  params_.validate();
  if (!params_.constraint.empty()) {
    if (!vocab) fail("sampler: a constrained request needs the model's vocabulary");
    masker_ = grammar::masker(params_.constraint, vocab);
    matcher_.emplace(masker_->grammar());
  }
  if (params_.seed) {
    seed_ = *params_.seed;
  } else {
    std::random_device rd;
    seed_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  if (params_.repetition_penalty != 1.0f) {
    // Only the repetition penalty looks at the prompt; skip the bitmap otherwise.
    for (int32_t id : prompt_ids) {
      check_token_id(id, "prompt");
      mark_seen(seen_, seen_ids_, id);
    }
  }
}

double Sampler::uniform(int64_t step, uint64_t stream) const {
  uint64_t h = mix64(seed_ + 0x9e3779b97f4a7c15ull);
  h = mix64(h ^ (static_cast<uint64_t>(step) * 0xd1b54a32d192ed03ull + 0x8bb84b93962eacc9ull));
  h = mix64(h ^ (stream * 0xaef17502108ef2d9ull + 0x4b5d5e5a2c1f3a77ull));
  return static_cast<double>(h >> 11) * 0x1.0p-53;  // 53 bits: every double in [0, 1) grid
}

void Sampler::apply_penalties(std::span<float> logits) const {
  const size_t vocab = logits.size();
  const float rep = params_.repetition_penalty;
  if (rep != 1.0f) {
    // HF/vLLM: shrink the logit toward "less likely" whatever its sign.
    for (int32_t id : seen_ids_) {
      const size_t i = static_cast<size_t>(id);
      if (i < vocab) logits[i] = logits[i] > 0.0f ? logits[i] / rep : logits[i] * rep;
    }
  }
  const float presence = params_.presence_penalty;
  const float frequency = params_.frequency_penalty;
  if (presence != 0.0f || frequency != 0.0f) {
    // OpenAI: generated tokens only; counts are > 0 for every entry.
    for (const auto& [id, count] : generated_counts_) {
      if (static_cast<size_t>(id) < vocab)
        logits[static_cast<size_t>(id)] -= presence + frequency * static_cast<float>(count);
    }
  }
  for (const TokenBias& b : params_.logit_bias)
    if (static_cast<size_t>(b.id) < vocab) logits[static_cast<size_t>(b.id)] += b.bias;
  if (step_ < params_.min_tokens) {
    for (int32_t id : params_.min_tokens_stop_ids)
      if (static_cast<size_t>(id) < vocab) logits[static_cast<size_t>(id)] = -INFINITY;
  }
  if (masker_) {
    prepare_mask();
    const size_t n = std::min(vocab, static_cast<size_t>(masker_->table().vocab_size()));
    mask_.apply_to(logits.first(n));
    for (size_t i = n; i < vocab; ++i) logits[i] = -INFINITY;  // padding rows past the tokenizer
  }
}

void Sampler::prepare_mask() const {
  if (!masker_ || mask_step_ == step_) return;
  masker_->fill(*matcher_, mask_, params_.stop_token_ids);
  mask_step_ = step_;
}

bool Sampler::small_mask_only(size_t n) const {
  if (!masker_) return false;
  if (params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f ||
      !params_.logit_bias.empty() || step_ < params_.min_tokens)
    return false;
  prepare_mask();
  // Past this many allowed tokens the vectorised full-row pass is as cheap as the bit walk.
  const size_t words = std::min(mask_.num_words(), (n + 63) / 64);
  size_t allowed = 0;
  for (size_t w = 0; w < words; ++w) allowed += size_t(std::popcount(mask_.word(w)));
  return allowed > 0 && allowed <= n / 16;
}

template <class Visit>
bool Sampler::for_each_allowed(std::span<const float> logits, size_t n, Visit&& visit) const {
  const size_t words = std::min(mask_.num_words(), (n + 63) / 64);
  // Ids ascend, so ties and draws see the allowed ids in the full row's order.
  for (size_t w = 0; w < words; ++w)
    for (uint64_t bits = mask_.word(w); bits; bits &= bits - 1) {
      const size_t i = w * 64 + size_t(std::countr_zero(bits));
      if (i >= n) break;
      const float v = logits[i];
      if (!(v <= INFINITY) || v == INFINITY) return false;  // NaN or +inf: the full path rejects it
      visit(i, v);
    }
  return true;
}

bool Sampler::sample_greedy_in_mask(std::span<const float> logits, SampleResult& r) const {
  if (!sd::effectively_greedy(params_) || params_.logprobs > 0) return false;
  const size_t n = masker_ ? std::min(logits.size(), static_cast<size_t>(masker_->table().vocab_size())) : 0;
  if (!small_mask_only(n)) return false;
  // The first id reaching the max is the lowest, as in the full path.
  float max = -INFINITY;
  int32_t best = -1;
  if (!for_each_allowed(logits, n, [&](size_t i, float v) {
        if (v > max) max = v, best = int32_t(i);
      }))
    return false;
  if (best < 0) return false;  // every allowed logit -inf: let the full path report it
  r.token = best;
  r.logprob = std::numeric_limits<float>::quiet_NaN();
  if (!wants_logprob()) return true;
  double s = 0.0;
  for_each_allowed(logits, n, [&](size_t, float v) { s += std::exp(static_cast<double>(v) - max); });
  r.logprob = static_cast<float>(-std::log(s));  // x[best] - (max + log s), with x[best] == max
  return true;
}

bool Sampler::sample_in_mask(std::span<const float> logits, SampleResult& r) const {
  if (sd::effectively_greedy(params_)) return false;
  const size_t n = masker_ ? std::min(logits.size(), static_cast<size_t>(masker_->table().vocab_size())) : 0;
  if (!small_mask_only(n)) return false;
  Scratch& s = scratch();
  s.logits.clear();
  s.ids.clear();
  float max = -INFINITY;
  if (!for_each_allowed(logits, n, [&](size_t i, float v) {
        max = std::max(max, v);
        s.logits.push_back(v);
        s.ids.push_back(int32_t(i));
      }))
    return false;
  if (!(max > -INFINITY)) return false;  // every allowed logit -inf: let the full path report it
  // A masked id has weight 0 in the full row, so the distribution is the same; ids ascend,
  // so ties and the draw's order are too. Only the sums are grouped differently: a draw
  // within rounding of a boundary may pick the neighbour.
  const std::span<const float> x = s.logits;
  const double raw = sd::build_distribution(x, params_, max, s.dist, wants_logprob());
  const int32_t k = sd::draw(s.dist, uniform(step_, 0));
  r.token = s.ids[size_t(k)];
  r.logprob = std::numeric_limits<float>::quiet_NaN();
  if (!wants_logprob()) return true;
  const double lse = max + std::log(raw);
  r.logprob = static_cast<float>(x[size_t(k)] - lse);
  if (params_.logprobs > 0) {
    sd::top_ids(x, static_cast<size_t>(params_.logprobs), s.top);
    r.top.reserve(s.top.size());
    for (int32_t j : s.top) r.top.push_back({s.ids[size_t(j)], static_cast<float>(x[size_t(j)] - lse)});
  }
  return true;
}

void Sampler::probabilities(std::span<const float> logits, std::vector<float>& probs) const {
  if (sd::effectively_greedy(params_)) {
    probs.assign(logits.size(), 0.0f);
    probs[static_cast<size_t>(sd::find_peak(logits))] = 1.0f;
    return;
  }
  Scratch& s = scratch();
  sd::build_distribution(logits, params_, sd::checked_max(logits), s.dist, false);
  sd::to_probs(s.dist, logits.size(), probs);
}

SampleResult Sampler::sample(std::span<const float> logits) {
  if (SampleResult fast; sample_greedy_in_mask(logits, fast) || sample_in_mask(logits, fast)) return fast;
  Scratch& s = scratch();
  std::span<const float> x = logits;
  const bool repetition = params_.repetition_penalty != 1.0f && !seen_.empty();
  const bool additive = (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) &&
                        !generated_counts_.empty();
  const bool biased = !params_.logit_bias.empty() || step_ < params_.min_tokens || masker_;
  if (repetition || additive || biased) {
    s.logits.assign(logits.begin(), logits.end());
    apply_penalties(s.logits);
    x = s.logits;
  }

  SampleResult r;
  // Where nobody reads the logprob, the raw normaliser (a pass of exponentials over the
  // vocabulary) is skipped: greedy takes the argmax alone, sampling builds the truncated
  // distribution only (timings: test_sampling "[.bench]", docs/benchmarks.md session 29).
  const bool logprob = wants_logprob();
  double lse;
  if (sd::effectively_greedy(params_) && !logprob) {
    r.token = sd::find_peak(x);
    r.logprob = std::numeric_limits<float>::quiet_NaN();
    return r;
  }
  if (sd::effectively_greedy(params_)) {
    const sd::PeakLse peak = sd::find_peak_lse(x);  // one pass, no probabilities materialised
    r.token = peak.id;
    lse = peak.lse;
  } else {
    const float max = sd::checked_max(x);
    const double raw = sd::build_distribution(x, params_, max, s.dist, logprob);
    r.token = sd::draw(s.dist, uniform(step_, 0));
    if (!logprob) {
      r.logprob = std::numeric_limits<float>::quiet_NaN();
      return r;
    }
    lse = max + std::log(raw);
  }
  // Reported logprobs are the raw (penalised, temperature-1) log-softmax, as OpenAI reports.
  r.logprob = static_cast<float>(x[static_cast<size_t>(r.token)] - lse);
  if (params_.logprobs > 0) {
    sd::top_ids(x, static_cast<size_t>(params_.logprobs), s.top);
    r.top.reserve(s.top.size());
    for (int32_t id : s.top)
      r.top.push_back({id, static_cast<float>(x[static_cast<size_t>(id)] - lse)});
  }
  return r;
}

void Sampler::accept(int32_t token) {
  check_token_id(token, "accepted");
  ++generated_counts_[token];
  if (params_.repetition_penalty != 1.0f) mark_seen(seen_, seen_ids_, token);
  // End tokens carry no text; a token the grammar rejects (only a caller forcing one in)
  // leaves the state where it was rather than poisoning it.
  if (matcher_) matcher_->accept(masker_->table().token_bytes(token));
  ++step_;
}

bool is_stop_token(const SamplingParams& params, std::span<const int32_t> eos_ids, int32_t token) {
  const auto has = [token](auto&& ids) { return std::find(ids.begin(), ids.end(), token) != ids.end(); };
  return (!params.ignore_eos && has(eos_ids)) || has(params.stop_token_ids);
}

}  // namespace troupe
