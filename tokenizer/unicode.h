#pragma once
// UTF-8 and Unicode helpers: the tokenizers', and the one copy chat/ and net/ use too.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::unicode {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
inline constexpr std::string_view kSpmSpace = "\xE2\x96\x81";     // U+2581 "▁"

// Length of the UTF-8 sequence a lead byte announces; 1 for bytes that cannot start a
// sequence, so that callers always make progress over invalid input.
inline size_t utf8_len(uint8_t lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF8) return 4;
  return 1;
}

// Status of the well-formed UTF-8 sequence starting at s[i] (Unicode table 3-7).
enum class Utf8 { kComplete, kIncomplete, kInvalid };
// On kComplete/kInvalid *len is the number of bytes consumed (>= 1).
Utf8 check_utf8(std::string_view s, size_t i, size_t* len);

// True when all of `s` is well-formed UTF-8 (no overlongs, surrogates, code points past
// U+10FFFF or truncated sequences).
bool valid_utf8(std::string_view s);

// Replaces every ill-formed sequence with U+FFFD (one per maximal invalid subpart).
std::string sanitize_utf8(std::string_view s);

// Decodes the code point at s[i] (advancing i); ill-formed input yields U+FFFD and
// advances one byte.
char32_t next_cp(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t cp);

// GPT-2's reversible byte <-> printable code point mapping used by byte-level BPE.
const std::array<char32_t, 256>& byte_to_cp();
// Inverse of byte_to_cp(); -1 for code points outside the alphabet.
int cp_to_byte(char32_t cp);
// Token text in the byte-level alphabet -> raw bytes. False when a character is outside
// the alphabet (added tokens are stored verbatim).
bool decode_byte_level(std::string_view piece, std::string* out);

// Canonical composition (NFC), as the "NFC" normalizer of tokenizer.json asks. Ill-formed
// bytes are copied through unchanged (byte-level BPE can still encode them).
std::string nfc(std::string_view s);

// Unicode White_Space (what the added-token lstrip/rstrip flags consume).
bool is_space(char32_t cp);

}  // namespace troupe::unicode
