// Vocabulary, merges and special tokens of a Hugging Face tokenizer.json, for GGUF export and
// synth configs. The runnable tokenizer (tokenizer/tokenizer_json.cpp) is the one reader of
// what the file means: special tokens (bos/eos/add_bos) come from it, and the fields both
// parse are in tokenizer/tokenizer_json_fields.h. What is left here is what only GGUF needs:
// token types and the pre-tokenizer's GGUF name.
#include "model/vocab_io.h"

#include <algorithm>
#include <filesystem>
#include <unordered_map>

#include "core/error.h"
#include "model/json_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_json_fields.h"

namespace fs = std::filesystem;

namespace troupe {

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

// bos/eos/add_bos: exactly what troupe's own tokenizer makes of the file and the configs
// beside it (tokenizer/tokenizer_json.cpp owns that policy), so a GGUF export stops and
// starts where the HF model does when troupe runs it.
void read_specials(const std::string& path, int32_t& bos, std::vector<int32_t>& eos, bool& add_bos) {
  const auto tok = load_tokenizer_json(path);
  bos = tok->bos_id();
  eos = tok->eos_ids();
  add_bos = tok->add_bos();
}

}  // namespace

TokenizerJsonInfo read_tokenizer_json_info(const std::string& path) {
  const boost::json::value root_v = json::parse_file(path);
  const auto& root = json::as_object(root_v, path);
  JsonVocab jv = json_vocab(root, path);
  TokenizerJsonInfo info;
  info.vocab_size = static_cast<int64_t>(jv.tokens.size());
  read_specials(path, info.bos_id, info.eos_ids, info.add_bos);
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
    auto pair = tokenizer_json::merge_pair(m);
    if (!pair) fail("{}: malformed merge entry", path);
    v.merges.push_back(pair->first + " " + pair->second);  // GGUF's form
  }
  read_specials(path, v.bos_id, v.eos_ids, v.add_bos);
  v.tokens = std::move(jv.tokens);
  v.types = std::move(jv.types);
  return v;
}

}  // namespace troupe
