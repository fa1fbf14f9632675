// Whole-vocabulary loops. Most are shaped for GCC's auto-vectoriser: 8 independent lanes per
// reduction (a single accumulator is a serial dependency chain), branch-free bodies, and
// work in L1-sized blocks; scan_max uses vector extensions (below). Sums are kept in double
// so that the totals used to normalise and the running sums used to draw agree far below
// float resolution.
#include "sampling/kernels.h"

#include <algorithm>
#include <cstring>
#include <limits>

// Each exported loop is built three times, for x86-64-v4 (AVX-512), v3 (AVX2) and the
// baseline, and the loader picks the one this CPU runs (GCC function multiversioning).
// Built for the baseline alone, the loops ran 2-4 lanes wide: greedy sampling of a 32k
// vocabulary took ~42 us a token, ~4% of a batch-1 decode step of a 110M Q4_0 model on
// the Zen 5 host; with the clones ~10 us (docs/benchmarks.md, session 29). The file is
// built with -ffp-contract=off, so no clone fuses a multiply and an add: every clone does
// the same float operations in the same order, and sampling gives the same bits (and a
// seeded request the same tokens) on any x86-64 CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TROUPE_VOCAB_LOOP __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TROUPE_VOCAB_LOOP
#endif

namespace troupe::sampling_detail {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr size_t kLanes = 8;

// Sum of a block of floats, in double, with independent lanes.
double sum_block(const float* w, size_t n) {
  double lane[kLanes] = {};
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) lane[j] += w[i + j];
  }
  double s = 0.0;
  for (; i < n; ++i) s += w[i];
  for (double v : lane) s += v;
  return s;
}

void exp_block(const float* x, float* out, size_t n, float max, float inv_t) {
  for (size_t i = 0; i < n; ++i) out[i] = exp_nonpositive((x[i] - max) * inv_t);
}

}  // namespace

TROUPE_VOCAB_LOOP
MaxScan scan_max(std::span<const float> x) {
  // Vector extensions, not the auto-vectoriser: GCC left a max over a lane array as scalar
  // maxss instructions (5.9 us for 32k logits against 1.0 us), and cannot put a float max
  // and an int flag reduction in one loop. The max is exact, so the lane count is free.
  using VF = float __attribute__((vector_size(64)));
  using VI = int32_t __attribute__((vector_size(64)));
  constexpr size_t kW = sizeof(VF) / sizeof(float);
  const float* p = x.data();
  const size_t n = x.size();
  VF m = VF{} - kInf;
  VI bad = VI{};
  size_t i = 0;
  for (; i + kW <= n; i += kW) {
    VF v;
    std::memcpy(&v, p + i, sizeof v);
    m = v > m ? v : m;  // NaN never wins
    bad |= ~(v < kInf);  // NaN or +inf
  }
  MaxScan r{-kInf, false};
  for (; i < n; ++i) {
    r.max = p[i] > r.max ? p[i] : r.max;
    r.invalid |= !(p[i] < kInf);
  }
  for (size_t j = 0; j < kW; ++j) {
    r.max = m[j] > r.max ? m[j] : r.max;
    r.invalid |= bad[j] != 0;
  }
  return r;
}

int32_t first_index_of(std::span<const float> x, float v) {
  const auto it = std::find(x.begin(), x.end(), v);
  return it == x.end() ? -1 : static_cast<int32_t>(it - x.begin());
}

TROUPE_VOCAB_LOOP
double sum_exp(std::span<const float> x, float max) {
  float buf[kBlock];
  double total = 0.0;
  for (size_t b = 0; b < x.size(); b += kBlock) {
    const size_t n = std::min(kBlock, x.size() - b);
    exp_block(x.data() + b, buf, n, max, 1.0f);
    total += sum_block(buf, n);
  }
  return total;
}

TROUPE_VOCAB_LOOP
double exp_weights(std::span<const float> x, float max, float inv_t, std::span<float> w,
                   std::vector<double>& block_totals, double* raw_sum) {
  float raw[kBlock];
  block_totals.resize((x.size() + kBlock - 1) / kBlock);
  double total = 0.0, raw_total = 0.0;
  for (size_t b = 0, k = 0; b < x.size(); b += kBlock, ++k) {
    const size_t n = std::min(kBlock, x.size() - b);
    exp_block(x.data() + b, w.data() + b, n, max, inv_t);
    block_totals[k] = sum_block(w.data() + b, n);
    total += block_totals[k];
    if (raw_sum != nullptr) {  // the block of x is still in L1 here
      exp_block(x.data() + b, raw, n, max, 1.0f);
      raw_total += sum_block(raw, n);
    }
  }
  if (raw_sum != nullptr) *raw_sum = raw_total;
  return total;
}

TROUPE_VOCAB_LOOP
double drop_below(std::span<float> w, float floor, std::vector<double>& block_totals) {
  double total = 0.0;
  for (size_t b = 0, k = 0; b < w.size(); b += kBlock, ++k) {
    const size_t n = std::min(kBlock, w.size() - b);
    float* p = w.data() + b;
    for (size_t i = 0; i < n; ++i) p[i] = p[i] < floor ? 0.0f : p[i];
    block_totals[k] = sum_block(p, n);
    total += block_totals[k];
  }
  return total;
}

}  // namespace troupe::sampling_detail
