#pragma once
// GBNF, llama.cpp's grammar text format, parsed into a byte-level Grammar:
//
//   root  ::= "{" ws pair ("," ws pair)* "}"      # rules: name ::= alternatives
//   pair  ::= [a-z]+ ":" ws ( "true" | "false" )  # literals, classes, groups, refs
//   ws    ::= [ \t\n]{0,2}                        # * + ? {m} {m,} {m,n}
//
// Literals and classes are Unicode (UTF-8 text; \n \t \r \\ \" \xHH \uHHHH \UHHHHHHHH
// escapes); `.` is any character. Classes expand to UTF-8 byte sequences. Errors throw
// troupe::Error with the line and column.
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "grammar/grammar.h"

namespace troupe::grammar {

Grammar parse_gbnf(std::string_view text, std::string_view root = "root");

// The UTF-8 encodings of a set of codepoint ranges (surrogates excluded), as alternatives
// of byte-range sequences: [0x80, 0x7FF] -> {[C2-DF][80-BF]}. Public for tests.
using ByteRange = std::pair<uint8_t, uint8_t>;
std::vector<std::vector<ByteRange>> utf8_sequences(const std::vector<std::pair<uint32_t, uint32_t>>& ranges);

}  // namespace troupe::grammar
