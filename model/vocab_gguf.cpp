// Tokenizer vocabularies in and out of GGUF metadata (tokenizer.ggml.*, llama.cpp names).
#include "model/vocab_io.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace troupe {

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

SpmSource spm_vocab_from_gguf(const GgufFile& g) {
  SpmSource src;
  SpmVocab& v = src.vocab;
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
  src.remove_extra_whitespaces = g.get_bool("tokenizer.ggml.remove_extra_whitespaces").value_or(false);
  return src;
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

void write_spm_vocab(GgufWriter& w, const SpmSource& src) {
  const SpmVocab& v = src.vocab;
  w.set("tokenizer.ggml.model", GgufValue::str("llama"));
  w.set("tokenizer.ggml.tokens", GgufValue::str_array(v.tokens));
  w.set("tokenizer.ggml.scores", GgufValue::f32_array(v.scores));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array(v.types));
  w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(v.bos_id)));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(v.eos_id)));
  w.set("tokenizer.ggml.unknown_token_id", GgufValue::u32(static_cast<uint32_t>(v.unk_id)));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(v.add_bos));
  w.set("tokenizer.ggml.add_space_prefix", GgufValue::boolean(v.add_space_prefix));
  if (src.remove_extra_whitespaces) w.set("tokenizer.ggml.remove_extra_whitespaces", GgufValue::boolean(true));
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

}  // namespace troupe
