// NFC (used by Qwen's normalizer) and UTF-8 sanitising. The tokenizer's private helpers
// are reached through the tokenizers that use them.
#include <catch2/catch.hpp>

#include "fixtures.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using troupe::unicode::nfc;

TEST_CASE("NFC composes, reorders and keeps exclusions", "[tokenizer][unicode]") {
  // Expected values from Python's unicodedata.normalize("NFC", ...).
  CHECK(nfc("e\xCC\x81") == "\xC3\xA9");                                // e + acute -> é
  CHECK(nfc("cafe\xCC\x81") == "caf\xC3\xA9");
  CHECK(nfc("\xE2\x84\xAB") == "\xC3\x85");                             // Angstrom sign -> Å
  CHECK(nfc("\xE2\x84\xA6") == "\xCE\xA9");                             // Ohm sign -> Ω
  CHECK(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8") == "\xEA\xB0\x81");  // Hangul L V T -> 각
  CHECK(nfc("a\xCC\x87\xCC\xA3") == "\xE1\xBA\xA1\xCC\x87");            // reordered, then composed
  CHECK(nfc("q\xCC\x87\xCC\xA3") == "q\xCC\xA3\xCC\x87");               // reordered only
  CHECK(nfc("\xE0\xA5\x98") == "\xE0\xA4\x95\xE0\xA4\xBC");             // excluded from composition
  CHECK(nfc("A\xCC\x8A\xCC\x81") == "\xC7\xBA");                        // two steps: Å then Ǻ
  CHECK(nfc("\xCC\x88\xCC\x81" "a") == "\xCC\x88\xCC\x81" "a");         // leading non-starters
  CHECK(nfc("\xE3\x82\xAB\xE3\x82\x99") == "\xE3\x82\xAC");             // カ + dakuten -> ガ
  CHECK(nfc("\xF0\x9D\x85\x9E") == "\xF0\x9D\x85\x97\xF0\x9D\x85\xA5"); // music symbol: excluded
  CHECK(nfc("\xEF\xAC\x81") == "\xEF\xAC\x81");                         // ﬁ: compatibility only
  CHECK(nfc("plain ASCII") == "plain ASCII");
  CHECK(nfc("bad \xFF byte e\xCC\x81") == "bad \xFF byte \xC3\xA9");    // ill-formed bytes kept
}

TEST_CASE("Qwen normalises to NFC before BPE", "[tokenizer][unicode]") {
  const auto& qw = troupe::test::fixture_tokenizer("qwen3");
  CHECK(qw.encode("cafe\xCC\x81 re\xCC\x81sume\xCC\x81") == qw.encode("caf\xC3\xA9 r\xC3\xA9sum\xC3\xA9"));
  // Llama 3 has no normaliser: the decomposed form stays distinct and round-trips.
  const auto& l3 = troupe::test::fixture_tokenizer("llama3");
  CHECK(l3.encode("cafe\xCC\x81") != l3.encode("caf\xC3\xA9"));
  CHECK(l3.decode(l3.encode("cafe\xCC\x81")) == "cafe\xCC\x81");
}

TEST_CASE("UTF-8 sanitising", "[tokenizer][unicode]") {
  using troupe::unicode::sanitize_utf8;
  CHECK(sanitize_utf8("ok \xC3\xA9") == "ok \xC3\xA9");
  CHECK(sanitize_utf8("\xFF") == "\xEF\xBF\xBD");
  CHECK(sanitize_utf8("a\xF0\x9F" "b") == "a\xEF\xBF\xBD" "b");      // truncated sequence
  CHECK(sanitize_utf8("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  CHECK(sanitize_utf8("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");    // overlong
  CHECK(sanitize_utf8("end\xE2\x82") == "end\xEF\xBF\xBD");
  // Ill-formed input still encodes (byte-level) and decodes to U+FFFD.
  const auto& l3 = troupe::test::fixture_tokenizer("llama3");
  CHECK(l3.decode(l3.encode("x\xFFy")) == "x\xEF\xBF\xBDy");
}
