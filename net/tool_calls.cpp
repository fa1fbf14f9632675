#include "net/tool_calls.h"

#include <boost/json.hpp>

#include <array>
#include <map>
#include <mutex>
#include <set>

#include "core/error.h"
#include "grammar/tool_call.h"
#include "net/api.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

namespace json = boost::json;

namespace {

const json::value* field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && !v->is_null() ? v : nullptr;
}

bool valid_function_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

// Which bytes some ordinary token of the vocabulary holds (SentencePiece byte-fallback
// tokens count as their byte), per tokenizer: a forced call needs every byte of its tags.
std::array<bool, 256> vocabulary_bytes(const Tokenizer& tok) {
  static std::mutex mu;
  // Keyed by address and size: a server has one tokenizer for its life, but tests load
  // several, and a freed one's address may be reused by the next.
  static std::map<std::pair<const Tokenizer*, int32_t>, std::array<bool, 256>> cache;
  const auto key = std::make_pair(&tok, tok.vocab_size());
  std::lock_guard lock(mu);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  std::array<bool, 256> have{};
  for (int32_t i = 0; i < tok.vocab_size(); ++i) {
    if (tok.is_special(i)) continue;
    for (unsigned char c : tok.token_bytes(i)) have[c] = true;
  }
  if (cache.size() > 16) cache.clear();
  return cache[key] = have;
}

std::string printable(unsigned char c) {
  if (c == '\n') return "\\n";
  return std::string(1, char(c));
}

}  // namespace

const json::value* template_tools(const json::object& o) {
  const json::value* t = field(o, "tools");
  if (!t) return nullptr;
  if (!t->is_array()) throw bad_request("'tools' must be an array, got " + json::serialize(*t).substr(0, 40), "tools");
  std::set<std::string> names;
  const auto& a = t->get_array();
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string at = "tools[" + std::to_string(i) + "]";
    if (!a[i].is_object()) throw bad_request(at + " must be an object", at);
    const json::object& tool = a[i].get_object();
    const json::value* type = tool.if_contains("type");
    if (!type || *type != json::value("function"))
      throw bad_request(at + ".type must be \"function\" (the only tool type)", at + ".type");
    const json::value* fn = tool.if_contains("function");
    if (!fn || !fn->is_object()) throw bad_request(at + ".function must be an object", at + ".function");
    const json::object& f = fn->get_object();
    const json::value* name = f.if_contains("name");
    if (!name || !name->is_string() || !valid_function_name(name->get_string()))
      throw bad_request(at + ".function.name must be a string of 1 to 64 letters, digits, '_' or '-'",
                        at + ".function.name");
    if (!names.emplace(name->get_string()).second)
      throw bad_request(at + ".function.name '" + std::string(name->get_string()) + "' is given twice",
                        at + ".function.name");
    if (const json::value* d = field(f, "description"); d && !d->is_string())
      throw bad_request(at + ".function.description must be a string", at + ".function.description");
    if (const json::value* p = field(f, "parameters"); p && !p->is_object())
      throw bad_request(at + ".function.parameters must be a JSON schema object", at + ".function.parameters");
    if (const json::value* s = field(f, "strict"); s && !s->is_bool())
      throw bad_request(at + ".function.strict must be a boolean", at + ".function.strict");
  }
  return t;
}

ToolRequest parse_tool_choice(const json::object& o, const ModelInfo& m) {
  ToolRequest r;
  const json::value* tools = template_tools(o);
  const bool have_tools = tools && !tools->get_array().empty();
  bool parallel = true;
  if (const json::value* p = field(o, "parallel_tool_calls")) {
    if (!p->is_bool()) throw bad_request("'parallel_tool_calls' must be a boolean", "parallel_tool_calls");
    parallel = p->get_bool();
  }
  const json::value* choice = field(o, "tool_choice");
  std::string mode = have_tools ? "auto" : "none";
  std::string named;
  if (choice) {
    if (choice->is_string()) {
      mode = std::string(choice->get_string());
      if (mode != "none" && mode != "auto" && mode != "required")
        throw bad_request("'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                          "\"function\": {\"name\": ...}}, got \"" + mode + "\"", "tool_choice");
    } else if (choice->is_object()) {
      const json::object& c = choice->get_object();
      const json::value* type = c.if_contains("type");
      const json::value* fn = c.if_contains("function");
      const json::value* name = fn && fn->is_object() ? fn->get_object().if_contains("name") : nullptr;
      if (!type || *type != json::value("function") || !name || !name->is_string())
        throw bad_request("'tool_choice' naming a function must be {\"type\": \"function\", \"function\": "
                          "{\"name\": ...}}", "tool_choice");
      mode = "named";
      named = std::string(name->get_string());
    } else {
      throw bad_request("'tool_choice' must be a string or an object", "tool_choice");
    }
    if (mode != "none" && !have_tools)
      throw bad_request("'tool_choice' is only allowed when 'tools' are given", "tool_choice");
  }
  if (mode == "none") return r;
  r.parser = m.tool_parser;
  if (mode == "auto") return r;

  // required / named: a grammar in the parser's format.
  std::vector<grammar::ToolFunction> fns;
  for (const auto& t : tools->get_array()) {
    const json::object& f = t.at("function").get_object();
    const std::string name(f.at("name").get_string());
    if (mode == "named" && name != named) continue;
    const json::value* p = field(f, "parameters");
    fns.push_back({name, p ? json::serialize(*p) : ""});
  }
  if (fns.empty())
    throw bad_request("'tool_choice' names function '" + named + "', which is not in 'tools'", "tool_choice");
  if (m.tool_parser == ToolParserKind::None)
    throw bad_request("'tool_choice' " + (mode == "named" ? "naming a function" : std::string("\"required\"")) +
                          " needs the server started with --tool-call-parser (hermes or llama3_json): the call "
                          "is forced in that parser's format",
                      "tool_choice");
  const auto format = m.tool_parser == ToolParserKind::Hermes ? grammar::ToolCallFormat::Hermes
                                                               : grammar::ToolCallFormat::Llama3Json;
  if (m.tokenizer) {
    const auto have = vocabulary_bytes(*m.tokenizer);
    for (unsigned char c : grammar::tool_call_required_bytes(format))
      if (!have[c])
        throw bad_request("the model's vocabulary cannot express this constraint: a forced tool call needs '" +
                              printable(c) + "', and no token of this model contains it",
                          "tool_choice");
  }
  try {
    r.constraint = {"gbnf", grammar::tool_call_gbnf(format, fns, parallel && mode == "required")};
    grammar::compile(r.constraint);  // cached; the engine compiles the same text again for free
  } catch (const Error& e) {
    throw bad_request(std::string("'tools': ") + e.what(), "tools");
  }
  return r;
}

void tool_call_arguments_for_template(json::array& messages) {
  for (auto& m : messages) {
    json::value* calls = m.as_object().if_contains("tool_calls");
    if (!calls || !calls->is_array()) continue;
    for (auto& c : calls->get_array()) {
      json::value* fn = c.is_object() ? c.get_object().if_contains("function") : nullptr;
      json::value* args = fn && fn->is_object() ? fn->get_object().if_contains("arguments") : nullptr;
      if (!args || !args->is_string()) continue;
      boost::system::error_code ec;
      json::value v = json::parse(args->get_string(), ec);
      if (!ec && v.is_object()) *args = std::move(v);
    }
  }
}

namespace {

json::object call_json(const ParsedToolCall& c) {
  return json::object{{"id", c.id},
                      {"type", "function"},
                      {"function", json::object{{"name", c.name}, {"arguments", c.arguments}}}};
}

}  // namespace

std::string with_tool_calls(const std::string& body, ToolParserKind parser) {
  json::value v = json::parse(body);
  for (auto& ch : v.at("choices").as_array()) {
    json::object& c = ch.as_object();
    json::object& msg = c.at("message").as_object();
    const json::value& text = msg.at("content");
    if (!text.is_string()) continue;
    ToolParseResult r = parse_tool_calls(parser, text.get_string());
    if (r.calls.empty()) continue;
    json::array calls;
    for (const auto& tc : r.calls) calls.push_back(call_json(tc));
    msg["content"] = r.content ? json::value(*r.content) : json::value(nullptr);
    msg["tool_calls"] = std::move(calls);
    if (c["finish_reason"] == json::value("stop")) c["finish_reason"] = "tool_calls";
  }
  return json::serialize(v);
}

std::optional<std::string> tool_call_chunk(const std::string& id, int64_t created, const std::string& model,
                                           int choice, const ToolStreamEvent& e, bool role) {
  if (e.call < 0 || e.failed) return std::nullopt;  // a failed call's text follows as content
  json::object call{{"index", e.call}};
  if (e.start) {
    call["id"] = e.tool.id;
    call["type"] = "function";
    call["function"] = json::object{{"name", e.tool.name}, {"arguments", e.text}};
  } else {
    call["function"] = json::object{{"arguments", e.text}};
  }
  json::object delta;
  if (role) {
    delta["role"] = "assistant";
    delta["content"] = nullptr;
  }
  delta["tool_calls"] = json::array{std::move(call)};
  json::object c{{"index", choice}, {"delta", std::move(delta)}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
  return json::serialize(json::object{{"id", id},
                                      {"object", "chat.completion.chunk"},
                                      {"created", created},
                                      {"model", model},
                                      {"choices", json::array{std::move(c)}}});
}

}  // namespace troupe
