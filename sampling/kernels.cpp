// Whole-vocabulary loops, shaped for GCC's auto-vectoriser: 8 independent lanes per
// reduction (a single accumulator is a serial dependency chain), branch-free bodies, and
// work in L1-sized blocks. Sums are kept in double so that the totals used to normalise
// and the running sums used to draw agree far below float resolution.
#include "sampling/kernels.h"

#include <algorithm>
#include <limits>

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

MaxScan scan_max(std::span<const float> x) {
  // Two loops on purpose: GCC vectorises each alone, but not a float max and an int flag
  // reduction in the same loop (that falls back to scalar code, 4x slower).
  const float* p = x.data();
  const size_t n = x.size();
  float lane_max[kLanes];
  for (float& m : lane_max) m = -kInf;
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t j = 0; j < kLanes; ++j)
      lane_max[j] = p[i + j] > lane_max[j] ? p[i + j] : lane_max[j];  // NaN never wins
  }
  MaxScan r{-kInf, false};
  for (; i < n; ++i) r.max = p[i] > r.max ? p[i] : r.max;
  for (float m : lane_max) r.max = m > r.max ? m : r.max;

  int lane_bad[kLanes] = {};
  for (i = 0; i + kLanes <= n; i += kLanes) {
    for (size_t j = 0; j < kLanes; ++j) lane_bad[j] |= !(p[i + j] < kInf);  // NaN or +inf
  }
  for (; i < n; ++i) r.invalid |= !(p[i] < kInf);
  for (int b : lane_bad) r.invalid |= b != 0;
  return r;
}

int32_t first_index_of(std::span<const float> x, float v) {
  const auto it = std::find(x.begin(), x.end(), v);
  return it == x.end() ? -1 : static_cast<int32_t>(it - x.begin());
}

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
