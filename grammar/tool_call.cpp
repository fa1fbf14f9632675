#include "grammar/tool_call.h"

#include <boost/json.hpp>

#include "core/error.h"
#include "grammar/json_schema.h"
#include "grammar/regex.h"

namespace troupe::grammar {

namespace json = boost::json;

namespace {

// The call object as one JSON schema: anyOf over the functions, each {name: const, <args
// key>: parameters}. Parameter schemas' $defs move to the top (where their "#/$defs/.."
// refs resolve); two functions defining the same name differently cannot share that space.
json::object call_schema(const std::vector<ToolFunction>& functions, const char* args_key) {
  json::array branches;
  json::object defs;
  for (const auto& f : functions) {
    json::value params = json::object{{"type", "object"}};
    if (!f.parameters_json.empty()) {
      boost::system::error_code ec;
      params = json::parse(f.parameters_json, ec);
      if (ec) fail("function '{}': parameters are not valid JSON", f.name);
    }
    if (params.is_object()) {
      for (const char* section : {"$defs", "definitions"}) {
        json::object& p = params.as_object();
        const json::value* d = p.if_contains(section);
        if (!d) continue;
        if (!d->is_object()) fail("function '{}': '{}' must be an object", f.name, section);
        for (const auto& kv : d->as_object()) {
          // Both spellings resolve through "$defs" of the combined schema.
          const json::value* prev = defs.if_contains(kv.key());
          if (prev && *prev != kv.value())
            fail("function '{}': $defs name '{}' is also defined differently by another function", f.name,
                 std::string_view(kv.key()));
          defs[kv.key()] = kv.value();
        }
        p.erase(section);
      }
    }
    json::object props;
    props["name"] = json::object{{"const", f.name}};
    props[args_key] = std::move(params);
    branches.push_back(json::object{{"type", "object"},
                                    {"properties", std::move(props)},
                                    {"required", json::array{"name", args_key}},
                                    {"additionalProperties", false}});
  }
  json::object schema;
  if (branches.size() == 1) schema = std::move(branches[0].as_object());
  else schema["anyOf"] = std::move(branches);
  if (!defs.empty()) {
    schema["$defs"] = defs;
    schema["definitions"] = std::move(defs);
  }
  return schema;
}

}  // namespace

std::string tool_call_gbnf(ToolCallFormat format, const std::vector<ToolFunction>& functions, bool parallel) {
  if (functions.empty()) fail("tool call grammar: no functions");
  // Each schema alone first, so an error names the function it comes from.
  for (const auto& f : functions) {
    if (f.parameters_json.empty()) continue;
    try {
      json_schema_to_gbnf(f.parameters_json);
    } catch (const Error& e) {
      fail("function '{}': {}", f.name, e.what());
    }
  }
  const bool hermes = format == ToolCallFormat::Hermes;
  const std::string schema = json::serialize(call_schema(functions, hermes ? "arguments" : "parameters"));
  std::string g = json_schema_to_gbnf(schema);
  // The schema's root becomes the `call` rule under the format's own root.
  const std::string kRoot = "root ::= ";
  if (g.rfind(kRoot, 0) != 0) fail("tool call grammar: unexpected schema grammar");
  g = "tool-call-object ::= " + g.substr(kRoot.size());
  std::string root;
  if (hermes) {
    // As Qwen's and Hermes' templates show it: the tags on their own lines.
    root = "tool-call ::= " + gbnf_literal("<tool_call>\n") + " tool-call-object " + gbnf_literal("\n</tool_call>") +
           "\nroot ::= tool-call" + (parallel ? " (" + gbnf_literal("\n") + " tool-call)*" : "") + "\n";
  } else {
    root = "root ::= tool-call-object" + (parallel ? " (" + gbnf_literal("; ") + " tool-call-object)*" : "") + "\n";
  }
  return root + g;
}

std::string tool_call_required_bytes(ToolCallFormat format) {
  return format == ToolCallFormat::Hermes ? "<tool_call>\n{\"name\":}/" : "{\"name\":}";
}

}  // namespace troupe::grammar
