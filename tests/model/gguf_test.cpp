// GGUF: loading the real stories260K model, the reader's metadata API, the writer
// (byte-identical rewrite, every value type, every tensor type) and the GGML quantizers.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "model/ggml_quants.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/weights.h"
#include "model_test_util.h"

using namespace troupe;
using namespace troupe::test;

TEST_CASE("stories260K.gguf loads with its config and shapes", "[model][gguf]") {
  const std::string path = model_path("stories260k/stories260K.gguf");
  const ModelWeights w = load_model(path);
  const ModelConfig& c = w.config;
  CHECK(w.source == path);
  CHECK(c.arch == Arch::Llama);
  CHECK(c.arch_name == "llama");
  CHECK(c.hidden_size == 64);
  CHECK(c.num_layers == 5);
  CHECK(c.num_heads == 8);
  CHECK(c.num_kv_heads == 4);
  CHECK(c.head_dim == 8);
  CHECK(c.intermediate_size == 172);
  CHECK(c.vocab_size == 512);
  CHECK(c.max_position_embeddings == 2048);
  CHECK(c.rms_norm_eps == Approx(1e-5f));
  CHECK(c.rope_theta == 10000.0f);
  CHECK(c.rope_style == RopeStyle::Adjacent);
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK_FALSE(c.attention_bias);
  CHECK_FALSE(c.qk_norm);
  CHECK(c.bos_token_id == 1);
  CHECK(c.eos_token_ids == std::vector<int32_t>{2});

  CHECK(w.tok_embeddings.shape == std::vector<int64_t>{512, 64});
  CHECK(w.lm_head.shape == std::vector<int64_t>{512, 64});
  CHECK(w.final_norm.shape == std::vector<int64_t>{64});
  REQUIRE(w.layers.size() == 5);
  const auto& l = w.layers[0];
  CHECK(l.wq.shape == std::vector<int64_t>{64, 64});
  CHECK(l.wk.shape == std::vector<int64_t>{32, 64});
  CHECK(l.wv.shape == std::vector<int64_t>{32, 64});
  CHECK(l.wo.shape == std::vector<int64_t>{64, 64});
  CHECK(l.w_gate.shape == std::vector<int64_t>{172, 64});
  CHECK(l.w_up.shape == std::vector<int64_t>{172, 64});
  CHECK(l.w_down.shape == std::vector<int64_t>{64, 172});
  CHECK(l.bq.empty());
  CHECK(l.q_norm.empty());
  CHECK(l.wq.dtype == DType::F32);
  CHECK(l.wq.name == "blk.0.attn_q.weight");

  // Everything but the embedding is read per token; this file has no padding between
  // tensors, so that is the data section minus the 512 x 64 F32 embedding.
  CHECK(w.bytes_per_token() == (1185376 - 14176) - 512 * 64 * 4);
}

TEST_CASE("stories260K.gguf tensors point at the same numbers as stories260K.bin", "[model][gguf]") {
  const ModelWeights w = load_model(model_path("stories260k/stories260K.gguf"));
  const std::string bin = read_file(model_path("stories260k/stories260K.bin"));
  // llama2.c: 7 int32 header, then embedding [vocab][dim], rms_att [layers][dim], wq ...
  const int64_t dim = 64, vocab = 512, layers = 5;
  size_t off = 28;
  REQUIRE(std::memcmp(w.tok_embeddings.data, bin.data() + off, vocab * dim * 4) == 0);
  off += vocab * dim * 4;
  REQUIRE(std::memcmp(w.layers[0].attn_norm.data, bin.data() + off, dim * 4) == 0);
  off += layers * dim * 4;
  REQUIRE(std::memcmp(w.layers[0].wq.data, bin.data() + off, dim * dim * 4) == 0);
  // Views point into the mapped file: nothing was copied.
  const GgufFile g = GgufFile::open(model_path("stories260k/stories260K.gguf"));
  const auto* t = g.find_tensor("blk.0.attn_q.weight");
  REQUIRE(t != nullptr);
  CHECK(g.data_offset() == 14176);
  CHECK(t->offset == 262400);
}

TEST_CASE("GGUF reader exposes metadata with checked types", "[model][gguf]") {
  const GgufFile g = GgufFile::open(model_path("stories260k/stories260K.gguf"));
  CHECK(g.version() == 3);
  CHECK(g.alignment() == 32);
  CHECK(g.metadata().size() == 19);
  CHECK(g.tensors().size() == 48);
  CHECK(g.get_string("general.architecture") == "llama");
  CHECK(g.get_int("llama.block_count") == 5);
  CHECK(g.get_float("llama.attention.layer_norm_rms_epsilon").value() == Approx(1e-5));
  CHECK_FALSE(g.get_int("llama.no_such_key").has_value());
  auto tokens = g.get_string_array("tokenizer.ggml.tokens");
  REQUIRE(tokens);
  CHECK(tokens->size() == 512);
  CHECK((*tokens)[1] == "<s>");
  auto types = g.get_int_array("tokenizer.ggml.token_type");
  REQUIRE(types);
  CHECK((*types)[0] == 2);
  // Wrong-type access is an error naming the file and key, not a crash.
  auto msg = error_of([&] { g.get_string("llama.block_count"); });
  CHECK_THAT(msg, Catch::Contains("stories260K.gguf") && Catch::Contains("llama.block_count"));
  msg = error_of([&] { g.get_int("general.architecture"); });
  CHECK_THAT(msg, Catch::Contains("general.architecture"));
  const auto* emb = g.find_tensor("token_embd.weight");
  REQUIRE(emb);
  CHECK(emb->ne == std::vector<uint64_t>{64, 512});
  CHECK(emb->shape() == std::vector<int64_t>{512, 64});
  CHECK(emb->nbytes == 512 * 64 * 4);
}

TEST_CASE("GGUF writer reproduces stories260K.gguf byte for byte", "[model][gguf][writer]") {
  const std::string src = model_path("stories260k/stories260K.gguf");
  const std::string out = temp_dir("gguf-rewrite") + "/copy.gguf";
  const GgufFile g = GgufFile::open(src);
  {
    GgufWriter w(out);
    for (const auto& [k, v] : g.metadata()) w.set(k, v);
    for (const auto& t : g.tensors()) w.add_tensor(t.name, t.ggml_type, t.shape());
    w.begin_data();
    for (const auto& t : g.tensors()) w.write_data(g.tensor_data(t), static_cast<size_t>(t.nbytes));
    w.finish();
  }
  CHECK(read_file(out) == read_file(src));
}

TEST_CASE("GGUF writer round-trips every value type and tensor type", "[model][gguf][writer]") {
  const std::string out = temp_dir("gguf-types") + "/types.gguf";
  std::vector<std::pair<std::string, GgufValue>> kv = {
      {"general.alignment", GgufValue::u32(64)},
      {"t.u8", {GgufType::U8, uint64_t{200}, {}, {}}},
      {"t.i8", {GgufType::I8, int64_t{-100}, {}, {}}},
      {"t.u16", {GgufType::U16, uint64_t{60000}, {}, {}}},
      {"t.i16", {GgufType::I16, int64_t{-30000}, {}, {}}},
      {"t.u32", GgufValue::u32(4000000000u)},
      {"t.i32", GgufValue::i32(-2000000000)},
      {"t.u64", GgufValue::u64(1ull << 63)},
      {"t.i64", {GgufType::I64, int64_t{-(1ll << 62)}, {}, {}}},
      {"t.f32", GgufValue::f32(1.5f)},
      {"t.f64", {GgufType::F64, 0.1, {}, {}}},
      {"t.bool", GgufValue::boolean(true)},
      {"t.str", GgufValue::str("héllo\nworld")},
      {"t.empty_str", GgufValue::str("")},
      {"t.strs", GgufValue::str_array({"a", "", "▁b"})},
      {"t.f32s", GgufValue::f32_array({1.0f, -2.5f})},
      {"t.i32s", GgufValue::i32_array({-1, 7})},
      {"t.empty", GgufValue::array(GgufType::U8, {})},
      {"t.nested", GgufValue::array(GgufType::Array, {GgufValue::i32_array({1, 2}), GgufValue::i32_array({3})})},
  };
  // One tensor of each type troupe writes; odd sizes so padding is exercised.
  struct T {
    std::string name;
    uint32_t type;
    std::vector<int64_t> shape;
  };
  const std::vector<T> ts = {{"a.f32", kGgmlF32, {3, 5}},  {"b.f16", kGgmlF16, {7}},
                             {"c.bf16", kGgmlBF16, {2, 3}}, {"d.q8_0", kGgmlQ8_0, {3, 64}},
                             {"e.q4_0", kGgmlQ4_0, {2, 32}}, {"f.f32_3d", kGgmlF32, {2, 3, 4}}};
  std::vector<std::string> data;
  {
    GgufWriter w(out);
    for (auto& [k, v] : kv) w.set(k, v);
    for (auto& t : ts) w.add_tensor(t.name, t.type, t.shape);
    w.begin_data();
    for (size_t i = 0; i < ts.size(); ++i) {
      std::string bytes(static_cast<size_t>(w.tensors()[i].nbytes), '\0');
      for (size_t j = 0; j < bytes.size(); ++j) bytes[j] = static_cast<char>(i * 31 + j * 7);
      // Stream in uneven pieces: the writer must not care how data is chunked.
      size_t half = bytes.size() / 3;
      w.write_data(bytes.data(), half);
      w.write_data(bytes.data() + half, bytes.size() - half);
      data.push_back(bytes);
    }
    w.finish();
  }
  const GgufFile g = GgufFile::open(out);
  CHECK(g.alignment() == 64);
  CHECK(g.data_offset() % 64 == 0);
  REQUIRE(g.metadata().size() == kv.size());
  for (size_t i = 0; i < kv.size(); ++i) {
    INFO(kv[i].first);
    CHECK(g.metadata()[i].first == kv[i].first);
    CHECK(g.metadata()[i].second == kv[i].second);
  }
  REQUIRE(g.tensors().size() == ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto& t = g.tensors()[i];
    INFO(t.name);
    CHECK(t.name == ts[i].name);
    CHECK(t.ggml_type == ts[i].type);
    CHECK(t.shape() == ts[i].shape);
    CHECK(t.offset % 64 == 0);
    REQUIRE(t.nbytes == static_cast<int64_t>(data[i].size()));
    CHECK(std::memcmp(g.tensor_data(t), data[i].data(), data[i].size()) == 0);
  }
  CHECK(g.tensors()[3].nbytes == 3 * 2 * 34);
  CHECK(g.tensors()[4].nbytes == 2 * 18);
}

TEST_CASE("GGUF writer rejects what other readers would refuse", "[model][gguf][writer]") {
  const std::string out = temp_dir("gguf-writer-bad") + "/bad.gguf";
  GgufWriter w(out);
  CHECK_THROWS_AS(w.add_tensor(std::string(64, 'x'), kGgmlF32, {4}), Error);  // name too long
  CHECK_THROWS_AS(w.add_tensor("q", kGgmlQ8_0, {2, 33}), Error);             // not whole blocks
  CHECK_THROWS_AS(w.add_tensor("k", 12, {2, 256}), Error);                   // Q4_K: not written here
  CHECK_THROWS_AS(w.set("general.alignment", GgufValue::u32(48)), Error);
  w.add_tensor("ok", kGgmlF32, {4});
  CHECK_THROWS_AS(w.add_tensor("ok", kGgmlF32, {4}), Error);
  w.begin_data();
  float x[3] = {};
  w.write_data(x, sizeof(x));
  CHECK_THROWS_AS(w.finish(), Error);  // 12 of 16 bytes
}

TEST_CASE("Q8_0 quantization follows ggml's reference", "[model][quant]") {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j) * 0.1f - 1.6f;  // absmax 1.6 at j = 0
  uint8_t q[34];
  quantize_row_q8_0(x, q, 32);
  uint16_t dh;
  std::memcpy(&dh, q, 2);
  CHECK(dh == f32_to_f16(1.6f / 127.0f));
  CHECK(static_cast<int8_t>(q[2]) == -127);
  CHECK(static_cast<int8_t>(q[2 + 16]) == 0);
  float y[32];
  dequantize_row_q8_0(q, y, 32);
  const float d = f16_to_f32(dh);
  for (int j = 0; j < 32; ++j) CHECK(std::fabs(y[j] - x[j]) <= d * 0.5f + 1e-3f);
  // An all-zero block has d = 0 and zero quants.
  float z[32] = {};
  quantize_row_q8_0(z, q, 32);
  for (int j = 0; j < 34; ++j) CHECK(q[j] == 0);
}

TEST_CASE("Q4_0 quantization follows ggml's reference (nibble order, signed max, clamp)", "[model][quant]") {
  float x[64];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);  // max magnitude -16 at j = 0
  for (int j = 0; j < 32; ++j) x[32 + j] = static_cast<float>(j) * 0.25f;  // max +7.75 at j = 31
  uint8_t q[36];
  quantize_row_q4_0(x, q, 64);
  uint16_t dh;
  std::memcpy(&dh, q, 2);
  CHECK(f16_to_f32(dh) == 2.0f);  // d = max / -8 = -16 / -8
  CHECK(q[2] == 0x80);            // element 0 -> q 0 (low nibble), element 16 -> q 8 (high)
  CHECK((q[2 + 15] >> 4) == 15);  // element 31: 15/2 + 8.5 = 16 clamps to 15
  float y[64];
  dequantize_row_q4_0(q, y, 64);
  CHECK(y[0] == -16.0f);
  CHECK(y[16] == 0.0f);
  CHECK(y[31] == 14.0f);
  // Second block: positive max, so d is negative and q = 0 maps to +max.
  std::memcpy(&dh, q + 18, 2);
  CHECK(f16_to_f32(dh) == Approx(-7.75f / 8.0f));
  CHECK((q[18 + 2 + 15] >> 4) == 0);
  CHECK(y[63] == Approx(7.75f));
  for (int j = 0; j < 64; ++j) CHECK(std::fabs(y[j] - x[j]) <= 1.0f + 1e-4f);
}
