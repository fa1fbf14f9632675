// e^x for float vectors, as SiLU and the attention softmax need it: Highway's Exp with its
// reduction and reconstruction done by two AVX-512 instructions (vrndscaleps, vscalefps).
// Shared per Highway target by kernels_elementwise.cpp and kernels_attention.cpp.
//
// Why not hn::Exp itself: its polynomial is cheap, the work around it is not. It rounds
// x / ln 2 through integers (and, or, FMA, two conversions) and rebuilds 2^n from exponent
// bits in two halves (shifts, adds, two multiplies) plus a range select: ~24 operations a
// vector. This is ~15: the same two-part ln 2 reduction and the same polynomial (Highway's
// ExpPoly), so the result is hn::Exp's bits but where x / ln 2 rounds differently at a
// half-way point (then within an ulp of it; 3 of 854 million inputs swept).
// Measured (docs/benchmarks.md, session 21): silu_mul_to 0.59-0.63x the time in isolation
// (`test_cpu "[.silu-bench]"`); a decode step plus a 1 + 4-row step at a 1000-token
// context 0.986-0.989x (the softmax's exponentials); short-context and batched steps
// within noise, where SiLU waits on its inputs more than on its arithmetic.
// Other targets use hn::Exp.
//
// Valid for x <= 88.7 (e^x below FLT_MAX), -inf included (gives 0); NaN gives 0, as
// hn::Exp does.

// Per-target include guard (Highway's -inl.h convention).
#if defined(TROUPE_CPU_EXP_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef TROUPE_CPU_EXP_INL_H_
#undef TROUPE_CPU_EXP_INL_H_
#else
#define TROUPE_CPU_EXP_INL_H_
#endif

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace troupe::cpu::detail {
namespace HWY_NAMESPACE {

template <class D>
HWY_INLINE hwy::HWY_NAMESPACE::Vec<D> ExpF32(D d, hwy::HWY_NAMESPACE::Vec<D> x) {
  namespace hn = hwy::HWY_NAMESPACE;
#if HWY_TARGET <= HWY_AVX3
  if constexpr (hn::MaxLanes(D()) == 16) {
    using V = hn::Vec<D>;
    // Below -104 e^x is 0 in float; clamping keeps -inf out of the reduction (inf - inf).
    x = hn::Max(x, hn::Set(d, -104.0f));
    const V n = hn::Round(hn::Mul(x, hn::Set(d, 1.442695040888963407359924681f)));
    // x - n ln 2 with ln 2 in two parts (Highway's ExpReduce constants), exact enough that
    // the polynomial sees |r| <= ln 2 / 2 to within a few ulp.
    V r = hn::MulAdd(n, hn::Set(d, -0.693145751953125f), x);
    r = hn::MulAdd(n, hn::Set(d, -1.428606765330187045e-6f), r);
    // Highway's own polynomial (an internal of contrib/math, Debian's libhwy 1.0.3).
    const V p = hn::Add(hn::impl::ExpImpl<float>().ExpPoly(d, r), hn::Set(d, 1.0f));
    // p * 2^n in one instruction, overflow to inf and underflow to 0 included.
    return V{_mm512_scalef_ps(p.raw, n.raw)};
  }
#endif
  return hn::Exp(d, x);
}

}  // namespace HWY_NAMESPACE
}  // namespace troupe::cpu::detail
HWY_AFTER_NAMESPACE();

#endif  // TROUPE_CPU_EXP_INL_H_
