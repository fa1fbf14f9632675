// Bad input files: troupe::Error with a message that names the file.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace {

std::string write(const std::string& dir, const std::string& name, const std::string& body) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << body;
  return path;
}

}  // namespace

TEST_CASE("tokenizer loading errors name the file", "[tokenizer][errors]") {
  const std::string dir = troupe::test::temp_dir("tokenizer-errors");
  using Catch::Contains;

  const std::string missing = dir + "/nope/tokenizer.json";
  CHECK_THROWS_AS(troupe::load_tokenizer_json(missing), troupe::Error);
  CHECK_THROWS_WITH(troupe::load_tokenizer_json(missing), Contains(missing));
  const std::string missing_model = dir + "/nope/tokenizer.model";
  CHECK_THROWS_AS(troupe::load_sentencepiece_model(missing_model), troupe::Error);
  CHECK_THROWS_WITH(troupe::load_sentencepiece_model(missing_model), Contains(missing_model));

  const auto bad_json = write(dir, "bad.json", "{\"model\": {\"type\": \"BPE\", ");
  CHECK_THROWS_AS(troupe::load_tokenizer_json(bad_json), troupe::Error);
  CHECK_THROWS_WITH(troupe::load_tokenizer_json(bad_json), Contains(bad_json) && Contains("malformed"));

  const auto wordpiece = write(dir, "wordpiece.json",
      R"({"model": {"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "a"}})");
  CHECK_THROWS_WITH(troupe::load_tokenizer_json(wordpiece),
                    Contains(wordpiece) && Contains("WordPiece") && Contains("unsupported"));

  const auto unigram = write(dir, "unigram.json", R"({"model": {"type": "Unigram", "vocab": []}})");
  CHECK_THROWS_WITH(troupe::load_tokenizer_json(unigram), Contains(unigram) && Contains("Unigram"));

  const auto no_model = write(dir, "nomodel.json", R"({"version": "1.0"})");
  CHECK_THROWS_WITH(troupe::load_tokenizer_json(no_model), Contains(no_model));

  const auto bad_merge = write(dir, "badmerge.json",
      R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})");
  CHECK_THROWS_WITH(troupe::load_tokenizer_json(bad_merge), Contains(bad_merge) && Contains("a b"));

  const auto bad_norm = write(dir, "badnorm.json",
      R"({"normalizer": {"type": "BertNormalizer"},
          "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  CHECK_THROWS_WITH(troupe::load_tokenizer_json(bad_norm), Contains(bad_norm) && Contains("BertNormalizer"));

  const auto bad_regex = write(dir, "badregex.json",
      R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"},
          "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  CHECK_THROWS_WITH(troupe::load_tokenizer_json(bad_regex), Contains(bad_regex));

  const auto garbage = write(dir, "garbage.model", "this is not a protobuf");
  CHECK_THROWS_AS(troupe::load_sentencepiece_model(garbage), troupe::Error);
  CHECK_THROWS_WITH(troupe::load_sentencepiece_model(garbage), Contains(garbage));

  // A unigram model with a piece holding a NUL byte: libsentencepiece's trie builder threw its
  // own exception on it, out of the loader (found by tests/fuzz, corpus/sentencepiece/
  // crash-unigram-nul-piece.model); unsupported model types are now refused before it runs.
  const auto proto_field = [](int num, const std::string& payload) {
    return std::string(1, char(num << 3 | 2)) + char(payload.size()) + payload;
  };
  const auto piece = [&](const std::string& text, int type) {
    return proto_field(1, proto_field(1, text) + std::string("\x15\0\0\0\0", 5) + char(0x18) + char(type));
  };
  const std::string pieces = piece("<unk>", 2) + piece("<s>", 3) + piece("</s>", 3) + piece(std::string("a\0b", 3), 4);
  const std::string identity = proto_field(3, proto_field(1, "identity"));
  const auto unigram_nul = write(dir, "unigram-nul.model", pieces + identity);
  CHECK_THROWS_WITH(troupe::load_sentencepiece_model(unigram_nul), Contains(unigram_nul) && Contains("unigram"));

  // A tokenizer_config.json beside tokenizer.json is read and must be valid JSON too.
  const std::string sub = dir + "/withcfg";
  std::filesystem::create_directories(sub);
  write(sub, "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  const auto cfg = write(sub, "tokenizer_config.json", "{ not json");
  CHECK_THROWS_WITH(troupe::load_tokenizer_json(sub + "/tokenizer.json"), Contains(cfg));

  // SpmVocab sanity.
  troupe::SpmVocab v;
  CHECK_THROWS_AS(troupe::make_spm_tokenizer(v), troupe::Error);
  v.tokens = {"<unk>", "a"};
  v.scores = {0};
  CHECK_THROWS_AS(troupe::make_spm_tokenizer(v), troupe::Error);
}

TEST_CASE("minimal tokenizer.json files", "[tokenizer]") {
  const std::string dir = troupe::test::temp_dir("tokenizer-minimal");
  // A tiny byte-fallback Metaspace model: merges by rank, not by vocabulary order.
  const auto path = write(dir, "tokenizer.json", R"({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true},
                     {"id": 9, "content": "<sep>", "special": true, "lstrip": true, "rstrip": true}],
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": false},
    "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first"},
    "model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>", "fuse_unk": true,
      "vocab": {"<unk>": 0, "\u2581": 1, "a": 2, "b": 3, "ab": 4, "\u2581ab": 5, "<0xC3>": 6, "<0xA9>": 7, "<sep>": 9},
      "merges": [["a", "b"], ["\u2581", "ab"]]}})");
  auto tok = troupe::load_tokenizer_json(path);
  CHECK(tok->encode("ab ab") == std::vector<int32_t>{5, 5});
  CHECK(tok->encode("\xC3\xA9") == std::vector<int32_t>{1, 6, 7});  // é: byte fallback
  CHECK(tok->encode("ab \xE2\x82\xAC\xE2\x82\xAC") == std::vector<int32_t>{5, 1, 0});  // €€: one <unk>
  CHECK(tok->encode("ab <sep> ab") == std::vector<int32_t>{5, 9, 4});  // swallows the spaces around
  CHECK(tok->decode(std::vector<int32_t>{5, 5}) == "ab ab");
  CHECK(tok->decode(std::vector<int32_t>{1, 6, 7}) == "\xC3\xA9");
  CHECK(tok->vocab_size() == 10);
  CHECK_FALSE(tok->add_bos());
}
