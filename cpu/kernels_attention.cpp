// Paged attention for one query token (Highway, runtime dispatch).
//
// One pass over the cached positions with an online softmax, 16 positions at a time:
//   s_j = (q . k_j) * scale for the block; m' = max(m, max_j s_j);
//   l = l * e^(m - m') + sum_j e^(s_j - m');  o = o * e^(m - m') + sum_j e^(s_j - m') v_j;
// and out = o / l at the end. So K and V are each read once, no n_ctx-sized scratch is
// needed, and the exponentials of a block are one vector Exp.
//
// All query heads that share a KV head (GQA) are processed per block while that block's
// K and V rows (16 x head_dim floats each) sit in L1, so a group of G heads reads K/V from
// memory once instead of G times - at long contexts that is the dominant attention cost.
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

#include "core/error.h"
#include "cpu/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace troupe::cpu::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr int64_t kBlock = 16;  // positions per online-softmax step

// Walks positions 0, 1, ... of one KV head, yielding the row pointer of each.
class PositionCursor {
 public:
  PositionCursor(const float* base, const PagedKv& kv, int64_t kv_head)
      : base_(base + kv_head * kv.head_dim),
        table_(kv.block_table),
        bs_(kv.block_size),
        stride_(kv.n_kv_heads * kv.head_dim) {}
  const float* next() {
    const float* p = base_ + (int64_t(table_[block_]) * bs_ + slot_) * stride_;
    if (++slot_ == bs_) {
      slot_ = 0;
      ++block_;
    }
    return p;
  }

 private:
  const float* base_;
  const int32_t* table_;
  int64_t bs_, stride_;
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

// o[off : off + kNV*N] = o * c + sum_j p[j] v[j][off : ...] with the kNV output vectors in
// registers for the whole block (kNV independent chains).
template <int kNV>
HWY_INLINE void AccumulateV(float c, const float* p, const float* const* v, int64_t n,
                            int64_t off, float* HWY_RESTRICT o) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const VF vc = hn::Set(d, c);
  VF acc[kNV];
#pragma GCC unroll 8
  for (int u = 0; u < kNV; ++u) acc[u] = hn::Mul(hn::LoadU(d, o + off + u * N), vc);
  for (int64_t j = 0; j < n; ++j) {
    const VF pj = hn::Set(d, p[j]);
    const float* vj = v[j] + off;
#pragma GCC unroll 8
    for (int u = 0; u < kNV; ++u) acc[u] = hn::MulAdd(pj, hn::LoadU(d, vj + u * N), acc[u]);
  }
#pragma GCC unroll 8
  for (int u = 0; u < kNV; ++u) hn::StoreU(acc[u], d, o + off + u * N);
}

// o = o * c + sum_j p[j] v[j] for j < n.
HWY_INLINE void ScaleAccumulate(float c, const float* p, const float* const* v, int64_t n,
                                int64_t hd, float* HWY_RESTRICT o) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(DF()));
  int64_t off = 0;
  for (; off + 8 * N <= hd; off += 8 * N) AccumulateV<8>(c, p, v, n, off, o);
  for (; off + N <= hd; off += N) AccumulateV<1>(c, p, v, n, off, o);
  for (; off < hd; ++off) {
    float acc = o[off] * c;
    for (int64_t j = 0; j < n; ++j) acc += p[j] * v[j][off];
    o[off] = acc;
  }
}

// Heads [h0, h0 + G) all read KV head kv_head. q and out point at head h0.
void AttentionGroup(const float* q, int64_t G, int64_t kv_head, const PagedKv& kv,
                    int64_t n_ctx, float scale, float* out) {
  const int64_t hd = kv.head_dim;
  std::fill(out, out + G * hd, 0.0f);
  if (n_ctx <= 0) return;
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  // Running max and sum per head; the output rows themselves hold the running o.
  constexpr int64_t kMaxGroup = 64;
  float m[kMaxGroup], l[kMaxGroup];
  std::fill(m, m + G, -INFINITY);
  std::fill(l, l + G, 0.0f);
  HWY_ALIGN float s[kBlock];
  const float* krow[kBlock];
  const float* vrow[kBlock];
  // Rows of one KV head are head_dim-float pieces n_kv_heads * head_dim floats apart, too
  // sparse for the hardware prefetchers to follow: fetch the next block's K and V rows while
  // this block is computed.
  PositionCursor kc(kv.k, kv, kv_head), vc(kv.v, kv, kv_head);
  const float* knext[kBlock];
  const float* vnext[kBlock];
  auto gather = [&](int64_t p0, const float** kr, const float** vr) {
    const int64_t n = std::min(kBlock, n_ctx - p0);
    for (int64_t j = 0; j < n; ++j) {
      kr[j] = kc.next();
      vr[j] = vc.next();
      for (int64_t b = 0; b < hd * 4; b += 64) {
        hwy::Prefetch(reinterpret_cast<const char*>(kr[j]) + b);
        hwy::Prefetch(reinterpret_cast<const char*>(vr[j]) + b);
      }
    }
  };
  gather(0, knext, vnext);
  for (int64_t p0 = 0; p0 < n_ctx; p0 += kBlock) {
    const int64_t n = std::min(kBlock, n_ctx - p0);
    std::copy(knext, knext + n, krow);
    std::copy(vnext, vnext + n, vrow);
    if (p0 + kBlock < n_ctx) gather(p0 + kBlock, knext, vnext);
    for (int64_t g = 0; g < G; ++g) {
      const float* qg = q + g * hd;
      int64_t j = 0;
      for (; j + kScoreBatch <= n; j += kScoreBatch) DotP<kScoreBatch>(qg, krow + j, hd, s + j);
      for (; j + 4 <= n; j += 4) DotP<4>(qg, krow + j, hd, s + j);
      for (; j < n; ++j) s[j] = Dot(qg, krow[j], hd);
      VF vmax = hn::Set(d, -INFINITY);
      for (j = 0; j + N <= n; j += N) {
        const VF sv = hn::Mul(hn::Load(d, s + j), hn::Set(d, scale));
        hn::Store(sv, d, s + j);
        vmax = hn::Max(vmax, sv);
      }
      float bmax = hn::GetLane(hn::MaxOfLanes(d, vmax));
      for (; j < n; ++j) bmax = std::max(bmax, s[j] *= scale);
      const float m_new = std::max(m[g], bmax);
      const float c = std::exp(m[g] - m_new);  // 0 on the first block (m = -inf)
      // e^(s - m_new) for the block: vector Exp over s (padded lanes are not read).
      j = 0;
      float bsum = 0;
      const VF vm = hn::Set(d, m_new);
      for (; j + N <= n; j += N) {
        const VF e = hn::Exp(d, hn::Sub(hn::Load(d, s + j), vm));
        hn::Store(e, d, s + j);
        bsum += hn::GetLane(hn::SumOfLanes(d, e));
      }
      for (; j < n; ++j) bsum += s[j] = std::exp(s[j] - m_new);
      l[g] = l[g] * c + bsum;
      m[g] = m_new;
      ScaleAccumulate(c, s, vrow, n, hd, out + g * hd);
    }
  }
  for (int64_t g = 0; g < G; ++g) {
    const float inv = 1.0f / l[g];
    float* o = out + g * hd;
    int64_t i = 0;
    for (; i + N <= hd; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, o + i), hn::Set(d, inv)), d, o + i);
    for (; i < hd; ++i) o[i] *= inv;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace troupe::cpu::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace troupe::cpu {
namespace detail {
HWY_EXPORT(AttentionGroup);
}  // namespace detail

namespace {
int64_t group_size(int64_t n_heads, const PagedKv& kv) {
  if (kv.n_kv_heads <= 0 || n_heads % kv.n_kv_heads != 0)
    fail("attention: {} query heads are not a multiple of {} KV heads", n_heads, kv.n_kv_heads);
  return n_heads / kv.n_kv_heads;
}
}  // namespace

void attention_head(const float* q_head, int64_t head, int64_t n_heads, const PagedKv& kv,
                    int64_t n_ctx, float scale, float* out_head, float* /*scratch*/) {
  HWY_DYNAMIC_DISPATCH(detail::AttentionGroup)(q_head, 1, head / group_size(n_heads, kv), kv,
                                               n_ctx, scale, out_head);
}

void attention_kv_group(const float* q, int64_t kv_head, int64_t n_heads, const PagedKv& kv,
                        int64_t n_ctx, float scale, float* out) {
  const int64_t G = group_size(n_heads, kv), hd = kv.head_dim;
  // The kernel keeps per-head state on the stack; split very wide groups.
  for (int64_t g0 = 0; g0 < G; g0 += 64) {
    const int64_t g = std::min<int64_t>(64, G - g0);
    const int64_t h0 = kv_head * G + g0;
    HWY_DYNAMIC_DISPATCH(detail::AttentionGroup)(q + h0 * hd, g, kv_head, kv, n_ctx, scale,
                                                 out + h0 * hd);
  }
}

void attention_one(const float* q, int64_t n_heads, const PagedKv& kv, int64_t n_ctx,
                   float scale, float* out, float* /*scratch*/) {
  for (int64_t kvh = 0; kvh < kv.n_kv_heads; ++kvh)
    attention_kv_group(q, kvh, n_heads, kv, n_ctx, scale, out);
}

}  // namespace troupe::cpu
#endif  // HWY_ONCE
