#pragma once
// How the CPU kernels fetch weights ahead: prefetch_after and pace_with_nops for the
// one-pass (streaming) matmuls, and PrefetchShare.
//
// PrefetchShare: software pipelining of weight fetches for kernels that pass over one block
// of weights several times (once per token group): while they work on this block, the passes
// fetch the next block's cache lines, each pass an equal share. Without it the first pass
// over each block waits on DRAM while the others run from L1/L2. Used by the float panel matmul
// (cpu/kernels_panel.cpp, input slices) and the quantized GEMM (quant/qkernel_avx512.cpp,
// tile pairs); measured in docs/benchmarks.md, session 19.
//
// It stores into its own members, so it is never mistaken for side-effect-free code (GCC
// deletes calls to a function that only prefetches, cpu/cpu_backend.cpp, and a loop that
// only prefetches; tests/build_checks/prefetch_kept.sh checks the kernels that rely on it).
#include <cstdint>

namespace troupe::cpu {

// Fetches p's cache line into L1 (kLevel 1, prefetcht0) or L2 (kLevel 2, prefetcht1)
// between the load of `loaded` (a vector register) and its uses. GCC schedules
// __builtin_prefetch calls, and asm volatile ones that only take an address, together at
// the top of a loop body. Here the asm claims to update
// `loaded` (it does not touch it), so the load must come before the fetch and every use
// after it: a step's fetches stay spread between its loads. On session 27's host (Intel,
// 480 MiB L3) one-pass matmuls that fetched a step's lines one after another streamed 4-30%
// slower than the same loops with one fetch after each load (cpu/kernels_panel.cpp,
// quant/qkernel_avx512.cpp; docs/benchmarks.md, "Session 27"). Being volatile, the fetch is
// also never deleted as side-effect-free code (see PrefetchShare).
template <int kLevel, typename V>
inline void prefetch_after(V& loaded, const void* p) {
  static_assert(kLevel == 1 || kLevel == 2, "into L1 or L2");
#if defined(__x86_64__) || defined(__i386__)
  if constexpr (kLevel == 1)
    asm volatile("prefetcht0 %a1" : "+v"(loaded) : "p"(p));
  else
    asm volatile("prefetcht1 %a1" : "+v"(loaded) : "p"(p));
#else
  (void)loaded;
  __builtin_prefetch(p, 0, kLevel == 1 ? 3 : 2);
#endif
}

// kCount no-ops, to slow a streaming loop down. On session 27's host a loop that does little
// per cache line reads memory slower: two threads over 1 GiB, a load and an add (or a load,
// a fetch and an FMA) a line read 31-32 GB/s however far ahead it fetched, the load, fetch and
// FMA with 2-16 no-ops a line 36-37 GB/s (`test_cpu "[.read-loops-bench]"`; docs/benchmarks.md,
// "Session 27"). Without PMU counters I could not see why. The kernels that use this say how
// many they issue and what it measured.
template <int kCount>
inline void pace_with_nops() {
  for (int n = 0; n < kCount; ++n) asm volatile("nop");
}

struct PrefetchShare {
  const char* base = nullptr;
  int64_t line = 0, end = 0;  // cache lines [line, end) from base still to fetch
  bool l1 = false;            // into L1 (prefetcht0), else L2 (prefetcht1)

  // Share `pass` of `passes` of the `lines` cache lines from base.
  static PrefetchShare of(const char* base, int64_t lines, int64_t pass, int64_t passes, bool l1 = false) {
    return {base, lines * pass / passes, lines * (pass + 1) / passes, l1};
  }
  int64_t left() const { return end - line; }
  // Lines per step() that fetch what is left over `steps` calls, evenly (as few a call as
  // cover it): a pass's share spread over its steps, not fetched in a burst at its start,
  // which stalls on a full fill queue (cpu/kernels_panel.cpp, session 25).
  int64_t per_step(int64_t steps) const { return (left() + steps - 1) / (steps > 0 ? steps : 1); }
  // Fetches up to `count` more lines. Into L1 until session 25; then into L2, where on a host
  // with 16 GB/s of one-thread read bandwidth the batch-32 F32 step of 110M ran 0.423-0.426
  // of the FMA peak against 0.395-0.397 into L1 and 0.381-0.394 with none (`bench peak`; the
  // quantized GEMM measured the same either way). On the Zen 5 host the F32 panels' slices
  // measured faster into L1 (HostTuning::float_slices_l1) and the quantized GEMM's 4-bit
  // pairs the same (session 37); `l1` says which.
  inline void step(int64_t count) {
    if (l1)
      for (int64_t l = 0; l < count && line < end; ++l, ++line) __builtin_prefetch(base + line * 64, 0, 3);
    else
      for (int64_t l = 0; l < count && line < end; ++l, ++line) __builtin_prefetch(base + line * 64, 0, 2);
  }
};

}  // namespace troupe::cpu
