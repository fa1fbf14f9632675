#pragma once
// Grammars that force a tool call (OpenAI tool_choice "required" or a named function): the
// output is a call in the served model's tool-call format, naming one of the allowed
// functions, with arguments that match that function's parameter schema. Built on the JSON
// Schema compiler: the call object is itself a schema (one anyOf branch per function, the
// name a const), so arguments get the same coverage and compact JSON as response_format.
#include <string>
#include <vector>

namespace troupe::grammar {

enum class ToolCallFormat {
  Hermes,      // <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call> (Qwen, Hermes)
  Llama3Json,  // {"name": ..., "parameters": {...}} (Llama 3.1+ JSON tool calling)
};

struct ToolFunction {
  std::string name;
  std::string parameters_json;  // a JSON schema; empty: any JSON object
};

// GBNF for one call (or, with `parallel`, one or more: hermes blocks separated by a
// newline, llama3_json objects separated by "; "). Throws troupe::Error naming the
// function whose parameter schema does not compile, or on conflicting $defs names.
std::string tool_call_gbnf(ToolCallFormat format, const std::vector<ToolFunction>& functions, bool parallel);

// The bytes a forced call must contain whatever the arguments are (tags, braces, quotes):
// a vocabulary with no token holding one of them cannot express the constraint.
std::string tool_call_required_bytes(ToolCallFormat format);

}  // namespace troupe::grammar
