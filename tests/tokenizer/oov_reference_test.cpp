// Characters outside the vocabulary (unknown tokens, byte fallback, byte-level) against
// transformers.js: tests/tokenizer/reference/oov_reference.json, made by
// make_oov_reference.mjs next to it.
#include <catch2/catch.hpp>

#include "fixtures.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using troupe::test::fixture_tokenizer;
using troupe::test::source_path;
using troupe::test::tokenizer_cases_in;

TEST_CASE("out-of-vocabulary characters tokenize as the reference does", "[tokenizer][fixtures]") {
  const std::string file = source_path("tests/tokenizer/reference/oov_reference.json");
  for (const char* key : {"tinystories656k", "llama3", "qwen3"}) {
    const auto& tok = fixture_tokenizer(key);
    for (const auto& c : tokenizer_cases_in(file, key)) {
      INFO(key << ": " << c.text);
      CHECK(tok.encode(c.text, /*add_special=*/false) == c.ids);
    }
  }
}

TEST_CASE("the dummy prefix stays in front of an unknown character", "[tokenizer]") {
  // The example: "▁" (80) then <unk> (0); the prefix goes only before a special
  // token written in the text.
  const auto& tok = fixture_tokenizer("tinystories656k");
  CHECK(tok.encode("[0, 1, 2]", false) == std::vector<int32_t>{80, 0, 11, 94, 12, 94, 13, 0});
  CHECK(tok.encode("[0, 1, 2]", true) == std::vector<int32_t>{1, 80, 0, 11, 94, 12, 94, 13, 0});
  CHECK(tok.encode("<|start_story|>Once", false) == std::vector<int32_t>{1, 147, 682});
}
