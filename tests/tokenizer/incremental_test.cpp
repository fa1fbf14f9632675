// IncrementalDecoder never emits part of a UTF-8 character and adds up to the full text.
#include <catch2/catch.hpp>

#include "fixtures.h"
#include "tokenizer/tokenizer.h"

using troupe::IncrementalDecoder;
using troupe::test::fixture_tokenizer;

namespace {

// Strict UTF-8 validation (no overlongs, surrogates or code points above U+10FFFF).
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = uint8_t(s[i]);
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c < 0x80) n = 1;
    else if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return false;
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const auto b = uint8_t(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return false;
    }
    i += n;
  }
  return true;
}

std::string stream(const troupe::Tokenizer& tok, const std::vector<int32_t>& ids, int* chunks) {
  IncrementalDecoder dec(tok);
  std::string all;
  *chunks = 0;
  for (int32_t id : ids) {
    const std::string piece = dec.push(id);
    INFO("chunk after id " << id);
    CHECK(valid_utf8(piece));
    if (!piece.empty()) ++*chunks;
    all += piece;
  }
  const std::string rest = dec.flush();
  CHECK(valid_utf8(rest));
  return all + rest;
}

}  // namespace

TEST_CASE("incremental decoding of multi-token characters", "[tokenizer][incremental]") {
  const std::vector<std::string> texts = {
      "emoji \xF0\x9F\x8E\x89\xF0\x9F\x9A\x80 test",  // emoji 🎉🚀 test
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88",
      "mixed \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 family, caf\xC3\xA9",
  };
  for (const char* key : {"llama3", "qwen3", "llama2_spm", "stories260k_spm"}) {
    const auto& tok = fixture_tokenizer(key);
    for (const auto& t : texts) {
      INFO(key << ": " << t);
      const auto ids = tok.encode(t);
      int chunks = 0;
      const std::string streamed = stream(tok, ids, &chunks);
      // A continuation keeps the SentencePiece dummy space that decode() strips.
      std::string want = tok.decode(ids);
      if (key == std::string("llama2_spm") || key == std::string("stories260k_spm")) want = " " + want;
      CHECK(streamed == want);
      CHECK(streamed.find(" \xEF\xBF\xBD") == std::string::npos);
      CHECK(chunks > 0);
    }
  }
}

TEST_CASE("incremental decoding holds partial bytes and flushes invalid ones", "[tokenizer][incremental]") {
  const auto& tok = fixture_tokenizer("llama3");
  const int32_t f0 = *tok.token_id("\xC3\xB0");  // "ð": the single byte 0xF0 (a 4-byte lead)
  REQUIRE(tok.token_bytes(f0) == "\xF0");
  IncrementalDecoder dec(tok);
  CHECK(dec.push(f0).empty());  // incomplete: held back
  CHECK(dec.push(*tok.token_id("Hello")) == "\xEF\xBF\xBDHello");  // can no longer complete
  CHECK(dec.push(f0).empty());
  CHECK(dec.flush() == "\xEF\xBF\xBD");  // leftover at the end
  CHECK(dec.flush().empty());

  // One character spread over several tokens comes out whole, at its last byte.
  IncrementalDecoder d2(tok);
  const auto ids = tok.encode("\xF0\x9F\x8E\x89");  // 🎉
  REQUIRE(ids.size() >= 2);
  for (size_t i = 0; i + 1 < ids.size(); ++i) CHECK(d2.push(ids[i]).empty());
  CHECK(d2.push(ids.back()) == "\xF0\x9F\x8E\x89");

  // Special tokens are skipped by default and printed when asked.
  IncrementalDecoder skip(tok), keep(tok, /*skip_special=*/false);
  CHECK(skip.push(128000).empty());
  CHECK(keep.push(128000) == "<|begin_of_text|>");
}
