// The truncated sampling distribution: top-k, top-p and min-p over a ~152k vocabulary
// without sorting it. Top-k selects with a heap or nth_element; top-p buckets the weights and
// sorts only the bucket where the nucleus ends; temperature and min-p need no order at all.
#include "sampling/distribution.h"

#include <algorithm>
#include <array>
#include <bit>
#include <limits>

#include "core/error.h"
#include "sampling/kernels.h"

namespace troupe::sampling_detail {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// top_p arrives as a decimal that floats cannot represent exactly (0.8f vs the 0.5 + 0.3 that a
// user means), so the cumulative mass may fall a hair short of it; this slack keeps such a
// boundary token out instead of pulling in one more.
constexpr double kTopPSlack = 1e-6;

// Heap selection costs ~V comparisons plus O(n log n) for the few that beat the heap's worst;
// above this n, nth_element's O(V) with a larger constant wins.
constexpr size_t kHeapSelectMax = 256;

// Top-p buckets: a weight w <= 1 is keyed by its float bits counted down from 1.0, keeping 3
// mantissa bits: 8 buckets per halving of the weight. A larger weight never gets a larger
// key, so buckets are ordered like weights. Weights >= 2^-24 get a bucket of their own; the
// rest (together < 1% of the top weight even for 152k tokens, so only a top_p above ~0.99
// reaches them) and zeros share the last one.
constexpr uint32_t kTracked = 24 * 8;
constexpr uint32_t kOne = 0x3F800000u;  // bits of 1.0f
uint32_t bucket_of(float w) {
  return std::min((kOne - std::bit_cast<uint32_t>(w)) >> 20, kTracked);
}

// Mass per bucket. Four interleaved histograms so that consecutive weights landing in the
// same bucket do not form one long load-add-store chain; branch-free (zeros add nothing).
void bucket_masses(const std::vector<float>& w, std::array<double, kTracked + 1>& mass) {
  std::array<std::array<double, kTracked + 1>, 4> part{};
  size_t i = 0;
  for (; i + 4 <= w.size(); i += 4) {
    for (size_t j = 0; j < 4; ++j) part[j][bucket_of(w[i + j])] += w[i + j];
  }
  for (; i < w.size(); ++i) part[0][bucket_of(w[i])] += w[i];
  for (uint32_t k = 0; k <= kTracked; ++k)
    mass[k] = part[0][k] + part[1][k] + part[2][k] + part[3][k];
}

// Descending by logit, ties to the lower id: the order every truncation uses, which makes
// the kept set deterministic when logits tie at a boundary.
struct Better {
  const float* x;
  bool operator()(int32_t a, int32_t b) const { return x[a] > x[b] || (x[a] == x[b] && a < b); }
};

// Slow path after a vectorised scan found something wrong: say exactly what.
[[noreturn]] void reject_logits(std::span<const float> x) {
  if (x.empty()) fail("sampling: empty logits");
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(x[i] < kInf))
      fail("sampling: logit of token {} is {} (the model output is broken)", i, x[i]);
  }
  fail("sampling: every logit is -inf, nothing can be sampled");
}

// Keeps the shortest prefix of the descending candidates that reaches top_p of
// `nucleus_total`, then drops those below min_p times the top weight; recomputes total.
void truncate_sorted(Distribution& d, const SamplingParams& p, double nucleus_total) {
  size_t n = d.ids.size();
  if (p.top_p < 1.0f) {
    const double target = (static_cast<double>(p.top_p) - kTopPSlack) * nucleus_total;
    double cum = 0.0;
    for (size_t j = 0; j < n; ++j) {
      cum += d.weights[j];
      if (cum >= target) {
        n = j + 1;
        break;
      }
    }
  }
  if (p.min_p > 0.0f) {
    // min-p is relative to the most likely token (weight 1), so renormalising is irrelevant.
    for (size_t j = 1; j < n; ++j) {
      if (d.weights[j] < p.min_p) {
        n = j;
        break;
      }
    }
  }
  d.ids.resize(n);
  d.weights.resize(n);
  d.total = 0.0;
  for (float w : d.weights) d.total += w;
}

// Top-p (and min-p) over dense weights. Bucket masses locate the bucket where the nucleus
// ends; every token in a bucket above it is kept as is, in id order, and only that bucket is
// sorted to find the exact boundary. Real distributions end the nucleus in a bucket of a
// few dozen tokens, and even a flat one costs a sort of one bucket, not of the vocabulary.
void nucleus_from_dense(std::span<const float> x, const SamplingParams& p, Distribution& d,
                        double total) {
  const std::vector<float>& w = d.vocab_weights;
  std::array<double, kTracked + 1> mass;
  bucket_masses(w, mass);
  const double target = (static_cast<double>(p.top_p) - kTopPSlack) * total;
  uint32_t cross = kTracked;  // the shared last bucket, unless the nucleus ends earlier
  double above = 0.0;         // mass of the buckets before `cross`
  for (uint32_t k = 0; k < kTracked; ++k) {
    if (above + mass[k] >= target) {
      cross = k;
      break;
    }
    above += mass[k];
  }

  // Weights in buckets up to `cross` are exactly those whose bits exceed `lowest_bits`, so
  // the common case (a tiny weight far below the nucleus) costs one predictable compare.
  const uint32_t lowest_bits = cross < kTracked ? kOne - ((cross + 1) << 20) : 0;
  const float floor = p.min_p;  // min-p cuts below min_p * 1 (the top weight)
  d.ids.clear();
  d.weights.clear();
  d.boundary.clear();
  for (size_t i = 0; i < w.size(); ++i) {
    if (std::bit_cast<uint32_t>(w[i]) <= lowest_bits || w[i] < floor) continue;
    if (bucket_of(w[i]) < cross) {
      d.ids.push_back(static_cast<int32_t>(i));
      d.weights.push_back(w[i]);
    } else {
      d.boundary.push_back(static_cast<int32_t>(i));
    }
  }
  std::sort(d.boundary.begin(), d.boundary.end(), Better{x.data()});
  double cum = above;
  for (int32_t id : d.boundary) {
    if (cum >= target && !d.ids.empty()) break;  // at least one token even for tiny top_p
    d.ids.push_back(id);
    d.weights.push_back(w[id]);
    cum += w[id];
  }
  d.dense = false;
  d.total = 0.0;
  for (float v : d.weights) d.total += v;
}

}  // namespace

float checked_max(std::span<const float> x) {
  const MaxScan s = scan_max(x);
  if (s.invalid || !(s.max > -kInf)) reject_logits(x);
  return s.max;
}

namespace {

// One pass over memory: the argmax (lowest id among ties) and, with kLse, log(sum(exp(x)))
// as a blockwise online log-sum-exp (when a block raises the max, the running sum is
// rescaled; each block is scanned twice while it sits in L1). Validates like checked_max.
template <bool kLse>
PeakLse peak_scan(std::span<const float> x) {
  float max = -kInf;
  size_t max_block = 0;
  double s = 0.0;
  for (size_t b = 0; b < x.size(); b += kBlock) {
    const std::span<const float> block = x.subspan(b, std::min(kBlock, x.size() - b));
    const MaxScan m = scan_max(block);
    if (m.invalid) reject_logits(x);
    if (m.max > max) {
      if constexpr (kLse) s = max > -kInf ? s * std::exp(static_cast<double>(max) - m.max) : 0.0;
      max = m.max;
      max_block = b;
    }
    if constexpr (kLse)
      if (max > -kInf) s += sum_exp(block, max);
  }
  if (!(max > -kInf)) reject_logits(x);
  // The first block that reached the final max holds its lowest id.
  const int32_t id = static_cast<int32_t>(max_block) + first_index_of(x.subspan(max_block), max);
  return {max, id, kLse ? max + std::log(s) : std::numeric_limits<double>::quiet_NaN()};
}

}  // namespace

int32_t find_peak(std::span<const float> x) { return peak_scan<false>(x).id; }

PeakLse find_peak_lse(std::span<const float> x) { return peak_scan<true>(x); }

void top_ids(std::span<const float> x, size_t n, std::vector<int32_t>& out) {
  out.clear();
  if (n == 0) return;
  const Better better{x.data()};
  if (n <= kHeapSelectMax) {
    // Bounded heap whose front is the worst id kept so far. Ids arrive in increasing order,
    // so an equal logit never displaces a kept one: ties resolve to the lower id.
    out.reserve(n);
    for (size_t i = 0; i < x.size(); ++i) {
      const float v = x[i];
      if (!(v > -kInf)) continue;
      if (out.size() < n) {
        out.push_back(static_cast<int32_t>(i));
        std::push_heap(out.begin(), out.end(), better);
      } else if (v > x[out.front()]) {
        std::pop_heap(out.begin(), out.end(), better);
        out.back() = static_cast<int32_t>(i);
        std::push_heap(out.begin(), out.end(), better);
      }
    }
  } else {
    for (size_t i = 0; i < x.size(); ++i) {
      if (x[i] > -kInf) out.push_back(static_cast<int32_t>(i));
    }
    if (out.size() > n) {
      std::nth_element(out.begin(), out.begin() + static_cast<ptrdiff_t>(n), out.end(), better);
      out.resize(n);
    }
  }
  std::sort(out.begin(), out.end(), better);
}

double build_distribution(std::span<const float> x, const SamplingParams& p, float max,
                          Distribution& d, bool want_raw_sum) {
  const size_t vocab = x.size();
  const float inv_t = 1.0f / p.temperature;  // finite: see effectively_greedy
  double raw = 0.0;

  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < vocab) {
    // Top-k: only k weights are needed; top-p then applies to the top-k renormalised
    // distribution (vLLM's order), i.e. relative to the top-k mass.
    top_ids(x, static_cast<size_t>(p.top_k), d.ids);
    d.dense = false;
    d.weights.resize(d.ids.size());
    double kept = 0.0;
    for (size_t j = 0; j < d.ids.size(); ++j) {
      d.weights[j] = exp_nonpositive((x[d.ids[j]] - max) * inv_t);
      kept += d.weights[j];
    }
    if (want_raw_sum) raw = sum_exp(x, max);
    truncate_sorted(d, p, kept);
    return raw;
  }

  d.vocab_weights.resize(vocab);
  const bool separate_raw = want_raw_sum && inv_t != 1.0f;
  double total =
      exp_weights(x, max, inv_t, d.vocab_weights, d.block_totals, separate_raw ? &raw : nullptr);
  if (want_raw_sum && !separate_raw) raw = total;  // temperature 1: the weights are the raw terms

  if (p.top_p < 1.0f) {
    nucleus_from_dense(x, p, d, total);
    return raw;
  }
  if (p.min_p > 0.0f) total = drop_below(d.vocab_weights, p.min_p, d.block_totals);
  d.dense = true;
  d.total = total;
  return raw;
}

int32_t draw(const Distribution& d, double u) {
  const double target = u * d.total;
  double cum = 0.0;
  if (!d.dense) {
    int32_t last = -1;
    for (size_t j = 0; j < d.ids.size(); ++j) {
      if (d.weights[j] > 0.0f) {  // a kept weight can underflow to 0 at low temperature
        cum += d.weights[j];
        last = d.ids[j];
        if (cum > target) return last;
      }
    }
    return last;  // only when u * total rounds up to total
  }
  const std::vector<float>& w = d.vocab_weights;
  for (size_t k = 0; k < d.block_totals.size(); ++k) {
    if (cum + d.block_totals[k] > target) {
      // The draw lands in this block: walk it.
      const size_t end = std::min(w.size(), (k + 1) * kBlock);
      int32_t last = -1;
      for (size_t i = k * kBlock; i < end; ++i) {
        if (w[i] > 0.0f) {
          cum += w[i];
          last = static_cast<int32_t>(i);
          if (cum > target) return last;
        }
      }
      return last;  // rounding between the block total and the walk: the block's last token
    }
    cum += d.block_totals[k];
  }
  for (size_t i = w.size(); i-- > 0;) {  // u * total rounded up to total
    if (w[i] > 0.0f) return static_cast<int32_t>(i);
  }
  return -1;  // unreachable: the top token has weight 1
}

void to_probs(const Distribution& d, size_t vocab, std::vector<float>& probs) {
  probs.assign(vocab, 0.0f);
  const double inv = 1.0 / d.total;
  if (d.dense) {
    for (size_t i = 0; i < vocab; ++i) probs[i] = static_cast<float>(d.vocab_weights[i] * inv);
  } else {
    for (size_t j = 0; j < d.ids.size(); ++j)
      probs[d.ids[j]] = static_cast<float>(d.weights[j] * inv);
  }
}

}  // namespace troupe::sampling_detail
