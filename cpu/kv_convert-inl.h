// Conversions between float and the KV cache's stored element types (core/kv_dtype.h), per
// Highway target: included by kernels_kv.cpp (writing rows into the cache) and
// kernels_attention.cpp (reading them back while attending), so both compile the same
// code for each target. The SIMD and scalar tails give identical values.

// Per-target include guard (Highway's -inl.h convention).
#if defined(TROUPE_CPU_KV_CONVERT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef TROUPE_CPU_KV_CONVERT_INL_H_
#undef TROUPE_CPU_KV_CONVERT_INL_H_
#else
#define TROUPE_CPU_KV_CONVERT_INL_H_
#endif

#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/half.h"
#include "core/kv_dtype.h"

HWY_BEFORE_NAMESPACE();
namespace troupe::cpu::detail {
namespace HWY_NAMESPACE {
namespace kvc = hwy::HWY_NAMESPACE;

// dst[i] = float(src[i]) for n stored 16-bit elements of type HalfT (hwy::float16_t or
// hwy::bfloat16_t); ToF32 converts the scalar tail the same way.
template <class HalfT, float (*ToF32)(uint16_t)>
HWY_INLINE void KvLoadHalf(const uint16_t* HWY_RESTRICT src, float* HWY_RESTRICT dst, int64_t n) {
  const kvc::ScalableTag<float> d;
  const kvc::Rebind<HalfT, decltype(d)> dh;
  const int64_t N = static_cast<int64_t>(kvc::Lanes(d));
  const auto* s = reinterpret_cast<const HalfT*>(src);
  int64_t i = 0;
  for (; i + N <= n; i += N) kvc::StoreU(kvc::PromoteTo(d, kvc::LoadU(dh, s + i)), d, dst + i);
  for (; i < n; ++i) dst[i] = ToF32(src[i]);
}

// dst[i] = float(q[i]) * scale.
HWY_INLINE void KvLoadI8(const int8_t* HWY_RESTRICT q, float scale, float* HWY_RESTRICT dst,
                         int64_t n) {
  const kvc::ScalableTag<float> d;
  const kvc::Rebind<int32_t, decltype(d)> d32;
  const kvc::Rebind<int8_t, decltype(d)> d8;
  const int64_t N = static_cast<int64_t>(kvc::Lanes(d));
  const auto vs = kvc::Set(d, scale);
  int64_t i = 0;
  for (; i + N <= n; i += N)
    kvc::StoreU(kvc::Mul(kvc::ConvertTo(d, kvc::PromoteTo(d32, kvc::LoadU(d8, q + i))), vs), d, dst + i);
  for (; i < n; ++i) dst[i] = static_cast<float>(q[i]) * scale;
}

// One KV head's row of head_dim elements, stored as `dtype` at `src` (scale: Int8 only).
HWY_INLINE void KvLoadHead(KvDtype dtype, const void* src, float scale, int64_t hd, float* dst) {
  switch (dtype) {
    case KvDtype::F32: std::copy_n(static_cast<const float*>(src), hd, dst); return;
    case KvDtype::F16: return KvLoadHalf<hwy::float16_t, f16_to_f32>(static_cast<const uint16_t*>(src), dst, hd);
    case KvDtype::BF16: return KvLoadHalf<hwy::bfloat16_t, bf16_to_f32>(static_cast<const uint16_t*>(src), dst, hd);
    case KvDtype::Int8: return KvLoadI8(static_cast<const int8_t*>(src), scale, dst, hd);
  }
}

// Float to IEEE half, rounded to nearest even: F16C on the x86 SIMD targets; the emulated
// targets convert one scalar at a time (Highway 1.0's emulated DemoteTo truncates).
HWY_INLINE void KvStoreF16(const float* HWY_RESTRICT src, uint16_t* HWY_RESTRICT dst, int64_t n) {
  int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
  const kvc::ScalableTag<float> d;
  const kvc::Rebind<hwy::float16_t, decltype(d)> dh;
  const int64_t N = static_cast<int64_t>(kvc::Lanes(d));
  auto* out = reinterpret_cast<hwy::float16_t*>(dst);
  for (; i + N <= n; i += N) kvc::StoreU(kvc::DemoteTo(dh, kvc::LoadU(d, src + i)), dh, out + i);
#endif
  for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

// Float to bfloat16, rounded to nearest even as core/half.h's f32_to_bf16 does. (Highway
// 1.0's DemoteTo to bfloat16 truncates, which biases every stored value towards zero, so
// the rounding is done here on the bits: add 0x7fff plus the kept part's lowest bit.)
HWY_INLINE void KvStoreBF16(const float* HWY_RESTRICT src, uint16_t* HWY_RESTRICT dst, int64_t n) {
  const kvc::ScalableTag<float> d;
  const kvc::RebindToUnsigned<decltype(d)> du;
  const kvc::RebindToSigned<decltype(d)> di;
  const kvc::Rebind<uint16_t, decltype(d)> du16;
  const int64_t N = static_cast<int64_t>(kvc::Lanes(d));
  const auto round = kvc::Set(du, 0x7fff), one = kvc::Set(du, 1), quiet = kvc::Set(du, 0x40);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = kvc::LoadU(d, src + i);
    const auto u = kvc::BitCast(du, v);
    const auto rounded = kvc::ShiftRight<16>(kvc::Add(u, kvc::Add(round, kvc::And(kvc::ShiftRight<16>(u), one))));
    const auto nan = kvc::Or(kvc::ShiftRight<16>(u), quiet);  // keeps a NaN a NaN
    const auto bits = kvc::IfThenElse(kvc::RebindMask(du, kvc::IsNaN(v)), nan, rounded);
    kvc::StoreU(kvc::DemoteTo(du16, kvc::BitCast(di, bits)), du16, dst + i);
  }
  for (; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

// Symmetric absmax int8 of one head's row: returns the scale (max|x| / 127, 0 when the row
// is all zeros) and writes q[i] = round(x[i] / scale) in [-127, 127].
HWY_INLINE float KvStoreI8(const float* HWY_RESTRICT src, int8_t* HWY_RESTRICT q, int64_t n) {
  const kvc::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(kvc::Lanes(d));
  auto vmax = kvc::Zero(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) vmax = kvc::Max(vmax, kvc::Abs(kvc::LoadU(d, src + i)));
  float amax = kvc::GetLane(kvc::MaxOfLanes(d, vmax));
  for (; i < n; ++i) amax = std::max(amax, std::fabs(src[i]));
  if (!(amax > 0.0f)) {
    std::fill(q, q + n, int8_t(0));
    return 0.0f;
  }
  const float inv = 127.0f / amax;
  for (i = 0; i < n; ++i)
    q[i] = static_cast<int8_t>(std::clamp(std::nearbyint(src[i] * inv), -127.0f, 127.0f));
  return amax / 127.0f;
}

}  // namespace HWY_NAMESPACE
}  // namespace troupe::cpu::detail
HWY_AFTER_NAMESPACE();

#endif  // TROUPE_CPU_KV_CONVERT_INL_H_
