#include "chat/tool_parser.h"

#include <boost/json.hpp>

#include <algorithm>
#include <random>

namespace troupe {

namespace json = boost::json;

namespace {

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";

bool all_space(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && all_space(s.substr(0, 1))) s.remove_prefix(1);
  while (!s.empty() && all_space(s.substr(s.size() - 1))) s.remove_suffix(1);
  return s;
}

// Length of the longest suffix of `s` that is a proper prefix of `tag`: text that may yet
// turn into the tag, so it cannot be sent as content.
size_t partial_tag(std::string_view s, std::string_view tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  return 0;
}

// {"name": string, "arguments" | "parameters": object or JSON string} -> a call.
std::optional<ParsedToolCall> call_of(const json::value& v) {
  if (!v.is_object()) return std::nullopt;
  const json::object& o = v.get_object();
  const json::value* name = o.if_contains("name");
  if (!name || !name->is_string() || name->get_string().empty()) return std::nullopt;
  const json::value* args = o.if_contains("arguments");
  if (!args) args = o.if_contains("parameters");
  ParsedToolCall c;
  c.name = std::string(name->get_string());
  if (!args || args->is_null()) {
    c.arguments = "{}";
  } else if (args->is_object()) {
    c.arguments = json::serialize(*args);
  } else if (args->is_string()) {  // some models write the arguments already as a JSON string
    boost::system::error_code ec;
    const json::value inner = json::parse(args->get_string(), ec);
    if (ec || !inner.is_object()) return std::nullopt;
    c.arguments = json::serialize(inner);
  } else {
    return std::nullopt;
  }
  return c;
}

// One or more JSON objects separated by ';' (and whitespace): llama3_json's output.
std::optional<std::vector<ParsedToolCall>> calls_of_json_list(std::string_view text) {
  std::vector<ParsedToolCall> out;
  text = trim(text);
  while (!text.empty()) {
    json::parser p;
    boost::system::error_code ec;
    const size_t used = p.write_some(text.data(), text.size(), ec);
    if (ec) return std::nullopt;
    json::value v;
    try {
      v = p.release();  // throws when the text ended inside the value
    } catch (const std::exception&) {
      return std::nullopt;
    }
    auto c = call_of(v);
    if (!c) return std::nullopt;
    out.push_back(std::move(*c));
    text = trim(text.substr(used));
    if (text.empty()) break;
    if (text.front() != ';') return std::nullopt;
    text = trim(text.substr(1));
  }
  if (out.empty()) return std::nullopt;
  return out;
}

}  // namespace

std::optional<ToolParserKind> tool_parser_kind(std::string_view name) {
  if (name == "none" || name.empty()) return ToolParserKind::None;
  if (name == "hermes") return ToolParserKind::Hermes;
  if (name == "llama3_json") return ToolParserKind::Llama3Json;
  return std::nullopt;
}

std::string new_tool_call_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += chars[rng() % 62];
  return id;
}

void ToolCallParser::emit_text(std::string text, std::vector<ToolStreamEvent>& out) {
  if (text.empty()) return;
  // Whitespace alone waits: between or after calls it is only layout ("\n" between
  // <tool_call> blocks), before content it is content.
  if (all_space(text)) {
    pending_ws_ += text;
    return;
  }
  if (calls_ == calls_at_text_) text = pending_ws_ + text;
  pending_ws_.clear();
  calls_at_text_ = calls_;
  if (!out.empty() && out.back().call < 0) out.back().text += text;
  else out.push_back({std::move(text), -1, {}});
}

bool ToolCallParser::emit_call(std::string_view body, std::vector<ToolStreamEvent>& out) {
  boost::system::error_code ec;
  const json::value v = json::parse(trim(body), ec);
  if (ec) return false;
  auto c = call_of(v);
  if (!c) return false;
  c->id = new_tool_call_id();
  pending_ws_.clear();
  out.push_back({"", calls_++, std::move(*c)});
  return true;
}

void ToolCallParser::feed_hermes(std::vector<ToolStreamEvent>& out) {
  while (!buf_.empty()) {
    if (!in_call_) {
      const size_t at = buf_.find(kOpen);
      if (at == std::string::npos) {
        const size_t keep = partial_tag(buf_, kOpen);
        emit_text(buf_.substr(0, buf_.size() - keep), out);
        buf_.erase(0, buf_.size() - keep);
        return;
      }
      emit_text(buf_.substr(0, at), out);
      buf_.erase(0, at + kOpen.size());
      in_call_ = true;
    } else {
      const size_t at = buf_.find(kClose);
      if (at == std::string::npos) return;
      const std::string body = buf_.substr(0, at);
      if (!emit_call(body, out)) emit_text(std::string(kOpen) + body + std::string(kClose), out);
      buf_.erase(0, at + kClose.size());
      in_call_ = false;
    }
  }
}

void ToolCallParser::feed_llama3(std::vector<ToolStreamEvent>& out) {
  if (mode_ == Mode::Undecided) {
    std::string_view s = trim(buf_);
    if (s.empty()) return;
    if (s.size() < kPythonTag.size() && kPythonTag.substr(0, s.size()) == s) return;  // may be the tag
    if (s.substr(0, kPythonTag.size()) == kPythonTag) s = trim(s.substr(kPythonTag.size()));
    if (s.empty()) return;
    mode_ = s.front() == '{' ? Mode::Json : Mode::Text;
  }
  if (mode_ == Mode::Text) {
    emit_text(std::move(buf_), out);
    buf_.clear();
  }
  // Json: the whole output is needed to know it is a call (or a list of them).
}

std::vector<ToolStreamEvent> ToolCallParser::feed(std::string_view text) {
  std::vector<ToolStreamEvent> out;
  if (kind_ == ToolParserKind::None) {
    if (!text.empty()) out.push_back({std::string(text), -1, {}});
    return out;
  }
  buf_ += text;
  if (kind_ == ToolParserKind::Hermes) feed_hermes(out);
  else feed_llama3(out);
  return out;
}

std::vector<ToolStreamEvent> ToolCallParser::finish() {
  std::vector<ToolStreamEvent> out;
  if (kind_ == ToolParserKind::Hermes) {
    // An unclosed call (the model stopped, or a stop string cut the tag) that parses counts.
    if (in_call_ && !emit_call(buf_, out)) emit_text(std::string(kOpen) + buf_, out);
    else if (!in_call_) emit_text(buf_, out);
    in_call_ = false;
  } else if (kind_ == ToolParserKind::Llama3Json && !buf_.empty()) {
    std::string_view s = trim(buf_);
    if (s.substr(0, kPythonTag.size()) == kPythonTag) s = s.substr(kPythonTag.size());
    std::optional<std::vector<ParsedToolCall>> calls;
    if (mode_ != Mode::Text) calls = calls_of_json_list(s);
    if (calls) {
      for (auto& c : *calls) {
        c.id = new_tool_call_id();
        out.push_back({"", calls_++, std::move(c)});
      }
    } else {
      emit_text(buf_, out);
    }
  }
  buf_.clear();
  // Trailing whitespace is content only when there is no call to separate it from.
  if (calls_ == 0 && !pending_ws_.empty()) {
    if (!out.empty() && out.back().call < 0) out.back().text += pending_ws_;
    else out.push_back({pending_ws_, -1, {}});
  }
  pending_ws_.clear();
  return out;
}

ToolParseResult parse_tool_calls(ToolParserKind kind, std::string_view text) {
  ToolCallParser p(kind);
  std::string content;
  ToolParseResult r;
  auto take = [&](std::vector<ToolStreamEvent> evs) {
    for (auto& e : evs) {
      if (e.call >= 0) r.calls.push_back(std::move(e.tool));
      else content += e.text;
    }
  };
  take(p.feed(text));
  take(p.finish());
  if (!r.calls.empty()) content = std::string(trim(content));
  if (!content.empty()) r.content = std::move(content);
  return r;
}

}  // namespace troupe
