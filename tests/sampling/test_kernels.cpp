// The internal whole-vocabulary kernels: the inline exp must be as good as std::exp where
// it matters (it sets every probability), and the vectorised scans must agree with plain
// loops, including the tails that do not fill a SIMD lane group or a block.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "helpers.h"
#include "sampling/distribution.h"
#include "sampling/kernels.h"

using namespace troupe::sampling_detail;

TEST_CASE("exp_nonpositive matches std::exp", "[sampling][kernels]") {
  double worst = 0;
  for (double z = -87.0; z <= 0.0; z += 1e-4) {
    const float zf = static_cast<float>(z);
    const double exact = std::exp(static_cast<double>(zf));
    worst = std::max(worst, std::abs(exp_nonpositive(zf) - exact) / exact);
  }
  CHECK(worst < 2.5e-7);  // ~2 ulp
  CHECK(exp_nonpositive(0.0f) == 1.0f);
  CHECK(exp_nonpositive(-0.0f) == 1.0f);
  CHECK(exp_nonpositive(-100.0f) == 0.0f);
  CHECK(exp_nonpositive(-std::numeric_limits<float>::infinity()) == 0.0f);
}

TEST_CASE("scans agree with plain loops at every length", "[sampling][kernels]") {
  for (size_t n : {1u, 7u, 8u, 9u, 1023u, 1024u, 1025u, 5000u}) {
    auto x = troupe::test::random_logits(n, static_cast<uint32_t>(n));
    if (n > 1) x[n / 3] = -std::numeric_limits<float>::infinity();  // a masked token
    float max = -INFINITY;
    int32_t arg = -1;
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      if (x[i] > max) {
        max = x[i];
        arg = static_cast<int32_t>(i);
      }
    }
    for (float v : x) sum += std::exp(static_cast<double>(v) - max);
    INFO("n = " << n);
    const MaxScan s = scan_max(x);
    CHECK(s.max == max);
    CHECK_FALSE(s.invalid);
    CHECK(sum_exp(x, max) == Approx(sum).epsilon(1e-6));
    const PeakLse p = find_peak_lse(x);
    CHECK(p.id == arg);
    CHECK(p.lse == Approx(max + std::log(sum)).epsilon(1e-7));

    std::vector<float> w(n);
    std::vector<double> blocks;
    double raw = 0;
    const double total = exp_weights(x, max, 1.0f / 0.7f, w, blocks, &raw);
    CHECK(raw == Approx(sum).epsilon(1e-6));
    CHECK(blocks.size() == (n + kBlock - 1) / kBlock);
    double direct = 0;
    for (size_t i = 0; i < n; ++i) {
      direct += w[i];
      // Float rounding of the argument (x - max) / T alone is ~|z| * 6e-8 relative.
      CHECK(w[i] == Approx(std::exp((x[i] - max) / 0.7)).epsilon(5e-6).margin(1e-30));
    }
    CHECK(total == Approx(direct).epsilon(1e-12));

    // Every position of a bad value is caught, also in the lane tail.
    for (size_t bad : {size_t{0}, n - 1, n / 2}) {
      auto y = x;
      y[bad] = NAN;
      CHECK(scan_max(y).invalid);
      CHECK_THROWS_AS(find_peak_lse(y), troupe::Error);
      y[bad] = INFINITY;
      CHECK(scan_max(y).invalid);
      CHECK_THROWS_AS(checked_max(y), troupe::Error);
    }
  }
}

TEST_CASE("greedy argmax and ties across blocks", "[sampling][kernels]") {
  std::vector<float> x(5000, 0.0f);
  x[4500] = 2.0f;
  x[1500] = 2.0f;  // same max in an earlier block: the lower id wins
  x[3000] = 1.0f;
  CHECK(find_peak_lse(x).id == 1500);
  x[4999] = 2.5f;  // the last element, in a partial block
  CHECK(find_peak_lse(x).id == 4999);
}

// The loops are built for AVX-512, AVX2 and the baseline and run the one this CPU takes
// (sampling/kernels.cpp); each must give the bits of a plain loop built for the baseline,
// which this file is: the exponential per element, and sums in the documented order (8
// double lanes over a block, then the tail, then the lanes; blocks in order).
namespace {
double plain_block_sum(const float* w, size_t n) {
  double lane[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (size_t j = 0; j < 8; ++j) lane[j] += w[i + j];
  double s = 0.0;
  for (; i < n; ++i) s += w[i];
  for (double v : lane) s += v;
  return s;
}
}  // namespace

TEST_CASE("the vocabulary loops give the bits of plain loops on this CPU", "[sampling][kernels]") {
  for (size_t n : {5u, 16u, 17u, 1000u, 1024u, 32000u, 151936u}) {
    auto x = troupe::test::random_logits(n, static_cast<uint32_t>(n) + 7);
    for (size_t i = 0; i < n; i += 97) x[i] = -std::numeric_limits<float>::infinity();
    if (n > 20) x[n - 3] = -90.0f, x[n - 4] = -87.0f;  // around the underflow cut
    float max = -INFINITY;
    for (float v : x) max = v > max ? v : max;
    INFO("n = " << n);
    CHECK(scan_max(x).max == max);
    for (float inv_t : {1.0f, 1.0f / 0.7f, 4.0f}) {
      std::vector<float> plain(n);
      std::vector<double> plain_blocks;
      double plain_total = 0.0;
      for (size_t b = 0; b < n; b += kBlock) {
        const size_t m = std::min(kBlock, n - b);
        for (size_t i = b; i < b + m; ++i) plain[i] = exp_nonpositive((x[i] - max) * inv_t);
        plain_blocks.push_back(plain_block_sum(plain.data() + b, m));
        plain_total += plain_blocks.back();
      }
      std::vector<float> w(n);
      std::vector<double> blocks;
      double raw = 0.0;
      const double total = exp_weights(x, max, inv_t, w, blocks, &raw);
      CHECK(w == plain);
      CHECK(blocks == plain_blocks);
      CHECK(total == plain_total);
      if (inv_t == 1.0f) {
        CHECK(raw == plain_total);
        CHECK(sum_exp(x, max) == plain_total);  // (find_peak_lse is built from these two)
      }
      // drop_below: the same zeros and block sums.
      const float floor = 0.01f;
      for (float& v : plain) v = v < floor ? 0.0f : v;
      double kept = 0.0;
      for (size_t b = 0, k = 0; b < n; b += kBlock, ++k) {
        plain_blocks[k] = plain_block_sum(plain.data() + b, std::min(kBlock, n - b));
        kept += plain_blocks[k];
      }
      CHECK(drop_below(w, floor, blocks) == kept);
      CHECK(w == plain);
      CHECK(blocks == plain_blocks);
    }
  }
}
