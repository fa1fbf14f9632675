// GBNF parsing and the byte-level pushdown matcher.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "grammar/gbnf.h"
#include "grammar/matcher.h"

using namespace troupe;
using namespace troupe::grammar;

namespace {

bool matches(const std::string& gbnf, const std::string& text) {
  Matcher m(std::make_shared<const Grammar>(parse_gbnf(gbnf)));
  return m.accept(text) && m.can_end();
}

std::string parse_error(const std::string& gbnf) {
  try {
    parse_gbnf(gbnf);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("GBNF: literals, alternatives, groups and repetition", "[grammar][gbnf]") {
  const std::string g = R"(
    root ::= greeting (", " name)* "!"   # a comment
    greeting ::= "hi" | "hello"
    name ::= [A-Z] [a-z]{1,3}
  )";
  CHECK(matches(g, "hi!"));
  CHECK(matches(g, "hello, Bob, Ann!"));
  CHECK_FALSE(matches(g, "hello, Bobby!"));  // {1,3}
  CHECK_FALSE(matches(g, "hey!"));
  CHECK_FALSE(matches(g, "hi"));  // a prefix is not a sentence
  Matcher m(std::make_shared<const Grammar>(parse_gbnf(g)));
  CHECK(m.accept("hel"));
  CHECK_FALSE(m.can_end());
  CHECK_FALSE(m.accept("x"));  // rejected bytes leave the state as it was
  CHECK(m.accept("lo!"));
  CHECK(m.finished());
}

TEST_CASE("GBNF: + ? {m,} and a multi-line rule continued by '|'", "[grammar][gbnf]") {
  const std::string g = "root ::= \"a\"+ \"b\"? \"c\"{2,}\n  | \"x\"\n";
  CHECK(matches(g, "aacc"));
  CHECK(matches(g, "abccc"));
  CHECK(matches(g, "x"));
  CHECK_FALSE(matches(g, "bcc"));
  CHECK_FALSE(matches(g, "ac"));
  CHECK(matches("root ::= (\"ab\")* \"c\"", "ababc"));
  CHECK_FALSE(matches("root ::= (\"ab\")* \"c\"", "abac"));
  CHECK(matches("root ::= \"ab\"{2}", "abab"));  // a literal repeats as a whole
}

TEST_CASE("GBNF: recursion through rule references", "[grammar][gbnf]") {
  const std::string g = R"(root ::= list
list ::= "[" (item ("," item)*)? "]"
item ::= "x" | list)";
  CHECK(matches(g, "[]"));
  CHECK(matches(g, "[x,[x,[]],[[x]]]"));
  CHECK_FALSE(matches(g, "[x,]"));
  CHECK_FALSE(matches(g, "[[x]"));
  // Right recursion does not grow the stack: a long list stays one shallow stack.
  Matcher m(std::make_shared<const Grammar>(parse_gbnf("root ::= \"a\" root | \"b\"")));
  for (int i = 0; i < 1000; ++i) REQUIRE(m.accept("a"));
  for (const auto& s : m.stacks()) CHECK(s.size() <= 2);
  CHECK(m.accept("b"));
  CHECK(m.can_end());
}

TEST_CASE("GBNF: Unicode classes become UTF-8 byte sequences", "[grammar][gbnf]") {
  const std::string g = "root ::= [^a-z]+";
  CHECK(matches(g, "ÄÖ€😀"));
  CHECK_FALSE(matches(g, "Äa"));
  CHECK(matches("root ::= \"é\" [α-ω]", "éβ"));
  CHECK_FALSE(matches("root ::= [α-ω]", "a"));
  CHECK(matches("root ::= .", "\xF0\x9F\x98\x80"));
  CHECK_FALSE(matches("root ::= .", "\xED\xA0\x80"));  // an encoded surrogate is not a character
  CHECK(matches("root ::= \"\\u00e9\\x41\\n\"", "éA\n"));

  const auto seqs = utf8_sequences({{0x80, 0x7FF}});
  REQUIRE(seqs.size() == 1);
  CHECK(seqs[0] == std::vector<ByteRange>{{0xC2, 0xDF}, {0x80, 0xBF}});
}

TEST_CASE("GBNF: errors name the problem and where it is", "[grammar][gbnf]") {
  CHECK(parse_error("root ::= foo").find("'foo' is used but never defined") != std::string::npos);
  CHECK(parse_error("root ::= \"a").find("unterminated string literal") != std::string::npos);
  CHECK(parse_error("root ::= root \"a\" | \"b\"").find("left-recursive") != std::string::npos);
  CHECK(parse_error("root ::= x\nx ::= \"a\"? root").find("left-recursive") != std::string::npos);
  CHECK(parse_error("root ::= \"a\"\nroot ::= \"b\"").find("defined twice") != std::string::npos);
  CHECK(parse_error("root ::= (\"a\"").find("expected ')'") != std::string::npos);
  CHECK(parse_error("root ::= *").find("nothing to repeat") != std::string::npos);
  CHECK(parse_error("root ::= [z-a]").find("line 1") != std::string::npos);
  CHECK(parse_error("x ::= \"a\"").find("no 'root' rule") != std::string::npos);
}
