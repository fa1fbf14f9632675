// CpuBackendOptions::fuse_linears: q/k/v and gate/up stacked into one matmul each must
// compute exactly what the separate matmuls compute (every output row keeps its own
// reduction), for float weights (stacked in the panel copy; gate/up as panel pairs with
// SiLU applied in matmul_glu_pairs) and quantized ones (stacked packed matrices), with
// Qwen2's q/k/v biases, on pipeline stages, and with the calibration observer seeing the
// same inputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <tuple>

#include "cpu/cpu_backend.h"
#include "model/synth.h"
#include "model/weights.h"
#include "test_util.h"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

struct Recorder final : cpu::ActivationObserver {
  std::vector<std::tuple<int64_t, cpu::LinearInput, std::vector<float>>> seen;
  void observe(int64_t layer, cpu::LinearInput g, const float* x, int64_t T, int64_t n) override {
    seen.emplace_back(layer, g, std::vector<float>(x, x + T * n));
  }
};

// Prefill chunks of different lengths, then decode steps, then a step wide enough (> 48
// tokens) to take the GEMM paths rather than the multi-row GEMV.
std::vector<StepBatch> steps(int64_t vocab) {
  auto seq = [&](int64_t id, int32_t start, int n, int32_t first_block) {
    StepSeq s;
    s.seq_id = id;
    s.start_pos = start;
    for (int i = 0; i < n; ++i) s.tokens.push_back(int32_t((id * 31 + start + i * 7 + 1) % vocab));
    for (int32_t b = 0; b < 8; ++b) s.block_table.push_back(first_block + b);
    for (int i = 0; i < n; ++i) s.logit_rows.push_back(i);
    return s;
  };
  std::vector<StepBatch> v;
  v.push_back({{seq(0, 0, 5, 0), seq(1, 0, 3, 8)}});
  v.push_back({{seq(0, 5, 1, 0), seq(1, 3, 1, 8)}});
  v.push_back({{seq(0, 6, 1, 0)}});
  v.push_back({{seq(0, 7, 30, 0), seq(1, 4, 26, 8)}});
  return v;
}

struct Run {
  std::vector<std::vector<float>> logits;
  std::vector<std::vector<float>> hidden;
  Recorder rec;
};

// With the observer on, the quantized feed-forward takes its separate steps (the observer
// sees down's input written out); without it, one qmatmul_glu call (stacked or not).
Run run(cpu::CpuBackend& be, int64_t vocab, bool observe = true) {
  Run r;
  be.set_observer(observe ? &r.rec : nullptr);
  for (const StepBatch& b : steps(vocab)) {
    StepOutput out;
    if (be.layers().begin == 0 && be.layers().end == be.config().num_layers) {
      be.run_step(b, out);
    } else {  // a middle stage: random-ish hidden states in, hidden states out
      std::vector<float> h(size_t(b.num_tokens() * be.config().hidden_size));
      for (size_t i = 0; i < h.size(); ++i) h[i] = float(int(i * 2654435761u % 2001) - 1000) * 1e-3f;
      be.run_stage(b, h, out);
      r.hidden.push_back(h);
    }
    r.logits.push_back(out.logits);
  }
  be.set_observer(nullptr);
  return r;
}

void check_same(const std::string& path, cpu::CpuBackendOptions o, bool float_weights) {
  o.num_threads = 2;
  o.num_blocks = 16;
  cpu::CpuBackendOptions unfused_opts = o;
  unfused_opts.fuse_linears = false;
  cpu::CpuBackend fused(load_model(path), o), unfused(load_model(path), unfused_opts);
  const int64_t vocab = fused.config().vocab_size;
  for (int64_t l = fused.layers().begin; l < fused.layers().end; ++l) {
    INFO("layer " << l << " (" << fused.name() << ")");
    CHECK(fused.fused(l, cpu::FusedGroup::Qkv));
    CHECK(fused.fused(l, cpu::FusedGroup::GateUp));
    // Float gate/up run as panel pairs where I is whole panels of 64 rows.
    CHECK(fused.glu_pairs(l) == (float_weights && fused.config().intermediate_size % kPanelRows == 0));
    CHECK(!unfused.fused(l, cpu::FusedGroup::Qkv));
  }
  if (!float_weights) {  // the per-linear matrices are views of the stack, same contents
    const auto* q = fused.quantized(fused.layers().begin, kLinK);
    const auto* u = unfused.quantized(fused.layers().begin, kLinK);
    REQUIRE(q != nullptr);
    REQUIRE(u != nullptr);
    CHECK(q->nbytes() == u->nbytes());
    std::vector<float> a(size_t(q->cols())), b(a.size());
    for (int64_t r = 0; r < q->rows(); ++r) {
      q->dequantize_row(r, a.data());
      u->dequantize_row(r, b.data());
      REQUIRE(a == b);
    }
  }
  CHECK(fused.weight_bytes_per_token() == unfused.weight_bytes_per_token());
  const Run a = run(fused, vocab), b = run(unfused, vocab), c = run(fused, vocab, false),
            d = run(unfused, vocab, false);
  REQUIRE(a.logits.size() == b.logits.size());
  REQUIRE(c.logits.size() == b.logits.size());
  REQUIRE(d.logits.size() == b.logits.size());
  for (size_t i = 0; i < a.logits.size(); ++i) {
    INFO("step " << i);
    REQUIRE(a.logits[i] == b.logits[i]);  // bit for bit
    REQUIRE(c.logits[i] == b.logits[i]);
    REQUIRE(d.logits[i] == b.logits[i]);
  }
  CHECK(a.hidden == b.hidden);
  CHECK(c.hidden == b.hidden);
  CHECK(d.hidden == b.hidden);
  REQUIRE(a.rec.seen.size() == b.rec.seen.size());
  CHECK(a.rec.seen == b.rec.seen);
}

std::string synth(const std::string& shape, const std::string& format, const std::string& dtype) {
  static const std::string dir = test::temp_dir("fused");
  SynthOptions s;
  s.shape = shape;
  s.format = format;
  s.dtype = dtype;
  s.out = (fs::path(dir) / (shape + "-" + format + "-" + dtype)).string() + (format == "gguf" ? ".gguf" : "");
  if (fs::exists(s.out)) return s.out;
  return synth_model(s);
}

}  // namespace

TEST_CASE("fused q/k/v and gate/up: float weights are exact", "[e2e][fuse]") {
  for (const auto& [shape, format, dtype] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"tiny", "hf", "f32"}, {"tiny", "gguf", "f16"}, {"qwen2-tiny", "hf", "f32"},
           {"qwen3-tiny", "hf", "f16"}, {"narrow-tiny", "hf", "f32"}, {"narrow-tiny", "gguf", "bf16"},
           {"narrow-odd-tiny", "hf", "f32"}}) {
    INFO(shape << " " << format << " " << dtype);
    check_same(synth(shape, format, dtype), {}, true);
  }
}

TEST_CASE("fused q/k/v and gate/up: quantized weights are exact", "[e2e][fuse]") {
  check_same(synth("tiny", "gguf", "q8_0"), {}, false);
  check_same(synth("tiny", "gguf", "q4_0"), {}, false);
  for (auto m : {quant::Method::Int8, quant::Method::Int4}) {
    cpu::CpuBackendOptions o;
    o.quantization.method = m;
    o.quantization.group_size = 32;
    check_same(synth("qwen2-tiny", "hf", "f32"), o, false);
  }
}

TEST_CASE("fused q/k/v and gate/up on a pipeline stage", "[e2e][fuse]") {
  cpu::CpuBackendOptions o;
  o.layer_begin = 1;
  o.layer_end = 2;
  check_same(synth("tiny", "hf", "f32"), o, true);
  o.layer_begin = 0;
  o.layer_end = 1;
  o.quantization.method = quant::Method::Int8;
  check_same(synth("tiny", "hf", "f32"), o, false);
}

TEST_CASE("float layers stay unfused without the panel copy", "[e2e][fuse]") {
  cpu::CpuBackendOptions o;
  o.num_threads = 2;
  o.num_blocks = 16;
  o.huge_page_weights = false;
  cpu::CpuBackend be(load_model(synth("tiny", "hf", "f32")), o);
  CHECK(!be.fused(0, cpu::FusedGroup::Qkv));
  o.quantization.method = quant::Method::Int8;  // quantized stacks need no copy
  cpu::CpuBackend q(load_model(synth("tiny", "hf", "f32")), o);
  CHECK(q.fused(0, cpu::FusedGroup::Qkv));
}

// The panel copy (huge_page_weights, the default) against the row-major kernels reading the
// file's views (huge_page_weights = false): two summation orders of the same products, so
// the logits agree to float rounding, not bit for bit.
// BF16 runs as BF16 panels, and as F32 row-major copies without the panel copy.
TEST_CASE("weights in panels compute what the row-major views compute", "[e2e][fuse]") {
  for (const auto& dtype : {"f32", "f16", "bf16"}) {
    INFO(dtype);
    cpu::CpuBackendOptions o;
    o.num_threads = 2;
    o.num_blocks = 16;
    cpu::CpuBackendOptions rm = o;
    rm.huge_page_weights = false;
    rm.fuse_linears = false;
    const std::string path = synth("tiny", "hf", dtype);
    cpu::CpuBackend panels(load_model(path), o), rows(load_model(path), rm);
    CHECK(panels.fused(0, cpu::FusedGroup::Qkv));
    CHECK(!rows.fused(0, cpu::FusedGroup::Qkv));
    // BF16 streams 2 bytes per weight as panels, 4 as the converted F32 copy.
    const bool bf16 = std::string(dtype) == "bf16";
    if (bf16)
      CHECK(panels.weight_bytes_per_token() < rows.weight_bytes_per_token());
    else
      CHECK(panels.weight_bytes_per_token() == rows.weight_bytes_per_token());
    const int64_t vocab = panels.config().vocab_size;
    const Run a = run(panels, vocab), b = run(rows, vocab);
    REQUIRE(a.logits.size() == b.logits.size());
    for (size_t i = 0; i < a.logits.size(); ++i) {
      INFO("step " << i);
      REQUIRE(a.logits[i].size() == b.logits[i].size());
      double worst = 0, scale = 0;
      for (size_t j = 0; j < a.logits[i].size(); ++j) {
        worst = std::max(worst, double(std::fabs(a.logits[i][j] - b.logits[i][j])));
        scale = std::max(scale, double(std::fabs(b.logits[i][j])));
      }
      CHECK(worst <= 1e-4 * std::max(1.0, scale));
      CHECK(a.logits[i] != b.logits[i]);  // two different kernels ran
    }
  }
}

namespace {

bool transparent_huge_pages_on() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(f, s);
  return f.good() && s.find("[never]") == std::string::npos;
}

}  // namespace

// huge_page_weights also moves the quantized matrices (built one heap allocation each, on
// 4 KiB pages) into one buffer on huge pages, in the order a step reads them: the same
// bytes, so the same logits bit for bit as where they were built.
TEST_CASE("quantized weights moved into one huge-page buffer compute the same bits", "[e2e][fuse]") {
  struct Case {
    std::string path;
    quant::Method method;
    bool fuse;
    int64_t layer_begin, layer_end;
  };
  const std::string f32 = synth("tiny", "hf", "f32");
  for (const Case& c : std::vector<Case>{{synth("tiny", "gguf", "q4_0"), quant::Method::None, true, 0, 0},
                                         {synth("tiny", "gguf", "q8_0"), quant::Method::None, true, 0, 0},
                                         {f32, quant::Method::Int8, true, 0, 0},
                                         {f32, quant::Method::Int4, false, 0, 0},
                                         {f32, quant::Method::Int4, true, 1, 2}}) {
    INFO(c.path << " method " << int(c.method) << " fuse " << c.fuse << " layers " << c.layer_begin);
    cpu::CpuBackendOptions o;
    o.num_threads = 2;
    o.num_blocks = 16;
    o.quantization.method = c.method;
    o.quantization.group_size = 32;
    o.fuse_linears = c.fuse;
    o.layer_begin = c.layer_begin;
    o.layer_end = c.layer_end;
    cpu::CpuBackendOptions built = o;
    built.huge_page_weights = false;
    cpu::CpuBackend moved(load_model(c.path), o), kept(load_model(c.path), built);
    // Every matrix after the one before it in step order, the first on a huge page.
    std::vector<const quant::QuantizedMatrix*> order;
    for (int64_t l = moved.layers().begin; l < moved.layers().end; ++l)
      for (int i : {kLinQ, kLinK, kLinV, kLinO, kLinGate, kLinUp, kLinDown}) {
        const auto* m = moved.quantized(l, i);
        REQUIRE(m != nullptr);
        REQUIRE(kept.quantized(l, i) != nullptr);
        order.push_back(m);
      }
    if (moved.quantized_lm_head()) order.push_back(moved.quantized_lm_head());
    if (transparent_huge_pages_on()) {
      CHECK(reinterpret_cast<uintptr_t>(order.front()->packed().w) % (uintptr_t(2) << 20) == 0);
      for (size_t k = 1; k < order.size(); ++k) CHECK(order[k - 1]->packed().w < order[k]->packed().w);
    }
    CHECK(moved.weight_bytes_per_token() == kept.weight_bytes_per_token());
    const int64_t vocab = moved.config().vocab_size;
    const Run a = run(moved, vocab, false), b = run(kept, vocab, false);
    REQUIRE(a.logits.size() == b.logits.size());
    for (size_t i = 0; i < a.logits.size(); ++i) {
      INFO("step " << i);
      REQUIRE(a.logits[i] == b.logits[i]);
    }
    CHECK(a.hidden == b.hidden);
  }
}
