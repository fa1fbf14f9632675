#include "model/synth.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>

#include <boost/json.hpp>

#include "core/error.h"
#include "core/half.h"
#include "model/ggml_quants.h"
#include "model/gguf_writer.h"
#include "model/safetensors.h"
#include "model/tensor_names.h"
#include "model/vocab_io.h"

namespace fs = std::filesystem;

namespace troupe {

namespace {

struct Shape {
  const char* name;
  int64_t dim, layers, heads, kv_heads, ffn, ctx;
  double theta, eps;
  bool tied;
  const char* default_tokenizer;  // relative to $TROUPE_MODELS
  Arch arch = Arch::Llama;
  int64_t head_dim = 0;  // 0: dim / heads
};

constexpr Shape kShapes[] = {
    {"tiny", 64, 2, 4, 2, 128, 512, 10000.0, 1e-5, false, "stories260k/tok512.model"},
    // stories110M (llama2.c): its classifier shares the embedding matrix.
    {"llama-110m", 768, 12, 12, 12, 2048, 1024, 10000.0, 1e-5, true, "llama2-tokenizer/tokenizer.model"},
    // Llama-3.2-1B, without its llama3 RoPE scaling (troupe does not implement it).
    {"llama-1b", 2048, 16, 32, 8, 8192, 131072, 500000.0, 1e-5, true, "../tokenizers/llama3"},
    {"llama3-8b", 4096, 32, 32, 8, 14336, 8192, 500000.0, 1e-5, false, "../tokenizers/llama3"},
    // Tiny Qwen2 / Qwen3 (HF output only): head_dim 24 != 64 / 4, GQA, an untied head, their
    // own RoPE bases. Qwen2 has q/k/v biases, Qwen3 a per-head RMSNorm of q and k; both get
    // random values (biases N(0, 0.2), q/k norm weights 1 + N(0, 0.2)) so a forward pass that
    // drops them computes something else (tests/e2e/qwen_reference_test.cpp).
    {"qwen2-tiny", 64, 2, 4, 2, 128, 512, 1000000.0, 1e-6, false, "stories260k/tok512.model", Arch::Qwen2, 24},
    {"qwen3-tiny", 64, 2, 4, 2, 128, 512, 50000.0, 1e-6, false, "stories260k/tok512.model", Arch::Qwen3, 24},
    // The grown speculative target's kind of shape (few rows, a wide feed-forward): its
    // down_proj (64 rows, 4096 inputs) is summed in parts of its inputs (cpu/kernels.h,
    // panel_input_parts).
    {"narrow-tiny", 64, 2, 4, 2, 4096, 512, 10000.0, 1e-5, false, "stories260k/tok512.model"},
    // The same with an ffn of 4128 (not whole panels of 64): gate/up stacked but not paired.
    {"narrow-odd-tiny", 64, 2, 4, 2, 4128, 512, 10000.0, 1e-5, false, "stories260k/tok512.model"},
};

const Shape& find_shape(const std::string& name) {
  for (const auto& s : kShapes) {
    if (name == s.name) return s;
  }
  fail("synth: unknown shape '{}' (tiny, llama-110m, llama-1b, llama3-8b, qwen2-tiny, qwen3-tiny, narrow-tiny, narrow-odd-tiny)", name);
}

// ---- tokenizer source -----------------------------------------------------------------

struct TokSource {
  bool spm_model = false;  // a sentencepiece .model; else a tokenizer.json
  std::string file;
  std::optional<SpmSource> spm;
  TokenizerJsonInfo json;  // tokenizer.json only
  int64_t vocab_size = 0;
  int32_t bos = -1;
  std::vector<int32_t> eos;
};

TokSource resolve_tokenizer(const std::string& path) {
  TokSource t;
  const fs::path p(path);
  if (fs::is_directory(p)) {
    if (fs::exists(p / "tokenizer.json")) t.file = (p / "tokenizer.json").string();
    else if (fs::exists(p / "tokenizer.model")) t.file = (p / "tokenizer.model").string(), t.spm_model = true;
    else fail("{}: no tokenizer.json or tokenizer.model", path);
  } else if (fs::exists(p) && (p.extension() == ".model" || p.extension() == ".json")) {
    t.file = path;
    t.spm_model = p.extension() == ".model";
  } else {
    fail("{}: not a tokenizer directory, .model or tokenizer.json file", path);
  }
  if (t.spm_model) {
    t.spm = read_spm_model(t.file);
    t.vocab_size = static_cast<int64_t>(t.spm->vocab.tokens.size());
    t.bos = t.spm->vocab.bos_id;
    if (t.spm->vocab.eos_id >= 0) t.eos = {t.spm->vocab.eos_id};
  } else {
    t.json = read_tokenizer_json_info(t.file);
    t.vocab_size = t.json.vocab_size;
    t.bos = t.json.bos_id;
    t.eos = t.json.eos_ids;
  }
  return t;
}

void copy_contents(const fs::path& from, const fs::path& to) {
  // By hand rather than fs::copy_file: that copies the source's permissions, and the shared
  // tokenizers are read-only, which would make a second synth into the same directory fail.
  std::ifstream in(from, std::ios::binary);
  if (!in) fail("{}: cannot open", from.string());
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  if (!out) fail("{}: cannot create", to.string());
  out << in.rdbuf();
  if (!out) fail("{}: write failed", to.string());
}

void write_text(const fs::path& to, const std::string& text) {
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  out << text << "\n";
  if (!out) fail("{}: write failed", to.string());
}

// ---- deterministic weights --------------------------------------------------------------

uint64_t mix64(uint64_t z) {  // splitmix64 finaliser
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

constexpr float kStd = 0.02f;

// Row `row` of the tensor keyed `tkey`: its own splitmix64 stream, started at a hashed
// point so that rows do not overlap. Each 64-bit draw gives four 16-bit uniforms whose sum
// (Irwin-Hall, n = 4) is rescaled to mean 0, standard deviation kStd: integer arithmetic and
// one exact-rounding float multiply, hence the same bits everywhere.
void fill_row(uint64_t seed, uint64_t tkey, int64_t row, float* out, int64_t n) {
  uint64_t state = mix64(tkey ^ mix64(seed + 0x9E3779B97F4A7C15ull) ^ mix64(static_cast<uint64_t>(row) + 1));
  // Sum of four U{0..65535}: mean 131070, sd 65536 * sqrt(4/12) (to within 1e-9).
  const float scale = static_cast<float>(kStd / (65536.0 / std::sqrt(3.0)));
  for (int64_t i = 0; i < n; ++i) {
    state += 0x9E3779B97F4A7C15ull;
    const uint64_t z = mix64(state);
    const int64_t s = static_cast<int64_t>(z & 0xffff) + static_cast<int64_t>((z >> 16) & 0xffff) +
                      static_cast<int64_t>((z >> 32) & 0xffff) + static_cast<int64_t>(z >> 48);
    out[i] = static_cast<float>(s - 131070) * scale;
  }
}

struct Tensor {
  std::string key;        // format-independent name: seeds its stream ("layers.3.wq")
  std::string hf, gguf;   // names in each format
  int64_t rows, cols;     // cols = 0 for a vector (a norm, all ones)
  int64_t rope_heads = 0; // q/k: GGUF rows are permuted to interleaved pairs per head
  // Vectors other than the ones-norms: offset + kVectorScale * (a random row of std kStd).
  bool random_vector = false;
  float offset = 0.0f;
};

constexpr float kVectorScale = 10.0f;  // random vectors: std 0.2

std::vector<Tensor> tensor_list(const ModelConfig& c) {
  std::vector<Tensor> t;
  const int64_t H = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size;
  const ModelTensorNames &hf = kHfModelTensors, &gguf = kGgufModelTensors;
  t.push_back({"embed", hf.embeddings, gguf.embeddings, c.vocab_size, H});
  for (int64_t i = 0; i < c.num_layers; ++i) {
    auto block = [&](TensorView LayerWeights::*view, const char* key, int64_t rows, int64_t cols,
                     int64_t rope_heads = 0) {
      t.push_back({fmt::format("layers.{}.{}", i, key), hf_tensor_name(i, view), gguf_tensor_name(i, view),
                   rows, cols, rope_heads});
    };
    block(&LayerWeights::attn_norm, "attn_norm", H, 0);
    block(&LayerWeights::wq, "wq", Q, H, c.num_heads);
    block(&LayerWeights::wk, "wk", KV, H, c.num_kv_heads);
    block(&LayerWeights::wv, "wv", KV, H);
    block(&LayerWeights::wo, "wo", H, Q);
    if (c.attention_bias) {
      block(&LayerWeights::bq, "bq", Q, 0);
      block(&LayerWeights::bk, "bk", KV, 0);
      block(&LayerWeights::bv, "bv", KV, 0);
      for (size_t j = t.size() - 3; j < t.size(); ++j) t[j].random_vector = true;
    }
    if (c.qk_norm) {
      block(&LayerWeights::q_norm, "q_norm", c.head_dim, 0);
      block(&LayerWeights::k_norm, "k_norm", c.head_dim, 0);
      for (size_t j = t.size() - 2; j < t.size(); ++j) t[j].random_vector = true, t[j].offset = 1.0f;
    }
    block(&LayerWeights::ffn_norm, "ffn_norm", H, 0);
    block(&LayerWeights::w_gate, "w_gate", I, H);
    block(&LayerWeights::w_up, "w_up", I, H);
    block(&LayerWeights::w_down, "w_down", H, I);
  }
  t.push_back({"final_norm", hf.final_norm, gguf.final_norm, H, 0});
  if (!c.tie_word_embeddings) t.push_back({"lm_head", hf.lm_head, gguf.lm_head, c.vocab_size, H});
  return t;
}

// llama.cpp's q/k permutation: row (head, half, i) of the HF layout moves to (head, i, half).
int64_t unpermuted_row(int64_t r, int64_t rows, int64_t heads) {
  const int64_t d = rows / heads, head = r / d, j = r % d;
  return head * d + (j % 2) * (d / 2) + j / 2;
}

int64_t row_bytes(DType dt, int64_t n) { return dtype_row_bytes(dt, n); }

void convert_row(const float* x, DType dt, int64_t n, uint8_t* out) {
  switch (dt) {
    case DType::F32: std::memcpy(out, x, static_cast<size_t>(n) * 4); break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) { uint16_t h = f32_to_f16(x[i]); std::memcpy(out + 2 * i, &h, 2); }
      break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) { uint16_t h = f32_to_bf16(x[i]); std::memcpy(out + 2 * i, &h, 2); }
      break;
    case DType::Q8_0: quantize_row_q8_0(x, out, n); break;
    case DType::Q4_0: quantize_row_q4_0(x, out, n); break;
    default: fail("synth: dtype {} is not supported", dtype_name(dt));
  }
}

// Streams one tensor to `sink` a few MB at a time.
void emit(const Tensor& t, DType dt, bool gguf_rows, uint64_t seed,
          const std::function<void(const void*, size_t)>& sink) {
  const int64_t rows = t.cols == 0 ? 1 : t.rows, cols = t.cols == 0 ? t.rows : t.cols;
  const uint64_t tkey = fnv1a(t.key);
  const int64_t rb = row_bytes(dt, cols);
  const int64_t chunk_rows = std::max<int64_t>(1, (int64_t{4} << 20) / (cols * 4));
  std::vector<float> x(static_cast<size_t>(cols));
  std::vector<uint8_t> buf;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, rows - r0);
    buf.resize(static_cast<size_t>(nr * rb));
    for (int64_t r = 0; r < nr; ++r) {
      if (t.cols == 0 && t.random_vector) {
        fill_row(seed, tkey, 0, x.data(), cols);
        for (float& v : x) v = t.offset + kVectorScale * v;
      } else if (t.cols == 0) {
        std::fill(x.begin(), x.end(), 1.0f);  // norms start at 1: the identity scale
      } else {
        const int64_t src = gguf_rows && t.rope_heads ? unpermuted_row(r0 + r, t.rows, t.rope_heads) : r0 + r;
        fill_row(seed, tkey, src, x.data(), cols);
      }
      convert_row(x.data(), dt, cols, buf.data() + r * rb);
    }
    sink(buf.data(), buf.size());
  }
}

DType parse_dtype(const std::string& s, bool gguf) {
  if (s == "f32") return DType::F32;
  if (s == "f16") return DType::F16;
  if (s == "bf16") return DType::BF16;
  if (gguf && s == "q8_0") return DType::Q8_0;
  if (gguf && s == "q4_0") return DType::Q4_0;
  fail("synth: dtype '{}' is not available for {} output ({})", s, gguf ? "gguf" : "hf",
       gguf ? "f32, f16, bf16, q8_0, q4_0" : "f32, f16, bf16");
}

// ---- writers ----------------------------------------------------------------------------

std::string write_hf(const SynthOptions& o, const ModelConfig& c, const TokSource& tok, DType dt) {
  const fs::path dir(o.out);
  fs::create_directories(dir);
  const char* torch_dtype = dt == DType::F32 ? "float32" : dt == DType::F16 ? "float16" : "bfloat16";
  const Arch arch = find_shape(o.shape).arch;
  const char* cls = arch == Arch::Qwen2 ? "Qwen2ForCausalLM" : arch == Arch::Qwen3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM";
  boost::json::object cfg{
      {"architectures", boost::json::array{cls}},
      {"model_type", arch_name(arch)},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_layers},
      {"num_attention_heads", c.num_heads},
      {"num_key_value_heads", c.num_kv_heads},
      {"head_dim", c.head_dim},
      {"max_position_embeddings", c.max_position_embeddings},
      {"rms_norm_eps", static_cast<double>(find_shape(o.shape).eps)},
      {"rope_theta", find_shape(o.shape).theta},
      {"rope_scaling", nullptr},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"vocab_size", c.vocab_size},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"initializer_range", 0.02},
      {"torch_dtype", torch_dtype},
      {"use_cache", true},
  };
  if (arch == Arch::Qwen2) cfg.erase("attention_bias");  // Qwen2 always has q/k/v biases, no switch
  if (c.bos_token_id >= 0) cfg["bos_token_id"] = c.bos_token_id;
  if (!c.eos_token_ids.empty()) cfg["eos_token_id"] = c.eos_token_ids[0];
  write_text(dir / "config.json", boost::json::serialize(cfg));

  boost::json::object gen;
  if (c.bos_token_id >= 0) gen["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) {
    gen["eos_token_id"] = c.eos_token_ids[0];
  } else if (!c.eos_token_ids.empty()) {
    boost::json::array a;
    for (auto e : c.eos_token_ids) a.push_back(e);
    gen["eos_token_id"] = std::move(a);
  }
  write_text(dir / "generation_config.json", boost::json::serialize(gen));

  if (tok.spm_model) {
    copy_contents(tok.file, dir / "tokenizer.model");
    const SpmVocab& v = tok.spm->vocab;
    boost::json::object tc{{"tokenizer_class", "LlamaTokenizer"},
                           {"add_bos_token", v.add_bos},
                           {"add_eos_token", false},
                           {"model_max_length", c.max_position_embeddings}};
    if (v.bos_id >= 0) tc["bos_token"] = v.tokens[static_cast<size_t>(v.bos_id)];
    if (v.eos_id >= 0) tc["eos_token"] = v.tokens[static_cast<size_t>(v.eos_id)];
    tc["unk_token"] = v.tokens[static_cast<size_t>(v.unk_id)];
    write_text(dir / "tokenizer_config.json", boost::json::serialize(tc));
  } else {
    const fs::path src = fs::path(tok.file).parent_path();
    copy_contents(tok.file, dir / "tokenizer.json");
    for (const char* f : {"tokenizer_config.json", "special_tokens_map.json"}) {
      if (fs::exists(src / f)) copy_contents(src / f, dir / f);
    }
  }

  SafetensorsWriter w((dir / "model.safetensors").string());
  w.set_metadata("format", "pt");
  const auto tensors = tensor_list(c);
  for (const auto& t : tensors) {
    w.add_tensor(t.hf, dt, t.cols == 0 ? std::vector<int64_t>{t.rows} : std::vector<int64_t>{t.rows, t.cols});
  }
  w.begin_data();
  for (const auto& t : tensors) {
    emit(t, dt, false, o.seed, [&](const void* p, size_t n) { w.write_data(p, n); });
  }
  w.finish();
  return dir.string();
}

uint32_t gguf_file_type(DType dt) {  // llama_ftype: what most tensors are
  switch (dt) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q8_0: return 7;
    case DType::BF16: return 32;
    default: return 0;
  }
}

std::string write_gguf(const SynthOptions& o, const ModelConfig& c, const TokSource& tok, DType dt) {
  fs::path file(o.out);
  if (file.extension() != ".gguf") {
    fs::create_directories(file);
    file /= "model.gguf";
  } else if (file.has_parent_path()) {
    fs::create_directories(file.parent_path());
  }
  GgufWriter w(file.string());
  const Shape& s = find_shape(o.shape);
  if (s.arch != Arch::Llama) fail("synth: shape {} is written as HF only (--format hf)", o.shape);
  w.set("general.architecture", GgufValue::str("llama"));
  w.set("general.name", GgufValue::str("troupe-synth-" + o.shape));
  w.set("general.file_type", GgufValue::u32(gguf_file_type(dt)));
  if (dt == DType::Q8_0 || dt == DType::Q4_0) w.set("general.quantization_version", GgufValue::u32(2));
  w.set("llama.context_length", GgufValue::u32(static_cast<uint32_t>(c.max_position_embeddings)));
  w.set("llama.embedding_length", GgufValue::u32(static_cast<uint32_t>(c.hidden_size)));
  w.set("llama.block_count", GgufValue::u32(static_cast<uint32_t>(c.num_layers)));
  w.set("llama.feed_forward_length", GgufValue::u32(static_cast<uint32_t>(c.intermediate_size)));
  w.set("llama.rope.dimension_count", GgufValue::u32(static_cast<uint32_t>(c.head_dim)));
  w.set("llama.attention.head_count", GgufValue::u32(static_cast<uint32_t>(c.num_heads)));
  w.set("llama.attention.head_count_kv", GgufValue::u32(static_cast<uint32_t>(c.num_kv_heads)));
  w.set("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(static_cast<float>(s.eps)));
  w.set("llama.rope.freq_base", GgufValue::f32(static_cast<float>(s.theta)));
  w.set("llama.vocab_size", GgufValue::u32(static_cast<uint32_t>(c.vocab_size)));
  if (tok.spm_model) {
    write_spm_vocab(w, *tok.spm);
  } else if (tok.json.byte_level) {
    write_byte_bpe_vocab(w, read_byte_bpe_json(tok.file));
  } else {
    fail("{}: a SentencePiece-style tokenizer.json cannot be embedded in GGUF (use its tokenizer.model)", tok.file);
  }

  const auto tensors = tensor_list(c);
  for (const auto& t : tensors) {
    // Vectors stay F32 (as llama.cpp keeps them); matrices take the requested dtype.
    if (t.cols == 0) w.add_tensor(t.gguf, kGgmlF32, {t.rows});
    else w.add_tensor(t.gguf, dtype_to_ggml(dt), {t.rows, t.cols});
  }
  w.begin_data();
  for (const auto& t : tensors) {
    emit(t, t.cols == 0 ? DType::F32 : dt, true, o.seed, [&](const void* p, size_t n) { w.write_data(p, n); });
  }
  w.finish();
  return file.string();
}

}  // namespace

std::vector<std::string> synth_shape_names() {
  std::vector<std::string> names;
  for (const auto& s : kShapes) names.emplace_back(s.name);
  return names;
}

ModelConfig synth_shape_config(const std::string& shape, int64_t vocab_size) {
  const Shape& s = find_shape(shape);
  ModelConfig c;
  c.arch = s.arch;
  c.arch_name = arch_name(s.arch);
  c.vocab_size = vocab_size;
  c.hidden_size = s.dim;
  c.intermediate_size = s.ffn;
  c.num_layers = s.layers;
  c.num_heads = s.heads;
  c.num_kv_heads = s.kv_heads;
  c.head_dim = s.head_dim ? s.head_dim : s.dim / s.heads;
  c.attention_bias = s.arch == Arch::Qwen2;
  c.qk_norm = s.arch == Arch::Qwen3;
  c.max_position_embeddings = s.ctx;
  c.rms_norm_eps = static_cast<float>(s.eps);
  c.rope_theta = static_cast<float>(s.theta);
  c.tie_word_embeddings = s.tied;
  return c;
}

namespace {

std::string synth_any(const SynthOptions& o) {
  if (o.out.empty()) fail("synth: no output path");
  const bool gguf = o.format == "gguf";
  if (!gguf && o.format != "hf") fail("synth: format '{}' is not hf or gguf", o.format);
  const DType dt = parse_dtype(o.dtype, gguf);
  const Shape& s = find_shape(o.shape);
  const std::string tok_path =
      o.tokenizer.empty() ? (fs::path(models_dir()) / s.default_tokenizer).lexically_normal().string() : o.tokenizer;
  const TokSource tok = resolve_tokenizer(tok_path);

  ModelConfig c = synth_shape_config(o.shape, tok.vocab_size);
  c.bos_token_id = tok.bos;
  c.eos_token_ids = tok.eos;
  if (o.context < 0) fail("synth: context {} is negative", o.context);
  if (o.context > 0) c.max_position_embeddings = o.context;
  if (gguf && (dt == DType::Q8_0 || dt == DType::Q4_0)) {
    for (int64_t n : {c.hidden_size, c.intermediate_size, c.q_dim()}) {
      if (n % 32 != 0) fail("synth: {} needs dimensions divisible by 32 ({} is not)", o.dtype, n);
    }
  }
  c.validate("synth " + o.shape);
  return gguf ? write_gguf(o, c, tok, dt) : write_hf(o, c, tok, dt);
}

}  // namespace

std::string synth_model(const SynthOptions& o) {
  try {
    return synth_any(o);
  } catch (const std::filesystem::filesystem_error& e) {
    fail("synth {}: {}", o.out, e.what());  // e.g. create_directories on an unwritable path
  }
}

}  // namespace troupe
