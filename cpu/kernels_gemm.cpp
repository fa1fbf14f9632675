// matmul(): picks the kernel for the shape and splits the work over the pool.
//
//   W in MatrixLayout::Panels (F32, F16 or BF16): kernels_panel.cpp, every T. Otherwise
//   (row-major F32 or F16 W):
//   T <= kMultiRowMaxT*  multi-row GEMV (kernels_gemv.cpp): W streamed once for all T rows.
//   T >  kMultiRowMaxT*  GEMM, split over output columns across the pool:
//     - F32 with an OpenBLAS that has a kernel for this CPU's widest SIMD: cblas_sgemm,
//       each pool thread computing a slice of columns (OpenBLAS itself runs
//       single-threaded, so there is only one pool);
//     - otherwise (F16 weights, or AVX-512 CPUs that Debian's OpenBLAS 0.3.21 drives
//       with its AVX2 "Haswell" kernel, e.g. AMD Zen 4/5) the cache-blocked Highway GEMM
//       of kernels_gemm_hwy.cpp, which converts F16 while packing.
//   matmul_sgemm's F16 variant (convert a tile of W rows, then sgemm) is kept for
//   comparison in the benchmark.
//
// The crossover and the choices were measured on the target machine with the benchmark
// in tests/cpu/kernels_bench_test.cpp: see the constants.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>

#include "core/error.h"
#include "cpu/kernels.h"
#include "cpu/kernels_internal.h"

namespace troupe::cpu {
namespace {

// Largest T handled by the multi-row GEMV. It streams W once and needs no packing, which
// wins while T is small. Measured crossovers (2048x2048 and 32000x768, 2 threads): with
// AVX-512 at T ~ 24-32 for F32 against the packed tiled GEMM (its weight panel re-reads
// from L2 then limit it) and T ~ 48-64 for F16 (the tiled GEMM pads tokens to blocks of
// 32); with AVX2 at T ~ 12. Since the tiled GEMM reads F32 W in place at T <= 32, it is
// faster from T ~ 14-16 on AMD Zen 5 (docs/benchmarks.md, session 13), but the GEMV and the
// GEMM round differently: at 16, a 17-24-token step (a short prompt's prefill, a decode
// batch of that size) would no longer round like the smaller steps it used to match, e.g.
// a server's decode steps against a one-pass prefill of the same text (the e2e logprobs
// test saw 1.6e-4 nats). So the crossover stays at 24. (This concerns row-major weights
// only: the backend's panel copy runs every T through one kernel, kernels_panel.cpp.)
constexpr int64_t kMultiRowMaxTAvx512F32 = 24;
constexpr int64_t kMultiRowMaxTAvx512F16 = 48;
constexpr int64_t kMultiRowMaxTOther = 12;
// Rows of W converted per sgemm call for F16 weights: ~512 KiB of F32 so the tile is
// still in L2 when sgemm packs it, and large enough to amortise packing x per call.
constexpr int64_t kF16TileBytes = int64_t(512) << 10;

// Below this many weights one thread finishes before the others would be awake.
constexpr int64_t kMinParallelWeights = int64_t(1) << 15;

// True if OpenBLAS drives this CPU with an AVX-512 kernel (it then beats our GEMM).
bool openblas_has_avx512_kernel() {
  static const bool yes = [] {
    const char* core = openblas_get_corename();
    for (const char* name : {"SkylakeX", "Cooperlake", "SapphireRapids"})
      if (core && std::strstr(core, name)) return true;
    return false;
  }();
  return yes;
}

bool cpu_has_avx512() {
  // The target Highway dispatches to, so tests that force a narrower target see the
  // matching choice. Not hwy::SupportedTargets(): that runs CPUID on every call, which a
  // hypervisor may trap (~40 us on the development VM, 85 matmuls per decoded token).
  return detail::dispatch_is_avx512();
}

void init_openblas_once() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

// Thread-local F32 scratch for converted weight tiles (grows, never shrinks).
float* tile_buffer(int64_t n) {
  thread_local std::unique_ptr<float[]> buf;
  thread_local int64_t cap = 0;
  if (n > cap) {
    buf.reset(new float[static_cast<size_t>(n)]);
    cap = n;
  }
  return buf.get();
}

void add_bias(float* y, int64_t T, int64_t ldy, const float* bias, int64_t c0, int64_t c1) {
  for (int64_t t = 0; t < T; ++t)
    add_inplace(y + t * ldy + c0, bias + c0, c1 - c0);
}

// y[:, c0:c1] = x @ Wf32[c0:c1]^T where Wf32 points at row c0.
void sgemm_cols(const float* x, int64_t T, const float* w, int64_t in, int64_t ncols,
                float* y, int64_t ldy) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T),
              static_cast<int>(ncols), static_cast<int>(in), 1.0f, x, static_cast<int>(in), w,
              static_cast<int>(in), 0.0f, y, static_cast<int>(ldy));
}

}  // namespace

namespace detail {

void matmul_multirow(ThreadPool& pool, const float* x, int64_t T, const TensorView& W,
                     float* y, const float* bias) {
  const int64_t out = W.rows(), in = W.cols();
  const bool f16 = W.dtype == DType::F16;
  // Rows in multiples of 16 so no two threads write the same cache line of y.
  const int64_t grain = out * in < kMinParallelWeights ? out : 16;
  pool.parallel_for(out, grain, [&](int, int64_t r0, int64_t r1) {
    if (f16)
      gemv_rows_f16(x, T, static_cast<const uint16_t*>(W.data), in, r0, r1, y, out);
    else
      gemv_rows_f32(x, T, static_cast<const float*>(W.data), in, r0, r1, y, out);
    if (bias) add_bias(y, T, out, bias, r0, r1);
  });
}

void matmul_sgemm(ThreadPool& pool, const float* x, int64_t T, const TensorView& W, float* y,
                  const float* bias) {
  const int64_t out = W.rows(), in = W.cols();
  init_openblas_once();
  pool.parallel_for(out, 16, [&](int, int64_t c0, int64_t c1) {
    if (W.dtype == DType::F32) {
      sgemm_cols(x, T, static_cast<const float*>(W.data) + c0 * in, in, c1 - c0, y + c0, out);
    } else {
      const auto* w16 = static_cast<const uint16_t*>(W.data);
      const int64_t tile = std::max<int64_t>(16, kF16TileBytes / (in * 4) / 16 * 16);
      float* buf = tile_buffer(tile * in);
      for (int64_t r = c0; r < c1; r += tile) {
        const int64_t n = std::min(tile, c1 - r);
        f16_to_f32_n(w16 + r * in, buf, n * in);
        sgemm_cols(x, T, buf, in, n, y + r, out);
      }
    }
    if (bias) add_bias(y, T, out, bias, c0, c1);
  });
}

}  // namespace detail

void matmul(ThreadPool& pool, const float* x, int64_t T, const TensorView& W, float* y,
            const float* bias) {
  const int64_t out = W.rows(), in = W.cols();
  const bool panels = W.layout == MatrixLayout::Panels;  // (matmul_panels checks its dtypes)
  if (!panels && W.dtype != DType::F32 && W.dtype != DType::F16)
    fail("matmul: weight '{}' has dtype {}; only F32 and F16 are supported", W.name,
         dtype_name(W.dtype));
  if (T <= 0 || out <= 0) return;
  if (in == 0) {  // empty dot products: y = bias (or 0)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t o = 0; o < out; ++o) y[t * out + o] = bias ? bias[o] : 0.0f;
    return;
  }
  if (panels) return detail::matmul_panels(pool, x, T, W, y, bias);
  const bool avx512 = cpu_has_avx512();
  const int64_t max_multirow = !avx512                   ? kMultiRowMaxTOther
                               : W.dtype == DType::F32 ? kMultiRowMaxTAvx512F32
                                                       : kMultiRowMaxTAvx512F16;
  if (T <= max_multirow)
    detail::matmul_multirow(pool, x, T, W, y, bias);
  else if (W.dtype == DType::F32 && (!avx512 || openblas_has_avx512_kernel()))
    detail::matmul_sgemm(pool, x, T, W, y, bias);
  else
    detail::matmul_tiled(pool, x, T, W, y, bias);
}

}  // namespace troupe::cpu
