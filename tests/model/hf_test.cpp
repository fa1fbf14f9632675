// Hugging Face directories: the real TinyStories-656K (only lm_head.weight stored), tied and
// untied forms, Qwen2 biases, Qwen3 q/k norms and head_dim, shards, dtypes kept as stored.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>

#include "core/half.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "model_test_util.h"

using namespace troupe;
using namespace troupe::test;
namespace fs = std::filesystem;

namespace {

// A small llama-family checkpoint: hidden 8, 2 heads of 4 (or head_dim given), 1 kv head,
// FFN 16, vocab 10, `layers` layers.
struct Tiny {
  int64_t H = 8, heads = 2, kv = 1, hd = 4, I = 16, V = 10, layers = 1;
  int64_t q() const { return heads * hd; }
  int64_t kvd() const { return kv * hd; }
};

std::vector<StTensor> tiny_tensors(const Tiny& t, bool embed, bool head, bool bias, bool qk_norm) {
  std::vector<StTensor> ts;
  if (embed) ts.push_back({"model.embed_tokens.weight", {t.V, t.H}, ramp(t.V * t.H)});
  if (head) ts.push_back({"lm_head.weight", {t.V, t.H}, ramp(t.V * t.H, 0.02f)});
  ts.push_back({"model.norm.weight", {t.H}, ramp(t.H)});
  for (int64_t i = 0; i < t.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    ts.push_back({p + "input_layernorm.weight", {t.H}, ramp(t.H)});
    ts.push_back({p + "self_attn.q_proj.weight", {t.q(), t.H}, ramp(t.q() * t.H)});
    ts.push_back({p + "self_attn.k_proj.weight", {t.kvd(), t.H}, ramp(t.kvd() * t.H)});
    ts.push_back({p + "self_attn.v_proj.weight", {t.kvd(), t.H}, ramp(t.kvd() * t.H)});
    ts.push_back({p + "self_attn.o_proj.weight", {t.H, t.q()}, ramp(t.H * t.q())});
    if (bias) {
      ts.push_back({p + "self_attn.q_proj.bias", {t.q()}, ramp(t.q())});
      ts.push_back({p + "self_attn.k_proj.bias", {t.kvd()}, ramp(t.kvd())});
      ts.push_back({p + "self_attn.v_proj.bias", {t.kvd()}, ramp(t.kvd())});
    }
    if (qk_norm) {
      ts.push_back({p + "self_attn.q_norm.weight", {t.hd}, ramp(t.hd)});
      ts.push_back({p + "self_attn.k_norm.weight", {t.hd}, ramp(t.hd)});
    }
    ts.push_back({p + "post_attention_layernorm.weight", {t.H}, ramp(t.H)});
    ts.push_back({p + "mlp.gate_proj.weight", {t.I, t.H}, ramp(t.I * t.H)});
    ts.push_back({p + "mlp.up_proj.weight", {t.I, t.H}, ramp(t.I * t.H)});
    ts.push_back({p + "mlp.down_proj.weight", {t.H, t.I}, ramp(t.H * t.I)});
  }
  return ts;
}

std::string tiny_config(const Tiny& t, const std::string& model_type, const std::string& extra = "") {
  return fmt::format(
      R"({{"model_type": "{}", "hidden_size": {}, "intermediate_size": {}, "num_hidden_layers": {},
          "num_attention_heads": {}, "num_key_value_heads": {}, "vocab_size": {},
          "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "max_position_embeddings": 4096,
          "bos_token_id": 1, "eos_token_id": 2{}}})",
      model_type, t.H, t.I, t.layers, t.heads, t.kv, t.V, extra);
}

std::string make_dir(const std::string& tag, const std::string& config, const std::vector<StTensor>& ts) {
  const std::string dir = temp_dir(tag);
  write_file(dir + "/config.json", config);
  write_safetensors(dir + "/model.safetensors", ts);
  return dir;
}

}  // namespace

TEST_CASE("TinyStories-656K loads; its only stored matrix serves as embedding and lm_head", "[model][hf]") {
  const std::string dir = model_path("tinystories-656k");
  const ModelWeights w = load_model(dir);
  const ModelConfig& c = w.config;
  CHECK(c.arch == Arch::Llama);
  CHECK(c.arch_name == "llama");
  CHECK(c.hidden_size == 128);
  CHECK(c.intermediate_size == 384);
  CHECK(c.num_layers == 2);
  CHECK(c.num_heads == 8);
  CHECK(c.num_kv_heads == 4);
  CHECK(c.head_dim == 16);
  CHECK(c.vocab_size == 2048);
  CHECK(c.max_position_embeddings == 512);
  CHECK(c.rms_norm_eps == Approx(1e-6f));
  CHECK(c.rope_theta == 10000.0f);
  CHECK(c.rope_style == RopeStyle::Halves);
  CHECK(c.tie_word_embeddings);
  CHECK(c.bos_token_id == 1);
  CHECK(c.eos_token_ids == std::vector<int32_t>{2});
  CHECK(w.tok_embeddings.name == "lm_head.weight");
  CHECK(w.tok_embeddings.data == w.lm_head.data);
  CHECK(w.tok_embeddings.shape == std::vector<int64_t>{2048, 128});
  CHECK(w.layers[1].wk.shape == std::vector<int64_t>{64, 128});
  CHECK(w.layers[1].w_down.shape == std::vector<int64_t>{128, 384});
  // The view is the mapped file: compare with the bytes at the header's offsets.
  const SafetensorsFile st = SafetensorsFile::open(dir + "/model.safetensors");
  const auto* e = st.find("model.layers.0.mlp.down_proj.weight");
  REQUIRE(e);
  // Not copied: the view lies inside the memory map the weights keep alive.
  REQUIRE(w.owners.size() == 1);
  auto map = std::static_pointer_cast<const MappedFile>(w.owners[0]);
  const auto* p = static_cast<const uint8_t*>(w.layers[0].w_down.data);
  CHECK((p >= map->data() && p + w.layers[0].w_down.nbytes <= map->data() + map->size()));
  CHECK(std::memcmp(w.layers[0].w_down.data, st.data(*e), e->end - e->begin) == 0);
  // Roofline bytes: all F32 tensors but the embedding, with lm_head counted once.
  int64_t total = 0;
  for (const auto& t : st.tensors()) total += static_cast<int64_t>(t.end - t.begin);
  CHECK(w.bytes_per_token() == total);
}

TEST_CASE("HF tied embeddings stored as model.embed_tokens.weight only", "[model][hf]") {
  Tiny t;
  const auto dir = make_dir("hf-tied", tiny_config(t, "llama", R"(, "tie_word_embeddings": true)"),
                            tiny_tensors(t, true, false, false, false));
  const ModelWeights w = load_model(dir);
  CHECK(w.config.tie_word_embeddings);
  CHECK(w.lm_head.data == w.tok_embeddings.data);
  CHECK(w.lm_head.name == "model.embed_tokens.weight");
  CHECK(w.config.rms_norm_eps == Approx(1e-6f));
  CHECK(w.config.rope_theta == 1000000.0f);
}

TEST_CASE("HF untied model needs lm_head.weight", "[model][hf]") {
  Tiny t;
  auto dir = make_dir("hf-untied", tiny_config(t, "mistral"), tiny_tensors(t, true, true, false, false));
  const ModelWeights w = load_model(dir);
  CHECK(w.config.arch == Arch::Mistral);
  CHECK_FALSE(w.config.tie_word_embeddings);
  CHECK(w.lm_head.data != w.tok_embeddings.data);
  CHECK(w.lm_head.name == "lm_head.weight");

  dir = make_dir("hf-untied-missing", tiny_config(t, "llama"), tiny_tensors(t, true, false, false, false));
  auto msg = error_of([&] { load_model(dir); });
  CHECK_THAT(msg, Catch::Contains(dir) && Catch::Contains("lm_head.weight"));
}

TEST_CASE("HF qwen2 has q/k/v biases; qwen3 has q/k norms and its own head_dim", "[model][hf]") {
  Tiny t;
  auto dir = make_dir("hf-qwen2", tiny_config(t, "qwen2", R"(, "tie_word_embeddings": true)"),
                      tiny_tensors(t, true, false, true, false));
  ModelWeights w = load_model(dir);
  CHECK(w.config.arch == Arch::Qwen2);
  CHECK(w.config.attention_bias);
  CHECK(w.layers[0].bq.shape == std::vector<int64_t>{8});
  CHECK(w.layers[0].bk.shape == std::vector<int64_t>{4});

  // Without the biases a qwen2 checkpoint is incomplete.
  dir = make_dir("hf-qwen2-nobias", tiny_config(t, "qwen2", R"(, "tie_word_embeddings": true)"),
                 tiny_tensors(t, true, false, false, false));
  CHECK_THAT(error_of([&] { load_model(dir); }), Catch::Contains("self_attn.q_proj.bias"));

  Tiny q3;
  q3.hd = 8;  // q_dim 16 != hidden 8, as Qwen3 allows
  dir = make_dir("hf-qwen3",
                 tiny_config(q3, "qwen3", R"(, "head_dim": 8, "attention_bias": false, "tie_word_embeddings": false,
                                  "architectures": ["Qwen3ForCausalLM"])"),
                 tiny_tensors(q3, true, true, false, true));
  w = load_model(dir);
  CHECK(w.config.arch == Arch::Qwen3);
  CHECK(w.config.qk_norm);
  CHECK(w.config.head_dim == 8);
  CHECK(w.config.q_dim() == 16);
  CHECK(w.layers[0].wq.shape == std::vector<int64_t>{16, 8});
  CHECK(w.layers[0].wo.shape == std::vector<int64_t>{8, 16});
  CHECK(w.layers[0].q_norm.shape == std::vector<int64_t>{8});
}

TEST_CASE("HF eos from generation_config.json may be a list", "[model][hf]") {
  Tiny t;
  const auto dir = make_dir("hf-gen", tiny_config(t, "llama", R"(, "tie_word_embeddings": true)"),
                            tiny_tensors(t, true, false, false, false));
  write_file(dir + "/generation_config.json", R"({"bos_token_id": 3, "eos_token_id": [2, 7, 9]})");
  const ModelWeights w = load_model(dir);
  CHECK(w.config.bos_token_id == 3);
  CHECK(w.config.eos_token_ids == std::vector<int32_t>{2, 7, 9});
  // config.json can be given instead of the directory.
  CHECK(load_model(dir + "/config.json").config.vocab_size == 10);
}

TEST_CASE("HF architectures alone identifies the model", "[model][hf]") {
  Tiny t;
  std::string cfg = tiny_config(t, "llama", R"(, "tie_word_embeddings": true, "architectures": ["LlamaForCausalLM"])");
  cfg.replace(cfg.find(R"("model_type": "llama",)"), 22, "");
  const auto dir = make_dir("hf-archs", cfg, tiny_tensors(t, true, false, false, false));
  CHECK(load_model(dir).config.arch == Arch::Llama);
}

TEST_CASE("HF sharded checkpoint loads like the single file", "[model][hf]") {
  const std::string src = model_path("tinystories-656k");
  const std::string dir = temp_dir("hf-shards");
  for (const char* f : {"config.json", "generation_config.json"}) write_file(dir + "/" + f, read_file(src + "/" + f));
  const SafetensorsFile st = SafetensorsFile::open(src + "/model.safetensors");
  // Layer 1 in shard 2, everything else in shard 1.
  std::string map;
  for (int shard = 1; shard <= 2; ++shard) {
    const std::string name = fmt::format("model-0000{}-of-00002.safetensors", shard);
    SafetensorsWriter w(dir + "/" + name);
    std::vector<const SafetensorsEntry*> mine;
    for (const auto& e : st.tensors()) {
      const bool in2 = e.name.find("layers.1.") != std::string::npos;
      if (in2 == (shard == 2)) mine.push_back(&e);
    }
    for (auto* e : mine) w.add_tensor(e->name, *e->dtype, e->shape);
    w.begin_data();
    for (auto* e : mine) {
      w.write_data(st.data(*e), e->end - e->begin);
      map += fmt::format(R"({}"{}": "{}")", map.empty() ? "" : ", ", e->name, name);
    }
    w.finish();
  }
  write_file(dir + "/model.safetensors.index.json", R"({"metadata": {"total_size": 2624000}, "weight_map": {)" + map + "}}");
  const ModelWeights a = load_model(src), b = load_model(dir);
  CHECK(b.owners.size() == 2);
  REQUIRE(b.layers.size() == 2);
  for (size_t l = 0; l < 2; ++l) {
    CHECK(std::memcmp(a.layers[l].wq.data, b.layers[l].wq.data, a.layers[l].wq.nbytes) == 0);
    CHECK(std::memcmp(a.layers[l].w_down.data, b.layers[l].w_down.data, a.layers[l].w_down.nbytes) == 0);
  }
  CHECK(std::memcmp(a.lm_head.data, b.lm_head.data, a.lm_head.nbytes) == 0);

  // A shard gone: the error names the missing file.
  fs::remove(dir + "/model-00002-of-00002.safetensors");
  auto msg = error_of([&] { load_model(dir); });
  CHECK_THAT(msg, Catch::Contains("model-00002-of-00002.safetensors") && Catch::Contains("missing shard"));
}

TEST_CASE("HF F16 and BF16 tensors stay in their stored dtype", "[model][hf]") {
  Tiny t;
  const std::string dir = temp_dir("hf-f16");
  write_file(dir + "/config.json", tiny_config(t, "llama", R"(, "tie_word_embeddings": true)"));
  const auto ts = tiny_tensors(t, true, false, false, false);
  SafetensorsWriter w(dir + "/model.safetensors");
  // Matrices F16, vectors BF16: mixed dtypes in one file are fine.
  for (auto& x : ts) w.add_tensor(x.name, x.shape.size() == 2 ? DType::F16 : DType::BF16, x.shape);
  w.begin_data();
  for (auto& x : ts) {
    std::vector<uint16_t> h;
    for (float v : x.values) h.push_back(x.shape.size() == 2 ? f32_to_f16(v) : f32_to_bf16(v));
    w.write_data(h.data(), h.size() * 2);
  }
  w.finish();
  const ModelWeights m = load_model(dir);
  CHECK(m.layers[0].wq.dtype == DType::F16);
  CHECK(m.layers[0].wq.nbytes == 8 * 8 * 2);
  CHECK(m.layers[0].attn_norm.dtype == DType::BF16);
  uint16_t h0;
  std::memcpy(&h0, m.layers[0].wq.data, 2);
  CHECK(f16_to_f32(h0) == Approx(-0.3f).margin(1e-3));
}

TEST_CASE("HF tensors at a misaligned file offset are copied, not read misaligned", "[model][hf]") {
  Tiny t;
  const std::string dir = temp_dir("hf-misaligned");
  write_file(dir + "/config.json", tiny_config(t, "llama", R"(, "tie_word_embeddings": true)"));
  // Hand-built file whose header length is odd, so F32 data starts at an odd address.
  const auto ts = tiny_tensors(t, true, false, false, false);
  std::string header = "{";
  std::string data;
  for (auto& x : ts) {
    std::string shape;
    for (auto d : x.shape) {
      if (!shape.empty()) shape += ',';
      shape += std::to_string(d);
    }
    if (header.size() > 1) header.push_back(',');
    header.append(fmt::format(R"("{}":{{"dtype":"F32","shape":[{}],"data_offsets":[{},{}]}})", x.name, shape,
                              data.size(), data.size() + x.values.size() * 4));
    data.append(reinterpret_cast<const char*>(x.values.data()), x.values.size() * 4);
  }
  header += "}";
  if (header.size() % 2 == 0) header += " ";
  std::string file(8, '\0');
  uint64_t n = header.size();
  std::memcpy(file.data(), &n, 8);
  write_file(dir + "/model.safetensors", file + header + data);
  const ModelWeights m = load_model(dir);
  CHECK(reinterpret_cast<uintptr_t>(m.layers[0].wq.data) % 4 == 0);
  float v;
  std::memcpy(&v, m.layers[0].wq.data, 4);
  CHECK(ts[3].name == "model.layers.0.self_attn.q_proj.weight");
  CHECK(v == ts[3].values[0]);
}
