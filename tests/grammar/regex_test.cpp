// Regular expressions through the grammar engine: whole-string matches.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "grammar/gbnf.h"
#include "grammar/matcher.h"
#include "grammar/regex.h"

using namespace troupe;
using namespace troupe::grammar;

namespace {

bool full_match(const std::string& re, const std::string& text, bool json = false) {
  Matcher m(std::make_shared<const Grammar>(parse_gbnf("root ::= " + regex_to_gbnf(re, json))));
  return m.accept(text) && m.can_end();
}

std::string regex_error(const std::string& re, bool json = false) {
  try {
    regex_to_gbnf(re, json);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("regex: classes, quantifiers, groups, alternation, anchors", "[grammar][regex]") {
  CHECK(full_match("^\\d{3}-\\d{4}$", "555-1234"));
  CHECK_FALSE(full_match("^\\d{3}-\\d{4}$", "555-123"));
  CHECK(full_match("[A-Z][a-z]+(?: [A-Z][a-z]+)*", "Ada Lovelace"));
  CHECK_FALSE(full_match("[A-Z][a-z]+(?: [A-Z][a-z]+)*", "ada"));
  CHECK(full_match("(cat|dog)s?", "dogs"));
  CHECK_FALSE(full_match("(cat|dog)s?", "cow"));
  CHECK(full_match("a.c", "a-c"));
  CHECK_FALSE(full_match("a.c", "a\nc"));
  CHECK(full_match("[^0-9]*", "abc"));
  CHECK_FALSE(full_match("[^0-9]*", "ab1"));
  CHECK(full_match("\\w+@\\w+\\.com", "me@host.com"));
  CHECK(full_match("x{2,}?", "xxx"));  // lazy suffix accepted
  CHECK(full_match("[a\\-z]+", "a-z"));
  CHECK(full_match("(?<year>\\d{4})", "2026"));
  CHECK(full_match("\\(\\)\\[\\]", "()[]"));
  CHECK(full_match("", ""));
}

TEST_CASE("regex: inside a JSON string, characters needing escapes are left out", "[grammar][regex]") {
  CHECK(full_match(".*", "a b", true));
  CHECK_FALSE(full_match(".*", "a\"b", true));
  CHECK_FALSE(full_match("[^x]", "\\", true));
  CHECK(regex_error("a\"b", true).find("JSON string") != std::string::npos);
}

TEST_CASE("regex: unsupported constructs are errors naming them", "[grammar][regex]") {
  CHECK(regex_error("a(?=b)").find("lookaround") != std::string::npos);
  CHECK(regex_error("(a)\\1").find("backreference") != std::string::npos);
  CHECK(regex_error("\\bword").find("word boundaries") != std::string::npos);
  CHECK(regex_error("a)").find("unbalanced") != std::string::npos);
  CHECK(regex_error("(a").find("missing ')'") != std::string::npos);
  CHECK(regex_error("a^b").find("anchors") != std::string::npos);
}
