// Quantized models end to end: GGUF Q8_0/Q4_0 run natively, on-the-fly RTN, and checkpoints
// written by `troupe quantize` (AutoAWQ INT4, troupe INT8) - each against its
// "fake-quantized" float model (the same dequantized weights through the float kernels).
//
// The quantized kernels also round the activations to int8 per block of 32 (quant/qmatmul.h),
// so logits differ from the float path by a small relative error. Greedy decoding is
// compared teacher-forced on the float model's path: the picks must agree at every step
// whose top-1/top-2 margin exceeds what that error can move (kMargin), and the logits must be
// close (kRelErr).
#include <boost/json.hpp>
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/half.h"
#include "cpu/kernels.h"
#include "model/quantized_checkpoint.h"
#include "model/safetensors.h"
#include "model/synth.h"
#include "model/tokenizer_loader.h"
#include "quant/qmatmul.h"
#include "quant_util.h"
#include "test_util.h"

using namespace troupe;
namespace fs = std::filesystem;

namespace {

// A step is decisive when the float model's top-1/top-2 margin exceeds this fraction of the
// RMS of its logits. The measured activation-rounding error is ~1.2% RMS of the logits
// (TinyStories) and ~0.7% (random tiny models), so a decisive pick cannot flip.
constexpr double kMarginRel = 0.07;
constexpr double kRelErr = 0.03;  // RMS of the logit difference / RMS of the logits

cpu::CpuBackendOptions opts(quant::Method m = quant::Method::None, int group = 128) {
  cpu::CpuBackendOptions o;
  o.num_threads = 2;
  o.num_blocks = 64;
  o.quantization.method = m;
  o.quantization.group_size = group;
  return o;
}

const std::vector<std::string> kPrompts = {"Once upon a time, there was a little girl named Lily.",
                                           "The dog ran to the park and",
                                           "Tom had a big red ball. One day"};

// Compares the quantized backend with its fake-quantized float model on greedy paths:
//  - teacher-forced on the float model's path, the logits are close and every decisive pick
//    is the same;
//  - free-running, the quantized model's greedy output is the float model's up to the first
//    step that is not decisive (where either pick is a correct reading of the model).
void expect_same_greedy(cpu::CpuBackend& q, cpu::CpuBackend& f, const Tokenizer& tok, int n) {
  int64_t checked = 0, identical = 0, reproduced = 0;
  for (const auto& p : kPrompts) {
    const auto ids = tok.encode(p, true);
    const test::Greedy ref = test::greedy(f, ids, n, {}, true);
    const test::Greedy got = test::greedy(q, ids, n, ref.ids, true);
    std::vector<bool> decisive(static_cast<size_t>(n), false);
    double diff2 = 0, norm2 = 0;
    for (int i = 0; i < n; ++i) {
      double step2 = 0;
      for (size_t j = 0; j < ref.logits[i].size(); ++j) {
        diff2 += std::pow(double(got.logits[i][j]) - ref.logits[i][j], 2);
        step2 += std::pow(double(ref.logits[i][j]), 2);
      }
      norm2 += step2;
      decisive[i] = ref.margins[i] > kMarginRel * std::sqrt(step2 / double(ref.logits[i].size()));
      if (decisive[i]) {
        INFO("prompt '" << p << "' step " << i << " margin " << ref.margins[i]);
        REQUIRE(got.ids[i] == ref.ids[i]);
        ++checked;
      }
    }
    const double rel = std::sqrt(diff2 / norm2);
    INFO("prompt '" << p << "': relative logit error " << rel);
    CHECK(rel < kRelErr);

    const test::Greedy free = test::greedy(q, ids, n);
    int d = 0;
    while (d < n && free.ids[d] == ref.ids[d]) ++d;
    INFO("prompt '" << p << "': free-running greedy diverges at step " << d << " of " << n);
    if (d < n) CHECK_FALSE(decisive[d]);
    identical += d == n;
    reproduced += d;
  }
  CHECK(checked > int64_t(kPrompts.size()) * n / 2);  // the margin rule must not hide everything
  WARN(identical << "/" << kPrompts.size() << " free-running greedy continuations identical, "
                 << reproduced << "/" << kPrompts.size() * n << " tokens before a divergence, "
                 << checked << " decisive teacher-forced steps checked");
}

std::string tinystories() { return test::model_path("tinystories-656k"); }

}  // namespace

TEST_CASE("GGUF Q8_0 and Q4_0 tensors run natively through qmatmul", "[e2e][quant]") {
  const std::string dir = test::temp_dir("quant-gguf");
  for (const char* dt : {"q8_0", "q4_0"}) {
    DYNAMIC_SECTION(dt) {
      const std::string path = dir + "/" + dt + ".gguf";
      test::run_troupe(fmt::format("synth --shape tiny --format gguf --dtype {} --out {}", dt, path), dir);
      auto tok = load_tokenizer(path);
      ModelWeights stored = load_model(path);
      cpu::CpuBackend q(load_model(path), opts());
      const quant::QFormat want = std::string(dt) == "q8_0" ? quant::QFormat::Q8_0 : quant::QFormat::Q4_0;
      for (int64_t l = 0; l < q.config().num_layers; ++l)
        for (int i = 0; i < kNumLinears; ++i) {
          REQUIRE(q.quantized(l, i) != nullptr);
          REQUIRE(q.quantized(l, i)->format() == want);
        }
      REQUIRE(q.quantized_lm_head() != nullptr);
      // Repacked, not dequantized: the packed copies are exactly as large as the blocks.
      CHECK(q.weight_bytes_per_token() == stored.bytes_per_token());

      // The float model: every quantized tensor dequantized by the GGUF block decoder.
      ModelWeights f = load_model(path);
      auto to_f32 = [&](TensorView& v) {
        std::vector<float> buf(size_t(v.numel()));
        cpu::to_f32(v, buf.data());
        v.data = f.own(std::move(buf));
        v.dtype = DType::F32;
        v.nbytes = v.numel() * 4;
      };
      for (auto& L : f.layers)
        for (int i = 0; i < kNumLinears; ++i) to_f32(linear_view(L, i));
      const bool tied = f.lm_head.data == f.tok_embeddings.data;
      to_f32(f.lm_head);
      if (tied) f.tok_embeddings = f.lm_head;
      cpu::CpuBackend fb(std::move(f), opts());
      REQUIRE(fb.quantized(0, kLinQ) == nullptr);
      expect_same_greedy(q, fb, *tok, 24);
    }
  }
}

TEST_CASE("on-the-fly INT8 / INT4 matches its fake-quantized model", "[e2e][quant]") {
  auto tok = load_tokenizer(tinystories());
  for (auto [m, group] : {std::pair{quant::Method::Int8, 128}, {quant::Method::Int4, 64}, {quant::Method::Int4, 128}}) {
    DYNAMIC_SECTION(quant::method_name(m) << " g" << group) {
      cpu::CpuBackend q(load_model(tinystories()), opts(m, group));
      REQUIRE(q.quantized(1, kLinDown) != nullptr);
      REQUIRE(q.quantized_lm_head() != nullptr);  // lm_head auto: INT8 under int8/int4
      CHECK(q.quantized_lm_head()->format() == quant::QFormat::Int8);
      CHECK(q.weight_bytes_per_token() < q.weights().bytes_per_token() / 3);
      cpu::CpuBackend f(test::fake_quantized(q, load_model(tinystories())), opts());
      expect_same_greedy(q, f, *tok, 32);
    }
  }
  CHECK_THROWS_AS(cpu::CpuBackend(load_model(tinystories()), opts(quant::Method::Awq)), Error);
}

TEST_CASE("troupe quantize writes AutoAWQ / INT8 checkpoints that load as published", "[e2e][quant]") {
  const std::string dir = test::temp_dir("quant-ckpt");
  auto tok = load_tokenizer(tinystories());
  {  // calibration text from the float model
    cpu::CpuBackend fp(load_model(tinystories()), opts());
    test::write_jsonl(dir + "/calib.jsonl", test::sample_texts(fp, *tok, 16, 200, 1000));
  }
  for (int bits : {4, 8}) {
    DYNAMIC_SECTION(bits << "-bit") {
      const std::string out = dir + "/awq" + std::to_string(bits);
      const std::string log = test::run_troupe(
          fmt::format("quantize --model {} --out {} --method awq --bits {} --group-size 64 --calib {}/calib.jsonl --threads 2",
                      tinystories(), out, bits, dir), dir);
      INFO(log);
      CHECK(log.find("layer   2/2") != std::string::npos);  // progress per layer

      // config.json: the source's plus quantization_config; the tokenizer came along.
      const auto cfg = boost::json::parse(test::read_file(out + "/config.json")).as_object();
      const auto& qc = cfg.at("quantization_config").as_object();
      CHECK(cfg.at("hidden_size").as_int64() == 128);
      if (bits == 4) {
        CHECK(qc.at("quant_method").as_string() == "awq");
        CHECK(qc.at("bits").as_int64() == 4);
        CHECK(qc.at("group_size").as_int64() == 64);
        CHECK(qc.at("zero_point").as_bool());
        CHECK(qc.at("version").as_string() == "gemm");
      } else {
        CHECK(qc.at("quant_method").as_string() == "troupe_int8");
      }
      CHECK(fs::exists(out + "/tokenizer.json"));

      Checkpoint ck = load_checkpoint(out);
      REQUIRE(ck.quant);
      cpu::CpuBackend q(std::move(ck), opts(quant::Method::Awq));
      REQUIRE(q.quantized(0, kLinGate) != nullptr);
      CHECK(q.quantized_lm_head() == nullptr);  // published AWQ keeps the head in float

      // The stored tensors decode - by the AutoAWQ rules, independently of the loader - to
      // exactly the weights the backend runs.
      const auto st = SafetensorsFile::open(out + "/model.safetensors");
      for (int i = 0; i < kNumLinears; ++i) {
        const std::string mod = std::string("model.layers.1.") + linear_module_name(i);
        const auto* qw = st.find(mod + ".qweight");
        const auto* sc = st.find(mod + ".scales");
        REQUIRE(qw);
        REQUIRE(sc);
        const quant::QuantizedMatrix& m = *q.quantized(1, i);
        const int64_t out_f = m.rows(), in_f = m.cols();
        std::vector<float> row(static_cast<size_t>(in_f));
        int64_t bad = 0;
        if (bits == 4) {
          const auto* qz = st.find(mod + ".qzeros");
          REQUIRE(qz);
          REQUIRE(qw->dtype_name == "I32");
          REQUIRE(qw->shape == std::vector<int64_t>{in_f, out_f / 8});
          REQUIRE(qz->shape == std::vector<int64_t>{in_f / 64, out_f / 8});
          REQUIRE(sc->dtype_name == "F16");
          REQUIRE(sc->shape == std::vector<int64_t>{in_f / 64, out_f});
          const auto* W = reinterpret_cast<const uint32_t*>(st.data(*qw));
          const auto* Z = reinterpret_cast<const uint32_t*>(st.data(*qz));
          const auto* S = reinterpret_cast<const uint16_t*>(st.data(*sc));
          const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // nibble n holds column order[n]
          auto nib = [&](uint32_t word, int col) {
            for (int n = 0; n < 8; ++n)
              if (order[n] == col) return int((word >> (4 * n)) & 15);
            return -1;
          };
          for (int64_t o = 0; o < out_f; ++o) {
            m.dequantize_row(o, row.data());
            for (int64_t k = 0; k < in_f; ++k) {
              const int qv = nib(W[k * (out_f / 8) + o / 8], int(o % 8));
              const int zv = nib(Z[(k / 64) * (out_f / 8) + o / 8], int(o % 8));
              bad += row[k] != float(qv - zv) * f16_to_f32(S[(k / 64) * out_f + o]);
            }
          }
        } else {
          REQUIRE(qw->dtype_name == "I8");
          REQUIRE(qw->shape == std::vector<int64_t>{out_f, in_f});
          const auto* W = reinterpret_cast<const int8_t*>(st.data(*qw));
          const auto* S = reinterpret_cast<const float*>(st.data(*sc));
          for (int64_t o = 0; o < out_f; ++o) {
            m.dequantize_row(o, row.data());
            for (int64_t k = 0; k < in_f; ++k) bad += row[k] != float(W[o * in_f + k]) * S[o];
          }
        }
        REQUIRE(bad == 0);
      }

      // Greedy output of the quantized checkpoint = its fake-quantized float model.
      Checkpoint floats = load_checkpoint(out);
      cpu::CpuBackend f(test::fake_quantized(q, std::move(floats.weights)), opts());
      expect_same_greedy(q, f, *tok, 32);

      // Loading rules: runs as published without a flag; never re-quantized.
      CHECK_NOTHROW(cpu::CpuBackend(load_checkpoint(out), opts()));
      CHECK_THROWS_AS(cpu::CpuBackend(load_checkpoint(out), opts(quant::Method::Int4)), Error);
      // The CLI path (Engine) runs it too.
      const std::string gen = test::run_troupe(
          fmt::format("generate --model {} --quantization awq --prompt 'Once upon a time' --max-tokens 8 --json", out), dir);
      CHECK(gen.find("\"completion_tokens\":8") != std::string::npos);
    }
  }
}

TEST_CASE("RTN checkpoints equal on-the-fly RTN bit for bit", "[e2e][quant]") {
  const std::string dir = test::temp_dir("quant-rtn");
  const std::string out = dir + "/rtn";
  test::run_troupe(fmt::format("quantize --model {} --out {} --method rtn --bits 4 --group-size 32", tinystories(), out), dir);
  cpu::CpuBackend a(load_checkpoint(out), opts(quant::Method::Awq));
  cpu::CpuBackend b(load_model(tinystories()), opts(quant::Method::Int4, 32));
  std::vector<float> ra, rb;
  for (int64_t l = 0; l < a.config().num_layers; ++l)
    for (int i = 0; i < kNumLinears; ++i) {
      const auto& ma = *a.quantized(l, i);
      const auto& mb = *b.quantized(l, i);
      REQUIRE(ma.rows() == mb.rows());
      ra.resize(size_t(ma.cols()));
      rb.resize(size_t(mb.cols()));
      for (int64_t r = 0; r < ma.rows(); ++r) {
        ma.dequantize_row(r, ra.data());
        mb.dequantize_row(r, rb.data());
        REQUIRE(ra == rb);
      }
    }
}

TEST_CASE("pre-quantized checkpoints with unsupported settings are refused by name", "[e2e][quant]") {
  const std::string dir = test::temp_dir("quant-bad");
  const std::string good = dir + "/rtn";
  test::run_troupe(fmt::format("quantize --model {} --out {} --method rtn --bits 4 --group-size 32", tinystories(), good), dir);
  REQUIRE(load_checkpoint(good + "/config.json").quant);  // the config.json form of the path

  // A copy whose quantization_config has one field changed must fail naming the problem.
  auto variant = [&](const std::string& key, const boost::json::value& v) {
    const std::string bad = dir + "/bad-" + key;
    fs::create_directories(bad);
    for (const auto& e : fs::directory_iterator(good))
      if (e.path().filename() != "config.json")
        fs::create_symlink(e.path(), fs::path(bad) / e.path().filename());
    auto cfg = boost::json::parse(test::read_file(good + "/config.json")).as_object();
    cfg["quantization_config"].as_object()[key] = v;
    std::ofstream(bad + "/config.json") << boost::json::serialize(cfg);
    return bad;
  };
  auto message = [](const std::string& path) -> std::string {
    try {
      (void)load_checkpoint(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  CHECK_THAT(message(variant("quant_method", "gptq")), Catch::Contains("quant_method 'gptq'"));
  CHECK_THAT(message(variant("bits", 3)), Catch::Contains("3 bits"));
  CHECK_THAT(message(variant("version", "gemv")), Catch::Contains("'gemv'"));
  CHECK_THAT(message(variant("zero_point", false)), Catch::Contains("zero points"));
  // The tensors were written with group 32: a config claiming 64 does not match their shapes.
  CHECK_THAT(message(variant("group_size", 64)), Catch::Contains("qzeros"));
}

// An untied LM head stays float in the checkpoint. `troupe quantize` reads it from a backend
// that has repacked its float matrices into panels (cpu/kernels_panel.cpp), so it must be
// written back in the file's order: here every value equals the source model's.
TEST_CASE("troupe quantize writes an untied float LM head in the source's order", "[e2e][quant]") {
  const std::string dir = test::temp_dir("quant-untied");
  for (const std::string dtype : {"f32", "bf16"}) {
    INFO(dtype);
    SynthOptions s;
    s.shape = "qwen2-tiny";  // untied
    s.format = "hf";
    s.dtype = dtype;
    s.out = dir + "/src-" + dtype;
    const std::string src = synth_model(s);
    const std::string out = dir + "/rtn-" + dtype;
    test::run_troupe(fmt::format("quantize --model {} --out {} --method rtn --bits 8", src, out), dir);
    const ModelWeights a = load_model(src);
    const Checkpoint b = load_checkpoint(out);
    REQUIRE(!a.config.tie_word_embeddings);
    const TensorView& ha = a.lm_head;
    const TensorView& hb = b.weights.lm_head;
    REQUIRE(ha.shape == hb.shape);
    std::vector<float> fa(size_t(ha.numel())), fb(fa.size());
    cpu::to_f32(ha, fa.data());
    cpu::to_f32(hb, fb.data());
    CHECK(fa == fb);
  }
}
