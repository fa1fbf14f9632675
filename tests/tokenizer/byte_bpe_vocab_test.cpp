// make_byte_bpe_tokenizer (GGUF "gpt2" vocabularies) on the vocabularies of the Llama 3
// and Qwen 3 tokenizer.json files, laid out as GGUF stores them: must give the same ids.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "fixtures.h"
#include "core/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace {

troupe::ByteBpeVocab vocab_from_json(const std::string& path, const std::string& pre) {
  const auto root = boost::json::parse(troupe::test::read_file(path)).as_object();
  const auto& model = root.at("model").as_object();
  troupe::ByteBpeVocab v;
  v.pre = pre;
  for (const auto& [piece, id] : model.at("vocab").as_object()) {
    const auto i = size_t(id.as_int64());
    if (i >= v.tokens.size()) v.tokens.resize(i + 1);
    v.tokens[i] = std::string(piece);
  }
  v.types.assign(v.tokens.size(), 1);
  for (const auto& a : root.at("added_tokens").as_array()) {
    const auto i = size_t(a.at("id").as_int64());
    if (i >= v.tokens.size()) {
      v.tokens.resize(i + 1);
      v.types.resize(i + 1, 1);
    }
    v.tokens[i] = std::string(a.at("content").as_string());
    v.types[i] = a.at("special").as_bool() ? 3 : 4;
  }
  for (const auto& m : model.at("merges").as_array()) {
    if (m.is_string()) v.merges.emplace_back(m.as_string());
    else v.merges.push_back(std::string(m.as_array()[0].as_string()) + " " +
                            std::string(m.as_array()[1].as_string()));
  }
  return v;
}

}  // namespace

TEST_CASE("byte-level BPE from a GGUF-style vocabulary", "[tokenizer][gguf]") {
  for (auto [key, pre] : {std::pair{"llama3", "llama-bpe"}, std::pair{"qwen3", "qwen2"}}) {
    auto v = vocab_from_json(troupe::test::fixture_tokenizer_path(key), pre);
    v.bos_id = key == std::string("llama3") ? 128000 : -1;
    v.add_bos = v.bos_id >= 0;
    v.eos_ids = {7};
    auto tok = troupe::make_byte_bpe_tokenizer(v);
    const auto& ref = troupe::test::fixture_tokenizer(key);
    CHECK(tok->vocab_size() == ref.vocab_size());
    for (const auto& c : troupe::test::tokenizer_cases(key)) {
      INFO(key << ": " << c.text);
      CHECK(tok->encode(c.text) == c.ids);
      CHECK(tok->decode(c.ids, false) == c.text);
    }
    CHECK(tok->bos_id() == v.bos_id);
    CHECK(tok->add_bos() == v.add_bos);
    CHECK(tok->eos_ids() == std::vector<int32_t>{7});
    if (v.add_bos) CHECK(tok->encode("Hi", true).front() == v.bos_id);
  }
}

TEST_CASE("byte-level BPE vocabulary errors", "[tokenizer][gguf][errors]") {
  troupe::ByteBpeVocab v;
  v.tokens = {"a", "b", "ab"};
  v.merges = {"a b"};
  v.pre = "no-such-pre-tokenizer";
  CHECK_THROWS_WITH(troupe::make_byte_bpe_tokenizer(v), Catch::Contains("no-such-pre-tokenizer"));
  v.pre = "gpt2";
  v.merges = {"a c"};
  CHECK_THROWS_AS(troupe::make_byte_bpe_tokenizer(v), troupe::Error);
  v.merges = {"a b"};
  auto tok = troupe::make_byte_bpe_tokenizer(v);
  CHECK(tok->encode("abab") == std::vector<int32_t>{2, 2});
  CHECK(tok->encode("ab c").size() == 1);  // " " and "c" have no tokens: dropped
}
