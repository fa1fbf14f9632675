#pragma once
// Regular expressions (the ECMAScript/PCRE subset JSON Schema patterns and vLLM's
// guided_regex use) as a GBNF expression, so the grammar engine matches them like any
// other rule. Supported: literals and escapes, classes [..] [^..] with \d \w \s (and
// negations), '.', groups (..) (?:..) (?<name>..), alternation, * + ? {m} {m,} {m,n}
// (lazy/possessive suffixes are accepted: a whole-match constraint has no preference),
// '^' at the start and '$' at the end. Lookaround, backreferences and word boundaries
// throw troupe::Error naming them.
#include <string>
#include <string_view>

namespace troupe::grammar {

// `json_string`: the match goes inside a JSON string, so characters that would need
// escaping there (quote, backslash, control characters) are left out of classes and '.';
// a pattern that needs one literally is an error.
std::string regex_to_gbnf(std::string_view pattern, bool json_string = false);

// A GBNF literal for raw text: "..." with quote, backslash and control characters escaped.
std::string gbnf_literal(std::string_view text);

}  // namespace troupe::grammar
