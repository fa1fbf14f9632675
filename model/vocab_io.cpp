#include "model/vocab_io.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <unordered_map>

#include "core/error.h"
#include "core/mapped_file.h"
#include "model/json_util.h"

namespace fs = std::filesystem;

namespace troupe {

// ---- GGUF ---------------------------------------------------------------------------------

namespace {

std::optional<int32_t> gguf_token_id(const GgufFile& g, const char* key) {
  auto v = g.get_int(key);
  if (!v || *v < 0 || *v == 0xFFFFFFFFll) return std::nullopt;  // -1 / u32 max mean "none"
  if (*v > std::numeric_limits<int32_t>::max()) fail("{}: metadata {} = {} is not a token id", g.path(), key, *v);
  return static_cast<int32_t>(*v);
}

std::vector<std::string> gguf_tokens(const GgufFile& g) {
  auto t = g.get_string_array("tokenizer.ggml.tokens");
  if (!t || t->empty()) fail("{}: no tokenizer.ggml.tokens", g.path());
  return std::move(*t);
}

std::vector<int32_t> gguf_types(const GgufFile& g, size_t n) {
  auto t = g.get_int_array("tokenizer.ggml.token_type");
  if (!t) return std::vector<int32_t>(n, 1);  // all normal
  if (t->size() != n) fail("{}: tokenizer.ggml.token_type has {} entries for {} tokens", g.path(), t->size(), n);
  return std::move(*t);
}

void check_id(const GgufFile& g, const char* what, int32_t id, size_t n) {
  if (id >= static_cast<int32_t>(n)) fail("{}: {} {} is outside the vocabulary of {}", g.path(), what, id, n);
}

}  // namespace

SpmVocab spm_vocab_from_gguf(const GgufFile& g) {
  SpmVocab v;
  v.tokens = gguf_tokens(g);
  const size_t n = v.tokens.size();
  if (auto s = g.get_float_array("tokenizer.ggml.scores")) {
    if (s->size() != n) fail("{}: tokenizer.ggml.scores has {} entries for {} tokens", g.path(), s->size(), n);
    v.scores = std::move(*s);
  } else {
    v.scores.assign(n, 0.0f);
  }
  v.types = gguf_types(g, n);
  v.bos_id = gguf_token_id(g, "tokenizer.ggml.bos_token_id").value_or(1);
  v.eos_id = gguf_token_id(g, "tokenizer.ggml.eos_token_id").value_or(2);
  v.unk_id = gguf_token_id(g, "tokenizer.ggml.unknown_token_id").value_or(0);
  check_id(g, "bos_token_id", v.bos_id, n);
  check_id(g, "eos_token_id", v.eos_id, n);
  check_id(g, "unknown_token_id", v.unk_id, n);
  v.add_bos = g.get_bool("tokenizer.ggml.add_bos_token").value_or(true);
  v.add_space_prefix = g.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
  return v;
}

ByteBpeVocab byte_bpe_vocab_from_gguf(const GgufFile& g) {
  ByteBpeVocab v;
  v.tokens = gguf_tokens(g);
  const size_t n = v.tokens.size();
  auto m = g.get_string_array("tokenizer.ggml.merges");
  if (!m) fail("{}: no tokenizer.ggml.merges (required by a gpt2 tokenizer)", g.path());
  v.merges = std::move(*m);
  v.types = gguf_types(g, n);
  // llama.cpp's names for the pre-tokenizer families troupe's tokenizer implements.
  std::string pre = g.get_string("tokenizer.ggml.pre").value_or("default");
  if (pre == "default" || pre == "gpt-2") pre = "gpt2";
  if (pre == "llama3" || pre == "llama-v3") pre = "llama-bpe";
  v.pre = pre;
  if (auto b = gguf_token_id(g, "tokenizer.ggml.bos_token_id")) {
    check_id(g, "bos_token_id", *b, n);
    v.bos_id = *b;
  }
  for (const char* k : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    if (auto e = gguf_token_id(g, k)) {
      check_id(g, k, *e, n);
      if (std::find(v.eos_ids.begin(), v.eos_ids.end(), *e) == v.eos_ids.end()) v.eos_ids.push_back(*e);
    }
  }
  // llama.cpp adds BOS for the Llama-3 family unless the file says otherwise.
  v.add_bos = g.get_bool("tokenizer.ggml.add_bos_token").value_or(v.pre == "llama-bpe");
  return v;
}

void write_spm_vocab(GgufWriter& w, const SpmVocab& v) {
  w.set("tokenizer.ggml.model", GgufValue::str("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::str_array(v.tokens));
  w.set("tokenizer.ggml.scores", GgufValue::f32_array(v.scores));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array(v.types));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(v.bos_id)));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(v.eos_id)));
  w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(static_cast<uint32_t>(v.unk_id)));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(v.add_bos));
  w.set("tokenizer.ggml.add_space_prefix", GgufValue::boolean(v.add_space_prefix));
}

void write_byte_bpe_vocab(GgufWriter& w, const ByteBpeVocab& v) {
  w.set("tokenizer.ggml.model", GgufValue::str("gpt2"));
  w.set("tokenizer.ggml.pre", GgufValue::str(v.pre));
  w.set("tokenizer.ggml.tokens", GgufValue::str_array(v.tokens));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array(v.types));
  w.set("tokenizer.ggml.merges", GgufValue::str_array(v.merges));
  if (v.bos_id >= 0) w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(v.bos_id)));
  if (!v.eos_ids.empty()) {
    w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(v.eos_ids[0])));
  }
  if (v.eos_ids.size() > 1) {  // GGUF has one more slot: the chat end-of-turn token
    w.set("tokenizer.ggml.eot_token_id", GgufValue::u32(static_cast<uint32_t>(v.eos_ids[1])));
  }
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(v.add_bos));
}

// ---- sentencepiece .model -----------------------------------------------------------------

namespace {

// Minimal protobuf wire-format reader: varints, fixed32/64 and length-delimited fields, with
// unknown fields skipped. Every read is checked against the end of its message.
class PbReader {
 public:
  PbReader(const uint8_t* p, const uint8_t* end, const std::string& path) : p_(p), end_(end), path_(path) {}
  bool done() const { return p_ >= end_; }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) truncated();
      const uint8_t b = *p_++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("{}: corrupt sentencepiece model: varint too long", path_);
  }
  uint32_t fixed32() {
    if (end_ - p_ < 4) truncated();
    uint32_t v;
    std::memcpy(&v, p_, 4);
    p_ += 4;
    return v;
  }
  PbReader sub() {  // a length-delimited field as its own reader
    const uint64_t n = varint();
    if (n > static_cast<uint64_t>(end_ - p_)) truncated();
    PbReader r(p_, p_ + n, path_);
    p_ += n;
    return r;
  }
  std::string bytes() {
    PbReader r = sub();
    return std::string(reinterpret_cast<const char*>(r.p_), static_cast<size_t>(r.end_ - r.p_));
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: if (end_ - p_ < 8) truncated(); p_ += 8; break;
      case 2: sub(); break;
      case 5: fixed32(); break;
      default: fail("{}: corrupt sentencepiece model: wire type {}", path_, wire);
    }
  }

 private:
  [[noreturn]] void truncated() const { fail("{}: truncated or corrupt sentencepiece model", path_); }
  const uint8_t* p_;
  const uint8_t* end_;
  const std::string& path_;
};

int32_t as_int32(uint64_t v) { return static_cast<int32_t>(static_cast<int64_t>(v)); }  // proto int32

}  // namespace

SpmVocab read_spm_model(const std::string& path) {
  auto file = MappedFile::open(path);
  PbReader r(file->data(), file->data() + file->size(), path);
  SpmVocab v;
  v.bos_id = 1, v.eos_id = 2, v.unk_id = 0;  // TrainerSpec defaults
  v.add_bos = true;
  v.add_space_prefix = true;                  // NormalizerSpec.add_dummy_prefix default
  while (!r.done()) {
    const uint64_t key = r.varint();
    const uint32_t field = static_cast<uint32_t>(key >> 3), wire = key & 7;
    if (field == 1 && wire == 2) {  // repeated SentencePiece pieces
      PbReader p = r.sub();
      std::string piece;
      float score = 0.0f;
      int32_t type = 1;  // NORMAL
      while (!p.done()) {
        const uint64_t k = p.varint();
        const uint32_t f = static_cast<uint32_t>(k >> 3), wt = k & 7;
        if (f == 1 && wt == 2) piece = p.bytes();
        else if (f == 2 && wt == 5) { uint32_t b = p.fixed32(); std::memcpy(&score, &b, 4); }
        else if (f == 3 && wt == 0) type = as_int32(p.varint());
        else p.skip(wt);
      }
      if (type < 1 || type > 6) fail("{}: piece {} has unknown type {}", path, v.tokens.size(), type);
      v.tokens.push_back(std::move(piece));
      v.scores.push_back(score);
      v.types.push_back(type);
    } else if (field == 2 && wire == 2) {  // TrainerSpec: special token ids
      PbReader t = r.sub();
      while (!t.done()) {
        const uint64_t k = t.varint();
        const uint32_t f = static_cast<uint32_t>(k >> 3), wt = k & 7;
        if (wt == 0 && f == 40) v.unk_id = as_int32(t.varint());
        else if (wt == 0 && f == 41) v.bos_id = as_int32(t.varint());
        else if (wt == 0 && f == 42) v.eos_id = as_int32(t.varint());
        else t.skip(wt);
      }
    } else if (field == 3 && wire == 2) {  // NormalizerSpec
      PbReader n = r.sub();
      while (!n.done()) {
        const uint64_t k = n.varint();
        const uint32_t f = static_cast<uint32_t>(k >> 3), wt = k & 7;
        if (f == 3 && wt == 0) v.add_space_prefix = n.varint() != 0;
        else n.skip(wt);
      }
    } else {
      r.skip(wire);
    }
  }
  if (v.tokens.empty()) fail("{}: sentencepiece model has no pieces", path);
  const auto n = static_cast<int32_t>(v.tokens.size());
  if (v.unk_id < 0 || v.unk_id >= n) fail("{}: unk_id {} is outside the vocabulary of {}", path, v.unk_id, n);
  if (v.bos_id >= n || v.eos_id >= n) fail("{}: bos/eos id outside the vocabulary of {}", path, n);
  if (v.bos_id < 0) v.add_bos = false;  // a model trained without BOS
  return v;
}

// ---- tokenizer.json -----------------------------------------------------------------------

namespace {

// The Split regexes of the byte-level pre-tokenizers troupe implements.
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Walks a pre_tokenizer (possibly a Sequence) for its Split regex and ByteLevel settings.
void scan_pre(const boost::json::value& v, std::string& regex, bool& byte_level, bool& bl_regex) {
  if (!v.is_object()) return;
  const auto& o = v.get_object();
  const auto* type = o.if_contains("type");
  if (!type || !type->is_string()) return;
  if (*type == "Sequence") {
    if (const auto* seq = o.if_contains("pretokenizers"); seq && seq->is_array()) {
      for (const auto& s : seq->get_array()) scan_pre(s, regex, byte_level, bl_regex);
    }
  } else if (*type == "Split") {
    const auto* pat = o.if_contains("pattern");
    if (pat && pat->is_object()) {
      if (const auto* re = pat->get_object().if_contains("Regex"); re && re->is_string()) regex = std::string(re->get_string());
    }
  } else if (*type == "ByteLevel") {
    byte_level = true;
    if (const auto* ur = o.if_contains("use_regex"); ur && ur->is_bool()) bl_regex = ur->get_bool();
    else bl_regex = true;
  }
}

// Does the post-processor put a special token in front of a single sequence (i.e. add BOS)?
bool post_adds_prefix(const boost::json::value& v) {
  if (!v.is_object()) return false;
  const auto& o = v.get_object();
  if (const auto* seq = o.if_contains("processors"); seq && seq->is_array()) {
    for (const auto& p : seq->get_array()) {
      if (post_adds_prefix(p)) return true;
    }
  }
  const auto* single = o.if_contains("single");
  if (!single || !single->is_array() || single->get_array().empty()) return false;
  const auto& first = single->get_array()[0];
  return first.is_object() && first.get_object().contains("SpecialToken");
}

// "bos_token": "<s>" or {"content": "<s>", ...}.
std::optional<std::string> special_content(const boost::json::object& cfg, const char* key) {
  const auto* v = cfg.if_contains(key);
  if (!v) return std::nullopt;
  if (v->is_string()) return std::string(v->get_string());
  if (v->is_object()) {
    if (const auto* c = v->get_object().if_contains("content"); c && c->is_string()) return std::string(c->get_string());
  }
  return std::nullopt;
}

struct JsonVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::unordered_map<std::string, int32_t> ids;
};

// Tokens by id from model.vocab and added_tokens; ids nobody claims become unused pads.
JsonVocab json_vocab(const boost::json::object& root, const std::string& path) {
  const auto* model = root.if_contains("model");
  if (!model || !model->is_object()) fail("{}: no model object", path);
  const auto* vocab = model->get_object().if_contains("vocab");
  if (!vocab || !vocab->is_object()) fail("{}: model.vocab is not an object of token ids", path);
  JsonVocab jv;
  auto put = [&](const std::string& tok, const boost::json::value& idv, int32_t type) {
    if (!idv.is_int64() || idv.get_int64() < 0 || idv.get_int64() >= (1 << 24)) {
      fail("{}: token '{}' has a bad id", path, tok);
    }
    const auto id = static_cast<size_t>(idv.get_int64());
    if (id >= jv.tokens.size()) {
      jv.tokens.resize(id + 1);
      jv.types.resize(id + 1, 0);
    }
    jv.tokens[id] = tok;
    jv.types[id] = type;
    jv.ids[tok] = static_cast<int32_t>(id);
  };
  for (const auto& kv : vocab->get_object()) put(std::string(kv.key()), kv.value(), 1);
  if (const auto* added = root.if_contains("added_tokens"); added && added->is_array()) {
    for (const auto& a : added->get_array()) {
      if (!a.is_object()) fail("{}: added_tokens entry is not an object", path);
      const auto& ao = a.get_object();
      auto content = json::get_string(ao, "content", path);
      const auto* id = ao.if_contains("id");
      if (!content || !id) fail("{}: added_tokens entry without content or id", path);
      put(*content, *id, json::get_bool(ao, "special", path).value_or(false) ? 3 : 4);
    }
  }
  for (size_t i = 0; i < jv.tokens.size(); ++i) {
    if (jv.types[i] == 0) {
      jv.tokens[i] = "[PAD" + std::to_string(i) + "]";
      jv.types[i] = 5;  // unused
    }
  }
  return jv;
}

// bos/eos/add_bos of a tokenizer.json: tokenizer_config.json beside it when present, else
// the post-processor template; chat end-of-turn tokens join the EOS list.
// `add_bos_known` tells whether either source said anything about BOS.
void read_specials(const boost::json::object& root, const JsonVocab& jv, const std::string& path,
                   int32_t& bos, std::vector<int32_t>& eos, bool& add_bos, bool& add_bos_known) {
  add_bos = root.contains("post_processor") && post_adds_prefix(root.at("post_processor"));
  add_bos_known = add_bos;
  const fs::path cfg_path = fs::path(path).parent_path() / "tokenizer_config.json";
  if (fs::exists(cfg_path)) {
    const boost::json::value cv = json::parse_file(cfg_path.string());
    const auto& cfg = json::as_object(cv, cfg_path.string());
    auto id_of = [&](const std::string& s) {
      auto it = jv.ids.find(s);
      if (it == jv.ids.end()) fail("{}: special token '{}' is not in the vocabulary", cfg_path.string(), s);
      return it->second;
    };
    if (auto b = special_content(cfg, "bos_token")) bos = id_of(*b);
    if (auto e = special_content(cfg, "eos_token")) eos.push_back(id_of(*e));
    if (auto ab = json::get_bool(cfg, "add_bos_token", cfg_path.string())) add_bos = *ab, add_bos_known = true;
  }
  if (bos < 0) add_bos = false;
  for (const char* eot : {"<|eot_id|>", "<|im_end|>", "<|endoftext|>"}) {
    auto it = jv.ids.find(eot);
    if (it != jv.ids.end() && std::find(eos.begin(), eos.end(), it->second) == eos.end()) eos.push_back(it->second);
  }
}

}  // namespace

TokenizerJsonInfo read_tokenizer_json_info(const std::string& path) {
  const boost::json::value root_v = json::parse_file(path);
  const auto& root = json::as_object(root_v, path);
  JsonVocab jv = json_vocab(root, path);
  TokenizerJsonInfo info;
  info.vocab_size = static_cast<int64_t>(jv.tokens.size());
  bool known = false;
  read_specials(root, jv, path, info.bos_id, info.eos_ids, info.add_bos, known);
  std::string regex;
  bool bl_regex = false;
  if (const auto* pre = root.if_contains("pre_tokenizer")) scan_pre(*pre, regex, info.byte_level, bl_regex);
  return info;
}

ByteBpeVocab read_byte_bpe_json(const std::string& path) {
  const boost::json::value root_v = json::parse_file(path);
  const auto& root = json::as_object(root_v, path);
  JsonVocab jv = json_vocab(root, path);  // checks that "model" is an object
  const auto& model = root.at("model").get_object();
  if (auto t = json::get_string(model, "type", path); t && *t != "BPE") fail("{}: model type {} is not BPE", path, *t);

  std::string regex;
  bool byte_level = false, bl_regex = false;
  if (const auto* pre = root.if_contains("pre_tokenizer")) scan_pre(*pre, regex, byte_level, bl_regex);
  if (!byte_level) fail("{}: not a byte-level BPE tokenizer (no ByteLevel pre-tokenizer)", path);
  ByteBpeVocab v;
  if (regex == kLlama3Regex) v.pre = "llama-bpe";
  else if (regex == kQwen2Regex) v.pre = "qwen2";
  else if (regex.empty() && bl_regex) v.pre = "gpt2";
  else fail("{}: unrecognised pre-tokenizer regex (supported: Llama-3, Qwen2, GPT-2)", path);

  const auto* merges = model.if_contains("merges");
  if (!merges || !merges->is_array()) fail("{}: model.merges is not an array", path);
  v.merges.reserve(merges->get_array().size());
  for (const auto& m : merges->get_array()) {
    // Older files write "a b"; newer ones ["a", "b"].
    if (m.is_string()) {
      v.merges.emplace_back(m.get_string());
    } else if (m.is_array() && m.get_array().size() == 2 && m.get_array()[0].is_string() && m.get_array()[1].is_string()) {
      v.merges.push_back(std::string(m.get_array()[0].get_string()) + " " + std::string(m.get_array()[1].get_string()));
    } else {
      fail("{}: malformed merge entry", path);
    }
  }
  bool known = false;
  read_specials(root, jv, path, v.bos_id, v.eos_ids, v.add_bos, known);
  // Llama-3 models expect BOS; some tokenizer.json copies drop the template that adds it.
  // llama.cpp assumes it for this pre-tokenizer too.
  if (!known && v.pre == "llama-bpe" && v.bos_id >= 0) v.add_bos = true;
  v.tokens = std::move(jv.tokens);
  v.types = std::move(jv.types);
  return v;
}

}  // namespace troupe
