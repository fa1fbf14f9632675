// Not run by default ([.bench]): what verifying k drafts costs on this machine, i.e. the
// target's step time T(1 + k) against T(1), measured alternately in one process so that
// other load on the machine hits every size alike. The theoretical speedup formula
// assumes T(1 + k) = T(1); docs/benchmarks.md uses these numbers to explain the gap.
//   TROUPE_SPEC_BENCH_MODEL=/tmp/target ./test_spec "[.bench]" -s
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>

#include "cpu/cpu_backend.h"
#include "model/weights.h"
#include "test_util.h"

using namespace troupe;

TEST_CASE("verification cost T(1+k)/T(1) of a target model", "[.bench][spec]") {
  const char* env = std::getenv("TROUPE_SPEC_BENCH_MODEL");
  const std::string path = env ? env : test::model_path("tinystories-656k");
  cpu::CpuBackendOptions bo;
  bo.num_blocks = 320;
  cpu::CpuBackend b(load_model(path), bo);
  const int64_t ctx = 128;  // decode at a realistic position, not at 0
  // n tokens as a decode/verify step of ceil(n / 5) sequences (1 + 4 drafts each).
  auto step = [&](int64_t n) {
    StepBatch batch;
    for (int64_t q = 0, left = n; left > 0; ++q, left -= 5) {
      StepSeq s;
      s.seq_id = q;
      for (int64_t i = 0; i < std::min<int64_t>(5, left); ++i) s.tokens.push_back(int32_t(5 + i));
      s.start_pos = int32_t(ctx);
      s.block_table.resize(size_t((ctx + 5 + 15) / 16));
      std::iota(s.block_table.begin(), s.block_table.end(), int32_t(q * 9));
      for (size_t i = 0; i < s.tokens.size(); ++i) s.logit_rows.push_back(int32_t(i));
      batch.seqs.push_back(s);
    }
    StepOutput out;
    const auto t0 = std::chrono::steady_clock::now();
    b.run_step(batch, out);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<int64_t> sizes = {1, 2, 3, 4, 5, 7, 9};
  if (const char* list = std::getenv("TROUPE_SPEC_BENCH_SIZES")) {  // e.g. "32,48,64,96,160"
    sizes.clear();
    for (std::string s = list; !s.empty();) {
      const auto comma = s.find(',');
      sizes.push_back(std::stoll(s.substr(0, comma)));
      s = comma == std::string::npos ? "" : s.substr(comma + 1);
    }
  }
  std::vector<std::vector<double>> ms(sizes.size());
  for (int rep = 0; rep < 15; ++rep)
    for (size_t i = 0; i < sizes.size(); ++i) ms[i].push_back(step(sizes[i]));
  std::vector<double> med;
  for (auto& v : ms) {
    std::sort(v.begin(), v.end());
    med.push_back(v[v.size() / 2]);
  }
  for (size_t i = 0; i < sizes.size(); ++i)
    std::printf("T(%lld) = %.2f ms  (x%.3f of T(1))\n", (long long)sizes[i], med[i], med[i] / med[0]);
  CHECK(med[0] > 0);
}
