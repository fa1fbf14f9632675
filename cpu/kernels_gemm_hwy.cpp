// Cache-blocked GEMM in Highway: y[T, out] = x[T, in] . W[out, in]^T for W in F32 or F16.
//
// Why not only OpenBLAS: Debian's OpenBLAS 0.3.21 does not know AMD Zen 4/5 and runs its
// AVX2 (Haswell) kernel there, half the FMA width of the AVX-512 units; and for F16
// weights it would need a separate conversion pass. This kernel uses whatever Highway
// target the CPU has and converts F16 while packing.
//
// Formulation (vectors along tokens, so W is never transposed):
//   - x is packed once per call into xT blocks [KC][TB] (TB = kVecT vectors of tokens,
//     zero padded past T), shared by all threads;
//   - each thread walks its output rows in blocks of NC rows; per KC slice it converts
//     the W block into Wp [NC][KC] (plain row copies, F16 -> F32 in SIMD);
//   - the micro-kernel keeps kRows x kVecT accumulators (12 x 2 with AVX-512): per k it
//     loads kVecT token vectors and broadcasts kRows weights, i.e. 14 loads per 24 FMAs;
//   - partial sums live in a transposed yT [NC][T] block (contiguous along tokens) and
//     are transposed into y (plus bias) once per row block.
// With one token block (T <= TB, e.g. a batch-32 decode step) each weight feeds a single
// micro-kernel pass, so W is not packed: the micro-kernel reads F32 rows in place
// (GemmRowsOneBlock), with the same slices and so the same rounding as the packed walk.
// Working set per thread (packed walk): xT block 32 KiB (L1), Wp 96 KiB and yT NC*T floats
// (L2); the one-block walk's Wp is one 12-row slice (12 KiB), for F16 and partial panels.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/kernels_gemm_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>

#include "cpu/kernels.h"
#include "cpu/kernels_internal.h"

// Target-independent helpers: foreach_target.h re-includes this file once per target.
#ifndef TROUPE_CPU_KERNELS_GEMM_HWY_COMMON_
#define TROUPE_CPU_KERNELS_GEMM_HWY_COMMON_
namespace troupe::cpu::detail {
namespace {

// 64-byte aligned scratch owned by the calling thread, grown on demand.
struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
float* scratch(std::unique_ptr<float[], AlignedFree>& buf, int64_t& cap, int64_t n) {
  if (n > cap) {
    const size_t bytes = (static_cast<size_t>(n) * 4 + 63) / 64 * 64;
    buf.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!buf) throw std::bad_alloc();
    cap = n;
  }
  return buf.get();
}

}  // namespace
}  // namespace troupe::cpu::detail
#endif  // TROUPE_CPU_KERNELS_GEMM_HWY_COMMON_

HWY_BEFORE_NAMESPACE();
namespace troupe::cpu::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

#if HWY_TARGET <= HWY_AVX3
constexpr int kRows = 12;  // 24 accumulators + 2 token vectors + 1 broadcast of 32 zmm
#else
constexpr int kRows = 6;   // 12 + 2 + 1 of 16 ymm/xmm
#endif
constexpr int kVecT = 2;
constexpr int64_t kKC = 256;             // k per slice: xT block = kKC * TB floats
constexpr int64_t kNC = 8 * kRows;       // W rows per block: Wp = kNC * kKC floats

HWY_INLINE int64_t TokBlock() { return kVecT * static_cast<int64_t>(hn::Lanes(DF())); }

// Cache lines of the W block that the next CopyRow pass will read, fetched into L2 one line
// per micro-kernel step. Without it the copy is a string of short row streams (kKC weights
// of each of kNC rows, one row stride apart) that the hardware prefetcher barely ramps up
// on, so the core waits on DRAM latency between its compute phases (batch-32 F32 steps at
// ~0.34 of the FMA peak on Zen 5 with the copy, 1.0 for INT4 that has no copy).
struct PrefetchRows {
  const char* row = nullptr;  // the current row's slice
  int64_t stride = 0;         // bytes from one row to the next
  int lines_per_row = 0;
  int rows_left = 0;
  int line = 0;
  HWY_INLINE void Step() {
    if (rows_left <= 0) return;
    __builtin_prefetch(row + line * 64, 0, 2);  // prefetcht1: into L2, the block is > L1
    if (++line == lines_per_row) {
      line = 0;
      row += stride;
      --rows_left;
    }
  }
};

HWY_INLINE void CopyRow(const float* src, float* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * 4);
}
HWY_INLINE void CopyRow(const hwy::float16_t* src, float* dst, int64_t n) {
  const DF d;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::PromoteTo(d, hn::LoadU(dh, src + i)), d, dst + i);
  if (i < n) f16_to_f32_n(reinterpret_cast<const uint16_t*>(src + i), dst + i, n - i);
}

// Rows [0, rows) of W's slice [k0, k0 + kc) (rows K apart) into Wp (rows kKC apart), as
// float, and rows [rows, padded) as zeros: what the micro-kernel reads for a partial panel.
template <typename WT>
HWY_INLINE void PackRows(const WT* w, int64_t K, int64_t k0, int64_t kc, int64_t rows,
                         int64_t padded, float* Wp) {
  for (int64_t r = 0; r < padded; ++r) {
    if (r < rows)
      CopyRow(w + r * K + k0, Wp + r * kKC, kc);
    else
      std::fill(Wp + r * kKC, Wp + r * kKC + kc, 0.0f);
  }
}

// y[t][oc + r] = yT[r][t] (+ bias[oc + r]) for t < T, r < nc: the row block's sums, back
// in token-major order.
HWY_INLINE void StoreRows(const float* yT, int64_t ldT, int64_t T, int64_t nc, int64_t oc,
                          float* y, int64_t ldy, const float* bias) {
  for (int64_t t = 0; t < T; ++t) {
    float* yrow = y + t * ldy + oc;
    for (int64_t r = 0; r < nc; ++r) yrow[r] = yT[r * ldT + t] + (bias ? bias[oc + r] : 0.0f);
  }
}

// Prefetch policies of MicroKernel: Group(k0) runs before each 16 k, Step() before each k.
struct NoFetch {
  HWY_INLINE void Group(int64_t) {}
  HWY_INLINE void Step() {}
};
// W read in place: each of the kRows rows' streams fetched kAhead floats ahead, into L2
// (the xT slice keeps L1).
struct RowsAhead {
  static constexpr int64_t kAhead = 256;
  const float* W;
  int64_t ld;
  HWY_INLINE void Group(int64_t k0) {
#pragma GCC unroll 12
    for (int r = 0; r < kRows; ++r) __builtin_prefetch(W + r * ld + k0 + kAhead, 0, 2);
  }
  HWY_INLINE void Step() {}
};
// PrefetchRows (above) fetches the next packed block one line per k.
struct NextBlock {
  PrefetchRows& pf;
  HWY_INLINE void Group(int64_t) {}
  HWY_INLINE void Step() { pf.Step(); }
};

// yT[r][0:TB] (+)= sum_k W[r][k] * xT[k][0:TB] for r < kRows, k < kc (W rows ld floats
// apart). The sums round the same whatever the policy and ld.
template <class Fetch>
HWY_INLINE void MicroKernel(const float* HWY_RESTRICT xT, const float* HWY_RESTRICT W,
                            int64_t ld, int64_t kc, float* HWY_RESTRICT yT, int64_t ldT,
                            bool accumulate, Fetch fetch) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t TB = kVecT * N;
  VF acc[kRows][kVecT];
#pragma GCC unroll 12
  for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < kVecT; ++v) acc[r][v] = hn::Zero(d);
  for (int64_t k0 = 0; k0 < kc; k0 += 16) {
    fetch.Group(k0);
    const int64_t k1 = std::min(kc, k0 + 16);
    for (int64_t k = k0; k < k1; ++k) {
      fetch.Step();
      VF xv[kVecT];
#pragma GCC unroll 2
      for (int v = 0; v < kVecT; ++v) xv[v] = hn::LoadU(d, xT + k * TB + v * N);
#pragma GCC unroll 12
      for (int r = 0; r < kRows; ++r) {
        const VF w = hn::Set(d, W[r * ld + k]);
#pragma GCC unroll 2
        for (int v = 0; v < kVecT; ++v) acc[r][v] = hn::MulAdd(w, xv[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < kVecT; ++v) {
      float* p = yT + r * ldT + v * N;
      hn::StoreU(accumulate ? hn::Add(acc[r][v], hn::LoadU(d, p)) : acc[r][v], d, p);
    }
}

// One token block (T <= TB): every weight is used by one micro-kernel pass, so packing a
// whole W block would only copy it. Each kRows-row panel runs over all of K, one kKC slice
// after another so the sums round exactly as GemmRows' do (a token's outputs do not
// depend on T). F32 rows are read in place; F16 rows are widened a slice at a time into
// an L1 buffer; a panel past the last whole one is copied with zero rows.
template <typename WT>
void GemmRowsOneBlock(const float* xT, int64_t T, const WT* W, int64_t K, int64_t r0,
                      int64_t r1, float* y, int64_t ldy, const float* bias) {
  constexpr bool kInPlace = std::is_same_v<WT, float>;
  thread_local std::unique_ptr<float[], AlignedFree> wp_buf, yt_buf;
  thread_local int64_t wp_cap = 0, yt_cap = 0;
  const int64_t TB = TokBlock();
  float* yT = scratch(yt_buf, yt_cap, kNC * TB);
  float* Wp = scratch(wp_buf, wp_cap, kRows * kKC);
  for (int64_t oc = r0; oc < r1; oc += kNC) {
    const int64_t nc = std::min(kNC, r1 - oc);
    for (int64_t s = 0; s < nc; s += kRows) {
      const WT* w = W + (oc + s) * K;
      const int64_t rows = std::min<int64_t>(kRows, nc - s);
      for (int64_t k0 = 0; k0 < K; k0 += kKC) {
        const int64_t kc = std::min(kKC, K - k0);
        if (kInPlace && rows == kRows) {
          const float* wk = reinterpret_cast<const float*>(w) + k0;
          MicroKernel(xT + k0 * TB, wk, K, kc, yT + s * TB, TB, k0 > 0, RowsAhead{wk, K});
          continue;
        }
        if (!kInPlace && k0 + kKC < K)  // the rows' next slices, into L2
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t b = 0; b < kKC * int64_t(sizeof(WT)); b += 64)
              __builtin_prefetch(reinterpret_cast<const char*>(w + r * K + k0 + kKC) + b, 0, 2);
        PackRows(w, K, k0, kc, rows, kRows, Wp);
        MicroKernel(xT + k0 * TB, Wp, kKC, kc, yT + s * TB, TB, k0 > 0, NoFetch{});
      }
    }
    StoreRows(yT, TB, T, nc, oc, y, ldy, bias);
  }
}

// Packs x[T, K] into xT[kb][tb][KC][TB] for the (kb, tb) pairs in [p0, p1).
void PackX(const float* x, int64_t T, int64_t K, float* xT, int64_t p0, int64_t p1) {
  const int64_t TB = TokBlock();
  const int64_t ntb = (T + TB - 1) / TB;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t kb = p / ntb, tb = p % ntb;
    const int64_t k0 = kb * kKC, kc = std::min(kKC, K - k0), t0 = tb * TB;
    float* dst = xT + p * kKC * TB;
    for (int64_t t = 0; t < TB; ++t) {
      if (t0 + t < T) {
        const float* src = x + (t0 + t) * K + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * TB + t] = src[k];
      } else {
        for (int64_t k = 0; k < kc; ++k) dst[k * TB + t] = 0.0f;
      }
    }
  }
}

// Output rows [r0, r1) for all T tokens, from the packed xT.
template <typename WT>
void GemmRows(const float* xT, int64_t T, const WT* W, int64_t K, int64_t r0, int64_t r1,
              float* y, int64_t ldy, const float* bias) {
  if (T <= TokBlock()) return GemmRowsOneBlock(xT, T, W, K, r0, r1, y, ldy, bias);
  thread_local std::unique_ptr<float[], AlignedFree> wp_buf, yt_buf;
  thread_local int64_t wp_cap = 0, yt_cap = 0;
  const int64_t TB = TokBlock();
  const int64_t ntb = (T + TB - 1) / TB, ldT = ntb * TB;
  const int64_t nkb = (K + kKC - 1) / kKC;
  float* Wp = scratch(wp_buf, wp_cap, kNC * kKC);
  float* yT = scratch(yt_buf, yt_cap, kNC * ldT);
  // The W block after (oc, kb) in this thread's walk, for the prefetch.
  auto next_block = [&](int64_t oc, int64_t kb) {
    PrefetchRows pf;
    if (++kb == nkb) {
      kb = 0;
      oc += kNC;
    }
    if (oc >= r1) return pf;
    const int64_t k0 = kb * kKC, kc = std::min(kKC, K - k0);
    pf.row = reinterpret_cast<const char*>(W + oc * K + k0);
    pf.stride = K * static_cast<int64_t>(sizeof(WT));
    pf.lines_per_row = static_cast<int>((kc * static_cast<int64_t>(sizeof(WT)) + 63) / 64);
    pf.rows_left = static_cast<int>(std::min(kNC, r1 - oc));
    return pf;
  };
  for (int64_t oc = r0; oc < r1; oc += kNC) {
    const int64_t nc = std::min(kNC, r1 - oc);
    const int64_t nsub = (nc + kRows - 1) / kRows;
    for (int64_t kb = 0; kb < nkb; ++kb) {
      const int64_t k0 = kb * kKC, kc = std::min(kKC, K - k0);
      PackRows(W + oc * K, K, k0, kc, nc, nsub * kRows, Wp);
      PrefetchRows pf = next_block(oc, kb);
      for (int64_t tb = 0; tb < ntb; ++tb) {
        const float* xb = xT + (kb * ntb + tb) * kKC * TB;
        for (int64_t s = 0; s < nsub; ++s)
          MicroKernel(xb, Wp + s * kRows * kKC, kKC, kc, yT + s * kRows * ldT + tb * TB, ldT, kb > 0,
                      NextBlock{pf});
      }
    }
    StoreRows(yT, ldT, T, nc, oc, y, ldy, bias);
  }
}

int64_t PackedXFloats(int64_t T, int64_t K) {
  const int64_t TB = TokBlock();
  return ((K + kKC - 1) / kKC) * ((T + TB - 1) / TB) * kKC * TB;
}
int64_t PackedXPanels(int64_t T, int64_t K) {
  const int64_t TB = TokBlock();
  return ((K + kKC - 1) / kKC) * ((T + TB - 1) / TB);
}
void GemmRowsF32(const float* xT, int64_t T, const float* W, int64_t K, int64_t r0, int64_t r1,
                 float* y, int64_t ldy, const float* bias) {
  GemmRows(xT, T, W, K, r0, r1, y, ldy, bias);
}
void GemmRowsF16(const float* xT, int64_t T, const uint16_t* W, int64_t K, int64_t r0,
                 int64_t r1, float* y, int64_t ldy, const float* bias) {
  GemmRows(xT, T, reinterpret_cast<const hwy::float16_t*>(W), K, r0, r1, y, ldy, bias);
}
int64_t RowBlock() { return kNC; }

}  // namespace HWY_NAMESPACE
}  // namespace troupe::cpu::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace troupe::cpu::detail {

HWY_EXPORT(PackX);
HWY_EXPORT(PackedXFloats);
HWY_EXPORT(PackedXPanels);
HWY_EXPORT(GemmRowsF32);
HWY_EXPORT(GemmRowsF16);
HWY_EXPORT(RowBlock);

void matmul_tiled(ThreadPool& pool, const float* x, int64_t T, const TensorView& W, float* y,
                  const float* bias) {
  const int64_t out = W.rows(), K = W.cols();
  // The packed x belongs to the calling thread (thread 0 of the pool) and is shared
  // read-only by the workers for the duration of the call.
  thread_local std::unique_ptr<float[], AlignedFree> xt_buf;
  thread_local int64_t xt_cap = 0;
  float* xT = scratch(xt_buf, xt_cap, HWY_DYNAMIC_DISPATCH(PackedXFloats)(T, K));
  pool.parallel_for(HWY_DYNAMIC_DISPATCH(PackedXPanels)(T, K), 1, [&](int, int64_t p0, int64_t p1) {
    HWY_DYNAMIC_DISPATCH(PackX)(x, T, K, xT, p0, p1);
  });
  pool.parallel_for(out, HWY_DYNAMIC_DISPATCH(RowBlock)(), [&](int, int64_t r0, int64_t r1) {
    if (W.dtype == DType::F16)
      HWY_DYNAMIC_DISPATCH(GemmRowsF16)(xT, T, static_cast<const uint16_t*>(W.data), K, r0, r1,
                                        y, out, bias);
    else
      HWY_DYNAMIC_DISPATCH(GemmRowsF32)(xT, T, static_cast<const float*>(W.data), K, r0, r1, y,
                                        out, bias);
  });
}

}  // namespace troupe::cpu::detail
#endif  // HWY_ONCE
