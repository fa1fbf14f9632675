// GEMV and small-T "multi-row GEMV" kernels (Highway, runtime dispatch) for row-major
// weights, plus the read loop of the bandwidth probe. The CPU backend repacks the weights
// it streams into panels (kernels_panel.cpp); these kernels serve row-major views: weights
// left in the mapped file or converted from BF16 when the panel copy is skipped, AWQ's
// scale search (quant/awq.cpp), tests.
//
// Decode is memory bound: every weight is read once per token, so the kernel's job is to
// keep the load ports fed from DRAM. Each inner step loads one vector from kR weight rows
// and one vector from each of kT token rows and does kT*kR FMAs into independent
// accumulators; the weight vector is converted (F16 -> F32 via F16C/AVX-512 vcvtph2ps)
// in registers, never written back. With kT > 1 the weights are streamed once for all
// tokens (speculative verification, small batches), which is why this beats a packing
// GEMM at small T: sgemm or the tiled GEMM pack W (and x) on every call, which up to
// T ~ 32-48 costs more than the arithmetic they save (see kernels_gemm.cpp).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/kernels_gemv.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/cache_control.h>

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "cpu/kernels.h"

#include "cpu/kernels_internal.h"
#include "cpu/load_f32-inl.h"
#include "cpu/prefetch_share.h"

HWY_BEFORE_NAMESPACE();
namespace troupe::cpu::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

HWY_INLINE float ToFloat(float v) { return v; }
HWY_INLINE float ToFloat(hwy::float16_t v) {
  uint16_t bits;
  std::memcpy(&bits, &v, 2);
  return f16_to_f32(bits);
}

// Weight rows per block for kT tokens: as many as fit the register file next to the kT*kR
// accumulators and kT x vectors (32 vector registers with AVX-512, 16 otherwise), at most
// 8, and one of 8/6/4/2/1 so that it divides the 24-row panels.
template <int kT>
constexpr int RowsPerBlock() {
#if HWY_TARGET <= HWY_AVX3
  constexpr int kRegs = 32;
#else
  constexpr int kRegs = 16;
#endif
  constexpr int fit = (kRegs - 2) / (kT + 1);
  return fit >= 8 ? 8 : fit >= 6 ? 6 : fit >= 4 ? 4 : fit >= 2 ? 2 : 1;
}

#if HWY_TARGET <= HWY_AVX3
// [sum of a's lanes, b's, c's, d's], each bit-identical to _mm512_reduce_add_ps (which is
// SumOfLanes on this target): the same lanes are added pairwise in the same tree, only
// four vectors share each shuffle and add. One row's sum costs ~3.5 operations instead of
// ~8, which matters when rows are short: with 128-element rows (the grown speculative
// target) a 5-token block spent as many operations reducing as multiplying (issue 19).
HWY_INLINE __m128 SumOfLanes4(__m512 a, __m512 b, __m512 c, __m512 d) {
  // Lanes i and i + 8 (blocks 0+2 and 1+3): [a | b] and [c | d] as 8 partial sums each.
  const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0xEE), _mm512_shuffle_f32x4(a, b, 0x44));
  const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0xEE), _mm512_shuffle_f32x4(c, d, 0x44));
  // Lanes j and j + 4: one 128-bit block per vector, a b c d.
  const __m512 s = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0xDD), _mm512_shuffle_f32x4(ab, cd, 0x88));
  // In each block (l0 + l2) + (l1 + l3), left in lane 0 of the block.
  const __m512 u = _mm512_add_ps(s, _mm512_permute_ps(s, _MM_SHUFFLE(1, 0, 3, 2)));
  const __m512 v = _mm512_add_ps(u, _mm512_permute_ps(u, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_castps512_ps128(
      _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), v));
}
#endif

// out[r] = sum of the lanes of a[r], r < kR, each exactly GetLane(SumOfLanes(a[r])).
template <int kR>
HWY_INLINE void RowSums(const VF* a, float* out) {
  const DF d;
  int r = 0;
#if HWY_TARGET <= HWY_AVX3
#pragma GCC unroll 8
  for (; r + 4 <= kR; r += 4)
    _mm_storeu_ps(out + r, SumOfLanes4(a[r].raw, a[r + 1].raw, a[r + 2].raw, a[r + 3].raw));
#endif
#pragma GCC unroll 8
  for (; r < kR; ++r) out[r] = hn::GetLane(hn::SumOfLanes(d, a[r]));
}

// One token's results for a block of kR rows: yt[r] = the lanes of a[r] summed, plus the
// scalar tail x[j] * w[r, j] for j in [tail, in).
template <int kR, typename WT>
HWY_INLINE void StoreRowSums(const VF* a, const float* HWY_RESTRICT xt, const WT* HWY_RESTRICT w, int64_t in,
                             int64_t tail, float* HWY_RESTRICT yt) {
  float sums[kR];
  RowSums<kR>(a, sums);
#pragma GCC unroll 8
  for (int r = 0; r < kR; ++r) {
    float s = sums[r];
    for (int64_t j = tail; j < in; ++j) s += xt[j] * ToFloat(w[r * in + j]);
    yt[r] = s;
  }
}

// y[t * ldy + r] = dot(x[t], w[r]) for t < kT, r < kR. w rows are `in` elements apart.
// Each step reads one vector of each of the kR rows, for every kT: so every (token, row)
// sum runs in the same order whatever kT is, F16 included. (F16 at kT = 1 used to read
// two vectors of 4 rows per step, one whole line per row, measured single-threaded as
// ~4-10% faster; two threads on a quiet machine, session 14, one vector of 8 rows per step
// (AVX-512) streamed the llama-110m F16 matrices at 0.86-0.94 of a plain read of the same
// bytes against 0.70-0.80, and decoded 2-4% more tokens/s in four alternating rounds.)
// Arrays of vectors are fine on the x86 targets compiled here (fixed-size vectors); the
// fully unrolled loops keep them in registers.
//
// `next` (or null) is the next block of rows this thread will read: the kR rows here are
// one contiguous run of memory, and so is the next block, so each step prefetches the
// same fraction of the next run as it consumes of this one. The hardware prefetchers
// alone see kR short streams (a row of 768 halves is 24 cache lines) and ramp up too late.
template <int kT, int kR, typename WT>
HWY_INLINE void DotBlock(const float* HWY_RESTRICT x, const WT* HWY_RESTRICT w, int64_t in,
                         float* HWY_RESTRICT y, int64_t ldy, const WT* next) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  constexpr int64_t kStepBytes = kR * static_cast<int64_t>(sizeof(WT)) * hn::MaxLanes(DF());
  // Rounded up: AVX2's 6 F16 rows step 96 bytes, and every line must be touched.
  constexpr int64_t kLines = (kStepBytes + 63) / 64;
  const char* pf = reinterpret_cast<const char*>(next);
  VF acc[kT][kR];
#pragma GCC unroll 8
  for (int t = 0; t < kT; ++t)
#pragma GCC unroll 8
    for (int r = 0; r < kR; ++r) acc[t][r] = hn::Zero(d);
  int64_t i = 0;
  for (; i + N <= in; i += N) {
    if (pf) {
#pragma GCC unroll 8
      for (int64_t l = 0; l < kLines; ++l) hwy::Prefetch(pf + l * 64);
      pf += kStepBytes;
    }
    VF wv[kR];
#pragma GCC unroll 8
    for (int r = 0; r < kR; ++r) wv[r] = LoadAsF32(w + r * in + i);
#pragma GCC unroll 8
    for (int t = 0; t < kT; ++t) {
      const VF xv = hn::LoadU(d, x + t * in + i);
#pragma GCC unroll 8
      for (int r = 0; r < kR; ++r) acc[t][r] = hn::MulAdd(xv, wv[r], acc[t][r]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < kT; ++t) StoreRowSums<kR>(acc[t], x + t * in, w, in, i, y + t * ldy);
}

// Long rows with several tokens: when the kT x rows are far larger than L1 (5 x 16384
// floats = 320 KiB on the grown speculative target's down projection), every block of rows
// reads them all again from L2. Such rows are walked in chunks of K instead, each chunk
// over all this thread's row blocks while its x pieces (kXChunkBytes in all) stay in L1:
// measured 1 thread, 128 x 16384 F16 at T = 5, ~190 -> ~171 us (issue 19). Not for rows
// that only just spill L1 (llama-110m's down projection, 5 x 8 KiB): chunks break its
// weight stream into short runs, and it measured no faster (~263 -> ~296 us).
constexpr int64_t kXChunkBytes = int64_t(16) << 10;
constexpr int64_t kXChunkFromBytes = int64_t(128) << 10;  // kT x rows above this are chunked
template <int kT>
constexpr int64_t XChunk() {  // elements of K per chunk, a multiple of every vector width
  return kXChunkBytes / (4 * kT) / 64 * 64;
}

// Chunk [i0, i1) (whole vectors) of a kT x kR block whose accumulators are kept in `mem`
// (kT * kR vectors) between chunks. Each lane sums over i in the order DotBlock<kT, kR>
// does, so the results are bit-identical to it. `next`: the next block's rows (or null),
// prefetched at the same offsets (one line per row per step).
template <int kT, int kR, typename WT>
HWY_INLINE void DotChunk(const float* HWY_RESTRICT x, const WT* HWY_RESTRICT w, int64_t in,
                         int64_t i0, int64_t i1, float* HWY_RESTRICT mem, const WT* next) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  VF acc[kT][kR];
#pragma GCC unroll 8
  for (int t = 0; t < kT; ++t)
#pragma GCC unroll 8
    for (int r = 0; r < kR; ++r)
      acc[t][r] = i0 == 0 ? hn::Zero(d) : hn::LoadU(d, mem + (t * kR + r) * N);
  for (int64_t i = i0; i < i1; i += N) {
    if (next) {
#pragma GCC unroll 8
      for (int r = 0; r < kR; ++r) hwy::Prefetch(next + r * in + i);
    }
    VF wv[kR];
#pragma GCC unroll 8
    for (int r = 0; r < kR; ++r) wv[r] = LoadAsF32(w + r * in + i);
#pragma GCC unroll 8
    for (int t = 0; t < kT; ++t) {
      const VF xv = hn::LoadU(d, x + t * in + i);
#pragma GCC unroll 8
      for (int r = 0; r < kR; ++r) acc[t][r] = hn::MulAdd(xv, wv[r], acc[t][r]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < kT; ++t)
#pragma GCC unroll 8
    for (int r = 0; r < kR; ++r) hn::StoreU(acc[t][r], d, mem + (t * kR + r) * N);
}

// The accumulators of every block of a thread's rows (grows, never shrinks).
HWY_INLINE float* ChunkAccumulators(int64_t n) {
  thread_local std::vector<float> buf;
  if (int64_t(buf.size()) < n) buf.resize(size_t(n));
  return buf.data();
}

// kT >= 2 tokens over rows [r0, r1) with long rows: chunk by chunk of
// K over all blocks, then each block's sums as DotBlock ends them (bit-identical to it).
template <int kT, typename WT>
HWY_INLINE void DotRowsChunked(const float* x, const WT* W, int64_t in, int64_t r0, int64_t r1,
                               float* y, int64_t ldy) {
  constexpr int kR = RowsPerBlock<kT>();
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t in_vec = in / N * N, nb = (r1 - r0) / kR, per_block = kT * kR * N;
  float* mem = ChunkAccumulators(nb * per_block);
  for (int64_t i0 = 0; i0 < in_vec; i0 += XChunk<kT>()) {
    const int64_t i1 = std::min(in_vec, i0 + XChunk<kT>());
    for (int64_t b = 0; b < nb; ++b) {
      const WT* w = W + (r0 + b * kR) * in;
      DotChunk<kT, kR>(x, w, in, i0, i1, mem + b * per_block, b + 1 < nb ? w + kR * in : nullptr);
    }
  }
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t r0b = r0 + b * kR;
    const WT* w = W + r0b * in;
#pragma GCC unroll 8
    for (int t = 0; t < kT; ++t) {
      VF a[kR];
#pragma GCC unroll 8
      for (int r = 0; r < kR; ++r) a[r] = hn::LoadU(d, mem + b * per_block + (t * kR + r) * N);
      StoreRowSums<kR>(a, x + t * in, w, in, in_vec, y + t * ldy + r0b);
    }
  }
  for (int64_t r = r0 + nb * kR; r < r1; ++r)
    DotBlock<kT, 1>(x, W + r * in, in, y + r, ldy, static_cast<const WT*>(nullptr));
}

// kT tokens over rows [r0, r1).
template <int kT, typename WT>
HWY_INLINE void DotRows(const float* x, const WT* W, int64_t in, int64_t r0, int64_t r1,
                        float* y, int64_t ldy) {
  constexpr int kR = RowsPerBlock<kT>();
  if constexpr (kT >= 2) {
    if (in * 4 * kT > kXChunkFromBytes && r1 - r0 >= kR) return DotRowsChunked<kT>(x, W, in, r0, r1, y, ldy);
  }
  int64_t r = r0;
  for (; r + kR <= r1; r += kR)
    DotBlock<kT, kR>(x, W + r * in, in, y + r, ldy, r + kR < r1 ? W + (r + kR) * in : nullptr);
  for (; r < r1; ++r)
    DotBlock<kT, 1>(x, W + r * in, in, y + r, ldy, static_cast<const WT*>(nullptr));
}

// Tokens are processed 4 at a time: 4 x rows (32 KiB at in = 2048) stay in L1 next to
// the weight stream, and 4 tokens x 6 rows of accumulators fill the AVX-512 register
// file. Measured single-threaded on 512 x 2048/4096 (tokens x rows per block): 4x6 >
// 6x4 > 4x4 > 3x8 > 8x2; with 8 tokens the x rows fall out of L1 and the FLOP rate halves.
// A last chunk of 1 token is merged into the one before (4 + 1 -> 5): T = 5 is the
// speculative verification of 4 drafts, and a 1-token pass of its own streams every weight
// a second time (measured 1.64x the decode step for 5 rows against 1.25x for 4; issue 19).
// 5 x 4 accumulators still fit 32 registers (2 x 5 with AVX2's 16). For T > 5, rows are
// walked in panels of ~256 KiB that stay in L2 while every chunk passes over them, so W
// still comes from DRAM once whatever T is.
// Which chunk a token is in does not change its results: every (token, row) sum runs in
// the same order in DotBlock whatever kT and kR are (rows are bit-identical across T).
template <typename WT>
void GemvRows(const float* HWY_RESTRICT x, int64_t T, const WT* HWY_RESTRICT W, int64_t in,
              int64_t r0, int64_t r1, float* HWY_RESTRICT y, int64_t ldy) {
  constexpr int64_t kChunkT = 4;
  constexpr int64_t kPanelRows = 24;  // multiple of every RowsPerBlock()
  const int64_t row_bytes = in * static_cast<int64_t>(sizeof(WT));
  const int64_t panel =
      T <= kChunkT + 1 ? r1 - r0
                       : std::max(kPanelRows, (int64_t(256) << 10) / row_bytes / kPanelRows * kPanelRows);
  for (int64_t p0 = r0; p0 < r1; p0 += panel) {
    const int64_t p1 = std::min(r1, p0 + panel);
    for (int64_t t0 = 0; t0 < T;) {
      const float* xt = x + t0 * in;
      float* yt = y + t0 * ldy;
      const int64_t n = T - t0 == kChunkT + 1 ? kChunkT + 1 : std::min(kChunkT, T - t0);
      switch (n) {
        case 1: DotRows<1>(xt, W, in, p0, p1, yt, ldy); break;
        case 2: DotRows<2>(xt, W, in, p0, p1, yt, ldy); break;
        case 3: DotRows<3>(xt, W, in, p0, p1, yt, ldy); break;
        case 4: DotRows<4>(xt, W, in, p0, p1, yt, ldy); break;
        default: DotRows<5>(xt, W, in, p0, p1, yt, ldy); break;
      }
      t0 += n;
    }
  }
}

void GemvRowsF32(const float* x, int64_t T, const float* W, int64_t in, int64_t r0,
                 int64_t r1, float* y, int64_t ldy) {
  GemvRows(x, T, W, in, r0, r1, y, ldy);
}
void GemvRowsF16(const float* x, int64_t T, const uint16_t* W, int64_t in, int64_t r0,
                 int64_t r1, float* y, int64_t ldy) {
  GemvRows(x, T, reinterpret_cast<const hwy::float16_t*>(W), in, r0, r1, y, ldy);
}

// Whether the target these kernels dispatch to is AVX-512 (AVX3 or newer).
bool TargetIsAvx512() {
#if HWY_TARGET <= HWY_AVX3
  return true;
#else
  return false;
#endif
}

// The read probe's two loops (ReadBandwidthProbe keeps the faster). ReadSum: eight
// independent float sums, so the loop is limited by loads, not add latency.
float ReadSum(const float* HWY_RESTRICT p, int64_t n) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  VF a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  int64_t i = 0;
  for (; i + 8 * N <= n; i += 8 * N) {
    a0 = hn::Add(a0, hn::LoadU(d, p + i));
    a1 = hn::Add(a1, hn::LoadU(d, p + i + N));
    a2 = hn::Add(a2, hn::LoadU(d, p + i + 2 * N));
    a3 = hn::Add(a3, hn::LoadU(d, p + i + 3 * N));
    a4 = hn::Add(a4, hn::LoadU(d, p + i + 4 * N));
    a5 = hn::Add(a5, hn::LoadU(d, p + i + 5 * N));
    a6 = hn::Add(a6, hn::LoadU(d, p + i + 6 * N));
    a7 = hn::Add(a7, hn::LoadU(d, p + i + 7 * N));
  }
  const VF sum = hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)),
                         hn::Add(hn::Add(a4, a5), hn::Add(a6, a7)));
  float s = hn::GetLane(hn::SumOfLanes(d, sum));
  for (; i < n; ++i) s += p[i];
  return s;
}

// ReadHalvesSum: the same bytes read as the batch-1 F16 matmul reads its weights, 16-bit
// halves widened to floats, each line fetched into L2 8 KiB ahead right after its first
// load (cpu/prefetch_share.h). On session 27's host a tight loop of loads (ReadSum) read
// 31-32 GB/s and this one 36-37 (`test_cpu "[.read-loops-bench]"` has both shapes); the
// decode steps stream at the faster rate, so a probe of the first loop alone put F16 decode
// at 1.12-1.19 "of the roofline" (docs/benchmarks.md, "Session 27"). n counts halves; their
// values do not matter (the sum is only kept alive).
float ReadHalvesSum(const uint16_t* HWY_RESTRICT p16, int64_t n) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto* p = reinterpret_cast<const hwy::float16_t*>(p16);
  constexpr int64_t kAhead = 8192 / 2;  // halves
  const int64_t per_line = 64 / 2;
  VF a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    VF w0 = LoadAsF32(p + i);
    if ((i % per_line) == 0) prefetch_after<2>(w0.raw, p + i + kAhead);
    a0 = hn::Add(a0, w0);
    VF w1 = LoadAsF32(p + i + N);
    if (((i + N) % per_line) == 0) prefetch_after<2>(w1.raw, p + i + N + kAhead);
    a1 = hn::Add(a1, w1);
    VF w2 = LoadAsF32(p + i + 2 * N);
    if (((i + 2 * N) % per_line) == 0) prefetch_after<2>(w2.raw, p + i + 2 * N + kAhead);
    a2 = hn::Add(a2, w2);
    VF w3 = LoadAsF32(p + i + 3 * N);
    if (((i + 3 * N) % per_line) == 0) prefetch_after<2>(w3.raw, p + i + 3 * N + kAhead);
    a3 = hn::Add(a3, w3);
  }
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) s += f16_to_f32(p16[i]);
  return s;
}

}  // namespace HWY_NAMESPACE
}  // namespace troupe::cpu::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace troupe::cpu::detail {

HWY_EXPORT(GemvRowsF32);
HWY_EXPORT(GemvRowsF16);
HWY_EXPORT(ReadSum);
HWY_EXPORT(ReadHalvesSum);
HWY_EXPORT(TargetIsAvx512);

void gemv_rows_f32(const float* x, int64_t T, const float* W, int64_t in, int64_t r0,
                   int64_t r1, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(GemvRowsF32)(x, T, W, in, r0, r1, y, ldy);
}
void gemv_rows_f16(const float* x, int64_t T, const uint16_t* W, int64_t in, int64_t r0,
                   int64_t r1, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(GemvRowsF16)(x, T, W, in, r0, r1, y, ldy);
}
float read_sum(const float* p, int64_t n) { return HWY_DYNAMIC_DISPATCH(ReadSum)(p, n); }
float read_halves_sum(const uint16_t* p, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(ReadHalvesSum)(p, n);
}
bool dispatch_is_avx512() { return HWY_DYNAMIC_DISPATCH(TargetIsAvx512)(); }

}  // namespace troupe::cpu::detail

namespace troupe::cpu {

// Fills the buffer from the pool (first touch places the pages near the threads that
// read them), then times whole passes with every pool thread reading its slice. The
// buffer asks for transparent huge pages, so this is the machine's ceiling: weights on
// 4 KiB pages (a mapped model file) stream 10-20% slower here, from TLB misses alone.
ReadBandwidthProbe::ReadBandwidthProbe(ThreadPool& pool, int64_t bytes) : pool_(pool) {
  const int64_t grain = 4096;  // floats: 16 KiB, whole pages per thread
  n_ = std::max<int64_t>(grain, bytes / 4 / grain * grain);
  constexpr size_t kAlign = size_t(2) << 20;  // huge-page aligned for THP
  const size_t size = (static_cast<size_t>(n_) * 4 + kAlign - 1) / kAlign * kAlign;
  buf_ = static_cast<float*>(std::aligned_alloc(kAlign, size));
  if (!buf_) fail("measure_read_bandwidth: cannot allocate {} bytes", size);
  madvise(buf_, size, MADV_HUGEPAGE);  // fewer TLB misses; best effort
  pool_.parallel_for(n_, grain, [&](int, int64_t b, int64_t e) { std::fill(buf_ + b, buf_ + e, 1.0f); });
}

ReadBandwidthProbe::~ReadBandwidthProbe() { std::free(buf_); }

double ReadBandwidthProbe::measure(int passes) {
  const int64_t grain = 4096;
  std::vector<float> sums(static_cast<size_t>(pool_.size()));
  double best = 0;
  // Each pass reads the buffer with both loops (kernels above); the fastest read counts.
  for (int pass = 0; pass < 2 * passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool_.parallel_for(n_, grain, [&](int th, int64_t b, int64_t e) {
      if (pass % 2 == 0)
        sums[th] += detail::read_sum(buf_ + b, e - b);
      else
        sums[th] +=
            detail::read_halves_sum(reinterpret_cast<const uint16_t*>(buf_ + b), 2 * (e - b));
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(n_) * 4 / s);
  }
  volatile float sink = 0;
  for (float v : sums) sink = sink + v;
  (void)sink;
  return best;
}

double measure_read_bandwidth(ThreadPool& pool, int64_t bytes) {
  return ReadBandwidthProbe(pool, bytes).measure();
}

}  // namespace troupe::cpu
#endif  // HWY_ONCE
