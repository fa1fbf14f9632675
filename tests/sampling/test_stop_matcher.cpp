// StopMatcher over streamed text: stops spanning chunks, false starts, several stops, and
// that the result never depends on how the text was chunked.
#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "sampling/sampler.h"

using troupe::StopMatcher;

namespace {

struct Streamed {
  std::vector<std::string> pieces;  // what each push returned
  std::string text;                 // everything emitted, flush included
  bool stopped;
  std::string matched;
};

Streamed stream(std::vector<std::string> stops, const std::vector<std::string>& chunks) {
  StopMatcher m(std::move(stops));
  Streamed r;
  for (const auto& c : chunks) {
    r.pieces.push_back(m.push(c));
    r.text += r.pieces.back();
  }
  r.text += m.flush();
  r.stopped = m.stopped();
  r.matched = m.matched();
  return r;
}

}  // namespace

TEST_CASE("stop string inside one chunk", "[sampling][stop]") {
  const auto r = stream({"STOP"}, {"Hello STOP world"});
  CHECK(r.text == "Hello ");
  CHECK(r.stopped);
  CHECK(r.matched == "STOP");
}

TEST_CASE("stop string across chunk boundaries", "[sampling][stop]") {
  const auto r = stream({"STOP"}, {"Hel", "lo S", "T", "OP and more"});
  CHECK(r.pieces == std::vector<std::string>{"Hel", "lo ", "", ""});
  CHECK(r.text == "Hello ");
  CHECK(r.stopped);
}

TEST_CASE("a held prefix that turns out not to match is released", "[sampling][stop]") {
  auto r = stream({"STOP"}, {"a ST", "ART"});
  CHECK(r.pieces == std::vector<std::string>{"a ", "START"});
  CHECK(r.text == "a START");
  CHECK_FALSE(r.stopped);
  CHECK(r.matched.empty());

  // Self-overlapping stop: after "aaa" only "aa" can still start "aab".
  r = stream({"aab"}, {"a", "a", "a", "b", "c"});
  CHECK(r.pieces == std::vector<std::string>{"", "", "a", "", ""});
  CHECK(r.text == "a");
  CHECK(r.stopped);
}

TEST_CASE("held text comes out on flush", "[sampling][stop]") {
  StopMatcher m({"END"});
  CHECK(m.push("the EN") == "the ");
  CHECK(m.flush() == "EN");
  CHECK_FALSE(m.stopped());
  CHECK(m.flush().empty());
}

TEST_CASE("stop at the very start", "[sampling][stop]") {
  auto r = stream({"###"}, {"###rest"});
  CHECK(r.text.empty());
  CHECK(r.stopped);
  r = stream({"###"}, {"#", "##", "rest"});
  CHECK(r.pieces == std::vector<std::string>{"", "", ""});
  CHECK(r.stopped);
  CHECK(r.matched == "###");
}

TEST_CASE("nothing is emitted after a stop", "[sampling][stop]") {
  StopMatcher m({"x"});
  CHECK(m.push("abxcd") == "ab");
  CHECK(m.stopped());
  CHECK(m.push("more").empty());
  CHECK(m.flush().empty());
  CHECK(m.matched() == "x");
}

TEST_CASE("several stop strings: the first to complete wins", "[sampling][stop]") {
  auto r = stream({"world", "lo w"}, {"hello world"});
  CHECK(r.text == "hel");
  CHECK(r.matched == "lo w");
  // "ab" completes before "xabc" does, even though "xabc" starts earlier: streamed one
  // character at a time, generation would already have stopped at "ab".
  r = stream({"xabc", "ab"}, {"xabc"});
  CHECK(r.text == "x");
  CHECK(r.matched == "ab");
  // Same end: the longer (earlier-starting) one.
  r = stream({"bc", "abc"}, {"zabc"});
  CHECK(r.text == "z");
  CHECK(r.matched == "abc");
  // Multi-byte UTF-8 stops.
  r = stream({"。", "\n\n"}, {"一句话", "。", "下一句"});
  CHECK(r.text == "一句话");
  CHECK(r.matched == "。");
}

TEST_CASE("no stops pass everything through", "[sampling][stop]") {
  const auto r = stream({}, {"abc", "", "def"});
  CHECK(r.pieces == std::vector<std::string>{"abc", "", "def"});
  CHECK_FALSE(r.stopped);
}

TEST_CASE("empty stop strings are rejected", "[sampling][stop]") {
  CHECK_THROWS_AS(StopMatcher({"a", ""}), troupe::Error);
}

TEST_CASE("the result does not depend on chunking", "[sampling][stop]") {
  const std::vector<std::string> stops = {"<|end|>", "<|e", "nd>", "\n\nUser:", "abab"};
  const std::vector<std::string> texts = {
      "plain text without any stop at all <| almost <|en but not", "answer: 42\n\nUs\n\nUser: next",
      "x <|end|> y", "aba abaab ababab", "ends with <|en"};
  std::mt19937 gen(5);
  for (const auto& text : texts) {
    const auto whole = stream(stops, {text});
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<std::string> chunks;
      for (size_t i = 0; i < text.size();) {
        const size_t n = std::uniform_int_distribution<size_t>(0, 4)(gen);
        chunks.push_back(text.substr(i, n));
        i += n;
      }
      const auto r = stream(stops, chunks);
      INFO(text << " / trial " << trial);
      CHECK(r.text == whole.text);
      CHECK(r.stopped == whole.stopped);
      CHECK(r.matched == whole.matched);
    }
  }
}
