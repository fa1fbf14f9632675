// `troupe quantize`: float HF checkpoint -> pre-quantized checkpoint (AutoAWQ GEMM layout
// for 4 bits, troupe_int8 for 8 bits; see model/quantized_checkpoint.h).
//
//   rtn: round to nearest, no data needed.
//   awq: 1. calibration: the float model runs over the calibration text while an observer
//           collects, for every layer and each of its four linear-input groups, mean |x| per
//           channel and a reservoir sample of token rows;
//        2. per layer: the scale exponent alpha of each group is searched on the original
//           weights (quant/awq.h), then all four scales are folded (RMSNorm weights for q/k/v
//           and gate/up, v_proj rows for o_proj, up_proj rows for down_proj) - an exact
//           transformation in float;
//        3. per (row, weight group) clipping of v/o/gate/up/down on the scaled samples (not
//           q/k, whose errors attention's softmax amplifies - as AutoAWQ);
//        4. round to nearest.
//      The inputs of every layer come from the float model, as in AutoAWQ (it, too, feeds
//      layer l+1 with the unquantized layer l).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "app/commands.h"
#include "app/progress.h"
#include "app/text_data.h"
#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "cpu/kernels.h"
#include "model/checkpoint_writer.h"
#include "model/tensor_names.h"
#include "model/tokenizer_loader.h"
#include "quant/awq.h"
#include "quant/stored.h"

namespace troupe::app {

namespace {

namespace fs = std::filesystem;
using quant::awq::InputStats;
using quant::awq::Matrix;

struct QuantizeOpts {
  std::string model, out, method = "awq", calib;
  int bits = 4, group = 128, grid = 20, threads = 0;
  int64_t calib_samples = 64, calib_len = 256, search_rows = 512;
  bool clip = true;
  uint64_t seed = 0;
};

// Collects the calibration statistics of every (layer, linear-input group).
class Collector final : public cpu::ActivationObserver {
 public:
  Collector(const ModelConfig& c, int64_t rows, uint64_t seed) {
    const int64_t n[cpu::kNumLinearInputs] = {c.hidden_size, c.q_dim(), c.hidden_size,
                                             c.intermediate_size};
    stats_.resize(static_cast<size_t>(c.num_layers));
    for (int64_t l = 0; l < c.num_layers; ++l)
      for (int g = 0; g < cpu::kNumLinearInputs; ++g)
        stats_[l][g] = InputStats(n[g], rows, seed * 1000003 + uint64_t(l * 4 + g));
  }
  void observe(int64_t layer, cpu::LinearInput g, const float* x, int64_t T, int64_t) override {
    stats_[layer][int(g)].add(x, T);
  }
  InputStats& at(int64_t l, cpu::LinearInput g) { return stats_[l][int(g)]; }
  int64_t tokens() const { return stats_.empty() ? 0 : stats_[0][0].tokens(); }

 private:
  std::vector<std::array<InputStats, cpu::kNumLinearInputs>> stats_;
};

std::vector<float> floats(const TensorView& v) {
  std::vector<float> f(static_cast<size_t>(v.numel()));
  cpu::to_f32(v, f.data());
  return f;
}

Matrix matrix(const TensorView& v) { return Matrix{v.rows(), v.cols(), floats(v)}; }

StoredTensor stored(const std::string& name, const TensorView& v) {
  StoredTensor t{name, v.dtype, v.shape, {}};
  if (v.layout == MatrixLayout::Panels) {  // the backend's copy: back to the file's order
    t.bytes.resize(static_cast<size_t>(v.numel() * dtype_row_bytes(v.dtype, 1)));
    cpu::unpack_panels(v, t.bytes.data());
  } else if (v.dtype == DType::F32 || v.dtype == DType::F16 || v.dtype == DType::BF16) {
    const auto* p = static_cast<const uint8_t*>(v.data);
    t.bytes.assign(p, p + v.nbytes);
  } else {
    std::vector<float> f = floats(v);
    t.dtype = DType::F32;
    t.bytes.resize(f.size() * 4);
    std::memcpy(t.bytes.data(), f.data(), t.bytes.size());
  }
  return t;
}

StoredTensor f32(const std::string& name, const std::vector<float>& f) {
  StoredTensor t{name, DType::F32, {int64_t(f.size())}, std::vector<uint8_t>(f.size() * 4)};
  std::memcpy(t.bytes.data(), f.data(), t.bytes.size());
  return t;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string pct(double before, double after) {
  return before > 0 ? fmt::format("{:+.0f}%", 100.0 * (after - before) / before) : "n/a";
}

// Self-generated calibration decodes this many sequences per batch: enough rows for the
// GEMM kernels while the KV pool stays small (llama-110m, 256 tokens: 0.3 GB; all 64 default
// samples at once would take 1.2 GB).
constexpr int64_t kSampleBatch = 16;

void calibrate(cpu::CpuBackend& be, const Tokenizer& tok, const QuantizeOpts& o, Collector& col) {
  be.set_observer(&col);
  const auto t0 = std::chrono::steady_clock::now();
  if (!o.calib.empty()) {
    const auto texts = read_text_samples(o.calib, o.calib_samples);
    Progress pr("calibration", int64_t(texts.size()));
    for (size_t i = 0; i < texts.size(); ++i) {
      forward_sequence(be, sample_ids(tok, texts[i], o.calib_len), false);
      pr.update(int64_t(i + 1), fmt::format("samples, {} tokens", col.tokens()));
    }
    pr.finish();
  } else {
    // No data given: the model's own samples (the observer sees every decoded token).
    std::fprintf(stderr, "calibration: no --calib file, sampling %lld x %lld tokens from the model\n",
                 (long long)o.calib_samples, (long long)o.calib_len);
    const int64_t steps = (o.calib_samples + kSampleBatch - 1) / kSampleBatch * (o.calib_len - 1);
    Progress pr("calibration", steps);
    for (int64_t first = 0, done = 0; first < o.calib_samples; first += kSampleBatch) {
      const int64_t n = std::min(kSampleBatch, o.calib_samples - first);
      sample_from_model(be, tok, n, o.calib_len, o.seed + 1 + uint64_t(first), [&](int64_t) {
        ++done;
        pr.update(done, fmt::format("steps ({}/{} samples)", first + n, o.calib_samples));
      });
    }
    pr.finish();
  }
  be.set_observer(nullptr);
  std::fprintf(stderr, "calibration: %lld tokens in %.1f s\n", (long long)col.tokens(), seconds_since(t0));
}

void run_quantize(const QuantizeOpts& o) {
  if (o.bits != 4 && o.bits != 8) fail("--bits must be 4 or 8");
  if (read_quantization_config(o.model)) fail("{}: already quantized", o.model);
  if (!fs::is_directory(o.model) || !fs::exists(fs::path(o.model) / "config.json"))
    fail("{}: quantize reads a Hugging Face float checkpoint directory (GGUF files keep their "
         "own quantization types)", o.model);
  const bool awq = o.method == "awq";
  const auto t_start = std::chrono::steady_clock::now();

  auto tok = load_tokenizer(o.model);
  ModelWeights w = load_model(o.model);
  const ModelConfig c = w.config;
  cpu::CpuBackendOptions bo;
  bo.num_threads = o.threads;
  // KV for the calibration sequences: one at a time from a file, all at once when sampled.
  const int64_t len = std::min<int64_t>(o.calib_len, c.max_position_embeddings);
  bo.num_blocks = awq ? (len + bo.block_size - 1) / bo.block_size *
                            (o.calib.empty() ? std::min(kSampleBatch, o.calib_samples) : 1)
                      : 1;
  cpu::CpuBackend be(std::move(w), bo);
  QuantizeOpts oc = o;
  oc.calib_len = len;

  Collector col(c, awq ? o.search_rows : 0, o.seed);
  if (awq) calibrate(be, *tok, oc, col);

  quant::awq::Config cfg;
  cfg.bits = o.bits;
  cfg.group = o.group;
  cfg.grid = o.grid;
  CheckpointOut ck;
  ck.src_dir = o.model;
  ck.out_dir = o.out;
  ck.bits = o.bits;
  ck.group = o.group;
  const ModelWeights& W = be.weights();
  auto& pool = be.pool();
  ck.floats.push_back(stored(kHfModelTensors.embeddings, W.tok_embeddings));
  if (!c.tie_word_embeddings) ck.floats.push_back(stored(kHfModelTensors.lm_head, W.lm_head));
  ck.floats.push_back(stored(kHfModelTensors.final_norm, W.final_norm));

  for (int64_t l = 0; l < c.num_layers; ++l) {
    const auto t0 = std::chrono::steady_clock::now();
    const LayerWeights& L = W.layers[static_cast<size_t>(l)];
    const std::string p = hf_block_prefix(l);
    std::array<Matrix, kNumLinears> m;
    for (int i = 0; i < kNumLinears; ++i) m[i] = matrix(linear_view(L, i));
    std::vector<float> attn_norm = floats(L.attn_norm), ffn_norm = floats(L.ffn_norm);
    std::vector<float> bv = L.bv.empty() ? std::vector<float>() : floats(L.bv);
    std::string note;
    if (awq) {
      using G = cpu::LinearInput;
      auto rows = [&](G g) { return col.at(l, g).rows(); };
      std::vector<float> xs[4] = {col.at(l, G::Qkv).samples(), col.at(l, G::O).samples(),
                                  col.at(l, G::GateUp).samples(), col.at(l, G::Down).samples()};
      const Matrix* qkv[] = {&m[kLinQ], &m[kLinK], &m[kLinV]};
      const Matrix* o_[] = {&m[kLinO]};
      const Matrix* gu[] = {&m[kLinGate], &m[kLinUp]};
      const Matrix* dn[] = {&m[kLinDown]};
      std::vector<float> o_mean = col.at(l, G::O).mean_abs();
      if (c.num_kv_heads != c.num_heads) o_mean = quant::awq::tie_to_kv_heads(o_mean, c.num_heads, c.num_kv_heads, c.head_dim);
      const auto s1 = quant::awq::search_scale(pool, qkv, col.at(l, G::Qkv).mean_abs(), xs[0], rows(G::Qkv), cfg);
      const auto s2 = quant::awq::search_scale(pool, o_, o_mean, xs[1], rows(G::O), cfg);
      const auto s3 = quant::awq::search_scale(pool, gu, col.at(l, G::GateUp).mean_abs(), xs[2], rows(G::GateUp), cfg);
      const auto s4 = quant::awq::search_scale(pool, dn, col.at(l, G::Down).mean_abs(), xs[3], rows(G::Down), cfg);

      // Fold: x/s into the producer, W diag(s) into the consumers.
      for (int64_t i = 0; i < c.hidden_size; ++i) attn_norm[i] /= s1.scales[i];
      for (int i : {kLinQ, kLinK, kLinV}) quant::awq::scale_columns(m[i], s1.scales);
      std::vector<float> s2v(static_cast<size_t>(c.kv_dim()));  // o_proj input (h, d) <- v row (h / group, d)
      const int64_t per = c.num_heads / c.num_kv_heads;
      for (int64_t kh = 0; kh < c.num_kv_heads; ++kh)
        for (int64_t d = 0; d < c.head_dim; ++d) s2v[kh * c.head_dim + d] = s2.scales[(kh * per) * c.head_dim + d];
      quant::awq::divide_rows(m[kLinV], s2v);
      for (size_t i = 0; i < bv.size(); ++i) bv[i] /= s2v[i];
      quant::awq::scale_columns(m[kLinO], s2.scales);
      for (int64_t i = 0; i < c.hidden_size; ++i) ffn_norm[i] /= s3.scales[i];
      for (int i : {kLinGate, kLinUp}) quant::awq::scale_columns(m[i], s3.scales);
      quant::awq::divide_rows(m[kLinUp], s4.scales);
      quant::awq::scale_columns(m[kLinDown], s4.scales);
      quant::awq::divide_samples(xs[0], rows(G::Qkv), s1.scales);
      quant::awq::divide_samples(xs[1], rows(G::O), s2.scales);
      quant::awq::divide_samples(xs[2], rows(G::GateUp), s3.scales);
      quant::awq::divide_samples(xs[3], rows(G::Down), s4.scales);
      note = fmt::format("alpha qkv {:.2f} ({}) o {:.2f} ({}) gate/up {:.2f} ({}) down {:.2f} ({})",
                         s1.alpha, pct(s1.err_rtn, s1.err_best), s2.alpha, pct(s2.err_rtn, s2.err_best),
                         s3.alpha, pct(s3.err_rtn, s3.err_best), s4.alpha, pct(s4.err_rtn, s4.err_best));
      if (o.clip) {
        double before = 0, after = 0;
        const std::pair<int, int> clip_of[] = {{kLinV, 0}, {kLinO, 1}, {kLinGate, 2}, {kLinUp, 2}, {kLinDown, 3}};
        for (auto [i, g] : clip_of) {
          const auto r = quant::awq::search_and_apply_clip(pool, m[i], xs[g], col.at(l, G(g)).rows(), cfg);
          before += r.err_before;
          after += r.err_after;
        }
        note += fmt::format(", clip {}", pct(before, after));
      }
    }
    for (int i = 0; i < kNumLinears; ++i)
      for (StoredTensor& t : quant::stored_tensors(p + linear_module_name(i), quant::awq::quantize(m[i], cfg, &pool),
                                                   ck.bits, ck.group))
        ck.quantized.push_back(std::move(t));
    ck.floats.push_back(f32(hf_tensor_name(l, &LayerWeights::attn_norm), attn_norm));
    ck.floats.push_back(f32(hf_tensor_name(l, &LayerWeights::ffn_norm), ffn_norm));
    if (!L.bq.empty()) {
      ck.floats.push_back(stored(hf_tensor_name(l, &LayerWeights::bq), L.bq));
      ck.floats.push_back(stored(hf_tensor_name(l, &LayerWeights::bk), L.bk));
      ck.floats.push_back(f32(hf_tensor_name(l, &LayerWeights::bv), bv));
    }
    if (!L.q_norm.empty()) {
      ck.floats.push_back(stored(hf_tensor_name(l, &LayerWeights::q_norm), L.q_norm));
      ck.floats.push_back(stored(hf_tensor_name(l, &LayerWeights::k_norm), L.k_norm));
    }
    // One plain line per layer (a bounded count), terminal or not.
    std::fprintf(stderr, "layer %3lld/%lld %.1fs %s\n", (long long)l + 1, (long long)c.num_layers, seconds_since(t0),
                 note.c_str());
  }
  write_checkpoint(ck);
  std::fprintf(stderr, "wrote %s (%s, %d-bit%s) in %.1f s\n", o.out.c_str(), o.method.c_str(), o.bits,
               o.bits == 4 ? fmt::format(", group {}", o.group).c_str() : "", seconds_since(t_start));
  std::printf("%s\n", o.out.c_str());
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto o = std::make_shared<QuantizeOpts>();
  auto* cmd = app.add_subcommand("quantize", "Write a pre-quantized checkpoint (AWQ or RTN; INT4 in AutoAWQ layout, INT8)");
  cmd->add_option("--model", o->model, "Float Hugging Face checkpoint directory")->required();
  cmd->add_option("--out", o->out, "Output directory")->required();
  cmd->add_option("--method", o->method, "awq | rtn")->check(CLI::IsMember({"awq", "rtn"}))->capture_default_str();
  cmd->add_option("--bits", o->bits, "4 (AutoAWQ GEMM layout) | 8 (troupe_int8)")->check(CLI::IsMember({4, 8}))->capture_default_str();
  cmd->add_option("--group-size", o->group, "INT4 group size")->check(CLI::IsMember({32, 64, 128}))->capture_default_str();
  cmd->add_option("--calib", o->calib, "Calibration text: .jsonl (\"text\") or plain text (paragraphs); default: samples from the model");
  cmd->add_option("--calib-samples", o->calib_samples, "Calibration samples")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--calib-len", o->calib_len, "Tokens per calibration sample (at most)")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--search-rows", o->search_rows, "Token rows per layer group kept for the error searches")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--grid", o->grid, "Alpha grid points in [0, 1)")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_flag("!--no-clip", o->clip, "Skip the clipping search");
  cmd->add_option("--threads", o->threads, "Compute threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed (reservoir sampling, self-generated calibration)")->capture_default_str();
  cmd->callback([o] { run_quantize(*o); });
}

}  // namespace troupe::app
