#include "model/weights.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/loaders.h"

namespace fs = std::filesystem;

namespace troupe {

namespace detail {

std::optional<Arch> parse_arch(std::string_view name) {
  if (name == "llama") return Arch::Llama;
  if (name == "mistral") return Arch::Mistral;
  if (name == "qwen2") return Arch::Qwen2;
  if (name == "qwen3") return Arch::Qwen3;
  return std::nullopt;
}

TensorView make_view(ModelWeights& w, std::string name, DType dtype, std::vector<int64_t> shape,
                     const uint8_t* data, int64_t nbytes) {
  TensorView v;
  v.name = std::move(name);
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.nbytes = nbytes;
  // F32 wants 4-byte alignment; F16/BF16 and the quantized blocks (which start with an f16
  // scale) want 2. Reading them through a misaligned pointer would be undefined behaviour.
  const uintptr_t align = dtype == DType::F32 || dtype == DType::I32 ? 4 : dtype == DType::I8 || dtype == DType::U8 ? 1 : 2;
  if (reinterpret_cast<uintptr_t>(data) % align == 0) {
    v.data = data;
  } else {
    std::vector<uint8_t> copy(data, data + nbytes);
    v.data = w.own(std::move(copy));
  }
  return v;
}

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

void expect(const ModelWeights& w, const TensorView& v, const char* role, std::vector<int64_t> shape,
            const char* what) {
  if (v.empty()) fail("{}: missing tensor for {}", w.source, role);
  if (v.shape != shape) {
    fail("{}: tensor {}: shape {}, expected {} ({})", w.source, v.name, shape_str(v.shape),
         shape_str(shape), what);
  }
  if (shape.size() == 1 && dtype_block_elems(v.dtype) != 1) {
    fail("{}: tensor {}: a vector stored as {} (norms and biases must be F32, F16 or BF16)",
         w.source, v.name, dtype_name(v.dtype));
  }
  if (v.dtype != DType::F32 && v.dtype != DType::F16 && v.dtype != DType::BF16 &&
      v.dtype != DType::Q8_0 && v.dtype != DType::Q4_0) {
    fail("{}: tensor {}: dtype {} is not supported for weights", w.source, v.name, dtype_name(v.dtype));
  }
  if (v.cols() % dtype_block_elems(v.dtype) != 0 ||
      v.nbytes != v.rows() * dtype_row_bytes(v.dtype, v.cols())) {
    fail("{}: tensor {}: {} bytes do not match shape {} of {}", w.source, v.name, v.nbytes,
         shape_str(v.shape), dtype_name(v.dtype));
  }
}

}  // namespace

void check_weights(const ModelWeights& w) {
  const ModelConfig& c = w.config;
  c.validate(w.source);
  const int64_t H = c.hidden_size, V = c.vocab_size, I = c.intermediate_size;
  const int64_t Q = c.q_dim(), KV = c.kv_dim(), D = c.head_dim;
  expect(w, w.tok_embeddings, "token embeddings", {V, H}, "vocab_size x hidden_size");
  expect(w, w.final_norm, "final norm", {H}, "hidden_size");
  expect(w, w.lm_head, "lm_head", {V, H}, "vocab_size x hidden_size");
  if (static_cast<int64_t>(w.layers.size()) != c.num_layers) {
    fail("{}: {} layers loaded, config says {}", w.source, w.layers.size(), c.num_layers);
  }
  for (const auto& l : w.layers) {
    expect(w, l.attn_norm, "attention norm", {H}, "hidden_size");
    expect(w, l.wq, "q projection", {Q, H}, "num_heads*head_dim x hidden_size");
    expect(w, l.wk, "k projection", {KV, H}, "num_kv_heads*head_dim x hidden_size");
    expect(w, l.wv, "v projection", {KV, H}, "num_kv_heads*head_dim x hidden_size");
    expect(w, l.wo, "output projection", {H, Q}, "hidden_size x num_heads*head_dim");
    expect(w, l.ffn_norm, "FFN norm", {H}, "hidden_size");
    expect(w, l.w_gate, "FFN gate", {I, H}, "intermediate_size x hidden_size");
    expect(w, l.w_up, "FFN up", {I, H}, "intermediate_size x hidden_size");
    expect(w, l.w_down, "FFN down", {H, I}, "hidden_size x intermediate_size");
    if (c.attention_bias) {
      expect(w, l.bq, "q bias", {Q}, "num_heads*head_dim");
      expect(w, l.bk, "k bias", {KV}, "num_kv_heads*head_dim");
      expect(w, l.bv, "v bias", {KV}, "num_kv_heads*head_dim");
    }
    if (c.qk_norm) {
      expect(w, l.q_norm, "q norm", {D}, "head_dim");
      expect(w, l.k_norm, "k norm", {D}, "head_dim");
    }
  }
}

}  // namespace detail

int64_t ModelWeights::bytes_per_token() const {
  int64_t n = final_norm.nbytes + lm_head.nbytes;
  for (const auto& l : layers) {
    for (const TensorView* v : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.bq, &l.bk, &l.bv,
                                &l.q_norm, &l.k_norm, &l.ffn_norm, &l.w_gate, &l.w_up, &l.w_down}) {
      if (!v->empty()) n += v->nbytes;
    }
  }
  return n;
}

namespace {

ModelWeights load_any(const std::string& path) {
  std::error_code ec;
  auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail("{}: no such file or directory", path);
  if (fs::is_directory(st)) return detail::load_hf_dir(path);
  // A file: GGUF by its magic; a config.json or .safetensors file means its directory.
  char magic[4] = {};
  {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail("{}: cannot open", path);
    f.read(magic, 4);
  }
  fs::path p(path);
  if (std::memcmp(magic, "GGUF", 4) == 0 || p.extension() == ".gguf") return detail::load_gguf(path);
  if (p.filename() == "config.json" || p.extension() == ".safetensors" || p.extension() == ".json") {
    return detail::load_hf_dir(p.parent_path().empty() ? "." : p.parent_path().string());
  }
  fail("{}: not a GGUF file (bad magic) nor a Hugging Face model directory", path);
}

}  // namespace

ModelWeights load_model(const std::string& path) {
  try {
    return load_any(path);
  } catch (const std::filesystem::filesystem_error& e) {
    // exists()/is_directory() throw on EACCES, ELOOP and the like: still one clear Error.
    fail("{}: {}", path, e.what());
  }
}

}  // namespace troupe
