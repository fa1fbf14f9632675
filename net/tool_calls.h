#pragma once
// OpenAI tool calling on /v1/chat/completions: `tools`, `tool_choice` and
// `parallel_tool_calls` in, `message.tool_calls` (and `delta.tool_calls`) out.
//
// Tools reach the chat template as its `tools` variable (Hugging Face's convention: the list
// of tool objects as the client sent them). What comes back is parsed by the server's
// --tool-call-parser (chat/tool_parser.h); with none, tools are only rendered and the output
// is plain content. `tool_choice` "required" or a named function is enforced with a grammar
// in the parser's format (grammar/tool_call.h), so the call always parses and its arguments
// match the function's parameter schema; without a parser that is a 400 (there is no format
// to force, nor anything to read the call back).
#include <boost/json/fwd.hpp>
#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <vector>

#include "chat/tool_parser.h"
#include "grammar/constraint.h"

namespace troupe {

struct ModelInfo;

struct ToolRequest {
  ToolParserKind parser = ToolParserKind::None;  // parse this request's output
  grammar::ConstraintSpec constraint;            // required / named: the forced call
};

// The request's tools for the template: the validated `tools` array (400 naming the field),
// or nullptr when absent.
const boost::json::value* template_tools(const boost::json::object& body);
// tool_choice and parallel_tool_calls against the tools and the served model's parser.
ToolRequest parse_tool_choice(const boost::json::object& body, const ModelInfo& m);
// Assistant messages' tool_calls carry `function.arguments` as a JSON string (OpenAI's
// API); Hugging Face templates iterate it as a mapping (Qwen3 writes `arguments | tojson`),
// so, as vLLM does, arguments that parse to an object are given to the template as one.
void tool_call_arguments_for_template(boost::json::array& messages);

// A non-streaming chat completion body with each choice's content parsed for tool calls:
// message.tool_calls, content the text outside them (null when none), finish_reason
// "tool_calls" when the model stopped after calling.
std::string with_tool_calls(const std::string& body, ToolParserKind parser);
// The SSE chunk of a piece of a streamed call (OpenAI's shape): its start names it (index,
// id, type, function.name, function.arguments the first piece, often ""), later pieces carry
// only index and a piece of function.arguments. None for a call marked failed.
std::optional<std::string> tool_call_chunk(const std::string& id, int64_t created, const std::string& model,
                                           int choice, const ToolStreamEvent& e, bool role);

}  // namespace troupe
