// Paged attention for one query token (Highway, runtime dispatch).
//
// Three passes over the cached positions of one KV head:
//   1. scores[p] = (q . k_p) * scale, four positions at a time (four independent dot
//      products share each q load), tracking the max;
//   2. scores[p] = exp(scores[p] - max), summed;
//   3. out = sum_p scores[p] * v_p, four positions per load/store of out, then out /= sum.
// Positions are walked with a running (block, slot) pair rather than p / block_size, which
// would cost an integer division per position.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/kernels_attention.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>

#include "cpu/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace troupe::cpu::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

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

HWY_INLINE void Dot4(const float* HWY_RESTRICT q, const float* k0, const float* k1,
                     const float* k2, const float* k3, int64_t hd, float* s) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  VF a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + N <= hd; i += N) {
    const VF qv = hn::LoadU(d, q + i);
    a0 = hn::MulAdd(qv, hn::LoadU(d, k0 + i), a0);
    a1 = hn::MulAdd(qv, hn::LoadU(d, k1 + i), a1);
    a2 = hn::MulAdd(qv, hn::LoadU(d, k2 + i), a2);
    a3 = hn::MulAdd(qv, hn::LoadU(d, k3 + i), a3);
  }
  s[0] = hn::GetLane(hn::SumOfLanes(d, a0));
  s[1] = hn::GetLane(hn::SumOfLanes(d, a1));
  s[2] = hn::GetLane(hn::SumOfLanes(d, a2));
  s[3] = hn::GetLane(hn::SumOfLanes(d, a3));
  for (; i < hd; ++i) {
    s[0] += q[i] * k0[i];
    s[1] += q[i] * k1[i];
    s[2] += q[i] * k2[i];
    s[3] += q[i] * k3[i];
  }
}

HWY_INLINE float Dot1(const float* HWY_RESTRICT q, const float* HWY_RESTRICT k, int64_t hd) {
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

// out += w0 v0 + w1 v1 + w2 v2 + w3 v3
HWY_INLINE void Axpy4(const float* w, const float* v0, const float* v1, const float* v2,
                      const float* v3, int64_t hd, float* HWY_RESTRICT out) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const VF w0 = hn::Set(d, w[0]), w1 = hn::Set(d, w[1]), w2 = hn::Set(d, w[2]),
           w3 = hn::Set(d, w[3]);
  int64_t i = 0;
  for (; i + N <= hd; i += N) {
    VF o = hn::LoadU(d, out + i);
    o = hn::MulAdd(w0, hn::LoadU(d, v0 + i), o);
    o = hn::MulAdd(w1, hn::LoadU(d, v1 + i), o);
    o = hn::MulAdd(w2, hn::LoadU(d, v2 + i), o);
    o = hn::MulAdd(w3, hn::LoadU(d, v3 + i), o);
    hn::StoreU(o, d, out + i);
  }
  for (; i < hd; ++i) out[i] += w[0] * v0[i] + w[1] * v1[i] + w[2] * v2[i] + w[3] * v3[i];
}

HWY_INLINE void Axpy1(float w, const float* HWY_RESTRICT v, int64_t hd, float* HWY_RESTRICT out) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const VF wv = hn::Set(d, w);
  int64_t i = 0;
  for (; i + N <= hd; i += N)
    hn::StoreU(hn::MulAdd(wv, hn::LoadU(d, v + i), hn::LoadU(d, out + i)), d, out + i);
  for (; i < hd; ++i) out[i] += w * v[i];
}

void AttentionHead(const float* q, int64_t head, int64_t n_heads, const PagedKv& kv,
                   int64_t n_ctx, float scale, float* out, float* scores) {
  const int64_t hd = kv.head_dim;
  std::fill(out, out + hd, 0.0f);
  if (n_ctx <= 0) return;
  const int64_t kvh = head / (n_heads / kv.n_kv_heads);

  // 1. scores and their max
  float mx = -INFINITY;
  {
    PositionCursor k(kv.k, kv, kvh);
    int64_t p = 0;
    for (; p + 4 <= n_ctx; p += 4) {
      const float *k0 = k.next(), *k1 = k.next(), *k2 = k.next(), *k3 = k.next();
      Dot4(q, k0, k1, k2, k3, hd, scores + p);
      for (int j = 0; j < 4; ++j) mx = std::max(mx, scores[p + j] *= scale);
    }
    for (; p < n_ctx; ++p) mx = std::max(mx, scores[p] = Dot1(q, k.next(), hd) * scale);
  }

  // 2. unnormalised probabilities
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const VF vmx = hn::Set(d, mx);
  VF vsum = hn::Zero(d);
  int64_t p = 0;
  for (; p + N <= n_ctx; p += N) {
    const VF e = hn::Exp(d, hn::Sub(hn::LoadU(d, scores + p), vmx));
    hn::StoreU(e, d, scores + p);
    vsum = hn::Add(vsum, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, vsum));
  for (; p < n_ctx; ++p) sum += scores[p] = std::exp(scores[p] - mx);

  // 3. weighted sum of V, normalised once at the end
  PositionCursor v(kv.v, kv, kvh);
  p = 0;
  for (; p + 4 <= n_ctx; p += 4) {
    const float *v0 = v.next(), *v1 = v.next(), *v2 = v.next(), *v3 = v.next();
    Axpy4(scores + p, v0, v1, v2, v3, hd, out);
  }
  for (; p < n_ctx; ++p) Axpy1(scores[p], v.next(), hd, out);
  const VF inv = hn::Set(d, 1.0f / sum);
  int64_t i = 0;
  for (; i + N <= hd; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, out + i), inv), d, out + i);
  for (; i < hd; ++i) out[i] *= 1.0f / sum;
}

}  // namespace HWY_NAMESPACE
}  // namespace troupe::cpu::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace troupe::cpu {
namespace detail {
HWY_EXPORT(AttentionHead);
}  // namespace detail

void attention_head(const float* q_head, int64_t head, int64_t n_heads, const PagedKv& kv,
                    int64_t n_ctx, float scale, float* out_head, float* scratch) {
  HWY_DYNAMIC_DISPATCH(detail::AttentionHead)(q_head, head, n_heads, kv, n_ctx, scale,
                                              out_head, scratch);
}

void attention_one(const float* q, int64_t n_heads, const PagedKv& kv, int64_t n_ctx,
                   float scale, float* out, float* scratch) {
  for (int64_t h = 0; h < n_heads; ++h)
    attention_head(q + h * kv.head_dim, h, n_heads, kv, n_ctx, scale, out + h * kv.head_dim,
                   scratch);
}

}  // namespace troupe::cpu
#endif  // HWY_ONCE
