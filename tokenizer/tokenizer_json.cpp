// load_tokenizer_json: reads a Hugging Face tokenizer.json (BPE models only) into an
// HfBpeSpec, plus tokenizer_config.json / generation_config.json beside it for the
// BOS/EOS settings that tokenizer.json itself does not carry.
#include <boost/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "tokenizer/hf_bpe.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_json_fields.h"
#include "tokenizer/unicode.h"

namespace troupe {

namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using detail::NormalizerStep;
using detail::PreTokenizerStep;

using tokenizer_json::config_token;
using tokenizer_json::get;
using tokenizer_json::template_prefix;

struct JsonFile {
  std::string path;
  json::value root;

  [[noreturn]] void bad(std::string_view what) const { fail("{}: {}", path, what); }

  const json::object& object_at(const json::value& v, std::string_view what) const {
    if (!v.is_object()) bad(std::string(what) + " is not a JSON object");
    return v.get_object();
  }
  std::string string_at(const json::object& o, std::string_view key, std::string_view what) const {
    const json::value* v = get(o, key);
    if (!v || !v->is_string()) bad(fmt::format("{}: \"{}\" must be a string", what, key));
    return std::string(v->get_string());
  }
  bool bool_or(const json::object& o, std::string_view key, bool dflt) const {
    const json::value* v = get(o, key);
    if (!v) return dflt;
    if (!v->is_bool()) bad(fmt::format("\"{}\" must be true or false", key));
    return v->get_bool();
  }
};

// Reads and parses a JSON file; `required` files that are missing are an error.
std::optional<JsonFile> read_json(const std::string& path, bool required) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    if (required) fail("{}: cannot open tokenizer file", path);
    return std::nullopt;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  boost::system::error_code ec;
  json::value root = json::parse(ss.str(), ec);
  if (ec) fail("{}: malformed JSON: {}", path, ec.message());
  if (!root.is_object()) fail("{}: malformed tokenizer file: top level is not an object", path);
  return JsonFile{path, std::move(root)};
}

std::shared_ptr<const Regex> pattern_regex(const JsonFile& jf, const json::object& step,
                                           std::string_view what) {
  const json::value* pat = get(step, "pattern");
  if (!pat || !pat->is_object()) jf.bad(fmt::format("{} has no pattern", what));
  const auto& po = pat->get_object();
  if (const json::value* r = get(po, "Regex"); r && r->is_string())
    return std::make_shared<Regex>(std::string_view(r->get_string()), false, jf.path);
  if (const json::value* s = get(po, "String"); s && s->is_string())
    return std::make_shared<Regex>(std::string_view(s->get_string()), true, jf.path);
  jf.bad(fmt::format("{} pattern must be a String or a Regex", what));
}

void parse_normalizer(const JsonFile& jf, const json::value& v, std::vector<NormalizerStep>& out) {
  const auto& o = jf.object_at(v, "normalizer");
  const std::string type = jf.string_at(o, "type", "normalizer");
  NormalizerStep n;
  if (type == "Sequence") {
    const json::value* list = get(o, "normalizers");
    if (!list || !list->is_array()) jf.bad("normalizer Sequence has no \"normalizers\" list");
    for (const auto& item : list->get_array()) parse_normalizer(jf, item, out);
    return;
  } else if (type == "Prepend") {
    n.kind = NormalizerStep::kPrepend;
    n.text = jf.string_at(o, "prepend", "Prepend normalizer");
  } else if (type == "Replace") {
    n.kind = NormalizerStep::kReplace;
    n.with = jf.string_at(o, "content", "Replace normalizer");
    const json::value* pat = get(o, "pattern");
    if (pat && pat->is_object() && get(pat->get_object(), "String"))
      n.text = jf.string_at(pat->get_object(), "String", "Replace normalizer");
    else
      n.regex = pattern_regex(jf, o, "Replace normalizer");
  } else if (type == "NFC") {
    n.kind = NormalizerStep::kNfc;
  } else if (type == "Strip") {
    n.kind = NormalizerStep::kStrip;
    n.left = jf.bool_or(o, "strip_left", true);
    n.right = jf.bool_or(o, "strip_right", true);
  } else {
    jf.bad(fmt::format("unsupported normalizer type \"{}\"", type));
  }
  out.push_back(std::move(n));
}

PreTokenizerStep::Prepend metaspace_prepend(const JsonFile& jf, const json::object& o) {
  if (const json::value* s = get(o, "prepend_scheme"); s && s->is_string()) {
    if (s->get_string() == "always") return PreTokenizerStep::kAlways;
    if (s->get_string() == "first") return PreTokenizerStep::kFirst;
    if (s->get_string() == "never") return PreTokenizerStep::kNever;
    jf.bad(fmt::format("unknown Metaspace prepend_scheme \"{}\"", std::string_view(s->get_string())));
  }
  // Files from before prepend_scheme existed say add_prefix_space.
  return jf.bool_or(o, "add_prefix_space", true) ? PreTokenizerStep::kAlways : PreTokenizerStep::kNever;
}

void parse_pre_tokenizer(const JsonFile& jf, const json::value& v, std::vector<PreTokenizerStep>& out) {
  const auto& o = jf.object_at(v, "pre_tokenizer");
  const std::string type = jf.string_at(o, "type", "pre_tokenizer");
  PreTokenizerStep p;
  if (type == "Sequence") {
    const json::value* list = get(o, "pretokenizers");
    if (!list || !list->is_array()) jf.bad("pre_tokenizer Sequence has no \"pretokenizers\" list");
    for (const auto& item : list->get_array()) parse_pre_tokenizer(jf, item, out);
    return;
  } else if (type == "Split") {
    p.kind = PreTokenizerStep::kSplit;
    p.regex = pattern_regex(jf, o, "Split pre-tokenizer");
    p.invert = jf.bool_or(o, "invert", false);
    const std::string b = jf.string_at(o, "behavior", "Split pre-tokenizer");
    if (b == "Isolated") p.behavior = PreTokenizerStep::kIsolated;
    else if (b == "Removed") p.behavior = PreTokenizerStep::kRemoved;
    else if (b == "MergedWithPrevious") p.behavior = PreTokenizerStep::kMergedWithPrevious;
    else if (b == "MergedWithNext") p.behavior = PreTokenizerStep::kMergedWithNext;
    else if (b == "Contiguous") p.behavior = PreTokenizerStep::kContiguous;
    else jf.bad(fmt::format("unsupported Split behavior \"{}\"", b));
  } else if (type == "ByteLevel") {
    p.kind = PreTokenizerStep::kByteLevel;
    p.add_prefix_space = jf.bool_or(o, "add_prefix_space", true);
    if (jf.bool_or(o, "use_regex", true))
      p.regex = std::make_shared<Regex>(detail::byte_level_regex("gpt2"), false, jf.path);
  } else if (type == "Metaspace") {
    p.kind = PreTokenizerStep::kMetaspace;
    if (const json::value* r = get(o, "replacement"); r && r->is_string()) p.replacement = r->get_string();
    p.prepend = metaspace_prepend(jf, o);
    p.split = jf.bool_or(o, "split", true);
  } else {
    jf.bad(fmt::format("unsupported pre_tokenizer type \"{}\"", type));
  }
  out.push_back(std::move(p));
}

// Spaces the decoder removes from the start of the text (Strip, or Metaspace's prefix).
int decoder_strip(const JsonFile& jf, const json::value& v) {
  if (!v.is_object()) return 0;
  const auto& o = v.get_object();
  const json::value* t = get(o, "type");
  if (!t || !t->is_string()) return 0;
  if (t->get_string() == "Sequence") {
    int n = 0;
    if (const json::value* list = get(o, "decoders"); list && list->is_array())
      for (const auto& d : list->get_array()) n += decoder_strip(jf, d);
    return n;
  }
  if (t->get_string() == "Strip") {
    const json::value* c = get(o, "content");
    const json::value* start = get(o, "start");
    if (c && c->is_string() && c->get_string() == " " && start && start->is_int64())
      return int(start->get_int64());
  }
  if (t->get_string() == "Metaspace") return metaspace_prepend(jf, o) == PreTokenizerStep::kNever ? 0 : 1;
  return 0;
}

bool mentions_type(const json::value& v, std::string_view type) {
  if (v.is_object()) {
    for (const auto& [k, x] : v.get_object())
      if ((k == "type" && x.is_string() && x.get_string() == type) || mentions_type(x, type)) return true;
  } else if (v.is_array()) {
    for (const auto& x : v.get_array())
      if (mentions_type(x, type)) return true;
  }
  return false;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& tokenizer_json_path) {
  const JsonFile jf = *read_json(tokenizer_json_path, true);
  const auto& root = jf.root.get_object();
  detail::HfBpeSpec spec;
  spec.source = jf.path;

  // --- model ---
  const json::value* mv = get(root, "model");
  if (!mv) jf.bad("no \"model\" section");
  const auto& model = jf.object_at(*mv, "model");
  const json::value* type = get(model, "type");
  if (type && (!type->is_string() || type->get_string() != "BPE"))
    jf.bad(fmt::format("unsupported tokenizer model type {} (only BPE is supported)",
                       json::serialize(*type)));
  const json::value* vocab = get(model, "vocab");
  const json::value* merges = get(model, "merges");
  if (!vocab || !vocab->is_object()) jf.bad("BPE model has no \"vocab\" object");
  if (!merges || !merges->is_array()) jf.bad("BPE model has no \"merges\" list");
  for (const auto& [piece, idv] : vocab->get_object()) {
    if (!idv.is_int64() || idv.get_int64() < 0 || idv.get_int64() > (1 << 26))
      jf.bad(fmt::format("vocab entry \"{}\" has a bad id", std::string_view(piece)));
    const auto id = size_t(idv.get_int64());
    if (id >= spec.vocab.size()) spec.vocab.resize(id + 1);
    spec.vocab[id] = std::string(piece);
  }
  spec.merges.reserve(merges->get_array().size());
  for (const auto& m : merges->get_array()) {
    auto pair = tokenizer_json::merge_pair(m);
    if (!pair && m.is_string()) jf.bad(fmt::format("bad merge \"{}\"", std::string_view(m.get_string())));
    if (!pair) jf.bad("bad entry in \"merges\"");
    spec.merges.push_back(std::move(*pair));
  }
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json::value* a = get(model, affix); a && !(a->is_string() && a->get_string().empty()))
      jf.bad(fmt::format("unsupported BPE option \"{}\"", affix));
  spec.ignore_merges = jf.bool_or(model, "ignore_merges", false);
  spec.byte_fallback = jf.bool_or(model, "byte_fallback", false);
  spec.fuse_unk = jf.bool_or(model, "fuse_unk", false);

  // --- added tokens ---
  if (const json::value* added = get(root, "added_tokens"); added && added->is_array()) {
    for (const auto& a : added->get_array()) {
      const auto& o = jf.object_at(a, "added token");
      detail::AddedToken t;
      t.content = jf.string_at(o, "content", "added token");
      const json::value* id = get(o, "id");
      if (!id || !id->is_int64()) jf.bad(fmt::format("added token \"{}\" has no id", t.content));
      t.id = int32_t(id->get_int64());
      t.special = jf.bool_or(o, "special", false);
      t.lstrip = jf.bool_or(o, "lstrip", false);
      t.rstrip = jf.bool_or(o, "rstrip", false);
      t.single_word = jf.bool_or(o, "single_word", false);
      t.normalized = jf.bool_or(o, "normalized", !t.special);
      spec.added.push_back(std::move(t));
    }
  }
  auto find_id = [&](const std::string& content) -> int32_t {
    for (const auto& t : spec.added)
      if (t.content == content) return t.id;
    for (size_t i = 0; i < spec.vocab.size(); ++i)
      if (spec.vocab[i] == content) return int32_t(i);
    return -1;
  };
  if (const json::value* unk = get(model, "unk_token"); unk && unk->is_string()) {
    spec.unk_id = find_id(std::string(unk->get_string()));
    if (spec.unk_id < 0) jf.bad(fmt::format("unk_token \"{}\" is not in the vocabulary",
                                            std::string_view(unk->get_string())));
  }

  // --- normalizer, pre-tokenizer, decoder ---
  if (const json::value* n = get(root, "normalizer")) parse_normalizer(jf, *n, spec.normalizers);
  if (const json::value* p = get(root, "pre_tokenizer")) parse_pre_tokenizer(jf, *p, spec.pre_tokenizers);
  const json::value* decoder = get(root, "decoder");
  spec.byte_level = decoder && mentions_type(*decoder, "ByteLevel");
  for (const auto& p : spec.pre_tokenizers)
    spec.byte_level = spec.byte_level || p.kind == PreTokenizerStep::kByteLevel;
  bool space_prefix = false;  // SentencePiece-style "▁" in front of the text
  for (const auto& n : spec.normalizers) {
    if (n.kind == NormalizerStep::kPrepend && n.text == unicode::kSpmSpace) space_prefix = true;
    if (n.kind == NormalizerStep::kReplace && n.with == unicode::kSpmSpace) spec.metaspace = true;
  }
  for (const auto& p : spec.pre_tokenizers)
    if (p.kind == PreTokenizerStep::kMetaspace) {
      spec.metaspace = true;
      space_prefix = space_prefix || p.prepend != PreTokenizerStep::kNever;
    }
  spec.metaspace = spec.metaspace || space_prefix;
  if (spec.byte_level && spec.metaspace) jf.bad("mixes byte-level and SentencePiece-style (▁) handling");
  spec.strip_leading_spaces = decoder ? decoder_strip(jf, *decoder) : 0;

  // --- BOS / EOS: tokenizer_config.json, then the post-processor template ---
  const fs::path dir = fs::path(jf.path).parent_path();
  const auto cfg_file = read_json((dir / "tokenizer_config.json").string(), false);
  const json::object empty;
  const json::object& cfg = cfg_file ? cfg_file->root.get_object() : empty;
  const auto bos_text = config_token(cfg, "bos_token");
  const auto eos_text = config_token(cfg, "eos_token");
  const json::value* post = get(root, "post_processor");
  const auto tmpl = post ? template_prefix(*post) : std::nullopt;
  if (bos_text) spec.bos_id = find_id(*bos_text);
  else if (tmpl && !tmpl->empty()) spec.bos_id = find_id(*tmpl);
  if (eos_text) {
    if (int32_t e = find_id(*eos_text); e >= 0) spec.eos_ids.push_back(e);
  }
  if (const json::value* add = get(cfg, "add_bos_token"); add && add->is_bool()) {
    spec.add_bos = add->get_bool();
  } else if (tmpl) {
    spec.add_bos = !tmpl->empty();
  } else {
    // No explicit setting: HF's Llama tokenizers default to adding BOS. A BOS that is
    // also the EOS (GPT-2's <|endoftext|>) is a document separator, not a prefix.
    spec.add_bos = bos_text && (!eos_text || *bos_text != *eos_text);
  }
  if (cfg_file) spec.drop_prefix_before_special = space_prefix && !cfg_file->bool_or(cfg, "legacy", true);

  // Generation stops at generation_config.json's eos_token_id(s) and at the
  // end-of-turn tokens chat models emit (the set llama.cpp treats as end of generation).
  if (const auto gen = read_json((dir / "generation_config.json").string(), false)) {
    if (const json::value* e = get(gen->root.get_object(), "eos_token_id")) {
      if (e->is_int64()) spec.eos_ids.push_back(int32_t(e->get_int64()));
      if (e->is_array())
        for (const auto& x : e->get_array())
          if (x.is_int64()) spec.eos_ids.push_back(int32_t(x.get_int64()));
    }
  }
  for (const char* end : {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end_of_text|>",
                          "<|endoftext|>", "<end_of_turn>", "<|end|>"}) {
    for (const auto& t : spec.added)
      if (t.special && t.content == end) spec.eos_ids.push_back(t.id);
  }
  std::vector<int32_t> eos;  // without duplicates, the configured EOS first
  for (int32_t e : spec.eos_ids)
    if (std::find(eos.begin(), eos.end(), e) == eos.end()) eos.push_back(e);
  spec.eos_ids = std::move(eos);
  return detail::make_hf_bpe(std::move(spec));
}

}  // namespace troupe
