// Highway implementations of qrow.h.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/qrow.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>

#include "quant/qrow.h"

HWY_BEFORE_NAMESPACE();
namespace troupe::quant::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

float RowAbsMax(const float* HWY_RESTRICT x, int64_t n) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  auto m0 = hn::Zero(d), m1 = hn::Zero(d);  // two chains hide the max latency
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    m0 = hn::Max(m0, hn::Abs(hn::LoadU(d, x + i)));
    m1 = hn::Max(m1, hn::Abs(hn::LoadU(d, x + i + N)));
  }
  float m = hn::GetLane(hn::MaxOfLanes(d, hn::Max(m0, m1)));
  for (; i < n; ++i) m = std::fmax(m, std::fabs(x[i]));
  return m;
}

void RowMinMax(const float* HWY_RESTRICT x, int64_t n, float* lo, float* hi) {
  const DF d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  float l = n > 0 ? x[0] : 0.0f, h = l;
  int64_t i = 0;
  if (n >= N) {
    auto vl = hn::LoadU(d, x), vh = vl;
    for (; i + N <= n; i += N) {
      const auto v = hn::LoadU(d, x + i);
      vl = hn::Min(vl, v);
      vh = hn::Max(vh, v);
    }
    l = hn::GetLane(hn::MinOfLanes(d, vl));
    h = hn::GetLane(hn::MaxOfLanes(d, vh));
  }
  for (; i < n; ++i) l = std::fmin(l, x[i]), h = std::fmax(h, x[i]);
  *lo = l;
  *hi = h;
}

void RowQuantize(const float* HWY_RESTRICT x, int64_t n, float mul, float add, float lo,
                 float hi, int8_t* HWY_RESTRICT q) {
  const DF d;
  const hn::Rebind<int8_t, DF> d8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto vm = hn::Set(d, mul), va = hn::Set(d, add), vlo = hn::Set(d, lo), vhi = hn::Set(d, hi);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::Min(hn::Max(hn::MulAdd(hn::LoadU(d, x + i), vm, va), vlo), vhi);
    hn::StoreU(hn::DemoteTo(d8, hn::NearestInt(v)), d8, q + i);
  }
  for (; i < n; ++i) {
    const float v = std::fmin(std::fmax(x[i] * mul + add, lo), hi);
    q[i] = static_cast<int8_t>(std::nearbyint(v));
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace troupe::quant::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace troupe::quant::detail {

HWY_EXPORT(RowAbsMax);
HWY_EXPORT(RowMinMax);
HWY_EXPORT(RowQuantize);

float row_absmax(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(RowAbsMax)(x, n); }
void row_minmax(const float* x, int64_t n, float* lo, float* hi) {
  HWY_DYNAMIC_DISPATCH(RowMinMax)(x, n, lo, hi);
}
void row_quantize(const float* x, int64_t n, float mul, float add, float lo, float hi,
                  int8_t* q) {
  HWY_DYNAMIC_DISPATCH(RowQuantize)(x, n, mul, add, lo, hi, q);
}

}  // namespace troupe::quant::detail
#endif  // HWY_ONCE
