#pragma once
// Quantized matrix multiply on the CPU: weights stay packed (qtensor.h) and are decoded
// in registers, never into a float copy.
//
// Activations are quantized to int8 per block of 32 (scale = amax / 127, as llama.cpp's Q8
// activations) so the block dots run on integer dot-product instructions: AVX-512 VNNI
// vpdpbusd (64 MACs per instruction), AVX2 vpmaddubsw, or a portable fallback. The added
// error is at most half an activation step per input (ref::act_error_bound); measured on
// a 768x2048 layer it is 0.5% (normal activations) to 1.1% (outlier channels) relative
// RMS of the outputs: under a tenth of the int4 / Q4_0 weight error (10-13%), the same
// order as Q8_0's own weight error (0.65%; 0.8-1.3% in total). Float activations would
// cost 4x the instructions per weight and give up VNNI for prefill.
#include <cstdint>
#include <string_view>

#include "cpu/thread_pool.h"
#include "quant/qtensor.h"

namespace troupe::quant {

// y[t, o] = sum_i x[t, i] * W[o, i] (+ bias[o]) for t < T: x is [T, in], y [T, out] (may
// not alias x), bias F32 [out] or null. Same contract as cpu::matmul. T == 1 is a
// bandwidth-bound GEMV split over the pool by 16-row tiles; T > 1 reuses each unpacked
// tile-block for 4 tokens at a time while the tile stays in cache.
void qmatmul(cpu::ThreadPool& pool, const float* x, int64_t T, const QuantizedMatrix& W,
             float* y, const float* bias = nullptr);

// A gated feed-forward block's two matmuls: y = down(glu(gate x, up x)) (+ bias), with gate
// and up [I, in] (the backend passes the two halves of its stacked gate/up matrix, or two
// matrices when unstacked) and down [out, I]. glu(out, gate, up, n) makes n inputs of down
// from n gate and up outputs (SwiGLU: cpu::silu_mul_to). The same bits as qmatmul(gate),
// qmatmul(up), glu on every row and qmatmul(down), without writing gate and up outputs out:
// each thread takes units of channels (qmatmul.cpp's plan_glu), runs both matrices' rows of
// its unit for a chunk of tokens into a buffer that stays in its L2, and quantizes down's
// input from there. glu is called on pieces starting at multiples of 128 within a row,
// possibly concurrently. y may alias x (x is read before y is written). For float weights
// the same split measured no faster (docs/benchmarks.md, session 22).
using GluFn = void (*)(float* out, const float* gate, const float* up, int64_t n);
// Whether qmatmul_glu takes these matrices: gate and up alike (format, group, shape, I a
// multiple of 16 rows so both split into whole tiles), down with I inputs.
bool qmatmul_glu_fits(const QuantizedMatrix& gate, const QuantizedMatrix& up,
                      const QuantizedMatrix& down);
void qmatmul_glu(cpu::ThreadPool& pool, const float* x, int64_t T, const QuantizedMatrix& gate,
                 const QuantizedMatrix& up, GluFn glu, const QuantizedMatrix& down, float* y,
                 const float* bias = nullptr);

// The int8 dot-product peak of this machine: int8 multiply-adds per second with every pool
// thread running independent vpdpbusd chains in registers (cpu::best_pass_rate's passes),
// the ceiling of the quantized kernels' arithmetic as measure_fma_peak is the float one.
// 0 where the kernel family in use has no such probe (AVX2, scalar).
double measure_int8_dot_peak(cpu::ThreadPool& pool, double seconds = 0.3);
// The probe's loop on the calling thread (for tests); see detail::dot_chains_avx512.
// Returns the multiply-adds done, 0 (out untouched) without AVX-512 VNNI.
int64_t int8_dot_chains(int64_t iters, int32_t* out);
int int8_dot_chains_count();

// Kernel family in use. Chosen once from cpuid (the best this CPU runs); tests and
// benchmarks may switch to a lower one. Not thread-safe against concurrent qmatmul calls.
enum class QIsa { Scalar, Avx2, Avx512Vnni };
std::string_view qisa_name(QIsa isa);
QIsa best_qisa();     // the best the CPU supports
QIsa current_qisa();
void set_qisa(QIsa isa);  // fails if the CPU lacks it

}  // namespace troupe::quant
