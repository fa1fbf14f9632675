// --tool-call-parser: hermes and llama3_json outputs parsed whole and streamed in every
// split, and malformed calls falling back to plain content.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "chat/tool_parser.h"

using namespace troupe;

namespace {

// Streams `text` in pieces of `step` bytes and collects what the stream would send.
ToolParseResult streamed(ToolParserKind kind, std::string_view text, size_t step) {
  ToolCallParser p(kind);
  ToolCallCollector collect;
  int next = 0, open = -1;
  auto take = [&](std::vector<ToolStreamEvent> evs) {
    for (const auto& e : evs) {
      if (e.call >= 0 && e.start) {
        CHECK(e.call == next++);  // calls start in order, one at a time
        open = e.call;
      } else if (e.call >= 0) {
        CHECK(e.call == open);  // pieces of the call started last
      } else {
        CHECK(!e.text.empty());
      }
    }
    collect.add(std::move(evs));
  };
  for (size_t i = 0; i < text.size(); i += step) take(p.feed(text.substr(i, step)));
  take(p.finish());
  const ToolParseResult r = collect.result();
  CHECK(p.calls() == int(r.calls.size()));
  return r;
}

boost::json::value args(const ParsedToolCall& c) { return boost::json::parse(c.arguments); }

}  // namespace

TEST_CASE("tool_parser_kind names") {
  CHECK(tool_parser_kind("hermes") == ToolParserKind::Hermes);
  CHECK(tool_parser_kind("llama3_json") == ToolParserKind::Llama3Json);
  CHECK(tool_parser_kind("none") == ToolParserKind::None);
  CHECK(!tool_parser_kind("mistral"));
  CHECK(new_tool_call_id().rfind("call_", 0) == 0);
  CHECK(new_tool_call_id().size() == 29);
  CHECK(new_tool_call_id() != new_tool_call_id());
}

TEST_CASE("hermes: calls and content, whole and streamed in every piece size") {
  const std::string text =
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n"
      "</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
  const auto whole = parse_tool_calls(ToolParserKind::Hermes, text);
  REQUIRE(whole.calls.size() == 2);
  CHECK(whole.content == std::optional<std::string>("Let me check."));
  CHECK(whole.calls[0].name == "get_weather");
  CHECK(args(whole.calls[0]) == boost::json::parse(R"({"city":"Paris","days":2})"));
  CHECK(whole.calls[1].name == "get_time");
  CHECK(whole.calls[1].arguments == "{}");
  CHECK(whole.calls[0].id != whole.calls[1].id);
  for (size_t step = 1; step <= text.size(); ++step) {
    INFO("step " << step);
    const auto r = streamed(ToolParserKind::Hermes, text, step);
    REQUIRE(r.calls.size() == 2);
    CHECK(r.calls[0].name == "get_weather");
    CHECK(args(r.calls[0]) == args(whole.calls[0]));
    CHECK(r.calls[1].name == "get_time");
    // The newline before the first call may go out as content (sent before the call was
    // known, depending on the split); the separators between calls never do.
    REQUIRE(r.content);
    CHECK((*r.content == "Let me check." || *r.content == "Let me check.\n"));
  }
}

TEST_CASE("hermes: only calls gives null content; arguments given as a JSON string are accepted") {
  const auto r = parse_tool_calls(ToolParserKind::Hermes,
                                  "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}</tool_call>\n");
  REQUIRE(r.calls.size() == 1);
  CHECK(!r.content);
  CHECK(args(r.calls[0]) == boost::json::parse(R"({"x":1})"));
  // An unclosed last call (the model stopped there) still counts when its JSON is complete.
  const auto open = parse_tool_calls(ToolParserKind::Hermes, "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n");
  REQUIRE(open.calls.size() == 1);
  CHECK(!open.content);
}

TEST_CASE("hermes: malformed calls fall back to plain content") {
  for (const std::string& text : {
           std::string("<tool_call>{\"name\": \"f\", \"arguments\": {\"x\": </tool_call> done"),
           std::string("<tool_call>{\"arguments\": {}}</tool_call>"),
           std::string("<tool_call>{\"name\": 3}</tool_call>"),
           std::string("<tool_call>[1, 2]</tool_call>"),
           std::string("<tool_call>{\"name\": \"f\", \"arguments\": {\"x\""),  // cut off
           std::string("a < b and <tool_ is not a tag"),
       }) {
    INFO(text);
    const auto r = parse_tool_calls(ToolParserKind::Hermes, text);
    CHECK(r.calls.empty());
    CHECK(r.content == std::optional<std::string>(text));
    for (size_t step : {size_t(1), size_t(3), size_t(7)}) {
      const auto s = streamed(ToolParserKind::Hermes, text, step);
      CHECK(s.calls.empty());
      CHECK(s.content == std::optional<std::string>(text));
    }
  }
}

TEST_CASE("hermes: plain text streams through unchanged, holding back only a possible tag") {
  ToolCallParser p(ToolParserKind::Hermes);
  auto evs = p.feed("Hello <tool");
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].text == "Hello ");
  evs = p.feed("box> ok  ");
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].text == "<toolbox> ok  ");
  evs = p.feed("\n");
  CHECK(evs.empty());  // whitespace alone waits
  evs = p.finish();
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].text == "\n");  // no calls: it was content after all
}

TEST_CASE("llama3_json: a JSON call, after <|python_tag|> or not, several separated by ';'") {
  const std::string one = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}";
  for (const std::string& text : {one, "<|python_tag|>" + one, "  \n" + one + "\n"}) {
    INFO(text);
    const auto r = parse_tool_calls(ToolParserKind::Llama3Json, text);
    REQUIRE(r.calls.size() == 1);
    CHECK(!r.content);
    CHECK(r.calls[0].name == "get_weather");
    CHECK(args(r.calls[0]) == boost::json::parse(R"({"city":"Oslo"})"));
    for (size_t step = 1; step <= text.size(); step += 2) {
      const auto s = streamed(ToolParserKind::Llama3Json, text, step);
      REQUIRE(s.calls.size() == 1);
      CHECK(!s.content);
    }
  }
  const auto two = parse_tool_calls(ToolParserKind::Llama3Json, one + "; {\"name\": \"g\", \"arguments\": {\"a\": [1]}}");
  REQUIRE(two.calls.size() == 2);
  CHECK(two.calls[1].name == "g");
}

TEST_CASE("llama3_json: text and malformed JSON are plain content") {
  for (const std::string& text : {std::string("The weather is nice."), std::string("{\"name\": \"f\", \"parameters\": {"),
                                 std::string("{\"city\": \"Oslo\"}"), std::string("{\"name\": \"f\"} trailing"),
                                 std::string("Answer: {\"name\": \"f\", \"parameters\": {}}")}) {
    INFO(text);
    const auto r = parse_tool_calls(ToolParserKind::Llama3Json, text);
    CHECK(r.calls.empty());
    CHECK(r.content == std::optional<std::string>(text));
    const auto s = streamed(ToolParserKind::Llama3Json, text, 4);
    CHECK(s.calls.empty());
    CHECK(s.content == std::optional<std::string>(text));
  }
  // Text streams as it comes once it is not JSON.
  ToolCallParser p(ToolParserKind::Llama3Json);
  CHECK(p.feed("  ").empty());
  auto evs = p.feed("Hi");
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].text == "  Hi");
}

TEST_CASE("parser none passes text through") {
  const auto r = parse_tool_calls(ToolParserKind::None, "<tool_call>{\"name\": \"f\"}</tool_call>");
  CHECK(r.calls.empty());
  CHECK(r.content == std::optional<std::string>("<tool_call>{\"name\": \"f\"}</tool_call>"));
}

TEST_CASE("streamed arguments come in pieces that add up to the whole call's arguments") {
  struct Case {
    ToolParserKind kind;
    std::string text;
  };
  const std::vector<Case> cases = {
      {ToolParserKind::Hermes,
       "Sure.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"S\\u00e3o \\\"Paulo\\\" {x}\",\n"
       "  \"days\": [1, 2.50, -3e2], \"opts\": {\"unit\": null}}}\n</tool_call>\n<tool_call>{\"arguments\": {\"a\": 1}, "
       "\"name\": \"late_name\"}</tool_call>"},
      {ToolParserKind::Llama3Json,
       "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo ; }\", \"days\": 3}}; "
       "{\"name\": \"get_time\", \"parameters\": {}}"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    const auto whole = parse_tool_calls(c.kind, c.text);
    REQUIRE(whole.calls.size() == 2);
    for (const auto& call : whole.calls) CHECK(boost::json::parse(call.arguments).is_object());
    // Whitespace outside strings goes; everything else stays as the model wrote it.
    if (c.kind == ToolParserKind::Hermes)
      CHECK(whole.calls[0].arguments ==
            R"({"city":"S\u00e3o \"Paulo\" {x}","days":[1,2.50,-3e2],"opts":{"unit":null}})");
    for (size_t step : {size_t(1), size_t(2), size_t(5), size_t(13)}) {
      INFO("step " << step);
      ToolCallParser p(c.kind);
      std::vector<std::string> pieces;  // of the first call's arguments
      ToolCallCollector collect;
      for (size_t i = 0; i < c.text.size(); i += step) {
        auto evs = p.feed(std::string_view(c.text).substr(i, step));
        for (const auto& e : evs)
          if (e.call == 0 && !e.start && !e.failed) pieces.push_back(e.text);
        collect.add(std::move(evs));
      }
      collect.add(p.finish());
      const auto r = collect.result();
      REQUIRE(r.calls.size() == 2);
      for (size_t k = 0; k < 2; ++k) {
        CHECK(r.calls[k].name == whole.calls[k].name);
        CHECK(r.calls[k].arguments == whole.calls[k].arguments);
      }
      // The first call streamed as it was generated: many pieces, not one at the end.
      if (step <= 5) CHECK(pieces.size() >= 4);
    }
  }
}

TEST_CASE("a streamed call that stops parsing is dropped and its text is content") {
  const std::string text = "<tool_call>{\"name\": \"f\", \"arguments\": {\"x\": 1, \"y\": }}</tool_call> after";
  ToolCallParser p(ToolParserKind::Hermes);
  ToolCallCollector collect;
  bool started = false, failed = false;
  for (size_t i = 0; i < text.size(); i += 4) {
    auto evs = p.feed(std::string_view(text).substr(i, 4));
    for (const auto& e : evs) started |= e.start, failed |= e.failed;
    collect.add(std::move(evs));
  }
  collect.add(p.finish());
  CHECK(started);
  CHECK(failed);
  const auto r = collect.result();
  CHECK(r.calls.empty());
  CHECK(r.content == std::optional<std::string>(text));
  CHECK(p.calls() == 0);
}
