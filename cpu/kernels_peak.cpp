// The FMA peak probe: the machine's float multiply-add ceiling with every pool thread, the
// denominator for compute-bound steps (batched decode, prefill) as the read bandwidth is
// for batch-1 decode.
//
// Each thread runs kChains independent FMA chains in registers (no loads or stores in the
// loop): FMA latency is 4 cycles and two ports issue one each per cycle on the x86 cores
// this runs on, so at least 8 chains are needed to keep both ports busy; 16 (AVX-512: 32
// registers) or 12 (AVX2: 16) leave headroom. acc = acc * m + a with m just below 1 stays
// finite and normal forever, so no denormal or overflow slow path is ever taken.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/kernels_peak.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "cpu/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace troupe::cpu::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

#if HWY_TARGET <= HWY_AVX3
constexpr int kChains = 16;
#else
constexpr int kChains = 12;
#endif

// Runs `iters` rounds of one FMA on each of kChains vectors; writes the lane sum of every
// chain to out[0, kChains) (so nothing is optimised away, and tests can replay it) and
// returns the FMAs done per lane (iters * kChains) times the lane count.
int64_t FmaChains(int64_t iters, float m, float a, float* out) {
  const DF d;
  const VF vm = hn::Set(d, m), va = hn::Set(d, a);
  VF acc[kChains];
#pragma GCC unroll 16
  for (int j = 0; j < kChains; ++j) acc[j] = hn::Set(d, static_cast<float>(j));
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = hn::MulAdd(acc[j], vm, va);
  }
  for (int j = 0; j < kChains; ++j) out[j] = hn::GetLane(acc[j]);
  return iters * kChains * static_cast<int64_t>(hn::Lanes(d));
}

int NumChains() { return kChains; }

}  // namespace HWY_NAMESPACE
}  // namespace troupe::cpu::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace troupe::cpu {
namespace detail {
HWY_EXPORT(FmaChains);
HWY_EXPORT(NumChains);
}  // namespace detail

int fma_chains_count() { return HWY_DYNAMIC_DISPATCH(detail::NumChains)(); }

int64_t fma_chains(int64_t iters, float m, float a, float* out) {
  return HWY_DYNAMIC_DISPATCH(detail::FmaChains)(iters, m, a, out);
}

double best_pass_rate(ThreadPool& pool, double seconds, const std::function<int64_t(int)>& pass) {
  std::vector<int64_t> ops(static_cast<size_t>(pool.size()));
  double best = 0, spent = 0;
  for (int p = 0; p < 3 || spent < seconds; ++p) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.run_on_all([&](int th) { ops[size_t(th)] = pass(th); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spent += s;
    int64_t total = 0;
    for (int64_t o : ops) total += o;
    best = std::max(best, double(total) / s);
  }
  return best;
}

double measure_fma_peak(ThreadPool& pool, double seconds) {
  // Rounds per pass: ~5-10 ms of work per thread, so a pass is long next to a wake-up
  // but short enough that one preemption spoils only that pass (the best pass counts).
  constexpr int64_t kIters = int64_t(1) << 20;
  std::vector<std::vector<float>> sink(static_cast<size_t>(pool.size()),
                                       std::vector<float>(static_cast<size_t>(fma_chains_count())));
  // 2 FLOPs per FMA lane.
  return 2.0 * best_pass_rate(pool, seconds, [&](int th) {
    return fma_chains(kIters, 0.999999f, 1e-6f, sink[size_t(th)].data());
  });
}

}  // namespace troupe::cpu
#endif  // HWY_ONCE
