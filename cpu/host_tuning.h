#pragma once
// Kernel choices that measured differently on the hosts we have had, in one place: which
// one a process uses is decided once, from the CPU's vendor, and `troupe bench` prints it.
// TROUPE_HOST_TUNING=amd|intel picks one instead (for a host that measures differently,
// and for the tests, which check that every choice computes the same bits).
//
// Only the fetches and pacing of streaming loops differ, never the arithmetic: a choice
// changes how fast a kernel reads its weights, not what it computes.
//
// No STL here: quant/qkernel.h includes this into the ISA kernel files (see there).
#include <cstdint>

namespace troupe::cpu {

// How the quantized GEMV (batch-1 decode, quant/qkernel_avx512.cpp) fetches the weight
// line a few KiB past each line it loads (kGemvAhead there), right after that load.
enum class GemvFetch : uint8_t {
  kL1,       // into L1 (prefetcht0), 8 KiB ahead (4 KiB until session 33)
  kL2Paced,  // into L2 (prefetcht1), 8 KiB ahead, then 4 no-ops (cpu::pace_with_nops)
};

struct HostTuning {
  const char* name;  // "amd" or "intel"
  GemvFetch gemv_fetch;
  // Whether a decode attention tile's first KV head fetches the tile's cached rows, all
  // heads, into L2 (cpu/cpu_backend.cpp, prefetch_cached_rows).
  bool kv_rows_fetch;
  // Whether one-pass F32 steps of 1-3 tokens issue no-ops after each weight vector
  // (kPaceNops, cpu/kernels_panel.cpp).
  bool float_pace;
  // Whether one-pass F32 steps of 2-10 tokens (the 1 + k-row verification step, small
  // batches) fetch their weights ahead into L1 (prefetcht0) instead of L2 (prefetcht1;
  // kSingleFetch, cpu/kernels_panel.cpp).
  bool float_rows_l1;
  // Whether AVX-512 F32 matmuls of more tokens than one pass takes (11 or more: token groups
  // over input slices) fetch each next slice into L1 (prefetcht0) instead of L2 (prefetcht1;
  // cpu/prefetch_share.h), with half-size slices at 11-16 tokens so that a slice and the
  // next fit L1 together (kSmallSlice, cpu/kernels_panel.cpp).
  bool float_slices_l1;
};

// The tables, as measured (docs/benchmarks.md, sessions 26-28, 33, 34 and 37):
// - AMD (the Zen 5 host of sessions 13-24 and 28-33): the GEMV into L1 8 KiB ahead (4 KiB
//   until session 33, which measured 8 KiB 4-12% faster at the host's fast memory level and
//   the same or faster at its slow one: quant/qkernel_avx512.cpp, kGemvAhead). In an
//   experiment binary the paced L2 fetch decoded 110M Q8_0, INT8 and INT4 10-15% slower,
//   Q4_0 6-24% and llama-1b Q4_0 5-16% slower; as built (the GEMV its own function),
//   `bench decode --compare-host-tuning` put the Intel table at 0.95-0.99 of this one for
//   the 4-bit formats, the same for the 8-bit ones (session 28). The KV burst: dropping it
//   measured 0.98-1.05x the batch-32 step time (session 26).
// - Intel (sessions 25-27: AVX-512, 2 MiB L2, 480 MiB L3): the paced L2 fetch decoded
//   llama-1b Q4_0 14-16%, Q8_0 10-13%, INT8 10-16% and INT4 11-14% faster than before it,
//   and fetching into L1 cost 1B Q4_0 13% (session 27). The KV burst cost the batch-32 step
//   3-10%: the rows were in L3 and its fetches waited for fill buffers (session 26).
// - The F32 one-pass no-ops (float_pace): Intel, where 4 a line made 110M F32 decode 10-14%
//   faster (session 27); not AMD, where they cost 2-3% (in one process, session 28).
// - The F32 one-pass fetch of 2-6 tokens into L1 (float_rows_l1): AMD, where at the fast
//   memory level it took T(1 + 4)/T(1) from 1.071 to 1.050 on 110M F32 and from 1.088 to
//   1.048 on the grown target at noise 1.0 (F32), and lowered it at the slow level too
//   (session 34). Not measured on Intel, which keeps the L2 fetch it had.
// - The F32 slices' fetch into L1 (float_slices_l1): AMD, where in one process on the same
//   cold weights F32 matmuls of 12 tokens ran in 0.82-0.93x the time, of 16 tokens
//   0.84-0.96x, of 24-128 tokens 0.94-1.03x (`test_cpu "[.share-bench]"`), and the batch-32
//   F32 step of 110M at 0.75-0.78 of the FMA peak against 0.70-0.73 (session 37). Intel's
//   session 25 measured the batch-32 F32 step slower into L1 (0.395 of the FMA peak against
//   0.423), so it keeps L2.
// Any other CPU gets the Intel table (the AVX-512 code paths are the only ones tuned).
HostTuning amd_host_tuning();
HostTuning intel_host_tuning();

// This process's tuning: TROUPE_HOST_TUNING if set (fails on another value), else by the
// CPU's vendor. Read on every kernel call; cheap.
const HostTuning& host_tuning();
// For tests and benchmarks: use `t` from now on. Not thread-safe against running kernels.
void set_host_tuning(const HostTuning& t);

}  // namespace troupe::cpu
