// Our SPM BPE against libsentencepiece's own encoder on the same .model files, for the
// fixture texts and for extra strings chosen to hit merges, byte fallback, unknown
// characters and whitespace handling. Also checks that the GGUF path (an SpmVocab built
// from the same pieces) gives the same ids.
#include <sentencepiece_processor.h>

#include <catch2/catch.hpp>
#include <random>

#include "fixtures.h"
#include "tokenizer/tokenizer.h"

using troupe::test::fixture_tokenizer;
using troupe::test::fixture_tokenizer_path;

namespace {

std::vector<std::string> extra_texts() {
  return {
      "",
      " ",
      "a",
      "Hello",
      " Hello",
      "Hello   world   ",
      "   ",
      "\n",
      "\t\t\n\r\n",
      "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
      "Once upon a time, there was a little girl named Lily. She loved to play outside.",
      "supercalifragilisticexpialidocious antidisestablishmentarianism",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "ab ab ab ab abab abababab",
      "Ünïcödé: Ελληνικά, русский, עברית, العربية, हिन्दी, 한국어, 中文, 日本語",
      "\xE2\x96\x81 already escaped \xE2\x96\x81\xE2\x96\x81",
      "e\xCC\x81 (decomposed) vs \xC3\xA9 (composed)",
      "math: \xE2\x88\x80x \xE2\x88\x88 \xE2\x84\x9D, x\xC2\xB2 \xE2\x89\xA5 0",
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7 zwj \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9",
      "code: for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
      "<unk> <pad> literal angle brackets <0x41>",
      "1234567890 3.14159265358979 -42 1e-10 0xFF",
      "Mr. O'Neil's \"quoted\" text -- with dashes... and (parens) [brackets] {braces}",
  };
}

std::vector<int> sp_encode(const sentencepiece::SentencePieceProcessor& sp, const std::string& s) {
  std::vector<int> ids;
  REQUIRE(sp.Encode(s, &ids).ok());
  return ids;
}

}  // namespace

TEST_CASE("SPM BPE equals sentencepiece's encoder", "[tokenizer][sentencepiece]") {
  for (const char* key : {"llama2_spm", "stories260k_spm"}) {
    sentencepiece::SentencePieceProcessor sp;
    REQUIRE(sp.Load(fixture_tokenizer_path(key)).ok());
    const auto& tok = fixture_tokenizer(key);
    std::vector<std::string> texts = extra_texts();
    for (const auto& c : troupe::test::tokenizer_cases(key)) texts.push_back(c.text);
    for (const auto& t : texts) {
      INFO(key << ": \"" << t << "\"");
      const auto want = sp_encode(sp, t);
      const auto got = tok.encode(t);
      CHECK(std::vector<int>(got.begin(), got.end()) == want);
    }
  }
}

TEST_CASE("make_spm_tokenizer (the GGUF path) matches the .model loader", "[tokenizer][sentencepiece]") {
  sentencepiece::SentencePieceProcessor sp;
  REQUIRE(sp.Load(fixture_tokenizer_path("llama2_spm")).ok());
  // What a GGUF file stores as tokenizer.ggml.{tokens,scores,token_type}.
  troupe::SpmVocab v;
  for (int i = 0; i < sp.GetPieceSize(); ++i) {
    v.tokens.push_back(sp.IdToPiece(i));
    v.scores.push_back(sp.GetScore(i));
    v.types.push_back(sp.IsUnknown(i) ? 2 : sp.IsControl(i) ? 3 : sp.IsUnused(i) ? 5 : sp.IsByte(i) ? 6 : 1);
  }
  auto tok = troupe::make_spm_tokenizer(v);
  const auto& ref = fixture_tokenizer("llama2_spm");
  std::vector<std::string> texts = extra_texts();
  for (const auto& c : troupe::test::tokenizer_cases("llama2_spm")) {
    INFO(c.text);
    CHECK(tok->encode(c.text) == c.ids);
    texts.push_back(c.text);
  }
  for (const auto& t : texts) {
    INFO(t);
    CHECK(tok->encode(t, true) == ref.encode(t, true));
    const auto ids = tok->encode(t);
    CHECK(tok->decode(ids) == ref.decode(ids));
  }
  CHECK(tok->bos_id() == 1);
  CHECK(tok->add_bos());

  SECTION("no space prefix, no byte tokens: unknown characters become one <unk>") {
    troupe::SpmVocab small;
    small.tokens = {"<unk>", "<s>", "</s>", "a", "b", "ab", "\xE2\x96\x81", "\xE2\x96\x81" "ab"};
    small.scores = {0, 0, 0, -1, -1, -2, -1, -3};
    small.types = {2, 3, 3, 1, 1, 1, 1, 1};
    small.add_space_prefix = false;
    auto t = troupe::make_spm_tokenizer(small);
    CHECK(t->encode("ab ab") == std::vector<int32_t>{5, 7});
    CHECK(t->encode("a\xC3\xA9\xC3\xA9" "b") == std::vector<int32_t>{3, 0, 4});
    CHECK(t->decode(t->encode("ab ab")) == "ab ab");
    small.add_space_prefix = true;
    auto t2 = troupe::make_spm_tokenizer(small);
    CHECK(t2->encode("ab ab") == std::vector<int32_t>{7, 7});
    CHECK(t2->decode(std::vector<int32_t>{7, 7}) == "ab ab");
  }
}

TEST_CASE("SPM BPE equals sentencepiece on generated strings", "[tokenizer][sentencepiece]") {
  // Random concatenations of fragments that stress merges, spaces, bytes and scripts.
  const std::vector<std::string> pool = {
      "hello", "Hello", "HELLO", "world", " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", "123",
      "3.14", "'s", "'ll", "don't", "?!", "...", "(", ")", "https://x.y/z?q=1", "caf\xC3\xA9",
      "cafe\xCC\x81", "\xE6\x97\xA5\xE6\x9C\xAC", "\xED\x95\x9C\xEA\xB5\xAD", "\xD1\x80\xD1\x83\xD1\x81",
      "\xF0\x9F\x8E\x89", "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD", "\xC2\xA0", "\xE3\x80\x80", "\xE2\x96\x81",
      "\xEF\xAC\x81", "x\xC2\xB2", "<0x41>", "<unk>", "Once", "upon", "a time", "Lily", "the", "The",
      "supercalifragilistic", "aaaa", "abab", std::string(1, '\0'), "\x7F", "$100", "e-mail"};
  std::mt19937 rng(20240521);
  std::vector<std::string> texts;
  for (int i = 0; i < 400; ++i) {
    std::string t;
    const int n = 1 + int(rng() % 12);
    for (int k = 0; k < n; ++k) t += pool[rng() % pool.size()];
    texts.push_back(std::move(t));
  }
  for (const char* key : {"llama2_spm", "stories260k_spm"}) {
    sentencepiece::SentencePieceProcessor sp;
    REQUIRE(sp.Load(fixture_tokenizer_path(key)).ok());
    const auto& tok = fixture_tokenizer(key);
    int mismatches = 0;
    for (const auto& t : texts) {
      const auto want = sp_encode(sp, t);
      const auto got = tok.encode(t);
      if (std::vector<int>(got.begin(), got.end()) != want) {
        ++mismatches;
        UNSCOPED_INFO(key << " differs on \"" << t << "\"");
      }
    }
    CHECK(mismatches == 0);
  }
}
