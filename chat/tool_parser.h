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
  std::string arguments;  // JSON text: the object as the model wrote it, whitespace outside strings removed
};

// What a stream may send now: content text, or a piece of a call. A call streams as its
// start (index, id, name; `text` the first piece of the arguments, often empty), then
// argument pieces as the model writes them: their concatenation is the call's arguments,
// exactly what parse_tool_calls() returns for the whole output. When the name and an
// object of arguments are not both known before the call ends (arguments given as a string,
// or before the name), the start carries the whole arguments at once.
struct ToolStreamEvent {
  std::string text;    // content (call < 0), or a piece of the call's arguments
  int call = -1;       // >= 0: the call's index in this output
  ParsedToolCall tool; // start: id and name
  bool start = false;  // the call's first event
  bool failed = false; // a started call that did not parse after all: its text follows as
                       // content (parse_tool_calls drops it)
};

// Finds, as a call object streams in, its "name" and the raw text of its arguments
// ("arguments" or "parameters", when an object) with whitespace outside strings removed.
class ToolCallScanner {
 public:
  void feed(std::string_view text);
  const std::optional<std::string>& name() const { return name_; }
  bool args_started() const { return args_started_; }
  bool args_done() const { return args_done_; }
  const std::string& args() const { return args_; }
  bool object_done() const { return object_done_; }
  size_t consumed() const { return consumed_; }  // bytes fed up to the object's end

 private:
  int depth_ = 0, args_depth_ = 0;
  size_t consumed_ = 0;
  bool in_str_ = false, esc_ = false, expect_value_ = false, capturing_ = false;
  bool args_started_ = false, args_done_ = false, object_done_ = false;
  std::string str_, key_, args_;
  std::optional<std::string> name_;
};

class ToolCallParser {
 public:
  explicit ToolCallParser(ToolParserKind kind) : kind_(kind) {}
  // The next piece of output text. Text that may still become part of a call (a prefix of
  // "<tool_call>", an open call, a JSON output) is held back until it is decided; a call's
  // arguments stream as they come once its name is known.
  std::vector<ToolStreamEvent> feed(std::string_view text);
  // The output ended: an unclosed call that parses still counts; anything else held back
  // is content.
  std::vector<ToolStreamEvent> finish();
  int calls() const { return calls_; }  // calls that parsed

 private:
  void emit_text(std::string text, std::vector<ToolStreamEvent>& out);
  // A call's whole text: the rest of its arguments (or all of it when it did not stream);
  // false if it does not parse (a started call is then marked failed).
  bool emit_call(std::string_view body, std::vector<ToolStreamEvent>& out);
  struct Streamed {  // what was sent of a call while it streamed
    bool started = false;
    int index = -1;
    std::string name, args;
  };
  bool close_call(std::optional<ParsedToolCall> c, std::vector<ToolStreamEvent>& out);
  Streamed take_streamed();  // the oldest scanned object's, else pop_current()
  Streamed pop_current();    // the call streaming now (its scan reset for the next)
  void stream_call(std::string_view body_so_far, std::vector<ToolStreamEvent>& out);
  void feed_hermes(std::vector<ToolStreamEvent>& out);
  void feed_llama3(std::vector<ToolStreamEvent>& out);

  ToolParserKind kind_;
  std::string buf_;         // held back
  bool in_call_ = false;    // hermes: inside <tool_call>
  enum class Mode { Undecided, Text, Json } mode_ = Mode::Undecided;  // llama3_json
  std::string pending_ws_;  // whitespace-only text, dropped when it only separates calls
  int calls_ = 0;
  int next_index_ = 0;      // index of the next call (started calls that failed keep theirs)
  int calls_at_text_ = 0;   // calls_ when content was last emitted
  // The call streaming now: its scanner, how much of it was scanned and sent.
  ToolCallScanner scan_;
  size_t scanned_ = 0, args_sent_ = 0;
  bool started_ = false;
  int index_ = -1;
  // llama3_json: where the next object is looked for, where the current one began, and
  // the objects already scanned (their calls are decided at the end).
  size_t cursor_ = 0, obj_begin_ = std::string::npos;
  std::vector<Streamed> done_;
};

struct ToolParseResult {
  std::optional<std::string> content;  // nullopt: no text outside the calls
  std::vector<ParsedToolCall> calls;
};
// Puts a stream's events back together: content, and each call with its pieces of
// arguments concatenated (a call marked failed dropped).
class ToolCallCollector {
 public:
  void add(std::vector<ToolStreamEvent> events);
  ToolParseResult result() const;  // content trimmed when there are calls

 private:
  std::string content_;
  std::vector<ParsedToolCall> calls_;
  std::vector<int> index_;  // calls_[i]'s index in the stream
};

// A complete output at once (non-streaming responses): the stream's events, collected.
ToolParseResult parse_tool_calls(ToolParserKind kind, std::string_view text);

std::string new_tool_call_id();

}  // namespace troupe
