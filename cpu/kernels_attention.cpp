// Paged causal attention (Highway, runtime dispatch): one kernel for a tile of query rows
// (decode: the G query heads of one token; prefill / verification: G heads x a run of
// consecutive positions of one sequence) over one KV head.
//
// One pass over the cached positions with an online softmax, 32 positions at a time:
//   s_j = (q . k_j) * scale for the block; m' = max(m, max_j s_j);
//   l = l * e^(m - m') + sum_j e^(s_j - m');  o = o * e^(m - m') + sum_j e^(s_j - m') v_j;
// and out = o / l at the end. So K and V are each read once, no n_ctx-sized scratch is
// needed, and the exponentials of a block are one vector Exp.
//
// All rows of a tile are processed per block while that block's K and V rows (32 x head_dim
// floats each) sit in L1, so the tile reads K/V from memory once instead of once per row
// (FlashAttention-style) - at long contexts that is the dominant attention cost. Within a
// block, rows that see the same positions go up to 6 at a time (AVX-512; 2 below it), so
// each K and V vector loaded from L1 feeds 6 rows' FMAs instead of one: a row at a time
// the kernel was bound by loads (~37 GFLOP/s per core on the 1B shape's prefill tile, ~85
// now). A row's arithmetic is the same whichever rows share its step.
// Positions are walked with a running (block, slot) cursor rather than p / block_size,
// which would cost an integer division per position.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/kernels_attention.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
#include <hwy/cache_control.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "cpu/exp-inl.h"
#include "cpu/kernels.h"
#include "cpu/kv_convert-inl.h"
#include "cpu/load_f32-inl.h"

HWY_BEFORE_NAMESPACE();
namespace troupe::cpu::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Positions per online-softmax step: the per-row work of a step (max, exponentials, sums)
// is paid once per kBlock positions, so 32 rather than 16 (1.2x the prefill tile's GFLOP/s).
constexpr int64_t kBlock = 32;
constexpr int64_t kDotBlock = 16;  // positions per transposing reduction (DotBlock16)

// Walks positions 0, 1, ... of one KV head, yielding the index of each position's row
// (kv_head_row: the same for K, V and the Int8 scales).
class PositionCursor {
 public:
  PositionCursor(const PagedKv& kv, int64_t kv_head)
      : table_(kv.block_table), bs_(kv.block_size), heads_(kv.n_kv_heads), head_(kv_head) {}
  int64_t next() {
    const int64_t r = kv_head_row(table_[block_], slot_, head_, bs_, heads_);
    if (++slot_ == bs_) {
      slot_ = 0;
      ++block_;
    }
    return r;
  }

 private:
  const int32_t* table_;
  int64_t bs_, heads_, head_;
  int64_t block_ = 0, slot_ = 0;
};

HWY_INLINE float Dot(const float* HWY_RESTRICT q, const float* HWY_RESTRICT k, int64_t hd) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  VF a0 = hn::Zero(d), a1 = a0;
  int64_t i = 0;
  for (; i + 2 * N <= hd; i += 2 * N) {
    a0 = hn::MulAdd(hn::LoadU(d, q + i), hn::LoadU(d, k + i), a0);
    a1 = hn::MulAdd(hn::LoadU(d, q + i + N), hn::LoadU(d, k + i + N), a1);
  }
  for (; i + N <= hd; i += N) a0 = hn::MulAdd(hn::LoadU(d, q + i), hn::LoadU(d, k + i), a0);
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(a0, a1)));
  for (; i < hd; ++i) s += q[i] * k[i];
  return s;
}

// Scores of kP positions at once: kP independent accumulator chains so the loop runs at
// FMA throughput, not latency. 8, not 16: with 16 the row pointers no longer fit the
// general-purpose registers and GCC spills them (measured 15% slower).
constexpr int kScoreBatch = 8;
template <int kP>
HWY_INLINE void DotP(const float* HWY_RESTRICT q, const float* const* k, int64_t hd, float* s) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  VF acc[kP];
#pragma GCC unroll 16
  for (int j = 0; j < kP; ++j) acc[j] = hn::Zero(d);
  int64_t i = 0;
  for (; i + N <= hd; i += N) {
    const VF qv = hn::LoadU(d, q + i);
#pragma GCC unroll 16
    for (int j = 0; j < kP; ++j) acc[j] = hn::MulAdd(qv, hn::LoadU(d, k[j] + i), acc[j]);
  }
#pragma GCC unroll 16
  for (int j = 0; j < kP; ++j) {
    float sj = hn::GetLane(hn::SumOfLanes(d, acc[j]));
    for (int64_t t = i; t < hd; ++t) sj += q[t] * k[j][t];
    s[j] = sj;
  }
}

// o_r[off : off + kNV*N] = o_r * c_r + sum_j p_r[j] v[j][off : ...] for R rows that share
// the block's V rows, with the R x kNV output vectors in registers for the whole block: each
// V vector is loaded once for all R rows. Every row sees the FMA sequence of a single row.
template <int kNV, int R, typename KT>
HWY_INLINE void AccumulateV(const float* c, const float (*p)[kBlock], const KT* const* v,
                            int64_t n, int64_t off, float* const* o) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  VF acc[R][kNV];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const VF vc = hn::Set(d, c[r]);
#pragma GCC unroll 4
    for (int u = 0; u < kNV; ++u) acc[r][u] = hn::Mul(hn::LoadU(d, o[r] + off + u * N), vc);
  }
  for (int64_t j = 0; j < n; ++j) {
    const KT* vj = v[j] + off;
    VF vv[kNV];
#pragma GCC unroll 4
    for (int u = 0; u < kNV; ++u) vv[u] = LoadAsF32(vj + u * N);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const VF pj = hn::Set(d, p[r][j]);
#pragma GCC unroll 4
      for (int u = 0; u < kNV; ++u) acc[r][u] = hn::MulAdd(pj, vv[u], acc[r][u]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int u = 0; u < kNV; ++u) hn::StoreU(acc[r][u], d, o[r] + off + u * N);
}

// The elements [off, hd) past the last whole vector, one row. Not inlined so that every R
// runs the same code: inlined into the R-row loop GCC contracted and vectorised it
// differently, and a row's last element then depended on R.
HWY_NOINLINE void ScaleAccumulateTail(float c, const float* p, const float* const* v, int64_t n,
                                      int64_t off, int64_t hd, float* HWY_RESTRICT o) {
  for (; off < hd; ++off) {
    float acc = o[off] * c;
    for (int64_t j = 0; j < n; ++j) acc += p[j] * v[j][off];
    o[off] = acc;
  }
}

// o_r = o_r * c_r + sum_j p_r[j] v[j] for j < n and each of R rows.
template <int R, typename KT>
HWY_INLINE void ScaleAccumulate(const float* c, const float (*p)[kBlock], const KT* const* v,
                                int64_t n, int64_t hd, float* const* o) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(DF()));
  int64_t off = 0;
  // Up to 4 output vectors per row in registers (with one, head_dim 64 on AVX-512 ran at
  // FMA latency, not throughput). Each output element sees the same sequence of FMAs
  // whichever width handles it, so the split does not change results.
  for (; off + 4 * N <= hd; off += 4 * N) AccumulateV<4, R, KT>(c, p, v, n, off, o);
  for (; off + 2 * N <= hd; off += 2 * N) AccumulateV<2, R, KT>(c, p, v, n, off, o);
  for (; off + N <= hd; off += N) AccumulateV<1, R, KT>(c, p, v, n, off, o);
  if constexpr (std::is_same_v<KT, float>) {  // 16-bit rows come here only whole vectors long
    if (off < hd)
      for (int r = 0; r < R; ++r) ScaleAccumulateTail(c[r], p[r], v, n, off, hd, o[r]);
  }
}

// Lanes of a full float vector, when they are a power of two from 4 to 16 (the widths the
// block reduction below handles); other targets score positions one dot at a time.
#if HWY_TARGET != HWY_SCALAR
constexpr size_t kLanes = HWY_LANES(float);

// Per 128-bit block, the partial sums of four accumulators: block b of the result holds
// [sum of a's block b, b's, c's, d's] (each 4 lanes folded as (x0 + x2) + (x1 + x3)).
HWY_INLINE VF Fold4(VF a, VF b, VF c, VF d) {
  const DF df;
  const hn::Repartition<double, DF> dd;
  const VF ab = hn::Add(hn::InterleaveLower(df, a, b), hn::InterleaveUpper(df, a, b));
  const VF cd = hn::Add(hn::InterleaveLower(df, c, d), hn::InterleaveUpper(df, c, d));
  const auto abd = hn::BitCast(dd, ab), cdd = hn::BitCast(dd, cd);
  return hn::Add(hn::BitCast(df, hn::InterleaveLower(dd, abd, cdd)),
                 hn::BitCast(df, hn::InterleaveUpper(dd, abd, cdd)));
}

// Accumulators of q_r . k for the four positions k[0..3] and R query rows: each K vector
// is loaded once for all R rows (R x 4 FMA chains, hd / N FMAs per lane), then Fold4 per row.
template <int R, typename KT>
HWY_INLINE void Dot4(const float* const* q, const KT* const* k, int64_t hd, VF* out) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  VF a[R][4];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) a[r][0] = a[r][1] = a[r][2] = a[r][3] = hn::Zero(d);
  for (int64_t i = 0; i < hd; i += N) {
    const VF k0 = LoadAsF32(k[0] + i), k1 = LoadAsF32(k[1] + i);
    const VF k2 = LoadAsF32(k[2] + i), k3 = LoadAsF32(k[3] + i);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const VF qv = hn::LoadU(d, q[r] + i);
      a[r][0] = hn::MulAdd(qv, k0, a[r][0]);
      a[r][1] = hn::MulAdd(qv, k1, a[r][1]);
      a[r][2] = hn::MulAdd(qv, k2, a[r][2]);
      a[r][3] = hn::MulAdd(qv, k3, a[r][3]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) out[r] = Fold4(a[r][0], a[r][1], a[r][2], a[r][3]);
}

// s_r[c + j] = q_r . k[j] for 16 positions j and R rows, as whole vectors: the
// per-position horizontal sums are folded together (a transposing reduction) instead of one
// SumOfLanes per position. Needs head_dim a multiple of the lane count. For 16 lanes the
// four groups of four positions are computed in the order 0-3, 8-11, 4-7, 12-15 so that the
// block fold below leaves them in position order.
template <int R, typename KT>
HWY_INLINE void DotBlock16(const float* const* q, const KT* const* k, int64_t hd,
                           float (*s)[kBlock], int64_t c) {
  const DF d;
  if constexpr (kLanes == 4) {
    for (int g = 0; g < 4; ++g) {
      VF x[R];
      Dot4<R, KT>(q, k + 4 * g, hd, x);
      for (int r = 0; r < R; ++r) hn::Store(x[r], d, s[r] + c + 4 * g);
    }
  } else if constexpr (kLanes == 8) {
    for (int h = 0; h < 2; ++h) {  // positions [8h, 8h + 8): block 0 of x + block 1 of x, ...
      VF x[R], y[R];
      Dot4<R, KT>(q, k + 8 * h, hd, x);
      Dot4<R, KT>(q, k + 8 * h + 4, hd, y);
      for (int r = 0; r < R; ++r)
        hn::Store(hn::Add(hn::ConcatLowerLower(d, y[r], x[r]), hn::ConcatUpperUpper(d, y[r], x[r])),
                  d, s[r] + c + 8 * h);
    }
  } else if constexpr (kLanes == 16) {
    VF x0[R], x1[R], x2[R], x3[R];
    Dot4<R, KT>(q, k, hd, x0);
    Dot4<R, KT>(q, k + 8, hd, x1);
    Dot4<R, KT>(q, k + 4, hd, x2);
    Dot4<R, KT>(q, k + 12, hd, x3);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      // p blocks: [x0.b0+x0.b2, x0.b1+x0.b3, x1.b0+x1.b2, x1.b1+x1.b3]; t likewise.
      const VF p = hn::Add(hn::ConcatLowerLower(d, x1[r], x0[r]), hn::ConcatUpperUpper(d, x1[r], x0[r]));
      const VF t = hn::Add(hn::ConcatLowerLower(d, x3[r], x2[r]), hn::ConcatUpperUpper(d, x3[r], x2[r]));
      // Adjacent blocks summed: p -> [x0, x0, x1, x1], t -> [x2, x2, x3, x3]; the even blocks
      // of the first and odd of the second give [x0, x2, x1, x3] = positions 0-3, 4-7,
      // 8-11, 12-15.
      const VF ps = hn::Add(p, hn::SwapAdjacentBlocks(p));
      const VF ts = hn::Add(t, hn::SwapAdjacentBlocks(t));
      hn::Store(hn::OddEvenBlocks(ts, ps), d, s[r] + c);
    }
  }
}
// The scores of a block's first n positions (those past n are not computed; the caller
// masks them).
template <int R, typename KT>
HWY_INLINE void DotBlock(const float* const* q, const KT* const* k, int64_t hd, int64_t n,
                         float (*s)[kBlock]) {
  for (int64_t c = 0; c < n; c += kDotBlock) DotBlock16<R, KT>(q, k + c, hd, s, c);
}
constexpr bool kReduceBlocks = kLanes == 4 || kLanes == 8 || kLanes == 16;
#else
constexpr bool kReduceBlocks = false;
#endif

// One online-softmax step of R query rows over the same n (<= kBlock) positions, whose K and
// V rows are krow/vrow (krow holds kBlock valid pointers; those past n up to the next 16 are
// scored but masked):
// updates each row's running max m, sum l and unnormalised output o. Every caller (decode
// group, prefill tile) runs exactly this per-row arithmetic for a row's step at positions
// [p0, p0 + n), with p0 a multiple of kBlock and n fixed by the row's own context length; the
// R rows only share loads of K and V, never an operation, so a row's result depends on its
// position only - not on R or on which rows share its tile.
template <int R, typename KT>
HWY_INLINE void RowsStep(const float* const* q, const KT* const* krow,
                         const KT* const* vrow, int64_t n, int64_t hd, float scale,
                         float* const* m, float* const* l, float* const* o) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  HWY_ALIGN float s[R][kBlock];
  float c[R];
#if HWY_TARGET != HWY_SCALAR
  if (kReduceBlocks && hd % N == 0) {
    DotBlock<R, KT>(q, krow, hd, n, s);
    // Only the vectors that hold positions < n are touched (ScaleAccumulate reads p[j < n]
    // only); within the last one, lanes past n (other rows' positions, or slots not written
    // yet) become -inf and their exponentials 0, whatever the cache holds there.
    const VF vs = hn::Set(d, scale), ninf = hn::Set(d, -INFINITY);
    for (int r = 0; r < R; ++r) {
      VF vmax = ninf;
      for (int64_t j = 0; j < n; j += N) {
        const auto valid = hn::FirstN(d, static_cast<size_t>(n - j));
        const VF sv = hn::IfThenElse(valid, hn::Mul(hn::Load(d, s[r] + j), vs), ninf);
        hn::Store(sv, d, s[r] + j);
        vmax = hn::Max(vmax, sv);
      }
      const float m_new = std::max(*m[r], hn::GetLane(hn::MaxOfLanes(d, vmax)));
      c[r] = std::exp(*m[r] - m_new);  // 0 on the first block (m = -inf)
      const VF vm = hn::Set(d, m_new);
      VF vsum = hn::Zero(d);
      for (int64_t j = 0; j < n; j += N) {
        const auto valid = hn::FirstN(d, static_cast<size_t>(n - j));
        const VF e = hn::IfThenElseZero(valid, ExpF32(d, hn::Sub(hn::Load(d, s[r] + j), vm)));
        hn::Store(e, d, s[r] + j);
        vsum = hn::Add(vsum, e);
      }
      *l[r] = *l[r] * c[r] + hn::GetLane(hn::SumOfLanes(d, vsum));
      *m[r] = m_new;
    }
    ScaleAccumulate<R, KT>(c, s, vrow, n, hd, o);
    return;
  }
#endif
  if constexpr (std::is_same_v<KT, float>) {  // 16-bit rows are staged as float here
    for (int r = 0; r < R; ++r) {
      float* sr = s[r];
      const float* qg = q[r];
      int64_t j = 0;
      for (; j + kScoreBatch <= n; j += kScoreBatch) DotP<kScoreBatch>(qg, krow + j, hd, sr + j);
      for (; j + 4 <= n; j += 4) DotP<4>(qg, krow + j, hd, sr + j);
      for (; j < n; ++j) sr[j] = Dot(qg, krow[j], hd);
      VF vmax = hn::Set(d, -INFINITY);
      for (j = 0; j + N <= n; j += N) {
        const VF sv = hn::Mul(hn::Load(d, sr + j), hn::Set(d, scale));
        hn::Store(sv, d, sr + j);
        vmax = hn::Max(vmax, sv);
      }
      float bmax = hn::GetLane(hn::MaxOfLanes(d, vmax));
      for (; j < n; ++j) bmax = std::max(bmax, sr[j] *= scale);
      const float m_new = std::max(*m[r], bmax);
      c[r] = std::exp(*m[r] - m_new);  // 0 on the first block (m = -inf)
      // e^(s - m_new) for the block: vector Exp over s (padded lanes are not read).
      j = 0;
      float bsum = 0;
      const VF vm = hn::Set(d, m_new);
      for (; j + N <= n; j += N) {
        const VF e = ExpF32(d, hn::Sub(hn::Load(d, sr + j), vm));
        hn::Store(e, d, sr + j);
        bsum += hn::GetLane(hn::SumOfLanes(d, e));
      }
      for (; j < n; ++j) bsum += sr[j] = std::exp(sr[j] - m_new);
      *l[r] = *l[r] * c[r] + bsum;
      *m[r] = m_new;
    }
    ScaleAccumulate<R, KT>(c, s, vrow, n, hd, o);
  } else {
    HWY_ABORT("attention: 16-bit K/V rows take this path only staged as float");
  }
}

// Up to kRowsPerStep rows that reach the same positions of the current block, run together:
// R rows keep 4R score and 4R output accumulators in vector registers (32 with AVX-512,
// 16 below it).
#if HWY_TARGET <= HWY_AVX3
constexpr int kRowsPerStep = 6;
#else
constexpr int kRowsPerStep = 2;
#endif
struct RowBatch {
  const float* q[kRowsPerStep];
  float* m[kRowsPerStep];
  float* l[kRowsPerStep];
  float* o[kRowsPerStep];
  int count = 0;
  int64_t n = 0;  // positions of the block these rows see
};
template <typename KT>
HWY_INLINE void RunBatch(RowBatch& b, const KT* const* krow, const KT* const* vrow,
                         int64_t hd, float scale) {
  switch (b.count) {
#if HWY_TARGET <= HWY_AVX3
    case 6: RowsStep<6, KT>(b.q, krow, vrow, b.n, hd, scale, b.m, b.l, b.o); break;
    case 5: RowsStep<5, KT>(b.q, krow, vrow, b.n, hd, scale, b.m, b.l, b.o); break;
    case 4: RowsStep<4, KT>(b.q, krow, vrow, b.n, hd, scale, b.m, b.l, b.o); break;
    case 3: RowsStep<3, KT>(b.q, krow, vrow, b.n, hd, scale, b.m, b.l, b.o); break;
#endif
    case 2: RowsStep<2, KT>(b.q, krow, vrow, b.n, hd, scale, b.m, b.l, b.o); break;
    case 1: RowsStep<1, KT>(b.q, krow, vrow, b.n, hd, scale, b.m, b.l, b.o); break;
    default: break;
  }
  b.count = 0;
}

// What one tile call works on (see AttentionTile).
struct Tile {
  const float* q;
  int64_t q_stride, G, first_pos, n_pos;
  float scale;
  float* out;
  int64_t out_stride;
  float* m;  // running max per row
  float* l;  // running sum per row
};

// The walk over the cached positions, kBlock at a time, with K/V rows of element type KT read
// in place (float, or f16 / bf16 widened in registers) or, with kStage, converted block by
// block into float rows first (int8, whose scale is applied on conversion, and 16-bit rows
// whose head_dim is not a whole number of vectors). Staged rows are converted once per
// tile and shared by all its query rows; either way the math is the F32 path's on the same
// values, so a result equals F32 attention over the dequantized cache exactly.
template <typename KT, bool kStage>
void WalkBlocks(const Tile& t, int64_t kv_head, const PagedKv& kv) {
  const int64_t hd = kv.head_dim;
  const int64_t n_ctx = t.first_pos + t.n_pos;  // context of the tile's last row
  const KT* krow[kBlock];
  const KT* vrow[kBlock];
  // Fetch the next block's K and V rows while this block is computed (a block's rows of one
  // head are one run, but the runs of consecutive blocks lie anywhere in the pool).
  const int64_t row_bytes = hd * kv_dtype_elem_bytes(kv.dtype);
  const char* kbase = static_cast<const char*>(kv.k);
  const char* vbase = static_cast<const char*>(kv.v);
  PositionCursor cursor(kv, kv_head);
  int64_t next_rows[kBlock];  // the next block's row indices
  auto gather = [&](int64_t p0) {
    const int64_t n = std::min(kBlock, n_ctx - p0);
    for (int64_t j = 0; j < n; ++j) {
      next_rows[j] = cursor.next();
      for (int64_t b = 0; b < row_bytes; b += 64) {
        hwy::Prefetch(kbase + next_rows[j] * row_bytes + b);
        hwy::Prefetch(vbase + next_rows[j] * row_bytes + b);
      }
    }
  };
  thread_local std::vector<float> staged;
  if constexpr (kStage) staged.resize(static_cast<size_t>(2 * kBlock * hd));
  gather(0);
  for (int64_t p0 = 0; p0 < n_ctx; p0 += kBlock) {
    const int64_t n = std::min(kBlock, n_ctx - p0);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t r = next_rows[j];
      if constexpr (kStage) {
        float* ks = staged.data() + j * hd;
        float* vs = staged.data() + (kBlock + j) * hd;
        KvLoadHead(kv.dtype, kbase + r * row_bytes, kv.k_scale ? kv.k_scale[r] : 0.0f, hd, ks);
        KvLoadHead(kv.dtype, vbase + r * row_bytes, kv.v_scale ? kv.v_scale[r] : 0.0f, hd, vs);
        krow[j] = ks;
        vrow[j] = vs;
      } else {
        krow[j] = reinterpret_cast<const KT*>(kbase + r * row_bytes);
        vrow[j] = reinterpret_cast<const KT*>(vbase + r * row_bytes);
      }
    }
    std::fill(krow + n, krow + kBlock, krow[0]);  // scored by DotBlock, then masked
    if (p0 + kBlock < n_ctx) gather(p0 + kBlock);
    // Row i sees positions [0, first_pos + i]: this block's first n_i of them, if any.
    const int64_t i0 = std::max<int64_t>(0, p0 - t.first_pos);  // first row that reaches p0
    // Rows go kRowsPerStep at a time through the block (each K/V vector loaded once for
    // them); a batch holds rows that see the same count n_i.
    RowBatch batch;
    for (int64_t i = i0; i < t.n_pos; ++i) {
      const int64_t n_i = std::min(n, t.first_pos + i + 1 - p0);
      for (int64_t g = 0; g < t.G; ++g) {
        if (batch.count == kRowsPerStep || (batch.count > 0 && batch.n != n_i))
          RunBatch<KT>(batch, krow, vrow, hd, t.scale);
        const int64_t r = i * t.G + g;
        const int k = batch.count++;
        batch.n = n_i;
        batch.q[k] = t.q + i * t.q_stride + g * hd;
        batch.m[k] = &t.m[r];
        batch.l[k] = &t.l[r];
        batch.o[k] = t.out + i * t.out_stride + g * hd;
      }
    }
    RunBatch<KT>(batch, krow, vrow, hd, t.scale);
  }
}

// Causal attention of a tile of query rows over one KV head: n_pos consecutive positions
// first_pos, first_pos + 1, ... of one sequence, each with the G query heads [h0, h0 + G)
// that read KV head kv_head. Row (i, g) reads q + i * q_stride + g * hd and writes
// out + i * out_stride + g * hd, and sees positions [0, first_pos + i].
//
// The tile walks the cached positions kBlock at a time; each block's K and V rows are
// fetched from memory once and then used by every row of the tile that reaches that block
// (rows that do not - the causal triangle - skip it), instead of once per row. With
// n_pos = 1 this is the decode kernel that reads each block once for the GQA group.
void AttentionTile(const float* q, int64_t q_stride, int64_t G, int64_t kv_head,
                   const PagedKv& kv, int64_t first_pos, int64_t n_pos, float scale,
                   float* out, int64_t out_stride) {
  const int64_t hd = kv.head_dim;
  if (n_pos <= 0) return;
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  // Running max and sum per row; the output rows themselves hold the running o.
  constexpr int64_t kMaxRows = 256;
  HWY_DASSERT(n_pos * G <= kMaxRows);
  float m[kMaxRows], l[kMaxRows];
  std::fill(m, m + n_pos * G, -INFINITY);
  std::fill(l, l + n_pos * G, 0.0f);
  for (int64_t i = 0; i < n_pos; ++i) std::fill(out + i * out_stride, out + i * out_stride + G * hd, 0.0f);
  const Tile t{q, q_stride, G, first_pos, n_pos, scale, out, out_stride, m, l};
  // 16-bit rows are widened in registers where the block reduction runs (a staged copy per
  // block cost more than the halved reads saved: f16 decode at batch 32 ran slower than
  // f32).
  bool in_registers = false;
#if HWY_TARGET != HWY_SCALAR
  in_registers = kReduceBlocks && hd % N == 0;
#endif
  switch (kv.dtype) {
    case KvDtype::F32: WalkBlocks<float, false>(t, kv_head, kv); break;
    case KvDtype::F16:
      if (in_registers) WalkBlocks<hwy::float16_t, false>(t, kv_head, kv);
      else WalkBlocks<float, true>(t, kv_head, kv);
      break;
    case KvDtype::BF16:
      if (in_registers) WalkBlocks<hwy::bfloat16_t, false>(t, kv_head, kv);
      else WalkBlocks<float, true>(t, kv_head, kv);
      break;
    case KvDtype::Int8: WalkBlocks<float, true>(t, kv_head, kv); break;
  }
  for (int64_t i = 0; i < n_pos; ++i)
    for (int64_t g = 0; g < G; ++g) {
      const float inv = 1.0f / l[i * G + g];
      float* o = out + i * out_stride + g * hd;
      int64_t k = 0;
      for (; k + N <= hd; k += N) hn::StoreU(hn::Mul(hn::LoadU(d, o + k), hn::Set(d, inv)), d, o + k);
      for (; k < hd; ++k) o[k] *= inv;
    }
}

}  // namespace HWY_NAMESPACE
}  // namespace troupe::cpu::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace troupe::cpu {
namespace detail {
HWY_EXPORT(AttentionTile);
}  // namespace detail

namespace {
int64_t group_size(int64_t n_heads, const PagedKv& kv) {
  if (kv.n_kv_heads <= 0 || n_heads % kv.n_kv_heads != 0)
    fail("attention: {} query heads are not a multiple of {} KV heads", n_heads, kv.n_kv_heads);
  return n_heads / kv.n_kv_heads;
}

// Rows per tile call: the kernel keeps per-row state on the stack.
constexpr int64_t kMaxTileRows = 256;
}  // namespace

void attention_head(const float* q_head, int64_t head, int64_t n_heads, const PagedKv& kv,
                    int64_t n_ctx, float scale, float* out_head, float* /*scratch*/) {
  if (n_ctx <= 0) return std::fill(out_head, out_head + kv.head_dim, 0.0f);
  HWY_DYNAMIC_DISPATCH(detail::AttentionTile)(q_head, 0, 1, head / group_size(n_heads, kv), kv,
                                              n_ctx - 1, 1, scale, out_head, 0);
}

void attention_kv_group(const float* q, int64_t kv_head, int64_t n_heads, const PagedKv& kv,
                        int64_t n_ctx, float scale, float* out) {
  const int64_t G = group_size(n_heads, kv), hd = kv.head_dim;
  const int64_t h0 = kv_head * G;
  if (n_ctx <= 0) return std::fill(out + h0 * hd, out + (h0 + G) * hd, 0.0f);
  for (int64_t g0 = 0; g0 < G; g0 += kMaxTileRows) {
    const int64_t g = std::min(kMaxTileRows, G - g0);
    HWY_DYNAMIC_DISPATCH(detail::AttentionTile)(q + (h0 + g0) * hd, 0, g, kv_head, kv,
                                                n_ctx - 1, 1, scale, out + (h0 + g0) * hd, 0);
  }
}

void attention_causal_tile(const float* q, int64_t q_stride, int64_t kv_head, int64_t n_heads,
                           const PagedKv& kv, int64_t first_pos, int64_t n_pos, float scale,
                           float* out, int64_t out_stride) {
  const int64_t G = group_size(n_heads, kv), hd = kv.head_dim;
  if (first_pos < 0) fail("attention_causal_tile: negative first position {}", first_pos);
  const int64_t h0 = kv_head * G;
  if (G > kMaxTileRows) {  // very wide groups: one position at a time
    for (int64_t i = 0; i < n_pos; ++i)
      attention_kv_group(q + i * q_stride, kv_head, n_heads, kv, first_pos + i + 1, scale,
                         out + i * out_stride);
    return;
  }
  const int64_t per_call = kMaxTileRows / G;
  for (int64_t i0 = 0; i0 < n_pos; i0 += per_call) {
    const int64_t n = std::min(per_call, n_pos - i0);
    HWY_DYNAMIC_DISPATCH(detail::AttentionTile)(q + i0 * q_stride + h0 * hd, q_stride, G, kv_head,
                                                kv, first_pos + i0, n, scale,
                                                out + i0 * out_stride + h0 * hd, out_stride);
  }
}

void attention_one(const float* q, int64_t n_heads, const PagedKv& kv, int64_t n_ctx,
                   float scale, float* out, float* /*scratch*/) {
  for (int64_t kvh = 0; kvh < kv.n_kv_heads; ++kvh)
    attention_kv_group(q, kvh, n_heads, kv, n_ctx, scale, out);
}

}  // namespace troupe::cpu
#endif  // HWY_ONCE
