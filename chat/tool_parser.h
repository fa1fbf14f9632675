#pragma once
// Tool calls in a model's output text (`serve --tool-call-parser`), found as the text
// streams: text outside the calls is content; each complete call becomes an OpenAI-shaped
// call (name, arguments as a JSON string). Output that looks like a call but does not parse
// falls back to plain content, so a malformed call is never lost and never a server error.
//
//   hermes       <tool_call>{"name": .., "arguments": {..}}</tool_call>, any number of them,
//                anywhere in the text (Qwen 2.5 / 3, Hermes 2 Pro templates).
//   llama3_json  the whole output is {"name": .., "parameters": {..}} (several separated by
//                ";"), optionally after <|python_tag|> (Llama 3.1+ JSON tool calling).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

enum class ToolParserKind { None, Hermes, Llama3Json };

// "none" | "hermes" | "llama3_json"; nullopt for anything else.
std::optional<ToolParserKind> tool_parser_kind(std::string_view name);

struct ParsedToolCall {
  std::string id;         // "call_" + 24 random characters
  std::string name;
  std::string arguments;  // JSON text (an object, as the model wrote it, re-serialized)
};

// What a stream may send now: content text, or one complete call.
struct ToolStreamEvent {
  std::string text;  // content (when call < 0)
  int call = -1;     // >= 0: the call's index in this output
  ParsedToolCall tool;
};

class ToolCallParser {
 public:
  explicit ToolCallParser(ToolParserKind kind) : kind_(kind) {}
  // The next piece of output text. Text that may still become part of a call (a prefix of
  // "<tool_call>", an open call, a JSON output) is held back until it is decided.
  std::vector<ToolStreamEvent> feed(std::string_view text);
  // The output ended: an unclosed call that parses still counts; anything else held back
  // is content.
  std::vector<ToolStreamEvent> finish();
  int calls() const { return calls_; }

 private:
  void emit_text(std::string text, std::vector<ToolStreamEvent>& out);
  bool emit_call(std::string_view body, std::vector<ToolStreamEvent>& out);
  void feed_hermes(std::vector<ToolStreamEvent>& out);
  void feed_llama3(std::vector<ToolStreamEvent>& out);

  ToolParserKind kind_;
  std::string buf_;         // held back
  bool in_call_ = false;    // hermes: inside <tool_call>
  enum class Mode { Undecided, Text, Json } mode_ = Mode::Undecided;  // llama3_json
  std::string pending_ws_;  // whitespace-only text, dropped when it only separates calls
  int calls_ = 0;
  int calls_at_text_ = 0;   // calls_ when content was last emitted
};

struct ToolParseResult {
  std::optional<std::string> content;  // nullopt: no text outside the calls
  std::vector<ParsedToolCall> calls;
};
// A complete output at once (non-streaming responses): the same rules as the stream.
ToolParseResult parse_tool_calls(ToolParserKind kind, std::string_view text);

std::string new_tool_call_id();

}  // namespace troupe
