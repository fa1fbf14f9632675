#pragma once
// Vectorisable loops over a whole vocabulary of logits (internal to sampling). They are
// the per-token cost of sampling: a 152k vocabulary means ~150k exponentials per token per
// request, so they are written for the auto-vectoriser (fixed-width lanes, no branches,
// an inline exp) and kernels.cpp is built with -fno-trapping-math so that GCC may turn
// the selects into SIMD blends, with -ffp-contract=off, and once per ISA (kernels.cpp).
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace troupe::sampling_detail {

// Dense weights are summed per block of this many ids: the block totals let a draw skip to
// the right block instead of walking the whole vocabulary, and a block fits in L1.
constexpr size_t kBlock = 1024;

// exp(z) for z <= 0, in float: within 2 ulp of std::exp, exactly 1 at z = 0 (so the top
// token's weight is exactly 1), exactly 0 below -87.3 where exp underflows (and for -inf,
// i.e. masked tokens). Callers validate logits first: a NaN gives a meaningless (finite)
// value, never undefined behaviour. Cody-Waite reduction z = n ln2 + r, a degree-7
// polynomial (Cephes' minimax coefficients) on |r| <= ln2/2, and 2^n built in the exponent.
inline float exp_nonpositive(float z) {
  const float zc = z >= -87.0f ? z : -87.0f;  // also maps NaN into range for the int cast
  // Round-to-nearest via the 1.5 * 2^23 trick (vectorises, unlike nearbyint).
  const float n = (zc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = zc - n * 0.693145751953125f;  // ln2 split in two for an exact first product
  r = r - n * 1.428606765330187045e-06f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return z < -87.0f ? 0.0f : p * scale;
}

// The largest logit, and whether any logit is NaN or +inf (those are ignored by the max).
struct MaxScan {
  float max;
  bool invalid;
};
MaxScan scan_max(std::span<const float> x);

// Lowest id holding exactly `v`, or -1.
int32_t first_index_of(std::span<const float> x, float v);

// Sum of exp(x - max) (the softmax normaliser at temperature 1), in double.
double sum_exp(std::span<const float> x, float max);

// w[i] = exp((x[i] - max) * inv_t) for the whole vocabulary; block_totals[b] = sum of block b.
// When raw_sum is non-null it also receives sum(exp(x - max)) from the same pass over x.
// Returns the total weight.
double exp_weights(std::span<const float> x, float max, float inv_t, std::span<float> w,
                   std::vector<double>& block_totals, double* raw_sum);

// Zeroes weights below `floor` and recomputes the block totals; returns the new total.
double drop_below(std::span<float> w, float floor, std::vector<double>& block_totals);

}  // namespace troupe::sampling_detail
