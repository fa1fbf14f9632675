// matmul over weights in MatrixLayout::Panels (model/tensor.h), for every T, and the packing
// that makes the layout (Highway, runtime dispatch).
//
// A panel holds 64 output rows as [in][64]: at each input index i, one contiguous run of
// the 64 rows' weights. The kernel keeps vectors *along rows* and broadcasts x:
//   acc[t][v] += W[i][rows of vector v] * x[t][i]
// so each lane is one (token, row) sum, done as one fused multiply-add per input in order
// i = 0, 1, ..., in - 1, with no horizontal reduction at the end. Against the row-major
// kernels (kernels_gemv.cpp, kernels_gemm_hwy.cpp) this means:
//  - a thread reads its weights as one sequential stream (row-major GEMV reads 8-15 short
//    row streams at once, which the hardware prefetchers ramp up on late: a row of 768
//    halves is 24 cache lines);
//  - a 128-element row (the grown speculative target) no longer spends as long on its
//    horizontal sums as on its multiply-adds;
//  - x needs no packing, since its elements are broadcast where they lie;
//  - every output is the same bits whatever T is and however the work is split into
//    token groups, input slices or threads: an (t, r) sum is the same sequence of FMAs
//    wherever it runs. Decode, verification, batched decode and prefill rows of one token
//    therefore agree exactly (batch invariance), which the row-major kernels give only
//    within the GEMV (T <= 24 F32 / 48 F16) and within the GEMM separately. (A matrix of
//    fewer than 4 panels and many inputs is summed in fixed parts of its inputs, added in
//    order: panel_input_parts, cpu/kernels.h; still one sequence per shape.)
// Why not OpenBLAS: Debian's 0.3.21 has no kernel for AMD Zen 4/5 (kernels_gemm_hwy.cpp),
// takes no F16 weights, and its GEMV and GEMM round differently from each other, which
// would give up the exactness across T above.
// Measured: docs/benchmarks.md, "Float weights in panels".
//
// Work split: with AVX-512 (a panel's 64 rows are 4 vectors, all kept in registers) up to
// kMaxG = 6 tokens (the register budget: kMaxG x 4 accumulators) run in one pass over a
// panel, and up to kMaxSpillG (10 F32, 9 16-bit) in one pass whose sums past the 6th token
// live in an L1 buffer (SpillPass); more tokens, and every T with narrower vectors (AVX2:
// 8 vectors a panel, run 4 at a time, 2 tokens), run the panel in input slices of kSlice,
// each slice (32 KiB of F32 weights, in L1, or 16 KiB at 11-16 tokens: kSmallSlice; 16-bit
// weights widened to F32 once, WidenBuffer) reused by every token group before the next,
// the groups' partial sums parked in a per-thread buffer between slices.
// The SwiGLU's gate and up run as panel pairs (matmul_glu_pairs): a thread sums gate's and
// up's panel j for the same 64 columns, then applies SiLU to them in its own buffers.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/kernels_panel.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/aligned_allocator.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "cpu/kernels.h"
#include "cpu/kernels_internal.h"
#include "cpu/host_tuning.h"
#include "cpu/load_f32-inl.h"
#include "cpu/prefetch_share.h"

HWY_BEFORE_NAMESPACE();
namespace troupe::cpu::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr int64_t kP = kPanelRows;
constexpr int64_t kN = static_cast<int64_t>(hn::MaxLanes(DF()));
// Vectors of one panel's rows, and those a pass keeps in registers.
static_assert(kN >= 1 && kP % kN == 0, "a panel's rows are whole vectors");
constexpr int kPanelVecs = static_cast<int>(kP / kN);
constexpr int kVecs = kPanelVecs < 4 ? kPanelVecs : 4;
#if HWY_TARGET <= HWY_AVX3
constexpr int kMaxG = 6;  // 24 accumulators + 6 broadcasts + 1 weight vector of 32 zmm
#else
constexpr int kMaxG = 2;  // 8 + 2 + 1 of 16 ymm
#endif
// Inputs per slice when tokens run in groups (32 KiB of F32 weights; 16 KiB slices, which
// leave L1 room for the x pieces and parked sums at T = 32, measured 0-9% slower).
constexpr int64_t kSlice = 128;
// AVX-512 F32 steps of up to kSmallSliceMaxT tokens (2-3 groups; fewer run in one pass)
// fetch the next slice into L1 where the host tuning says so (HostTuning::float_slices_l1),
// and run slices of kSmallSlice inputs, 16 KiB, so that this slice and the next fit L1 (48
// KiB on Zen 5) together. In one process, on the same cold weights (`test_cpu
// "[.share-bench]"`, two threads, five runs), 12 tokens ran in 0.82-0.93x the time of 32 KiB
// slices fetched into L2 and 16 tokens in 0.84-0.96x (the 16-bit rows, the same code either
// way, read 0.98-1.03x: the noise). In an experiment build, 32 KiB slices into L1 ran 12 and
// 16 tokens in 0.95-1.0x, and 24 or 32 tokens in 16 KiB slices were no faster than in 32 KiB
// ones (their groups park and reload their sums twice as often). 16-bit weights keep the L2
// fetch: into L1 (with the widened slice beside it) the 110M shapes measured 0.87-1.04x, most
// of them 1.00-1.03x (session 37). AVX2 (measured on no host) keeps the L2 fetch too.
constexpr int64_t kSmallSlice = 64;
constexpr int64_t kSmallSliceMaxT = 16;
// While token groups work on one slice, they fetch the next slice (cpu/prefetch_share.h),
// each pass its share, spread over the pass's input steps. Before, only the first group's
// pass fetched, 2 KiB ahead of itself, and waited on DRAM: one thread, T = 32, weights cold,
// 78-96 G FMA/s per shape before and 95-107 with this (`test_cpu "[.panel-cpu-bench]"`; an
// L2 hint measured in between; docs/benchmarks.md, session 19). Until session 25 a pass
// fetched 2 lines a step until its share was done, i.e. within the first third to two thirds
// of its steps; at T = 32 those bursts stalled on a full fill queue (perf put 7% of the
// kernel's samples on a prefetch), and spreading the share over every step (1 line a step
// there) took the batch-32 F32 step from 0.42-0.43 to 0.51-0.53 of the FMA peak on session
// 25's host, F16 from 0.47-0.48 to 0.52-0.54; prefill (T = 512: a few lines a pass) measured
// the same.

// No-ops a one-pass F32 step issues after each weight vector's multiply-adds, to slow the
// loop down (pace_with_nops, cpu/prefetch_share.h), where the host tuning says so
// (HostTuning::float_pace, cpu/host_tuning.h: Intel). One token's F32 step is a load, a
// fetch and an FMA per line; on session 27's Intel guest, with 4 no-ops a line batch-1 F32
// decode of 110M ran 10-14% faster (in one binary, 72.5-76.7 against 66.6-67.0 tok/s; 2
// no-ops 72.5; llama-1b, more no-ops than these: the same or slower). On the Zen 5 host
// (session 28) they cost: in one process, decode with them ran at 0.967-0.976 of without.
// 16-bit weights need none (two conversions a line; 1-4 no-ops measured the same or slower
// on 110M and llama-1b), nor do 4 or more tokens (4+ FMAs a line).
template <int kG, typename WT>
constexpr int kPaceNops =
    std::is_same_v<WT, float> ? (kG == 1 ? 4 : kG == 2 ? 2 : kG == 3 ? 1 : 0) : 0;

// One-pass steps (DotPanel, SpillPass) fetch the weights kPanelAheadBytes ahead, a line
// after each of the loads named there. A panel's input step is kLinesPerStep<WT> cache
// lines (4 of F32, 2 of 16-bit weights).
constexpr int64_t kPanelAheadBytes = 8192;
template <typename WT>
constexpr int64_t kLinesPerStep = kP * int64_t(sizeof(WT)) / 64;
// acc[g][v] over inputs [i0, i1) for kG tokens (x rows ldx apart) and panel vectors
// [v0, v0 + kVecs): starts from from[g * ld_from + lane] (zero when `from` is null) and
// stores the sums to to[g * ld_to + lane]. kStream: the weights come from DRAM once (a
// single pass), so fetch them ahead, into cache level kFetchLevel (2: L2, prefetcht1; 1:
// L1, prefetcht0). `ahead`: this pass's share of the next slice to fetch. kWiden: also
// store each weight vector, widened to floats, to widen_to[(i - i0) * kP + lane]
// (WidenBuffer).
template <int kG, bool kStream, typename WT, int kNops = kPaceNops<kG, WT>, bool kWiden = false,
          int kFetchLevel = 2>
HWY_INLINE void DotPanel(const float* HWY_RESTRICT x, int64_t ldx, const WT* HWY_RESTRICT panel,
                         int64_t i0, int64_t i1, int v0, const float* from, int64_t ld_from,
                         float* to, int64_t ld_to, PrefetchShare ahead = {},
                         float* HWY_RESTRICT widen_to = nullptr) {
  const DF d;
  VF acc[kG][kVecs];
  for (int g = 0; g < kG; ++g)
    for (int v = 0; v < kVecs; ++v)
      acc[g][v] = from ? hn::LoadU(d, from + g * ld_from + (v0 + v) * kN) : hn::Zero(d);
  // A panel's input step is kP * sizeof(WT) bytes (4 or 2 cache lines); fetch 8 KiB ahead
  // (2 KiB left the 1 + 4-row verification step 1.19-1.28x a decode step on 110M F16, 8 KiB
  // 1.10-1.16x, two threads; 16 KiB and a T0 hint measured the same as 8 KiB; in one binary,
  // session 26, 4-24 KiB all measured 1.11-1.14x on 110M F16). The hint is T1 (but F32
  // passes of 2-6 tokens on AMD take T0: kSingleFetch), not NTA: on a host with a 480 MiB L3
  // (session 25) prefetchnta made a one-thread T = 1 pass 3-4x slower than T0, T1 or T2
  // and batch-1 F16/F32 decode ~3x slower (T1 the fastest of the three, by a little), where
  // sessions 16-24's host (Zen 5) measured NTA and T0 the same.
  // Each line is fetched right after one of the step's weight loads (line l after vector
  // l * kVecs / kLinesPerStep's: F32 one a vector, 16-bit weights after vectors 0 and 2),
  // not all of them at the top of the step, where GCC puts __builtin_prefetch calls: in one
  // binary (session 27), batch-1 decode of 110M ran 4-17% faster (F16 153-182 against
  // 136-158 tok/s, F32 70-78 against 66-69) and the 1 + 4-row step 4-10% faster.
  // This pass's share of the next slice, spread over its input steps (see PanelRows).
  const int64_t ahead_per_step = ahead.per_step(i1 - i0);
  for (int64_t i = i0; i < i1; ++i) {
    const WT* w = panel + i * kP + v0 * kN;
    const char* pf = reinterpret_cast<const char*>(panel + i * kP) + kPanelAheadBytes;
    ahead.step(ahead_per_step);
    VF xb[kG];
    for (int g = 0; g < kG; ++g) xb[g] = hn::Set(d, x[g * ldx + i]);
    for (int v = 0; v < kVecs; ++v) {
      VF wv = LoadAsF32(w + v * kN);
      if constexpr (kWiden) hn::Store(wv, d, widen_to + (i - i0) * kP + (v0 + v) * kN);
      if constexpr (kStream)
        for (int64_t l = 0; l < kLinesPerStep<WT>; ++l)
          if (v == l * kVecs / kLinesPerStep<WT>) prefetch_after<kFetchLevel>(wv.raw, pf + l * 64);
      for (int g = 0; g < kG; ++g) acc[g][v] = hn::MulAdd(wv, xb[g], acc[g][v]);
      if constexpr (kStream) pace_with_nops<kNops>();
    }
  }
  for (int g = 0; g < kG; ++g)
    for (int v = 0; v < kVecs; ++v) hn::StoreU(acc[g][v], d, to + g * ld_to + (v0 + v) * kN);
}

// A batched pass (weights from the slice in L1) of a group of g tokens; kWiden: the pass
// that widens a 16-bit slice into widen_to (see WidenBuffer).
template <bool kWiden, typename WT>
HWY_INLINE void DotPanelG(int g, const float* x, int64_t ldx, const WT* panel, int64_t i0,
                          int64_t i1, int v0, const float* from, int64_t ld_from, float* to,
                          int64_t ld_to, PrefetchShare ahead, float* widen_to = nullptr) {
  switch (g) {
    case 1: return DotPanel<1, false, WT, 0, kWiden>(x, ldx, panel, i0, i1, v0, from, ld_from, to, ld_to, ahead, widen_to);
    case 2: return DotPanel<2, false, WT, 0, kWiden>(x, ldx, panel, i0, i1, v0, from, ld_from, to, ld_to, ahead, widen_to);
#if HWY_TARGET <= HWY_AVX3
    case 3: return DotPanel<3, false, WT, 0, kWiden>(x, ldx, panel, i0, i1, v0, from, ld_from, to, ld_to, ahead, widen_to);
    case 4: return DotPanel<4, false, WT, 0, kWiden>(x, ldx, panel, i0, i1, v0, from, ld_from, to, ld_to, ahead, widen_to);
    case 5: return DotPanel<5, false, WT, 0, kWiden>(x, ldx, panel, i0, i1, v0, from, ld_from, to, ld_to, ahead, widen_to);
    case 6: return DotPanel<6, false, WT, 0, kWiden>(x, ldx, panel, i0, i1, v0, from, ld_from, to, ld_to, ahead, widen_to);
#endif
    default: HWY_ASSERT(false);
  }
}

// The single pass of 2-6 tokens (the 1 + k-row verification step) as a function of its own,
// on a 256-byte boundary. Inlined into PanelRows, its speed depended on the binary: builds
// whose loop was the same instructions measured T(1 + 4)/T(1) on 110M F16 anywhere from
// 1.14 to 1.29, each build the same in every run (docs/benchmarks.md, session 26). Out of
// line it measured 1.135-1.146 in two builds with the code before it shifted, against
// 1.215-1.218 inline in the same runs (110M F32: 1.03-1.04 against 1.09). One token's pass
// and the batched passes stay inline: all of them out of line, batch-32 steps and prefill
// measured 5-10% slower.
template <int kG, typename WT, int kNops = kPaceNops<kG, WT>, int kFetchLevel = 2>
HWY_NOINLINE __attribute__((aligned(256))) void SinglePass(
    const float* HWY_RESTRICT x, int64_t ldx, const WT* HWY_RESTRICT panel, int64_t i0, int64_t i1,
    float* to, int64_t ld_to) {
  DotPanel<kG, true, WT, kNops, false, kFetchLevel>(x, ldx, panel, i0, i1, 0, nullptr, 0, to, ld_to);
}

// The single pass of kMaxG + 1 to kMaxSpillG tokens over a whole AVX-512 panel: the first
// kMaxG tokens' sums in registers, the others' in an L1 buffer (loaded, multiplied-added and
// stored back at every input step), so the panel is still read once, as one sequential
// stream. In input slices instead (PanelRows), which fetch the next slice while the token
// groups run on this one, a matmul of 7-10 tokens took 1.1-1.25x one of 6 tokens on the
// 110M shapes (`test_cpu "[.panel-bench]"`, two threads, slow memory level); in one pass,
// 7-10 F32 tokens and 7-9 F16 ones took what 6 take. More tokens, and F16 at 10, measured
// slower than in slices: the buffer's loads and stores and the conversions (16-bit weights)
// cap the loop (docs/benchmarks.md, session 35). The sums are the same FMAs in the same
// order as in every other pass (the buffer holds them exactly).
template <typename WT>
constexpr int kMaxSpillG = std::is_same_v<WT, float> ? 10 : 9;
// The most tokens a single pass takes (AVX-512: SpillPass's; else the registers').
template <typename WT>
constexpr int kMaxOnePassG = HWY_TARGET <= HWY_AVX3 ? kMaxSpillG<WT> : kMaxG;
template <int kG, typename WT, int kFetchLevel>
HWY_NOINLINE __attribute__((aligned(256))) void SpillPass(
    const float* HWY_RESTRICT x, int64_t ldx, const WT* HWY_RESTRICT panel, int64_t i0, int64_t i1,
    float* to, int64_t ld_to) {
  static_assert(kVecs == kPanelVecs && kVecs == 4 && kG > kMaxG,
                "a whole AVX-512 panel, more tokens than registers hold");
  constexpr int kR = kMaxG, kM = kG - kMaxG;  // tokens with sums in registers, in memory
  const DF d;
  HWY_ALIGN float mem[kM * kVecs * kN];
  VF acc[kR][kVecs];
#pragma GCC unroll 16
  for (int g = 0; g < kR; ++g)
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) acc[g][v] = hn::Zero(d);
  for (int k = 0; k < kM * kVecs; ++k) hn::Store(hn::Zero(d), d, mem + k * kN);
  for (int64_t i = i0; i < i1; ++i) {
    const WT* w = panel + i * kP;
    const char* pf = reinterpret_cast<const char*>(w) + kPanelAheadBytes;
    VF wv[kVecs];
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) {
      wv[v] = LoadAsF32(w + v * kN);
#pragma GCC unroll 4
      for (int64_t l = 0; l < kLinesPerStep<WT>; ++l)  // as DotPanel's
        if (v == l * kVecs / kLinesPerStep<WT>) prefetch_after<kFetchLevel>(wv[v].raw, pf + l * 64);
    }
#pragma GCC unroll 16
    for (int g = 0; g < kR; ++g) {
      const VF xb = hn::Set(d, x[g * ldx + i]);
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) acc[g][v] = hn::MulAdd(wv[v], xb, acc[g][v]);
    }
#pragma GCC unroll 16
    for (int g = 0; g < kM; ++g) {
      const VF xb = hn::Set(d, x[(kR + g) * ldx + i]);
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) {
        float* m = mem + (g * kVecs + v) * kN;
        hn::Store(hn::MulAdd(wv[v], xb, hn::Load(d, m)), d, m);
      }
    }
  }
#pragma GCC unroll 16
  for (int g = 0; g < kR; ++g)
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) hn::StoreU(acc[g][v], d, to + g * ld_to + v * kN);
  for (int g = 0; g < kM; ++g)
    for (int v = 0; v < kVecs; ++v)
      hn::StoreU(hn::Load(d, mem + (g * kVecs + v) * kN), d, to + (kR + g) * ld_to + v * kN);
}

// The single pass of g tokens: one token's inline, 2-6 in SinglePass, 7-10 (F32) or 7-9
// (16-bit weights) in SpillPass. kPace: F32 passes of 1-3 tokens issue kPaceNops no-ops
// (HostTuning::float_pace; else none).
template <int kG, typename WT, bool kPace>
constexpr int kSingleNops = kPace ? kPaceNops<kG, WT> : 0;
// kRowsL1: F32 passes of 2-10 tokens fetch into L1 (HostTuning::float_rows_l1; else L2;
// measured at 2-6 tokens, below, and the passes of 7-10 with it, session 35).
// On the Zen 5 host at its fast memory level (~80 GB/s) the 1 + 4-row step with the L2
// fetch took 1.071x a decode step on 110M F32 and 1.088x on the grown target (F32), with
// the L1 fetch 1.050x and 1.048x (medians of 10-16 runs, builds in turns; at the slow
// level 1.026 against 1.019x and 1.018x). The draft-model benchmark read 92.6-94.6% of
// theory against 88.5-90.4%. Measured and dropped there: the L1 fetch 6, 10 or 12 KiB
// ahead (no better than 8); a second fetch into L2 8 KiB further (1.07-1.19x); fetching
// every other line, or none, for the L1 streamer to follow (1.15-1.26x); the L1 fetch for
// 16-bit weights too (grown target F16 at the slow level 1.059 against 1.041x).
// docs/benchmarks.md, session 34.
template <int kG, typename WT, bool kRowsL1>
constexpr int kSingleFetch = kRowsL1 && kG >= 2 && std::is_same_v<WT, float> ? 1 : 2;
template <bool kPace, bool kRowsL1, typename WT>
HWY_INLINE void SinglePassG(int g, const float* x, int64_t ldx, const WT* panel, int64_t i0,
                            int64_t i1, float* to, int64_t ld_to) {
#define TROUPE_SINGLE_PASS(G) \
  SinglePass<G, WT, kSingleNops<G, WT, kPace>, kSingleFetch<G, WT, kRowsL1>>(x, ldx, panel, i0, i1, to, ld_to)
  switch (g) {
    case 1: return DotPanel<1, true, WT, kSingleNops<1, WT, kPace>>(x, ldx, panel, i0, i1, 0, nullptr, 0, to, ld_to);
    case 2: return TROUPE_SINGLE_PASS(2);
#if HWY_TARGET <= HWY_AVX3
    case 3: return TROUPE_SINGLE_PASS(3);
    case 4: return TROUPE_SINGLE_PASS(4);
    case 5: return TROUPE_SINGLE_PASS(5);
    case 6: return TROUPE_SINGLE_PASS(6);
    case 7: return SpillPass<7, WT, kSingleFetch<7, WT, kRowsL1>>(x, ldx, panel, i0, i1, to, ld_to);
    case 8: return SpillPass<8, WT, kSingleFetch<8, WT, kRowsL1>>(x, ldx, panel, i0, i1, to, ld_to);
    case 9: return SpillPass<9, WT, kSingleFetch<9, WT, kRowsL1>>(x, ldx, panel, i0, i1, to, ld_to);
    case 10:
      if constexpr (kMaxSpillG<WT> >= 10)
        return SpillPass<10, WT, kSingleFetch<10, WT, kRowsL1>>(x, ldx, panel, i0, i1, to, ld_to);
      [[fallthrough]];
#endif
    default: HWY_ASSERT(false);
  }
#undef TROUPE_SINGLE_PASS
}

// This thread's buffer for one input slice of 16-bit weights widened to floats
// ([i - i0][kP], in L1): the first token group's pass over the slice widens each weight
// vector as it uses it and stores it here, and the other groups read it, so each weight is
// converted once. Converting in every group's pass cost a conversion (2 uops on the FMA
// ports with AVX-512) per 4 x g FMAs, which capped F16 at T = 32 near 0.75 of the FMA peak.
// Until session 28 a loop of its own widened the slice before the first pass; on the Zen 5
// host, widening in the first pass made the batch-32 F16 step 2-4% faster (builds in turns;
// in one binary, faster in 5 of 6 paired runs), with prefill the same (docs/benchmarks.md,
// session 28). The widening is exact, so the sums keep their bits.
HWY_INLINE float* WidenBuffer() {
  thread_local const hwy::AlignedFreeUniquePtr<float[]> buffer = hwy::AllocateAligned<float>(kSlice * kP);
  return buffer.get();
}

// y[t * ldy + r] = sum_{i in [k0, k1)} x[t * in + i] * W[r, i] (+ bias[r]) for t < T and
// the rows of panels [p0, p1) (rows past `out` are the padding and are not written).
// more_after: this thread goes on to panel p1 next (so its last slice fetches p1's first).
template <typename WT>
void PanelRows(const float* x, int64_t T, const WT* W, int64_t in, int64_t out, int64_t p0,
               int64_t p1, int64_t k0, int64_t k1, float* y, int64_t ldy, const float* bias,
               bool more_after = false) {
  thread_local std::vector<float> sums_buf;  // [T][kP]: a partial panel's sums
  const bool one_pass = T <= kMaxOnePassG<WT> && kVecs == kPanelVecs;
  const HostTuning& tuning = host_tuning();
  if (static_cast<int64_t>(sums_buf.size()) < T * kP) sums_buf.resize(static_cast<size_t>(T * kP));
  float* sums = sums_buf.data();
  for (int64_t p = p0; p < p1; ++p) {
    const WT* panel = W + p * kP * in;
    const int64_t r0 = p * kP, rows = std::min(kP, out - r0);
    // A whole panel's sums go straight into y, from its single pass or from its last
    // slice's passes, each y line written once (until session 26 the sliced passes' sums
    // were copied out of the buffer: 3.5% of the batch-32 step's samples; without the copy
    // the step measured 0-2% faster and 512-token prefill 1-6%, docs/benchmarks.md). Sums
    // that go back and forth between slices stay in this thread's buffer: accumulated in y,
    // a y row's lines may be shared with the thread of the next panel. A partial panel's
    // sums (its padding rows too) go to the buffer, and its rows are copied out.
    const bool whole = rows == kP;
    if (one_pass) {
      float* to = whole ? y + r0 : sums;
      const int64_t ld_to = whole ? ldy : kP;
      // Only F32 passes differ by host (no-ops, where multi-token passes fetch to); 16-bit
      // weights take one set of passes either way.
      const int g = static_cast<int>(T);
      if constexpr (!std::is_same_v<WT, float>) {
        SinglePassG<false, false>(g, x, in, panel, k0, k1, to, ld_to);
      } else if (tuning.float_pace) {
        tuning.float_rows_l1 ? SinglePassG<true, true>(g, x, in, panel, k0, k1, to, ld_to)
                             : SinglePassG<true, false>(g, x, in, panel, k0, k1, to, ld_to);
      } else {
        tuning.float_rows_l1 ? SinglePassG<false, true>(g, x, in, panel, k0, k1, to, ld_to)
                             : SinglePassG<false, false>(g, x, in, panel, k0, k1, to, ld_to);
      }
    } else {
      // As few token groups as the registers allow, their sizes at most 1 apart (8 = 4 + 4,
      // 32 = 6 + 6 + 5 + 5 + 5 + 5, never a group of 2 after full ones: a group of g does g
      // FMAs per weight load).
      const int64_t groups = (T + kMaxG - 1) / kMaxG, base = T / groups, extra = T % groups;
      const bool share_l1 =  // (see kSmallSlice)
          std::is_same_v<WT, float> && kVecs == kPanelVecs && tuning.float_slices_l1;
      const int64_t slice = share_l1 && T <= kSmallSliceMaxT ? kSmallSlice : kSlice;
      for (int64_t i0 = k0; i0 < k1; i0 += slice) {
        const int64_t i1 = std::min(k1, i0 + slice);
        // 16-bit weights: the first group's passes widen the slice (see WidenBuffer).
        constexpr bool kWidened = !std::is_same_v<WT, float>;
        float* widened = kWidened ? WidenBuffer() : nullptr;
        // The next slice's bytes (the next panel's first, after the last) follow this one's;
        // after this thread's last panel, or a part of the inputs, there is none to fetch.
        const char* next = reinterpret_cast<const char*>(panel + i1 * kP);
        const bool last = i1 == k1 && ((p + 1 == p1 && !more_after) || k0 != 0 || k1 != in);
        const int64_t next_lines = last ? 0 : slice * kP * int64_t(sizeof(WT)) / 64;
        const int64_t calls = groups * (kPanelVecs / kVecs);
        int64_t call = 0;
        const bool to_y = whole && i1 == k1;  // the last slice's passes store into y
        const int64_t ld_to = to_y ? ldy : kP;
        for (int v0 = 0; v0 < kPanelVecs; v0 += kVecs)
          for (int64_t j = 0, t0 = 0; j < groups; ++j, ++call) {
            const int g = static_cast<int>(base + (j < extra ? 1 : 0));
            const int64_t t = t0;
            t0 += g;
            const auto ahead = PrefetchShare::of(next, next_lines, call, calls, share_l1);
            const float* from = i0 == k0 ? nullptr : sums + t * kP;
            float* to = to_y ? y + t * ldy + r0 : sums + t * kP;
            if (kWidened && j == 0)
              DotPanelG<true>(g, x + t * in, in, panel, i0, i1, v0, from, kP, to, ld_to, ahead, widened);
            else if (kWidened)  // the widened slice's inputs count from 0, the panel's from i0
              DotPanelG<false>(g, x + t * in + i0, in, static_cast<const float*>(widened), 0, i1 - i0, v0,
                               from, kP, to, ld_to, ahead);
            else
              DotPanelG<false>(g, x + t * in, in, panel, i0, i1, v0, from, kP, to, ld_to, ahead);
          }
      }
    }
    for (int64_t t = 0; t < T; ++t) {
      float* yr = y + t * ldy + r0;
      if (!whole) std::memcpy(yr, sums + t * kP, static_cast<size_t>(rows) * 4);
      if (bias)
        for (int64_t r = 0; r < rows; ++r) yr[r] += bias[r0 + r];
    }
  }
}

// Panels [p0, p1) over inputs [k0, k1), any of the three dtypes (W: the panels' bytes).
void PanelRowsAny(DType dtype, const float* x, int64_t T, const void* W, int64_t in, int64_t out,
                  int64_t p0, int64_t p1, int64_t k0, int64_t k1, float* y, int64_t ldy,
                  const float* bias) {
  if (dtype == DType::F16)
    PanelRows(x, T, static_cast<const hwy::float16_t*>(W), in, out, p0, p1, k0, k1, y, ldy, bias);
  else if (dtype == DType::BF16)
    PanelRows(x, T, static_cast<const hwy::bfloat16_t*>(W), in, out, p0, p1, k0, k1, y, ldy, bias);
  else
    PanelRows(x, T, static_cast<const float*>(W), in, out, p0, p1, k0, k1, y, ldy, bias);
}

// act[t * I + i] = silu(gate) * up for the columns of panel pairs [q0, q1) of a paired
// gate/up matrix (pack_panels_paired): each pair's gate and up sums go to this thread's
// buffers ([T][64] each, in L1/L2 for decode and verification), SiLU runs over them in one
// call, and the rows are copied to act.
template <typename WT>
void GluPairs(const float* x, int64_t T, const WT* W, int64_t in, int64_t I, int64_t q0,
              int64_t q1, float* act) {
  thread_local std::vector<float> sums;  // gate's [T][64], then up's
  if (static_cast<int64_t>(sums.size()) < 2 * T * kP) sums.resize(static_cast<size_t>(2 * T * kP));
  float* gate = sums.data();
  float* up = gate + T * kP;
  for (int64_t q = q0; q < q1; ++q) {
    const WT* pair = W + q * 2 * kP * in;
    // The pairs of [q0, q1) lie back to back, so each panel's last slice fetches the next.
    PanelRows(x, T, pair, in, kP, 0, 1, 0, in, gate, kP, nullptr, true);
    PanelRows(x, T, pair + kP * in, in, kP, 0, 1, 0, in, up, kP, nullptr, q + 1 < q1);
    silu_mul_to(gate, gate, up, T * kP);
    for (int64_t t = 0; t < T; ++t)
      std::memcpy(act + t * I + q * kP, gate + t * kP, static_cast<size_t>(kP) * sizeof(float));
  }
}
void GluPairsAny(DType dtype, const float* x, int64_t T, const void* W, int64_t in, int64_t I,
                 int64_t q0, int64_t q1, float* act) {
  if (dtype == DType::F16)
    GluPairs(x, T, static_cast<const hwy::float16_t*>(W), in, I, q0, q1, act);
  else if (dtype == DType::BF16)
    GluPairs(x, T, static_cast<const hwy::bfloat16_t*>(W), in, I, q0, q1, act);
  else
    GluPairs(x, T, static_cast<const float*>(W), in, I, q0, q1, act);
}

}  // namespace HWY_NAMESPACE
}  // namespace troupe::cpu::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace troupe::cpu {
namespace detail {

HWY_EXPORT(PanelRowsAny);
HWY_EXPORT(GluPairsAny);

namespace {

void check_panel_dtype(const TensorView& W) {
  if (W.dtype != DType::F32 && W.dtype != DType::F16 && W.dtype != DType::BF16)
    fail("matmul: weight '{}' has dtype {}; panels hold F32, F16 or BF16", W.name, dtype_name(W.dtype));
}

// Below this many weights one thread finishes before the others would be awake.
constexpr int64_t kMinParallelWeights = int64_t(1) << 15;

}  // namespace

void matmul_panels(ThreadPool& pool, const float* x, int64_t T, const TensorView& W, float* y,
                   const float* bias) {
  check_panel_dtype(W);
  const int64_t out = W.rows(), in = W.cols();
  const int64_t panels = (out + kPanelRows - 1) / kPanelRows;
  const int64_t grain = out * in < kMinParallelWeights ? panels : 1;
  const int64_t parts = panel_input_parts(out, in);
  if (parts == 1) {
    pool.parallel_for(panels, grain, [&](int, int64_t p0, int64_t p1) {
      HWY_DYNAMIC_DISPATCH(PanelRowsAny)(W.dtype, x, T, W.data, in, out, p0, p1, 0, in, y, out, bias);
    });
    return;
  }
  // A narrow matrix (the grown target's down_proj: 128 rows, 16384 inputs) in parts of its
  // inputs: items part-major, so with the pool split in halves each thread usually reads the
  // input columns that the same thread's matmul_glu_pairs wrote (see kernels.h).
  thread_local std::vector<float> partial;  // [part][T][out], this (the calling) thread's
  if (static_cast<int64_t>(partial.size()) < parts * T * out) partial.resize(static_cast<size_t>(parts * T * out));
  float* part_sums = partial.data();
  const int64_t chunk = in / parts;
  pool.parallel_for(parts * panels, grain == 1 ? 1 : parts * panels, [&](int, int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t part = item / panels, p = item % panels;
      HWY_DYNAMIC_DISPATCH(PanelRowsAny)(W.dtype, x, T, W.data, in, out, p, p + 1, part * chunk,
                                         (part + 1) * chunk, part_sums + part * T * out, out, nullptr);
    }
  });
  // The parts' sums in order, then the bias: the same bits for every T and thread count.
  const int64_t n = T * out;
  std::copy_n(part_sums, n, y);
  for (int64_t part = 1; part < parts; ++part) add_inplace(y, part_sums + part * n, n);
  if (bias)
    for (int64_t t = 0; t < T; ++t) add_inplace(y + t * out, bias, out);
}

void matmul_glu_pairs(ThreadPool& pool, const float* x, int64_t T, const TensorView& W, float* act) {
  check_panel_dtype(W);
  const int64_t rows = W.rows(), in = W.cols(), I = rows / 2;
  if (W.layout != MatrixLayout::Panels || rows % (2 * kPanelRows) != 0)
    fail("matmul_glu_pairs: '{}' ({} rows) is not gate/up panel pairs", W.name, rows);
  if (panel_input_parts(I, in) != 1)
    fail("matmul_glu_pairs: '{}': gate and up of {} rows and {} inputs are summed in parts alone", W.name, I, in);
  if (T <= 0) return;
  const int64_t pairs = I / kPanelRows;
  const int64_t grain = rows * in < kMinParallelWeights ? pairs : 1;
  pool.parallel_for(pairs, grain, [&](int, int64_t q0, int64_t q1) {
    HWY_DYNAMIC_DISPATCH(GluPairsAny)(W.dtype, x, T, W.data, in, I, q0, q1, act);
  });
}

}  // namespace detail

int64_t panel_input_parts(int64_t out, int64_t in) {
  const int64_t panels = (out + kPanelRows - 1) / kPanelRows;
  if (panels >= kInputSplitBelowPanels || in < 2 * kInputPartMin) return 1;
  const int64_t parts = std::min(kInputPartsMax, in / kInputPartMin);
  return in % parts == 0 ? parts : 1;
}

void matmul_glu_pairs(ThreadPool& pool, const float* x, int64_t T, const TensorView& W, float* act) {
  detail::matmul_glu_pairs(pool, x, T, W, act);
}

int64_t panel_bytes(DType dtype, int64_t rows, int64_t cols) {
  const int64_t panels = (rows + kPanelRows - 1) / kPanelRows;
  return panels * kPanelRows * cols * dtype_row_bytes(dtype, 1);
}

namespace {

// Panel q of dst: the rows of the row-major `src` (rows [row0, row0 + src.rows()) of dst) that
// fall in it.
void pack_panel(const TensorView& src, int64_t row0, uint8_t* dst, int64_t q) {
  const int64_t rows = src.rows(), in = src.cols();
  const int64_t es = dtype_row_bytes(src.dtype, 1);
  const auto* s = static_cast<const uint8_t*>(src.data);
  const int64_t lo = std::max(row0, q * kPanelRows), hi = std::min(row0 + rows, (q + 1) * kPanelRows);
  for (int64_t r = lo; r < hi; ++r) {
    const uint8_t* from = s + (r - row0) * in * es;
    uint8_t* to = dst + (q * kPanelRows * in + r % kPanelRows) * es;
    if (es == 4)
      for (int64_t i = 0; i < in; ++i) std::memcpy(to + i * kPanelRows * 4, from + i * 4, 4);
    else
      for (int64_t i = 0; i < in; ++i) std::memcpy(to + i * kPanelRows * 2, from + i * 2, 2);
  }
}

void check_packable(const TensorView& src, const char* what) {
  if (src.layout != MatrixLayout::RowMajor ||
      (src.dtype != DType::F32 && src.dtype != DType::F16 && src.dtype != DType::BF16))
    fail("{}: '{}' must be a row-major F32, F16 or BF16 matrix", what, src.name);
}

}  // namespace

void pack_panels(ThreadPool& pool, const TensorView& src, int64_t row0, void* dst) {
  check_packable(src, "pack_panels");
  // Rows in whole destination panels per task, so that no two threads write one line.
  const int64_t first_panel = row0 / kPanelRows;
  const int64_t last_panel = (row0 + src.rows() - 1) / kPanelRows;
  pool.parallel_for(last_panel - first_panel + 1, 1, [&](int, int64_t q0, int64_t q1) {
    for (int64_t q = first_panel + q0; q < first_panel + q1; ++q)
      pack_panel(src, row0, static_cast<uint8_t*>(dst), q);
  });
}

void pack_panels_paired(ThreadPool& pool, const TensorView& a, const TensorView& b, void* dst) {
  check_packable(a, "pack_panels_paired");
  check_packable(b, "pack_panels_paired");
  if (a.dtype != b.dtype || a.rows() != b.rows() || a.cols() != b.cols() || a.rows() % kPanelRows != 0)
    fail("pack_panels_paired: '{}' and '{}' must be the same shape and dtype, in whole panels", a.name,
         b.name);
  // Panel q = 2j + m holds rows [64j, 64j + 64) of member m (a, then b): as rows of dst,
  // the member starts at row 64 (j + m).
  pool.parallel_for(2 * (a.rows() / kPanelRows), 1, [&](int, int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q)
      pack_panel(q % 2 == 0 ? a : b, (q / 2 + q % 2) * kPanelRows, static_cast<uint8_t*>(dst), q);
  });
}

void unpack_panels(const TensorView& src, void* dst) {
  if (src.layout != MatrixLayout::Panels) fail("unpack_panels: '{}' is not in panels", src.name);
  const int64_t rows = src.rows(), in = src.cols();
  const int64_t es = dtype_row_bytes(src.dtype, 1);
  const auto* s = static_cast<const uint8_t*>(src.data);
  auto* d = static_cast<uint8_t*>(dst);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* from = s + ((r / kPanelRows) * kPanelRows * in + r % kPanelRows) * es;
    for (int64_t i = 0; i < in; ++i)
      std::memcpy(d + (r * in + i) * es, from + i * kPanelRows * es, static_cast<size_t>(es));
  }
}

}  // namespace troupe::cpu
#endif  // HWY_ONCE
