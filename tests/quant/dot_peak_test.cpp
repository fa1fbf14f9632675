// The int8 dot-product peak probe: its loop computes what its chains are meant to (so the
// timed work is the work counted), and the probe reports a plausible rate. Without AVX-512
// VNNI there is no probe: 0, and the loop does nothing.
#include <catch2/catch.hpp>

#include <vector>

#include "cpu/thread_pool.h"
#include "quant/qmatmul.h"

using namespace troupe;
using namespace troupe::quant;

TEST_CASE("int8_dot_chains adds one per lane per step on each chain", "[quant][peak]") {
  const int chains = int8_dot_chains_count();
  REQUIRE(chains >= 10);  // fewer could not cover vpdpbusd's latency on two ports
  std::vector<int32_t> got(static_cast<size_t>(chains), -7);
  const int64_t iters = 1000;
  const int64_t macs = int8_dot_chains(iters, got.data());
  if (current_qisa() < QIsa::Avx512Vnni) {
    CHECK(macs == 0);
    CHECK(got == std::vector<int32_t>(size_t(chains), -7));
    return;
  }
  CHECK(macs == iters * chains * 64);  // 16 lanes x 4 byte products per instruction
  for (int j = 0; j < chains; ++j) CHECK(got[size_t(j)] == j + iters);
}

TEST_CASE("measure_int8_dot_peak reports a plausible rate", "[quant][peak]") {
  cpu::ThreadPool pool(2);
  const double peak = measure_int8_dot_peak(pool, 0.05);
  if (current_qisa() < QIsa::Avx512Vnni) {
    CHECK(peak == 0);
    return;
  }
  // At least one 64-MAC instruction per 10 ns per thread; at most 4 per cycle at 10 GHz.
  CHECK(peak > 2 * 6.4e9);
  CHECK(peak < 2 * 4 * 64 * 10e9);
}
