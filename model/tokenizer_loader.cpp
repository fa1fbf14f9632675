#include "model/tokenizer_loader.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "model/gguf.h"
#include "model/vocab_io.h"
#include "tokenizer/spm.h"  // detail::make_spm: see from_gguf

namespace fs = std::filesystem;

namespace troupe {

namespace {

std::unique_ptr<Tokenizer> from_gguf(const std::string& path) {
  GgufFile g = GgufFile::open(path);
  auto model = g.get_string("tokenizer.ggml.model");
  if (!model) fail("{}: no embedded tokenizer (tokenizer.ggml.model is missing)", path);
  if (*model == "llama") {
    // Through the tokenizer library's option-taking factory (what its .model loader uses):
    // SpmVocab has no field for remove_extra_whitespaces, and the errors name the file.
    SpmSource src = spm_vocab_from_gguf(g);
    detail::SpmOptions opts;
    opts.source = path;
    opts.remove_extra_whitespaces = src.remove_extra_whitespaces;
    return detail::make_spm(std::move(src.vocab), opts);
  }
  if (*model == "gpt2") {
    try {
      return make_byte_bpe_tokenizer(byte_bpe_vocab_from_gguf(g));
    } catch (const Error& e) {
      if (std::string_view(e.what()).find(path) != std::string_view::npos) throw;
      fail("{}: {}", path, e.what());
    }
  }
  fail("{}: tokenizer.ggml.model '{}' is not supported (llama, gpt2)", path, *model);
}

bool has_gguf_magic(const std::string& path) {
  char magic[4] = {};
  std::ifstream f(path, std::ios::binary);
  f.read(magic, 4);
  return f && std::memcmp(magic, "GGUF", 4) == 0;
}

std::unique_ptr<Tokenizer> load_any(const std::string& path) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail("{}: no such file or directory", path);
  const fs::path p(path);
  if (fs::is_directory(st)) {
    // tokenizer.json is the complete description (normalizer, added tokens); prefer it.
    if (fs::exists(p / "tokenizer.json")) return load_tokenizer_json((p / "tokenizer.json").string());
    if (fs::exists(p / "tokenizer.model")) return load_sentencepiece_model((p / "tokenizer.model").string());
    fail("{}: no tokenizer.json or tokenizer.model in this directory", path);
  }
  if (p.extension() == ".gguf" || has_gguf_magic(path)) return from_gguf(path);
  if (p.extension() == ".model") return load_sentencepiece_model(path);
  if (p.extension() == ".json") {
    // A model's config.json: the tokenizer is beside it.
    if (p.filename() == "config.json") return load_any(p.parent_path().empty() ? "." : p.parent_path().string());
    return load_tokenizer_json(path);
  }
  fail("{}: not a tokenizer (expected a .gguf, a .model, a tokenizer.json or a directory)", path);
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  try {
    return load_any(path);
  } catch (const std::filesystem::filesystem_error& e) {
    fail("{}: {}", path, e.what());
  }
}

}  // namespace troupe
