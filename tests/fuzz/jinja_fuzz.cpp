// Fuzz target: the Jinja subset of chat templates (chat/jinja_*.cpp): the input is a template,
// parsed and, when it parses, rendered with a chat conversation as chat_template.cpp passes
// it (messages with tool calls, tools, add_generation_prompt, bos/eos, a client's
// chat_template_kwargs). Syntax and render failures must be TemplateError, never a crash.
#include <boost/json.hpp>

#include "chat/jinja.h"
#include "fuzz_support.h"

namespace {

troupe::jinja::Dict conversation_context() {
  static const boost::json::value vars = boost::json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are terse."},
      {"role": "user", "content": "Weather in Paris? caf\u00e9 \ud83d\ude42"},
      {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2.5, null, true]}}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 21}"},
      {"role": "assistant", "content": "21 degrees."},
      {"role": "user", "content": ""}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    "add_generation_prompt": true, "enable_thinking": false, "bos_token": "<s>", "eos_token": "</s>"
  })");
  troupe::jinja::Dict ctx;
  for (const auto& kv : vars.get_object()) ctx.set(std::string(kv.key()), troupe::jinja::from_json(kv.value()));
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const troupe::jinja::Dict ctx = conversation_context();
  try {
    const troupe::jinja::Template t(troupe::fuzz::as_text(data, size));
    (void)t.render(ctx);
    (void)t.render(troupe::jinja::Dict{});  // every variable undefined
  } catch (const troupe::jinja::TemplateError&) {
  }
  return 0;
}
