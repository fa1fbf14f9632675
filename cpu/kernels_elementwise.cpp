// Elementwise and row kernels: rmsnorm, rope, silu_mul, add_inplace, softmax, and the
// dtype conversions behind embedding_row / to_f32 (Highway, runtime dispatch).
// All are single-threaded: per token they touch a few KiB, far below the cost of waking
// the pool.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/kernels_elementwise.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "cpu/exp-inl.h"
#include "cpu/kernels.h"
#include "cpu/kernels_internal.h"

HWY_BEFORE_NAMESPACE();
namespace troupe::cpu::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

inline float load_f16_scale(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

void RmsNorm(const float* x, const float* w, float* out, int64_t n, float eps) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  VF a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    const VF v0 = hn::LoadU(d, x + i), v1 = hn::LoadU(d, x + i + N);
    const VF v2 = hn::LoadU(d, x + i + 2 * N), v3 = hn::LoadU(d, x + i + 3 * N);
    a0 = hn::MulAdd(v0, v0, a0);
    a1 = hn::MulAdd(v1, v1, a1);
    a2 = hn::MulAdd(v2, v2, a2);
    a3 = hn::MulAdd(v3, v3, a3);
  }
  for (; i + N <= n; i += N) {
    const VF v = hn::LoadU(d, x + i);
    a0 = hn::MulAdd(v, v, a0);
  }
  float ss = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) ss += x[i] * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(double(ss) / double(n) + double(eps)));
  const VF vinv = hn::Set(d, inv);
  i = 0;
  // Elementwise in the same index order, so out may alias x.
  for (; i + N <= n; i += N)
    hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, x + i), vinv), hn::LoadU(d, w + i)), d, out + i);
  for (; i < n; ++i) out[i] = x[i] * inv * w[i];
}

// cos/sin for one position, laid out so both styles are a pure SIMD multiply-add:
//   Halves:   c[j], s[j] for j < d/2 (rotating v[j] with v[j + d/2]).
//   Adjacent: c[2j] = c[2j+1] = cos_j, s[2j] = -sin_j, s[2j+1] = sin_j, so that
//             v' = v * c + swap_pairs(v) * s.
// Angles are computed in double (pos * freq in float loses the angle's low bits at long
// positions), reduced to [-pi, pi] and fed to Highway's vector sin/cos in double: a
// prefill of T tokens builds T tables per layer, and libm's scalar sin/cos/pow would cost
// ~4 us per table. The table is cached per thread because q and k of a token share it.
struct RopeTable {
  int64_t pos = -1, head_dim = 0;
  float theta = 0;
  RopeStyle style = RopeStyle::Halves;
  std::vector<double> inv_freq;  // theta^(-2j/d), for (theta, head_dim) of freq_key
  int64_t freq_dim = 0;
  float freq_theta = 0;
  std::vector<float> c, s, tmp_c, tmp_s;
};

const RopeTable& GetRopeTable(int64_t head_dim, int64_t pos, float theta, RopeStyle style) {
  thread_local RopeTable t;
  if (t.pos == pos && t.head_dim == head_dim && t.theta == theta && t.style == style) return t;
  const int64_t half = head_dim / 2;
  if (t.freq_dim != head_dim || t.freq_theta != theta) {
    t.inv_freq.resize(half);
    for (int64_t j = 0; j < half; ++j)
      t.inv_freq[j] = std::pow(double(theta), -2.0 * double(j) / double(head_dim));
    t.freq_dim = head_dim;
    t.freq_theta = theta;
  }
  t.pos = pos;
  t.head_dim = head_dim;
  t.theta = theta;
  t.style = style;
  t.c.resize(head_dim);
  t.s.resize(head_dim);
  t.tmp_c.resize(half);
  t.tmp_s.resize(half);

  const hn::ScalableTag<double> dd;
  const hn::Rebind<float, decltype(dd)> df;
  const int64_t Nd = static_cast<int64_t>(hn::Lanes(dd));
  // 2 pi split in a head and a tail (Cody-Waite) so the reduction is exact to ~1e-16 rad
  // per multiple of 2 pi even for angles of 1e6 rad.
  constexpr double k2PiHi = 6.28318530717958623200;
  constexpr double k2PiLo = 2.44929359829470635e-16;
  const auto vpos = hn::Set(dd, double(pos));
  int64_t j = 0;
  for (; j + Nd <= half; j += Nd) {
    auto a = hn::Mul(vpos, hn::LoadU(dd, t.inv_freq.data() + j));
    const auto k = hn::Round(hn::Mul(a, hn::Set(dd, 1.0 / k2PiHi)));
    a = hn::NegMulAdd(k, hn::Set(dd, k2PiLo), hn::NegMulAdd(k, hn::Set(dd, k2PiHi), a));
    hn::StoreU(hn::DemoteTo(df, hn::Cos(dd, a)), df, t.tmp_c.data() + j);
    hn::StoreU(hn::DemoteTo(df, hn::Sin(dd, a)), df, t.tmp_s.data() + j);
  }
  for (; j < half; ++j) {
    const double a = double(pos) * t.inv_freq[j];
    t.tmp_c[j] = static_cast<float>(std::cos(a));
    t.tmp_s[j] = static_cast<float>(std::sin(a));
  }
  for (j = 0; j < half; ++j) {
    const float c = t.tmp_c[j], s = t.tmp_s[j];
    if (style == RopeStyle::Halves) {
      t.c[j] = c;
      t.s[j] = s;
    } else {
      t.c[2 * j] = t.c[2 * j + 1] = c;
      t.s[2 * j] = -s;
      t.s[2 * j + 1] = s;
    }
  }
  return t;
}

void Rope(float* v, int64_t n_heads, int64_t head_dim, int64_t pos, float theta,
          RopeStyle style) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t half = head_dim / 2;
  const RopeTable& tab = GetRopeTable(head_dim, pos, theta, style);
  const float* c = tab.c.data();
  const float* s = tab.s.data();
  for (int64_t h = 0; h < n_heads; ++h) {
    float* x = v + h * head_dim;
    int64_t j = 0;
    if (style == RopeStyle::Halves) {
      float* y = x + half;
      for (; j + N <= half; j += N) {
        const VF x0 = hn::LoadU(d, x + j), x1 = hn::LoadU(d, y + j);
        const VF vc = hn::LoadU(d, c + j), vs = hn::LoadU(d, s + j);
        hn::StoreU(hn::NegMulAdd(x1, vs, hn::Mul(x0, vc)), d, x + j);  // x0 c - x1 s
        hn::StoreU(hn::MulAdd(x0, vs, hn::Mul(x1, vc)), d, y + j);     // x0 s + x1 c
      }
      for (; j < half; ++j) {
        const float x0 = x[j], x1 = y[j];
        x[j] = x0 * c[j] - x1 * s[j];
        y[j] = x0 * s[j] + x1 * c[j];
      }
    } else {
#if HWY_TARGET != HWY_SCALAR
      // Shuffle2301 swaps adjacent lanes; N is even on every vector target.
      for (; j + N <= head_dim; j += N) {
        const VF xv = hn::LoadU(d, x + j);
        const VF r = hn::MulAdd(hn::Shuffle2301(xv), hn::LoadU(d, s + j),
                                hn::Mul(xv, hn::LoadU(d, c + j)));
        hn::StoreU(r, d, x + j);
      }
#endif
      for (; j + 1 < head_dim; j += 2) {
        const float x0 = x[j], x1 = x[j + 1];
        x[j] = x0 * c[j] + x1 * s[j];  // s[j] = -sin
        x[j + 1] = x1 * c[j + 1] + x0 * s[j + 1];
      }
    }
  }
}

// silu(g) * u = g * u / (1 + exp(-g)). Exp is only valid up to +104, and exp(88) already
// makes the quotient 0 in float, so clamp its argument there.
void SiluMul(float* out, const float* gate, const float* up, int64_t n) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const VF one = hn::Set(d, 1.0f), lim = hn::Set(d, 88.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const VF g = hn::LoadU(d, gate + i);
    const VF e = ExpF32(d, hn::Min(hn::Neg(g), lim));
    hn::StoreU(hn::Div(hn::Mul(g, hn::LoadU(d, up + i)), hn::Add(one, e)), d, out + i);
  }
  for (; i < n; ++i) {
    const float g = gate[i];
    out[i] = g * up[i] / (1.0f + std::exp(std::min(-g, 88.0f)));
  }
}

void ExpN(const float* x, float* y, int64_t n) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(ExpF32(d, hn::LoadU(d, x + i)), d, y + i);
  for (; i < n; ++i) y[i] = std::exp(x[i]);
}

void AddInplace(float* y, const float* x, int64_t n) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::Add(hn::LoadU(d, y + i), hn::LoadU(d, x + i)), d, y + i);
  for (; i < n; ++i) y[i] += x[i];
}

void Softmax(float* x, int64_t n) {
  if (n <= 0) return;
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  VF vmax = hn::Set(d, x[0]);
  int64_t i = 0;
  for (; i + N <= n; i += N) vmax = hn::Max(vmax, hn::LoadU(d, x + i));
  float mx = hn::GetLane(hn::MaxOfLanes(d, vmax));
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  const VF vm = hn::Set(d, mx);
  VF s0 = hn::Zero(d), s1 = s0;
  i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const VF e0 = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), vm));
    const VF e1 = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i + N), vm));
    hn::StoreU(e0, d, x + i);
    hn::StoreU(e1, d, x + i + N);
    s0 = hn::Add(s0, e0);
    s1 = hn::Add(s1, e1);
  }
  for (; i + N <= n; i += N) {
    const VF e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), vm));
    hn::StoreU(e, d, x + i);
    s0 = hn::Add(s0, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1)));
  for (; i < n; ++i) sum += x[i] = std::exp(x[i] - mx);
  const float inv = 1.0f / sum;
  const VF vinv = hn::Set(d, inv);
  i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), vinv), d, x + i);
  for (; i < n; ++i) x[i] *= inv;
}

void F16ToF32(const uint16_t* src, float* dst, int64_t n) {
  const DF d;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto* s = reinterpret_cast<const hwy::float16_t*>(src);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::PromoteTo(d, hn::LoadU(dh, s + i)), d, dst + i);
  for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

void BF16ToF32(const uint16_t* src, float* dst, int64_t n) {
  const DF d;
  const hn::Rebind<hwy::bfloat16_t, DF> dh;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto* s = reinterpret_cast<const hwy::bfloat16_t*>(src);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::PromoteTo(d, hn::LoadU(dh, s + i)), d, dst + i);
  for (; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

// Q8_0 blocks {f16 d; int8 qs[32]} -> qs * d. Blocks are 34 bytes, so all loads unaligned.
void Q8_0ToF32(const uint8_t* src, float* dst, int64_t nblocks) {
  const DF d;
  const hn::Rebind<int8_t, DF> d8;
  const hn::Rebind<int32_t, DF> d32;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t b = 0; b < nblocks; ++b, src += 2 + kQK8_0, dst += kQK8_0) {
    const float scale = load_f16_scale(src);
    const auto* qs = reinterpret_cast<const int8_t*>(src + 2);
    const VF vs = hn::Set(d, scale);
    int64_t j = 0;
    for (; j + N <= kQK8_0; j += N)
      hn::StoreU(hn::Mul(hn::ConvertTo(d, hn::PromoteTo(d32, hn::LoadU(d8, qs + j))), vs), d,
                 dst + j);
    for (; j < kQK8_0; ++j) dst[j] = static_cast<float>(qs[j]) * scale;
  }
}

// Q4_0 blocks {f16 d; uint8 qs[16]}: element j < 16 is the low nibble of qs[j], element
// j + 16 the high nibble, both offset by -8, times d.
void Q4_0ToF32(const uint8_t* src, float* dst, int64_t nblocks) {
  const DF d;
  const hn::Rebind<uint8_t, DF> d8;
  const hn::Rebind<int32_t, DF> d32;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  constexpr int64_t kHalf = kQK4_0 / 2;
  const auto lowmask = hn::Set(d8, uint8_t{0x0F});
  const auto eight = hn::Set(d32, 8);
  for (int64_t b = 0; b < nblocks; ++b, src += 2 + kHalf, dst += kQK4_0) {
    const float scale = load_f16_scale(src);
    const uint8_t* qs = src + 2;
    const VF vs = hn::Set(d, scale);
    int64_t j = 0;
    for (; j + N <= kHalf; j += N) {
      const auto q = hn::LoadU(d8, qs + j);
      const auto lo = hn::Sub(hn::PromoteTo(d32, hn::And(q, lowmask)), eight);
      const auto hi = hn::Sub(hn::PromoteTo(d32, hn::ShiftRight<4>(q)), eight);
      hn::StoreU(hn::Mul(hn::ConvertTo(d, lo), vs), d, dst + j);
      hn::StoreU(hn::Mul(hn::ConvertTo(d, hi), vs), d, dst + kHalf + j);
    }
    for (; j < kHalf; ++j) {
      dst[j] = static_cast<float>((qs[j] & 0xF) - 8) * scale;
      dst[kHalf + j] = static_cast<float>((qs[j] >> 4) - 8) * scale;
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace troupe::cpu::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace troupe::cpu {
namespace detail {

HWY_EXPORT(RmsNorm);
HWY_EXPORT(Rope);
HWY_EXPORT(SiluMul);
HWY_EXPORT(ExpN);
HWY_EXPORT(AddInplace);
HWY_EXPORT(Softmax);
HWY_EXPORT(F16ToF32);
HWY_EXPORT(BF16ToF32);
HWY_EXPORT(Q8_0ToF32);
HWY_EXPORT(Q4_0ToF32);

void f16_to_f32_n(const uint16_t* src, float* dst, int64_t n) {
  HWY_DYNAMIC_DISPATCH(F16ToF32)(src, dst, n);
}
void bf16_to_f32_n(const uint16_t* src, float* dst, int64_t n) {
  HWY_DYNAMIC_DISPATCH(BF16ToF32)(src, dst, n);
}

namespace {

// Converts `n` consecutive elements starting at element 0 of `src` (for block types n is
// a multiple of the block size and src starts on a block).
void convert(DType dt, const uint8_t* src, float* dst, int64_t n, const char* what,
             const std::string& name) {
  switch (dt) {
    case DType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case DType::F16:
      f16_to_f32_n(reinterpret_cast<const uint16_t*>(src), dst, n);
      return;
    case DType::BF16:
      bf16_to_f32_n(reinterpret_cast<const uint16_t*>(src), dst, n);
      return;
    case DType::Q8_0:
      HWY_DYNAMIC_DISPATCH(Q8_0ToF32)(src, dst, n / kQK8_0);
      return;
    case DType::Q4_0:
      HWY_DYNAMIC_DISPATCH(Q4_0ToF32)(src, dst, n / kQK4_0);
      return;
    default:
      fail("{}: tensor '{}' has dtype {}, which cannot be converted to F32", what, name,
           dtype_name(dt));
  }
}

void check_blocks(const TensorView& t, const char* what) {
  const int64_t be = dtype_block_elems(t.dtype);
  if (be > 1 && t.cols() % be != 0)
    fail("{}: tensor '{}' ({}) has {} columns, not a multiple of its block size {}", what,
         t.name, dtype_name(t.dtype), t.cols(), be);
}

}  // namespace
}  // namespace detail

void rmsnorm(const float* x, const float* w, float* out, int64_t n, float eps) {
  HWY_DYNAMIC_DISPATCH(detail::RmsNorm)(x, w, out, n, eps);
}
void rope(float* v, int64_t n_heads, int64_t head_dim, int64_t pos, float theta,
          RopeStyle style) {
  HWY_DYNAMIC_DISPATCH(detail::Rope)(v, n_heads, head_dim, pos, theta, style);
}
void silu_mul(float* gate, const float* up, int64_t n) {
  HWY_DYNAMIC_DISPATCH(detail::SiluMul)(gate, gate, up, n);
}
void silu_mul_to(float* out, const float* gate, const float* up, int64_t n) {
  HWY_DYNAMIC_DISPATCH(detail::SiluMul)(out, gate, up, n);
}
namespace detail {
void exp_f32_n(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(ExpN)(x, y, n); }
}  // namespace detail
void add_inplace(float* y, const float* x, int64_t n) {
  HWY_DYNAMIC_DISPATCH(detail::AddInplace)(y, x, n);
}
void softmax(float* x, int64_t n) { HWY_DYNAMIC_DISPATCH(detail::Softmax)(x, n); }

void embedding_row(const TensorView& table, int64_t row, float* out) {
  if (table.layout != MatrixLayout::RowMajor)
    fail("embedding_row: tensor '{}' is not row-major", table.name);
  detail::check_blocks(table, "embedding_row");
  if (row < 0 || row >= table.rows())
    fail("embedding_row: row {} outside tensor '{}' of {} rows", row, table.name, table.rows());
  detail::convert(table.dtype, table.row_ptr(row), out, table.cols(), "embedding_row",
                  table.name);
}

void to_f32(const TensorView& t, float* out) {
  if (t.layout == MatrixLayout::Panels) {  // back to row-major, then as below
    std::vector<uint8_t> rows(static_cast<size_t>(t.numel() * dtype_row_bytes(t.dtype, 1)));
    unpack_panels(t, rows.data());
    TensorView r = t;
    r.layout = MatrixLayout::RowMajor;
    r.data = rows.data();
    return to_f32(r, out);
  }
  detail::check_blocks(t, "to_f32");
  // Rows are contiguous and block types have whole blocks per row, so the tensor is one
  // run of elements.
  detail::convert(t.dtype, static_cast<const uint8_t*>(t.data), out, t.numel(), "to_f32",
                  t.name);
}

}  // namespace troupe::cpu
#endif  // HWY_ONCE
