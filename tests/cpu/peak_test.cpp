// The FMA peak probe: its loop computes what a scalar replay of the same chains computes
// (so the timed work is the work counted), and the probe reports a plausible rate.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "cpu/kernels.h"

using namespace troupe;

TEST_CASE("fma_chains matches a scalar replay of its chains", "[cpu][peak]") {
  const int chains = cpu::fma_chains_count();
  REQUIRE(chains >= 8);  // fewer could not cover the FMA latency of two ports
  std::vector<float> got(static_cast<size_t>(chains));
  const int64_t iters = 1000;
  const int64_t lanes_fmas = cpu::fma_chains(iters, 0.999f, 0.01f, got.data());
  CHECK(lanes_fmas % (iters * chains) == 0);
  CHECK(lanes_fmas / (iters * chains) >= 1);  // lanes per vector
  for (int j = 0; j < chains; ++j) {
    float acc = static_cast<float>(j);
    for (int64_t i = 0; i < iters; ++i) acc = std::fma(acc, 0.999f, 0.01f);
    CHECK(got[size_t(j)] == acc);  // fused multiply-add in both: bit-identical
  }
}

TEST_CASE("measure_fma_peak reports a plausible FLOP rate", "[cpu][peak]") {
  cpu::ThreadPool pool(2);
  const double peak = cpu::measure_fma_peak(pool, 0.05);
  // At least one scalar FMA per ns per thread; at most 2 x 16-lane FMA ports at 10 GHz.
  CHECK(peak > 2e9);
  CHECK(peak < 2.0 * 2 * 32 * 10e9 * 2);
}
