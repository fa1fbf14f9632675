// GGUF -> ModelWeights for the llama, qwen2 and qwen3 architectures (llama.cpp naming).
#include <algorithm>
#include <cstdint>
#include <unordered_set>

#include "core/error.h"
#include "model/gguf.h"
#include "model/loaders.h"
#include "model/tensor_names.h"

namespace troupe::detail {

namespace {

// GGUF stores "no such token" as -1 or its u32 form 0xFFFFFFFF.
std::optional<int32_t> token_id(const GgufFile& g, const std::string& key) {
  auto v = g.get_int(key);
  if (!v || *v < 0 || *v == 0xFFFFFFFFll) return std::nullopt;
  if (*v > INT32_MAX) fail("{}: metadata {} = {} is not a token id", g.path(), key, *v);
  return static_cast<int32_t>(*v);
}

ModelConfig read_config(const GgufFile& g, Arch arch, const std::string& an) {
  const std::string& path = g.path();
  auto key = [&](const char* suffix) { return an + "." + suffix; };
  auto required = [&](const char* suffix) {
    auto v = g.get_int(key(suffix));
    if (!v) fail("{}: missing metadata {}", path, key(suffix));
    return *v;
  };
  ModelConfig c;
  c.arch = arch;
  c.arch_name = an;
  c.num_layers = required("block_count");
  c.hidden_size = required("embedding_length");
  c.intermediate_size = required("feed_forward_length");
  c.num_heads = required("attention.head_count");
  c.num_kv_heads = g.get_int(key("attention.head_count_kv")).value_or(c.num_heads);
  if (c.num_heads <= 0) fail("{}: {} = {} must be positive", path, key("attention.head_count"), c.num_heads);
  c.head_dim = g.get_int(key("attention.key_length")).value_or(c.hidden_size / c.num_heads);
  if (auto vl = g.get_int(key("attention.value_length")); vl && *vl != c.head_dim) {
    fail("{}: value_length {} differs from key_length {}: not supported", path, *vl, c.head_dim);
  }
  if (auto rd = g.get_int(key("rope.dimension_count")); rd && *rd != c.head_dim) {
    fail("{}: {} = {} but head_dim is {}: partial rotary embeddings are not supported", path,
         key("rope.dimension_count"), *rd, c.head_dim);
  }
  if (auto st = g.get_string(key("rope.scaling.type")); st && *st != "none") {
    fail("{}: RoPE scaling '{}' is not supported", path, *st);
  }
  c.max_position_embeddings = g.get_int(key("context_length")).value_or(2048);
  c.rms_norm_eps = static_cast<float>(g.get_float(key("attention.layer_norm_rms_epsilon")).value_or(1e-5));
  c.rope_theta = static_cast<float>(g.get_float(key("rope.freq_base")).value_or(10000.0));
  // llama.cpp's converter permutes llama q/k rows into interleaved pairs; qwen2/qwen3 use
  // the NeoX ("rotate half") convention unpermuted.
  c.rope_style = arch == Arch::Llama ? RopeStyle::Adjacent : RopeStyle::Halves;
  c.qk_norm = arch == Arch::Qwen3;
  c.attention_bias = arch == Arch::Qwen2 || g.find_tensor(gguf_tensor_name(0, &LayerWeights::bq)) != nullptr;

  if (auto v = g.get_int(key("vocab_size"))) {
    c.vocab_size = *v;
  } else if (const GgufValue* toks = g.find("tokenizer.ggml.tokens"); toks && toks->type == GgufType::Array) {
    c.vocab_size = static_cast<int64_t>(toks->items.size());
  } else if (const GgufTensorInfo* e = g.find_tensor(kGgufModelTensors.embeddings); e && e->ne.size() == 2) {
    c.vocab_size = static_cast<int64_t>(e->ne[1]);
  } else {
    fail("{}: cannot tell the vocabulary size (no {} nor tokenizer.ggml.tokens)", path, key("vocab_size"));
  }
  if (auto b = token_id(g, "tokenizer.ggml.bos_token_id")) c.bos_token_id = *b;
  // Generation stops at EOS and, for chat models, at end-of-turn / end-of-message.
  for (const char* k : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    if (auto e = token_id(g, k); e && std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), *e) == c.eos_token_ids.end()) {
      c.eos_token_ids.push_back(*e);
    }
  }
  c.validate(path);
  return c;
}

}  // namespace

ModelWeights load_gguf(const std::string& path) {
  GgufFile g = GgufFile::open(path);
  auto an = g.get_string("general.architecture");
  if (!an) fail("{}: missing metadata general.architecture", path);
  auto arch = parse_arch(*an);
  if (!arch || *arch == Arch::Mistral) {
    fail("{}: unsupported architecture '{}' (supported in GGUF: llama, qwen2, qwen3)", path, *an);
  }

  ModelWeights w;
  w.source = path;
  w.owners.push_back(g.file());
  w.config = read_config(g, *arch, *an);
  const ModelConfig& c = w.config;

  std::unordered_set<std::string> used;
  auto take = [&](const std::string& name, bool required) -> TensorView {
    const GgufTensorInfo* t = g.find_tensor(name);
    if (!t) {
      if (required) fail("{}: missing tensor {}", path, name);
      return {};
    }
    used.insert(name);
    auto dt = ggml_to_dtype(t->ggml_type);
    if (!dt) {
      fail("{}: tensor {}: ggml type {} is not supported (supported: F32, F16, BF16, Q8_0, Q4_0)",
           path, name, ggml_type_name(t->ggml_type));
    }
    return make_view(w, name, *dt, t->shape(), g.tensor_data(*t), t->nbytes);
  };

  const ModelTensorNames& n = kGgufModelTensors;
  w.tok_embeddings = take(n.embeddings, true);
  w.final_norm = take(n.final_norm, true);
  w.lm_head = take(n.lm_head, false);
  if (w.lm_head.empty()) {  // no output.weight: the embedding matrix doubles as lm_head
    w.lm_head = w.tok_embeddings;
    w.config.tie_word_embeddings = true;
  }
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights& l = w.layers[static_cast<size_t>(i)];
    const std::string p = gguf_block_prefix(i);
    for (const BlockTensor& t : kBlockTensors) {
      if (has_block_tensor(c, t)) l.*t.view = take(p + t.gguf, true);
    }
  }
  // A tensor we do not use would change the model's function if it mattered (extra layers,
  // biases, rope_freqs for RoPE scaling): refuse rather than silently compute something else.
  for (const auto& t : g.tensors()) {
    if (!used.count(t.name)) fail("{}: unexpected tensor {} (not part of a {} model as troupe runs it)", path, t.name, *an);
  }
  check_weights(w);
  return w;
}

}  // namespace troupe::detail
