// One vector of float, F16 or BF16 elements as floats: read in place (float) or widened in
// registers (exact for both 16-bit types). Shared per Highway target by the kernels that
// read 16-bit weights or K/V rows in place (kernels_gemv.cpp, kernels_panel.cpp,
// kernels_attention.cpp).

// Per-target include guard (Highway's -inl.h convention).
#if defined(TROUPE_CPU_LOAD_F32_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef TROUPE_CPU_LOAD_F32_INL_H_
#undef TROUPE_CPU_LOAD_F32_INL_H_
#else
#define TROUPE_CPU_LOAD_F32_INL_H_
#endif

#include <hwy/highway.h>

#include <type_traits>

HWY_BEFORE_NAMESPACE();
namespace troupe::cpu::detail {
namespace HWY_NAMESPACE {

template <typename T>
HWY_INLINE hwy::HWY_NAMESPACE::Vec<hwy::HWY_NAMESPACE::ScalableTag<float>> LoadAsF32(
    const T* HWY_RESTRICT p) {
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::ScalableTag<float> d;
  if constexpr (std::is_same_v<T, float>)
    return hn::LoadU(d, p);
  else
    return hn::PromoteTo(d, hn::LoadU(hn::Rebind<T, decltype(d)>(), p));
}

}  // namespace HWY_NAMESPACE
}  // namespace troupe::cpu::detail
HWY_AFTER_NAMESPACE();

#endif  // TROUPE_CPU_LOAD_F32_INL_H_
