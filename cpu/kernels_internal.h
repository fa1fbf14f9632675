#pragma once
// Entry points shared between the kernels_*.cpp files (not part of the public kernel API).
// Each is a dispatcher to the best Highway target for this CPU.
#include <cstdint>

#include "cpu/thread_pool.h"
#include "model/tensor.h"

namespace troupe::cpu::detail {

// Multi-row GEMV on weight rows [r0, r1) of a row-major [out, in] matrix W (F32 or F16
// bits): y[t * ldy + r] = sum_i x[t * in + i] * W[r, i] for t < T (no bias). W is streamed
// once for up to 5 tokens; larger T is processed 4 (or 5) tokens at a time over row panels
// that stay in L2, so this is also a (load-bound) GEMM for moderate T. Each y value is
// bit-identical whatever T is.
void gemv_rows_f32(const float* x, int64_t T, const float* W, int64_t in, int64_t r0,
                   int64_t r1, float* y, int64_t ldy);
void gemv_rows_f16(const float* x, int64_t T, const uint16_t* W, int64_t in, int64_t r0,
                   int64_t r1, float* y, int64_t ldy);

// dst[i] = float(src[i]) for IEEE half / bfloat16 bits.
void f16_to_f32_n(const uint16_t* src, float* dst, int64_t n);
void bf16_to_f32_n(const uint16_t* src, float* dst, int64_t n);

// y[i] = e^x[i] as SiLU and the attention softmax compute it (cpu/exp-inl.h; the tail
// past whole vectors uses std::exp), for x <= 88.7. For tests.
void exp_f32_n(const float* x, float* y, int64_t n);

// Sum of n floats read with wide loads (the bandwidth probe; the sum keeps it from being
// optimised away).
float read_sum(const float* p, int64_t n);
// n 16-bit halves read as floats, each line fetched ahead (the probe's second loop).
float read_halves_sum(const uint16_t* p, int64_t n);

// Whether HWY_DYNAMIC_DISPATCH currently picks an AVX-512 target (follows
// hwy::SetSupportedTargetsForTest). A table lookup: unlike hwy::SupportedTargets(), which
// runs CPUID on every call (~40 us each under a hypervisor that traps CPUID, i.e. more
// than a whole decode-sized GEMV), it is cheap enough to ask on every matmul.
bool dispatch_is_avx512();

// The matmul strategies (matmul() picks one by T; exposed for tests and benchmarks).
// W must be F32 or F16 with in > 0.
void matmul_multirow(ThreadPool& pool, const float* x, int64_t T, const TensorView& W,
                     float* y, const float* bias);
void matmul_sgemm(ThreadPool& pool, const float* x, int64_t T, const TensorView& W, float* y,
                  const float* bias);
// W in MatrixLayout::Panels, any T (kernels_panel.cpp).
void matmul_panels(ThreadPool& pool, const float* x, int64_t T, const TensorView& W, float* y,
                   const float* bias);
// Cache-blocked Highway GEMM (kernels_gemm_hwy.cpp).
void matmul_tiled(ThreadPool& pool, const float* x, int64_t T, const TensorView& W, float* y,
                  const float* bias);

}  // namespace troupe::cpu::detail
