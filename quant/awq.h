#pragma once
// Activation-aware weight quantization (AWQ, Lin et al. 2023) on float matrices: the math
// behind `troupe quantize --method awq`, independent of models and files.
//
// For a group of linear layers sharing one input x (q/k/v; gate/up; o_proj; down_proj), a
// per-input-channel scale s turns  y = W x  into  y = (W diag(s)) (x / s): the same function
// in float, but input channels with large activations get their weights magnified before
// rounding, so their (dominant) contribution is quantized more finely. s = mean|x|^alpha,
// alpha chosen on a grid over [0, 1] to minimise the group's output error on calibration
// activations; 1/s is folded into whatever produces x (an RMSNorm weight, or the rows of
// v_proj / up_proj). Then, per output row and weight group, the clamp range that minimises
// the output error is searched (weights outside it are clipped), and the result is rounded
// to nearest like RTN. Everything here mirrors the quantizers in qtensor.h bit for bit, so
// the error the search sees is the error the checkpoint has.
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "cpu/thread_pool.h"
#include "quant/qtensor.h"

namespace troupe::quant::awq {

// Calibration statistics of one group's input: the mean |x| per channel over every token
// seen, and a uniform sample (reservoir) of token rows for the error searches.
class InputStats {
 public:
  InputStats() = default;
  InputStats(int64_t channels, int64_t max_rows, uint64_t seed);
  void add(const float* x, int64_t T);  // T rows of channels() floats
  int64_t channels() const { return n_; }
  int64_t tokens() const { return seen_; }
  int64_t rows() const { return int64_t(samples_.size()) / std::max<int64_t>(n_, 1); }
  std::vector<float> mean_abs() const;
  const std::vector<float>& samples() const { return samples_; }  // [rows(), channels()]

 private:
  int64_t n_ = 0, max_rows_ = 0, seen_ = 0;
  std::vector<double> abs_sum_;
  std::vector<float> samples_;
  std::mt19937_64 rng_;
};

// One float matrix [out, in], row-major, owned.
struct Matrix {
  int64_t out = 0, in = 0;
  std::vector<float> w;
};

struct Config {
  int bits = 4;        // 4: INT4 group-wise asymmetric; 8: INT8 per-channel symmetric
  int group = 128;     // INT4 group size
  int grid = 20;       // alpha in {0, 1/grid, ..., (grid-1)/grid}, as AutoAWQ
  int clip_grid = 20;  // clip ratios 1, 1 - 1/clip_grid, ... down to 1 - max_shrink
  float max_shrink = 0.5f;
};

// What the scale search found for one group.
struct ScaleResult {
  std::vector<float> scales;  // per input channel; all 1 when alpha = 0 won
  float alpha = 0;
  double err_rtn = 0;         // mean squared output error with plain RTN (alpha = 0)
  double err_best = 0;        // ... with the chosen scales
};

// Searches alpha for the group `ws` (all [*, in] with the same in) given its input stats
// `mean_abs` (per channel) and sample rows x [rows, in]: s = mean_abs^alpha, normalised so
// that max(s) * min(s) = 1 (AutoAWQ's choice), error summed over the group's outputs.
ScaleResult search_scale(cpu::ThreadPool& pool, std::span<const Matrix* const> ws,
                         const std::vector<float>& mean_abs, const std::vector<float>& x,
                         int64_t rows, const Config& cfg);

// GQA: o_proj's input channel (head h, dim d) is produced by v_proj row (h / (heads /
// kv_heads), d), so a scale folded into v rows is shared by the heads of one KV head.
// Averages mean_abs over those heads (the search then sees the shared statistics).
std::vector<float> tie_to_kv_heads(const std::vector<float>& mean_abs, int64_t heads,
                                   int64_t kv_heads, int64_t head_dim);

// W[:, i] *= s[i] for every matrix.
void scale_columns(Matrix& m, const std::vector<float>& s);
// W[r, :] /= s[r] for every row (folding 1/s into the producer of the input).
void divide_rows(Matrix& m, const std::vector<float>& s);
// x[t, i] /= s[i] for rows of the sample matrix.
void divide_samples(std::vector<float>& x, int64_t rows, const std::vector<float>& s);

// Searches the per (row, weight group) clip ratio minimising ||X_g (w_g - q(clip(w_g)))||^2
// on sample rows x, then clamps the weights in place to [-r max|w_g|, r max|w_g|] (AutoAWQ's
// clipping). Returns the mean squared output error before and after.
struct ClipResult {
  double err_before = 0, err_after = 0;
  double mean_ratio = 1;
};
ClipResult search_and_apply_clip(cpu::ThreadPool& pool, Matrix& m, const std::vector<float>& x,
                                 int64_t rows, const Config& cfg);

// The quantized matrix under `cfg` (RTN of the given, possibly scaled and clipped, weights).
QuantizedMatrix quantize(const Matrix& m, const Config& cfg, cpu::ThreadPool* pool = nullptr);

// Dequantize(quantize(m)) without building the packed matrix: the error model of the
// searches. Equal to quantize() followed by dequantize_row() (tested).
void fake_quantize(const float* w, int64_t out, int64_t in, const Config& cfg, float* wq,
                   cpu::ThreadPool* pool = nullptr);

// Mean squared output error of x [rows, in] through W vs through Wq: ||x (W - Wq)^T||^2 /
// (rows * out).
double output_error(cpu::ThreadPool& pool, const float* x, int64_t rows, const float* w,
                    const float* wq, int64_t out, int64_t in);

}  // namespace troupe::quant::awq
