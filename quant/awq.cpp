#include "quant/awq.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/error.h"
#include "core/half.h"
#include "cpu/kernels.h"
#include "quant/qrow.h"

namespace troupe::quant::awq {

namespace {

// The scale rounding of qtensor.cpp's INT4 quantizer: the smallest f16 not below s, so the
// group's whole range stays representable.
float f16_at_least(float s) {
  uint16_t h = f32_to_f16(s);
  if (f16_to_f32(h) < s && h < 0x7bff) ++h;
  return f16_to_f32(h);
}

// Dequantized RTN of one row, the same arithmetic as quant_row_int4 / quant_row_int8 in
// qtensor.cpp (the same row helpers, the same scale rounding), so the error the searches
// measure is the checkpoint's.
void fake_row(const float* w, int64_t in, const Config& cfg, int8_t* q, float* out) {
  if (cfg.bits == 8) {
    const float amax = detail::row_absmax(w, in);
    const float s = amax / 127.0f;
    detail::row_quantize(w, in, amax != 0 ? 127.0f / amax : 0.0f, 0.0f, -127.0f, 127.0f, q);
    for (int64_t i = 0; i < in; ++i) out[i] = float(q[i]) * s;
    return;
  }
  for (int64_t g0 = 0; g0 < in; g0 += cfg.group) {
    const int64_t n = std::min<int64_t>(in - g0, cfg.group);
    float lo, hi;
    detail::row_minmax(w + g0, n, &lo, &hi);
    lo = std::min(lo, 0.0f);
    hi = std::max(hi, 0.0f);
    const float s = f16_at_least((hi - lo) / 15.0f);
    const float inv = s != 0 ? 1.0f / s : 0.0f;
    const float z = std::nearbyint(std::min(std::max(-lo * inv, 0.0f), 15.0f));
    detail::row_quantize(w + g0, n, inv, z, 0.0f, 15.0f, q + g0);
    for (int64_t i = 0; i < n; ++i) out[g0 + i] = (float(q[g0 + i]) - z) * s;
  }
}

void for_rows(cpu::ThreadPool* pool, int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (pool && n > 1)
    pool->parallel_for(n, 1, [&](int, int64_t a, int64_t b) { fn(a, b); });
  else
    fn(0, n);
}

TensorView f32_view(const float* w, int64_t out, int64_t in) {
  TensorView v;
  v.name = "awq";
  v.dtype = DType::F32;
  v.shape = {out, in};
  v.data = w;
  v.nbytes = out * in * 4;
  return v;
}

double sum_squares(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return s;
}

}  // namespace

InputStats::InputStats(int64_t channels, int64_t max_rows, uint64_t seed)
    : n_(channels), max_rows_(max_rows), abs_sum_(static_cast<size_t>(channels), 0.0), rng_(seed) {}

void InputStats::add(const float* x, int64_t T) {
  for (int64_t t = 0; t < T; ++t) {
    const float* row = x + t * n_;
    for (int64_t i = 0; i < n_; ++i) abs_sum_[i] += std::fabs(row[i]);
    ++seen_;
    // Reservoir sampling: every row seen so far is kept with the same probability.
    if (rows() < max_rows_) {
      samples_.insert(samples_.end(), row, row + n_);
    } else if (max_rows_ > 0) {
      const uint64_t j = rng_() % static_cast<uint64_t>(seen_);
      if (int64_t(j) < max_rows_) std::copy_n(row, n_, samples_.begin() + int64_t(j) * n_);
    }
  }
}

std::vector<float> InputStats::mean_abs() const {
  std::vector<float> m(static_cast<size_t>(n_), 0.0f);
  if (seen_ > 0)
    for (int64_t i = 0; i < n_; ++i) m[i] = float(abs_sum_[i] / double(seen_));
  return m;
}

void fake_quantize(const float* w, int64_t out, int64_t in, const Config& cfg, float* wq,
                   cpu::ThreadPool* pool) {
  for_rows(pool, out, [&](int64_t r0, int64_t r1) {
    std::vector<int8_t> q(static_cast<size_t>(in));
    for (int64_t r = r0; r < r1; ++r) fake_row(w + r * in, in, cfg, q.data(), wq + r * in);
  });
}

QuantizedMatrix quantize(const Matrix& m, const Config& cfg, cpu::ThreadPool* pool) {
  if (cfg.bits == 8) return quantize_int8(m.w.data(), m.out, m.in, pool);
  if (cfg.bits == 4) return quantize_int4(m.w.data(), m.out, m.in, cfg.group, pool);
  fail("awq: {} bits unsupported (4 or 8)", cfg.bits);
}

double output_error(cpu::ThreadPool& pool, const float* x, int64_t rows, const float* w,
                    const float* wq, int64_t out, int64_t in) {
  std::vector<float> d(static_cast<size_t>(out * in));
  for (int64_t i = 0; i < out * in; ++i) d[i] = w[i] - wq[i];
  std::vector<float> e(static_cast<size_t>(rows * out));
  cpu::matmul(pool, x, rows, f32_view(d.data(), out, in), e.data());
  return sum_squares(e) / double(rows * out);
}

ScaleResult search_scale(cpu::ThreadPool& pool, std::span<const Matrix* const> ws,
                         const std::vector<float>& mean_abs, const std::vector<float>& x,
                         int64_t rows, const Config& cfg) {
  if (ws.empty()) fail("awq: empty group");
  const int64_t in = ws[0]->in;
  for (const Matrix* m : ws)
    if (m->in != in) fail("awq: a group's matrices must share the input size");
  if (int64_t(mean_abs.size()) != in || int64_t(x.size()) != rows * in)
    fail("awq: statistics for {} channels, matrices take {}", mean_abs.size(), in);

  ScaleResult best;
  best.err_best = INFINITY;
  std::vector<float> s(static_cast<size_t>(in)), tmp, fq;
  int64_t total_out = 0;
  for (const Matrix* m : ws) total_out += m->out;
  for (int k = 0; k < cfg.grid; ++k) {
    const float alpha = float(k) / float(cfg.grid);
    float lo = INFINITY, hi = 0;
    for (int64_t i = 0; i < in; ++i) {
      s[i] = std::pow(std::max(mean_abs[i], 1e-4f), alpha);
      lo = std::min(lo, s[i]);
      hi = std::max(hi, s[i]);
    }
    const float norm = 1.0f / std::sqrt(lo * hi);
    for (auto& v : s) v *= norm;
    double err = 0;
    for (const Matrix* m : ws) {
      // Wq_eff = Q(W diag(s)) diag(1/s): what the scaled layer computes on x, in x's units.
      tmp.assign(m->w.begin(), m->w.end());
      fq.resize(tmp.size());
      for (int64_t r = 0; r < m->out; ++r)
        for (int64_t i = 0; i < in; ++i) tmp[r * in + i] *= s[i];
      fake_quantize(tmp.data(), m->out, in, cfg, fq.data(), &pool);
      for (int64_t r = 0; r < m->out; ++r)
        for (int64_t i = 0; i < in; ++i) fq[r * in + i] /= s[i];
      err += output_error(pool, x.data(), rows, m->w.data(), fq.data(), m->out, in) * double(m->out);
    }
    err /= double(total_out);
    if (k == 0) best.err_rtn = err;
    if (err < best.err_best) {
      best.err_best = err;
      best.alpha = alpha;
      best.scales = s;
    }
  }
  return best;
}

std::vector<float> tie_to_kv_heads(const std::vector<float>& mean_abs, int64_t heads,
                                   int64_t kv_heads, int64_t head_dim) {
  if (int64_t(mean_abs.size()) != heads * head_dim || kv_heads <= 0 || heads % kv_heads != 0)
    fail("awq: o_proj statistics do not match {} heads x {}", heads, head_dim);
  const int64_t per = heads / kv_heads;
  std::vector<float> tied(mean_abs.size());
  for (int64_t kh = 0; kh < kv_heads; ++kh)
    for (int64_t d = 0; d < head_dim; ++d) {
      double sum = 0;
      for (int64_t h = kh * per; h < (kh + 1) * per; ++h) sum += mean_abs[h * head_dim + d];
      for (int64_t h = kh * per; h < (kh + 1) * per; ++h)
        tied[h * head_dim + d] = float(sum / double(per));
    }
  return tied;
}

void scale_columns(Matrix& m, const std::vector<float>& s) {
  for (int64_t r = 0; r < m.out; ++r)
    for (int64_t i = 0; i < m.in; ++i) m.w[r * m.in + i] *= s[i];
}

void divide_rows(Matrix& m, const std::vector<float>& s) {
  for (int64_t r = 0; r < m.out; ++r)
    for (int64_t i = 0; i < m.in; ++i) m.w[r * m.in + i] /= s[r];
}

void divide_samples(std::vector<float>& x, int64_t rows, const std::vector<float>& s) {
  const int64_t n = int64_t(s.size());
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t i = 0; i < n; ++i) x[t * n + i] /= s[i];
}

ClipResult search_and_apply_clip(cpu::ThreadPool& pool, Matrix& m, const std::vector<float>& x,
                                 int64_t rows, const Config& cfg) {
  const int64_t out = m.out, in = m.in;
  const int64_t group = cfg.bits == 8 ? in : cfg.group;
  const int64_t ng = (in + group - 1) / group;
  // max |w| per (row, group): the clamp range is a fraction of it.
  std::vector<float> amax(static_cast<size_t>(out * ng));
  for (int64_t r = 0; r < out; ++r)
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t g0 = g * group, n = std::min(group, in - g0);
      amax[r * ng + g] = detail::row_absmax(m.w.data() + r * in + g0, n);
    }
  const int steps = std::max(1, int(cfg.max_shrink * float(cfg.clip_grid)));
  std::vector<double> err(static_cast<size_t>(steps * out * ng));
  std::vector<float> wc(m.w.size()), fq(m.w.size()), xg, dg, e;
  auto ratio_of = [&](int k) { return 1.0f - float(k) / float(cfg.clip_grid); };
  auto clamp_into = [&](float ratio, const std::vector<int>* best, std::vector<float>& dst) {
    for (int64_t r = 0; r < out; ++r)
      for (int64_t g = 0; g < ng; ++g) {
        const float rr = best ? ratio_of((*best)[r * ng + g]) : ratio;
        const float mx = rr * amax[r * ng + g];
        const int64_t g0 = g * group, n = std::min(group, in - g0);
        for (int64_t i = g0; i < g0 + n; ++i) dst[r * in + i] = std::clamp(m.w[r * in + i], -mx, mx);
      }
  };
  for (int k = 0; k < steps; ++k) {
    clamp_into(ratio_of(k), nullptr, wc);
    fake_quantize(wc.data(), out, in, cfg, fq.data(), &pool);
    // Per group: its share of the output error, x[:, g] (w[:, g] - q[:, g])^T.
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t g0 = g * group, n = std::min(group, in - g0);
      xg.resize(static_cast<size_t>(rows * n));
      dg.resize(static_cast<size_t>(out * n));
      e.resize(static_cast<size_t>(rows * out));
      for (int64_t t = 0; t < rows; ++t) std::copy_n(x.data() + t * in + g0, n, xg.data() + t * n);
      for (int64_t r = 0; r < out; ++r)
        for (int64_t i = 0; i < n; ++i) dg[r * n + i] = m.w[r * in + g0 + i] - fq[r * in + g0 + i];
      cpu::matmul(pool, xg.data(), rows, f32_view(dg.data(), out, n), e.data());
      for (int64_t r = 0; r < out; ++r) {
        double s = 0;
        for (int64_t t = 0; t < rows; ++t) s += double(e[t * out + r]) * e[t * out + r];
        err[(int64_t(k) * out + r) * ng + g] = s;
      }
    }
  }
  std::vector<int> best(static_cast<size_t>(out * ng), 0);
  ClipResult res;
  double ratio_sum = 0;
  for (int64_t j = 0; j < out * ng; ++j) {
    for (int k = 1; k < steps; ++k)
      if (err[int64_t(k) * out * ng + j] < err[int64_t(best[j]) * out * ng + j]) best[j] = k;
    ratio_sum += ratio_of(best[j]);
  }
  res.mean_ratio = ratio_sum / double(out * ng);
  // Errors before (ratio 1) and after, over the whole output (groups add up).
  fake_quantize(m.w.data(), out, in, cfg, fq.data(), &pool);
  res.err_before = output_error(pool, x.data(), rows, m.w.data(), fq.data(), out, in);
  clamp_into(0, &best, wc);
  fake_quantize(wc.data(), out, in, cfg, fq.data(), &pool);
  res.err_after = output_error(pool, x.data(), rows, m.w.data(), fq.data(), out, in);
  // Each (row, group) was chosen on its own share of the error; the shares interact, so on
  // the whole the clamp can (rarely) lose. Then the weights stay as they were.
  if (res.err_after > res.err_before) {
    res.err_after = res.err_before;
    res.mean_ratio = 1;
    return res;
  }
  m.w.swap(wc);
  return res;
}

}  // namespace troupe::quant::awq
