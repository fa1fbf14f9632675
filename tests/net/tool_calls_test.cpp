// Tools on /v1/chat/completions, parsed without a server: tools and tool_choice validation
// (400s naming the field), tools and tool-call messages through Qwen3's own template, the
// forced-call constraint, and the response shapes (message.tool_calls, delta.tool_calls).
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "chat/chat_template.h"
#include "grammar/constraint.h"
#include "model/tokenizer_loader.h"
#include "net/api.h"
#include "net/tool_calls.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace troupe;
namespace json = boost::json;

namespace {

struct Served {
  std::unique_ptr<Tokenizer> tok;
  ChatTemplate chat;
  ModelInfo info;
  Served(const std::string& dir, ToolParserKind parser) {
    tok = load_tokenizer(dir);
    chat = ChatTemplate::load(dir, "", *tok);
    info = ModelInfo{"m", 4096, tok->vocab_size(), tok.get(), &chat};
    info.tool_parser = parser;
  }
};

const Served& qwen3() {
  static Served s(test::tokenizer_path("qwen3"), ToolParserKind::Hermes);
  return s;
}

const char* kTools = R"([{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
  {"type": "function", "function": {"name": "get_time"}}])";

std::string chat(const std::string& extra) {
  return R"({"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": )" + std::string(kTools) + extra +
         "}";
}

ApiError error_of(const std::string& body, const ModelInfo& m) {
  try {
    parse_openai_request(Endpoint::Chat, body, m);
  } catch (const ApiError& e) {
    return e;
  }
  FAIL("expected a 400 for " << body);
  return ApiError(0, "");
}

}  // namespace

TEST_CASE("tools and tool_choice: bad shapes are 400s naming the field", "[net][tools]") {
  const ModelInfo& m = qwen3().info;
  const std::string msg = R"({"messages": [{"role": "user", "content": "x"}], )";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {msg + R"("tools": {"type": "function"}})", "tools"},
      {msg + R"("tools": [5]})", "tools[0]"},
      {msg + R"("tools": [{"type": "retrieval", "function": {"name": "f"}}]})", "tools[0].type"},
      {msg + R"("tools": [{"type": "function", "function": {"name": "has space"}}]})", "tools[0].function.name"},
      {msg + R"("tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]})",
       "tools[0].function.parameters"},
      {msg + R"("tools": [{"type": "function", "function": {"name": "f", "description": 1}}]})",
       "tools[0].function.description"},
      {msg + R"("tools": [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "f"}}]})",
       "tools[1].function.name"},
      {msg + R"("tool_choice": "required"})", "tool_choice"},  // no tools
      {chat(R"(, "tool_choice": "always")"), "tool_choice"},
      {chat(R"(, "tool_choice": {"type": "function", "name": "get_time"})"), "tool_choice"},
      {chat(R"(, "tool_choice": {"type": "function", "function": {"name": "nope"}})"), "tool_choice"},
      {chat(R"(, "parallel_tool_calls": "yes")"), "parallel_tool_calls"},
      {chat(R"(, "tool_choice": "required", "response_format": {"type": "json_object"})"), "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required", "tools": [{"type": "function",
          "function": {"name": "f", "parameters": {"type": "object", "patternProperties": {}}}}]})", "tools"},
  };
  for (const auto& [body, param] : cases) {
    INFO(body);
    const ApiError e = error_of(body, m);
    CHECK(e.status == 400);
    CHECK(e.param == param);
  }
  CHECK_THAT(error_of(chat(R"(, "tool_choice": {"type": "function", "function": {"name": "nope"}})"), m).message,
             Catch::Contains("'nope'"));
}

TEST_CASE("tool_choice required or named needs a parser; a vocabulary without '{' cannot force a call",
          "[net][tools]") {
  Served none(test::tokenizer_path("qwen3"), ToolParserKind::None);
  for (const char* choice : {R"("required")", R"({"type": "function", "function": {"name": "get_time"}})"}) {
    const ApiError e = error_of(chat(std::string(R"(, "tool_choice": )") + choice), none.info);
    CHECK(e.param == "tool_choice");
    CHECK_THAT(e.message, Catch::Contains("--tool-call-parser"));
  }
  // auto without a parser: tools are rendered, the output stays plain content.
  const ApiRequest r = parse_openai_request(Endpoint::Chat, chat(""), none.info);
  CHECK(r.tool_parser == ToolParserKind::None);
  CHECK(r.choices[0].params.constraint.empty());

  // TinyStories-656K has no token holding '{' (and no byte fallback).
  Served tiny(test::model_path("tinystories-656k"), ToolParserKind::Hermes);
  const ApiError e = error_of(chat(R"(, "tool_choice": "required")"), tiny.info);
  CHECK(e.param == "tool_choice");
  CHECK_THAT(e.message, Catch::Contains("the model's vocabulary cannot express this constraint") && Catch::Contains("'{'"));
  // auto on that model is fine: nothing is forced.
  CHECK(parse_openai_request(Endpoint::Chat, chat(""), tiny.info).tool_parser == ToolParserKind::Hermes);
}

TEST_CASE("tools reach Qwen3's template; tool calls and results render back", "[net][tools]") {
  const ModelInfo& m = qwen3().info;
  const ApiRequest r = parse_openai_request(Endpoint::Chat, chat(""), m);
  CHECK(r.tool_parser == ToolParserKind::Hermes);
  CHECK(r.choices[0].params.constraint.empty());  // auto: nothing forced
  const std::string& prompt = r.choices[0].prompt;
  CHECK_THAT(prompt, Catch::Contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\""));
  CHECK_THAT(prompt, Catch::Contains("\"name\": \"get_time\""));

  const std::string round = R"({"tools": )" + std::string(kTools) + R"(, "messages": [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
      "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "21 C"}]})";
  const std::string p2 = parse_openai_request(Endpoint::Chat, round, m).choices[0].prompt;
  // The arguments string became a mapping for the template (tojson writes it back).
  CHECK_THAT(p2, Catch::Contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"));
  CHECK_THAT(p2, Catch::Contains("<tool_response>\n21 C\n</tool_response>"));
  CHECK_THAT(p2, Catch::EndsWith("<|im_start|>assistant\n"));
}

TEST_CASE("tool_choice required and named become a hermes grammar", "[net][tools]") {
  const ModelInfo& m = qwen3().info;
  const auto req = parse_openai_request(Endpoint::Chat, chat(R"(, "tool_choice": "required")"), m);
  const auto& c = req.choices[0].params.constraint;
  REQUIRE(c.kind == "gbnf");
  grammar::Matcher ok(grammar::compile(c));
  CHECK(ok.accept("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n"));
  const auto named = parse_openai_request(
      Endpoint::Chat, chat(R"(, "tool_choice": {"type": "function", "function": {"name": "get_weather"}})"), m);
  grammar::Matcher one(grammar::compile(named.choices[0].params.constraint));
  CHECK_FALSE(one.can_accept("<tool_call>\n{\"name\": \"get_time\""));
  CHECK(one.accept("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"));
  CHECK(one.finished());  // named: exactly one call
  const auto single = parse_openai_request(Endpoint::Chat, chat(R"(, "tool_choice": "required", "parallel_tool_calls": false)"), m);
  grammar::Matcher s(grammar::compile(single.choices[0].params.constraint));
  CHECK(s.accept("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"));
  CHECK(s.finished());
  // none: rendered, not parsed, not forced.
  const auto none = parse_openai_request(Endpoint::Chat, chat(R"(, "tool_choice": "none")"), m);
  CHECK(none.tool_parser == ToolParserKind::None);
  CHECK_THAT(none.choices[0].prompt, Catch::Contains("<tools>"));
}

TEST_CASE("tool calls in responses: message.tool_calls and delta.tool_calls", "[net][tools]") {
  ChoiceResult call{"<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}\n</tool_call>", "stop", {}, nullptr};
  ChoiceResult text{"Just text.", "stop", {}, nullptr};
  const std::string body = completion_body(Endpoint::Chat, "chatcmpl-1", 1, "m", {call, text}, 1);
  const json::value v = json::parse(with_tool_calls(body, ToolParserKind::Hermes));
  const auto& c0 = v.at("choices").at(0);
  CHECK(c0.at("finish_reason") == "tool_calls");
  CHECK(c0.at("message").at("content").is_null());
  const auto& tc = c0.at("message").at("tool_calls").at(0);
  CHECK(tc.at("type") == "function");
  CHECK(tc.at("id").as_string().starts_with("call_"));
  CHECK(tc.at("function").at("name") == "get_time");
  CHECK(json::parse(tc.at("function").at("arguments").as_string()) == json::parse(R"({"tz":"UTC"})"));
  const auto& c1 = v.at("choices").at(1);
  CHECK(c1.at("finish_reason") == "stop");
  CHECK(c1.at("message").at("content") == "Just text.");
  CHECK_FALSE(c1.at("message").as_object().contains("tool_calls"));

  // A streamed call: its start names it, then pieces of the arguments (index only).
  ToolCallParser p(ToolParserKind::Hermes);
  std::vector<ToolStreamEvent> evs;
  for (std::string_view piece : {"<tool_call>\n{\"name\": \"get_time\", \"argu", "ments\": {\"tz\"", ": \"UT", "C\", \"n\": [1, ",
                                 "2]}}\n</tool_call>"}) {
    auto got = p.feed(piece);
    evs.insert(evs.end(), got.begin(), got.end());
  }
  auto rest = p.finish();
  evs.insert(evs.end(), rest.begin(), rest.end());
  std::vector<json::value> chunks;
  for (const auto& e : evs)
    if (auto c = tool_call_chunk("chatcmpl-1", 1, "m", 0, e, chunks.empty())) chunks.push_back(json::parse(*c));
  REQUIRE(chunks.size() >= 4);  // the start and at least three pieces
  const auto& d0 = chunks[0].at("choices").at(0).at("delta");
  CHECK(d0.at("role") == "assistant");
  CHECK(d0.at("tool_calls").at(0).at("index") == 0);
  CHECK(d0.at("tool_calls").at(0).at("id").as_string().starts_with("call_"));
  CHECK(d0.at("tool_calls").at(0).at("type") == "function");
  CHECK(d0.at("tool_calls").at(0).at("function").at("name") == "get_time");
  std::string args(d0.at("tool_calls").at(0).at("function").at("arguments").as_string());
  for (size_t i = 1; i < chunks.size(); ++i) {
    const auto& call = chunks[i].at("choices").at(0).at("delta").at("tool_calls").at(0).as_object();
    CHECK(call.at("index") == 0);
    CHECK_FALSE(call.contains("id"));
    CHECK_FALSE(call.at("function").as_object().contains("name"));
    args += call.at("function").at("arguments").as_string();
  }
  CHECK(args == R"({"tz":"UTC","n":[1,2]})");
  const auto whole = parse_tool_calls(ToolParserKind::Hermes,
                                      "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\", \"n\": [1, 2]}}\n</tool_call>");
  REQUIRE(whole.calls.size() == 1);
  CHECK(whole.calls[0].arguments == args);
}

TEST_CASE("llama3_json: a forced call is the JSON object form", "[net][tools]") {
  Served llama(test::tokenizer_path("llama3"), ToolParserKind::Llama3Json);
  const auto req = parse_openai_request(Endpoint::Chat, chat(R"(, "tool_choice": "required", "parallel_tool_calls": false)"),
                                        llama.info);
  CHECK(req.tool_parser == ToolParserKind::Llama3Json);
  grammar::Matcher m(grammar::compile(req.choices[0].params.constraint));
  CHECK_FALSE(m.can_accept("<tool_call>"));
  CHECK(m.accept("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}"));
  CHECK(m.finished());
  const auto parallel = parse_openai_request(Endpoint::Chat, chat(R"(, "tool_choice": "required")"), llama.info);
  grammar::Matcher p(grammar::compile(parallel.choices[0].params.constraint));
  CHECK(p.accept("{\"name\": \"get_time\", \"parameters\": {}}; {\"name\": \"get_time\", \"parameters\": {}}"));
  const auto r = parse_tool_calls(ToolParserKind::Llama3Json,
                                  "{\"name\": \"get_time\", \"parameters\": {}}; {\"name\": \"get_time\", \"parameters\": {}}");
  CHECK(r.calls.size() == 2);
}
