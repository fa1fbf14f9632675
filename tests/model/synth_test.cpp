// synth: random models of real shapes load back; HF and GGUF forms hold the same weights
// (GGUF q/k rows permuted for its RoPE convention, then converted); same seed, same bytes.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/half.h"
#include "model/ggml_quants.h"
#include "model/gguf.h"
#include "model/synth.h"
#include "model/vocab_io.h"
#include "model/weights.h"
#include "model_test_util.h"

using namespace troupe;
using namespace troupe::test;
namespace fs = std::filesystem;

namespace {

std::string synth(const std::string& out, const std::string& format, const std::string& dtype,
                  uint64_t seed = 7, const std::string& tokenizer = "") {
  SynthOptions o;
  o.shape = "tiny";
  o.out = out;
  o.format = format;
  o.dtype = dtype;
  o.seed = seed;
  o.tokenizer = tokenizer;
  return synth_model(o);
}

const float* f32(const TensorView& v) { return static_cast<const float*>(v.data); }

// HF row r of a q/k matrix sits at this row in the GGUF file (llama.cpp's permutation).
int64_t gguf_row(int64_t r, int64_t rows, int64_t heads) {
  const int64_t d = rows / heads, head = r / d, j = r % d;
  return head * d + (j % (d / 2)) * 2 + j / (d / 2);
}

}  // namespace

TEST_CASE("synth tiny HF loads with the tokenizer's vocabulary", "[model][synth]") {
  model_path("stories260k/tok512.model");  // the default tokenizer of `tiny` must exist
  const std::string dir = synth(temp_dir("synth-hf") + "/tiny", "hf", "f32");
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors", "tokenizer.model",
                        "tokenizer_config.json"}) {
    CHECK(fs::exists(dir + "/" + f));
  }
  const ModelWeights w = load_model(dir);
  const ModelConfig& c = w.config;
  CHECK(c.hidden_size == 64);
  CHECK(c.num_layers == 2);
  CHECK(c.num_heads == 4);
  CHECK(c.num_kv_heads == 2);
  CHECK(c.head_dim == 16);
  CHECK(c.intermediate_size == 128);
  CHECK(c.vocab_size == 512);
  CHECK(c.bos_token_id == 1);
  CHECK(c.eos_token_ids == std::vector<int32_t>{2});
  CHECK(c.rope_style == RopeStyle::Halves);
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK(w.tok_embeddings.dtype == DType::F32);
  // Norms are 1; weights look like N(0, 0.02).
  for (int64_t i = 0; i < 64; ++i) CHECK(f32(w.layers[1].ffn_norm)[i] == 1.0f);
  const float* e = f32(w.tok_embeddings);
  const int64_t n = w.tok_embeddings.numel();
  double sum = 0, sq = 0, mx = 0;
  for (int64_t i = 0; i < n; ++i) {
    sum += e[i];
    sq += static_cast<double>(e[i]) * e[i];
    mx = std::max(mx, std::fabs(static_cast<double>(e[i])));
  }
  CHECK(std::fabs(sum / n) < 1e-3);
  CHECK(std::sqrt(sq / n) == Approx(0.02).epsilon(0.02));
  CHECK(mx < 0.02 * 3.5);
  // Rows are independent streams, not shifted copies of one another.
  CHECK(std::memcmp(e + 1, e + 64, 63 * 4) != 0);
}

TEST_CASE("synth tiny GGUF holds the HF weights, q/k permuted for adjacent-pair RoPE", "[model][synth]") {
  const std::string base = temp_dir("synth-both");
  const ModelWeights hf = load_model(synth(base + "/hf", "hf", "f32"));
  const std::string gpath = synth(base + "/tiny.gguf", "gguf", "f32");
  CHECK(gpath == base + "/tiny.gguf");
  const ModelWeights gg = load_model(gpath);
  const ModelConfig &a = hf.config, &b = gg.config;
  CHECK(b.rope_style == RopeStyle::Adjacent);
  CHECK(a.hidden_size == b.hidden_size);
  CHECK(a.num_layers == b.num_layers);
  CHECK(a.num_heads == b.num_heads);
  CHECK(a.num_kv_heads == b.num_kv_heads);
  CHECK(a.intermediate_size == b.intermediate_size);
  CHECK(a.vocab_size == b.vocab_size);
  CHECK(a.max_position_embeddings == b.max_position_embeddings);
  CHECK(a.rms_norm_eps == b.rms_norm_eps);
  CHECK(a.rope_theta == b.rope_theta);
  CHECK(a.tie_word_embeddings == b.tie_word_embeddings);
  CHECK(a.bos_token_id == b.bos_token_id);
  CHECK(a.eos_token_ids == b.eos_token_ids);
  auto same = [](const TensorView& x, const TensorView& y) {
    INFO(x.name << " vs " << y.name);
    REQUIRE(x.shape == y.shape);
    REQUIRE(x.nbytes == y.nbytes);
    CHECK(std::memcmp(x.data, y.data, static_cast<size_t>(x.nbytes)) == 0);
  };
  same(hf.tok_embeddings, gg.tok_embeddings);
  same(hf.lm_head, gg.lm_head);
  same(hf.final_norm, gg.final_norm);
  for (size_t l = 0; l < hf.layers.size(); ++l) {
    const auto &x = hf.layers[l], &y = gg.layers[l];
    for (auto [p, q] : {std::pair{&x.attn_norm, &y.attn_norm}, {&x.wv, &y.wv}, {&x.wo, &y.wo},
                        {&x.ffn_norm, &y.ffn_norm}, {&x.w_gate, &y.w_gate}, {&x.w_up, &y.w_up},
                        {&x.w_down, &y.w_down}}) {
      same(*p, *q);
    }
    for (auto [p, q, heads] : {std::tuple{&x.wq, &y.wq, a.num_heads}, {&x.wk, &y.wk, a.num_kv_heads}}) {
      REQUIRE(p->shape == q->shape);
      CHECK(std::memcmp(p->data, q->data, static_cast<size_t>(p->nbytes)) != 0);
      for (int64_t r = 0; r < p->rows(); ++r) {
        INFO(p->name << " row " << r);
        CHECK(std::memcmp(p->row_ptr(r), q->row_ptr(gguf_row(r, p->rows(), heads)), 64 * 4) == 0);
      }
    }
  }
}

TEST_CASE("synth GGUF dtypes: F16, Q8_0, Q4_0 are the HF F32 weights converted", "[model][synth]") {
  const std::string base = temp_dir("synth-dtypes");
  const ModelWeights hf = load_model(synth(base + "/hf", "hf", "f32"));
  const TensorView& src = hf.layers[0].w_down;  // [64, 128], not permuted
  for (const char* dt : {"f16", "bf16", "q8_0", "q4_0"}) {
    INFO(dt);
    const ModelWeights g = load_model(synth(base + "/" + dt, "gguf", dt));
    const TensorView& t = g.layers[0].w_down;
    CHECK(g.layers[0].attn_norm.dtype == DType::F32);  // vectors stay F32, as llama.cpp
    REQUIRE(t.shape == src.shape);
    std::vector<uint8_t> want(static_cast<size_t>(dtype_row_bytes(t.dtype, 128)));
    for (int64_t r = 0; r < t.rows(); ++r) {
      const float* x = reinterpret_cast<const float*>(src.row_ptr(r));
      switch (t.dtype) {
        case DType::F16:
          for (int i = 0; i < 128; ++i) { uint16_t h = f32_to_f16(x[i]); std::memcpy(&want[2 * i], &h, 2); }
          break;
        case DType::BF16:
          for (int i = 0; i < 128; ++i) { uint16_t h = f32_to_bf16(x[i]); std::memcpy(&want[2 * i], &h, 2); }
          break;
        case DType::Q8_0: quantize_row_q8_0(x, want.data(), 128); break;
        case DType::Q4_0: quantize_row_q4_0(x, want.data(), 128); break;
        default: FAIL("unexpected dtype " << dtype_name(t.dtype));
      }
      REQUIRE(std::memcmp(t.row_ptr(r), want.data(), want.size()) == 0);
    }
    const GgufFile f = GgufFile::open(base + "/" + dt + "/model.gguf");
    CHECK(f.get_int("general.file_type").value() ==
          (std::string(dt) == "f16" ? 1 : std::string(dt) == "bf16" ? 32 : std::string(dt) == "q8_0" ? 7 : 2));
  }
  for (const char* dt : {"f16", "bf16"}) {
    const ModelWeights h = load_model(synth(base + "/hf-" + dt, "hf", dt));
    CHECK(h.layers[0].wq.dtype == (std::string(dt) == "f16" ? DType::F16 : DType::BF16));
    CHECK(h.final_norm.dtype == h.layers[0].wq.dtype);
  }
}

TEST_CASE("synth is deterministic per seed", "[model][synth]") {
  const std::string base = temp_dir("synth-seed");
  const std::string a = synth(base + "/a", "hf", "f32", 42), b = synth(base + "/b", "hf", "f32", 42);
  const std::string c = synth(base + "/c", "hf", "f32", 43);
  CHECK(read_file(a + "/model.safetensors") == read_file(b + "/model.safetensors"));
  CHECK(read_file(a + "/config.json") == read_file(b + "/config.json"));
  CHECK(read_file(a + "/model.safetensors") != read_file(c + "/model.safetensors"));
  const std::string ga = synth(base + "/ga", "gguf", "q4_0", 42), gb = synth(base + "/gb", "gguf", "q4_0", 42);
  CHECK(read_file(ga) == read_file(gb));
  // Pin the generator: a change to it silently changes every synth model people benchmark.
  const ModelWeights w = load_model(a);
  auto bits = [](float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
  };
  CHECK(bits(f32(w.tok_embeddings)[0]) == 0x3a913713u);
  CHECK(bits(f32(w.tok_embeddings)[1]) == 0x3d20aaceu);
  CHECK(bits(f32(w.tok_embeddings)[3]) == 0xbc06567eu);
  CHECK(bits(f32(w.layers[1].wq)[100]) == 0x3c4267c7u);
}

TEST_CASE("synth --context declares a longer context with the same weights", "[model][synth]") {
  const std::string base = temp_dir("synth-context");
  for (const char* format : {"hf", "gguf"}) {
    SynthOptions o;
    o.shape = "tiny";
    o.format = format;
    o.seed = 5;
    o.out = base + "/" + format + "-default";
    const ModelWeights plain = load_model(synth_model(o));
    o.out = base + "/" + format + "-long";
    o.context = 2048;
    const ModelWeights longer = load_model(synth_model(o));
    CHECK(plain.config.max_position_embeddings == 512);
    CHECK(longer.config.max_position_embeddings == 2048);
    const TensorView& a = plain.layers[1].wq;
    const TensorView& b = longer.layers[1].wq;
    REQUIRE(a.nbytes == b.nbytes);
    CHECK(std::memcmp(a.data, b.data, size_t(a.nbytes)) == 0);
    o.context = -1;
    CHECK_THROWS_WITH(synth_model(o), Catch::Contains("context -1 is negative"));
  }
}

TEST_CASE("synth embeds the tokenizer vocabulary in GGUF", "[model][synth][tokenizer]") {
  const std::string base = temp_dir("synth-vocab");
  const std::string tok512 = model_path("stories260k/tok512.model");
  const GgufFile g = GgufFile::open(synth(base + "/spm.gguf", "gguf", "f32"));
  const SpmSource got = spm_vocab_from_gguf(g), want = read_spm_model(tok512);
  CHECK(got.vocab.tokens == want.vocab.tokens);
  CHECK(got.vocab.scores == want.vocab.scores);
  CHECK(got.vocab.types == want.vocab.types);
  CHECK(got.vocab.bos_id == want.vocab.bos_id);
  CHECK(got.vocab.eos_id == want.vocab.eos_id);
  CHECK(got.vocab.unk_id == want.vocab.unk_id);
  CHECK(got.vocab.add_space_prefix == want.vocab.add_space_prefix);
  CHECK(want.remove_extra_whitespaces);  // tok512 was trained with sentencepiece's default
  CHECK(got.remove_extra_whitespaces);

  // Byte-level BPE (Llama-3): tokens, merges and specials survive; Q8_0 keeps the file small.
  const std::string llama3 = tokenizer_path("llama3");
  const std::string path = synth(base + "/bpe.gguf", "gguf", "q8_0", 1, llama3);
  const GgufFile b = GgufFile::open(path);
  CHECK(b.get_string("tokenizer.ggml.model") == "gpt2");
  const ByteBpeVocab bv = byte_bpe_vocab_from_gguf(b), jv = read_byte_bpe_json(llama3 + "/tokenizer.json");
  CHECK(bv.tokens.size() == 128256);
  CHECK(bv.tokens == jv.tokens);
  CHECK(bv.merges == jv.merges);
  CHECK(bv.types == jv.types);
  CHECK(bv.pre == "llama-bpe");
  CHECK(bv.bos_id == 128000);
  CHECK(bv.eos_ids == std::vector<int32_t>{128001, 128009});
  CHECK(bv.add_bos);
  const ModelWeights w = load_model(path);
  CHECK(w.config.vocab_size == 128256);
  CHECK(w.config.eos_token_ids == std::vector<int32_t>{128001, 128009});

  // HF form copies tokenizer.json and its config.
  const std::string hf = synth(base + "/bpe-hf", "hf", "f16", 1, llama3);
  CHECK(read_file(hf + "/tokenizer.json") == read_file(llama3 + "/tokenizer.json"));
  CHECK(fs::exists(hf + "/tokenizer_config.json"));
  CHECK(load_model(hf).config.eos_token_ids == std::vector<int32_t>{128001, 128009});
}

TEST_CASE("synth rejects bad options", "[model][synth]") {
  const std::string base = temp_dir("synth-bad");
  CHECK_THAT(error_of([&] { synth(base + "/x", "hf", "q4_0"); }), Catch::Contains("q4_0"));
  CHECK_THAT(error_of([&] { synth(base + "/x", "onnx", "f32"); }), Catch::Contains("onnx"));
  SynthOptions o;
  o.shape = "llama-70b";
  o.out = base + "/y";
  CHECK_THAT(error_of([&] { synth_model(o); }), Catch::Contains("llama-70b"));
  CHECK_THAT(error_of([&] { synth(base + "/x", "hf", "f32", 0, base + "/no-tokenizer"); }),
             Catch::Contains("no-tokenizer"));
  // A file where a directory must go: std::filesystem's exception becomes a troupe::Error.
  write_file(base + "/file", "x");
  CHECK_THAT(error_of([&] { synth(base + "/file/sub", "hf", "f32"); }), Catch::Contains(base + "/file"));
  CHECK(synth_shape_names() ==
        std::vector<std::string>{"tiny", "llama-110m", "llama-1b", "llama3-8b", "qwen2-tiny", "qwen3-tiny",
                                 "narrow-tiny", "narrow-odd-tiny"});
  const ModelConfig c = synth_shape_config("llama3-8b", 128256);
  CHECK(c.hidden_size == 4096);
  CHECK(c.intermediate_size == 14336);
  CHECK(c.num_kv_heads == 8);
  CHECK(c.rope_theta == 500000.0f);
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK(synth_shape_config("llama-1b", 128256).tie_word_embeddings);
  CHECK(synth_shape_config("llama-110m", 32000).num_layers == 12);
  // The Qwen shapes: head_dim != hidden / heads, untied, Qwen2 biases / Qwen3 q/k norms (their
  // forward passes: tests/e2e/qwen_reference_test.cpp). GGUF output is refused, not faked as llama.
  for (const char* shape : {"qwen2-tiny", "qwen3-tiny"}) {
    const ModelConfig q = synth_shape_config(shape, 512);
    CHECK(q.head_dim == 24);
    CHECK(q.head_dim * q.num_heads != q.hidden_size);
    CHECK_FALSE(q.tie_word_embeddings);
    CHECK(q.attention_bias == (std::string(shape) == "qwen2-tiny"));
    CHECK(q.qk_norm == (std::string(shape) == "qwen3-tiny"));
    o.shape = shape;
    o.format = "gguf";
    o.out = base + "/" + shape + ".gguf";
    CHECK_THAT(error_of([&] { synth_model(o); }), Catch::Contains("HF only"));
  }
}
