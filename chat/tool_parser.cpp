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

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// {"name": string, "arguments" | "parameters": object or JSON string} -> a call. `raw` is
// the call's text: an object of arguments is kept as written (whitespace outside strings
// removed), which is also what streams (ToolCallScanner), so the pieces add up to it.
std::optional<ParsedToolCall> call_of(const json::value& v, std::string_view raw) {
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
    ToolCallScanner scan;
    scan.feed(raw);
    c.arguments = scan.args_done() ? scan.args() : json::serialize(*args);
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
    auto c = call_of(v, text.substr(0, used));
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

void ToolCallScanner::feed(std::string_view text) {
  for (char c : text) {
    if (object_done_) return;
    ++consumed_;
    if (capturing_) {  // inside the arguments object: copy it, minus layout
      if (in_str_) {
        args_ += c;
        if (esc_) esc_ = false;
        else if (c == '\\') esc_ = true;
        else if (c == '"') in_str_ = false;
        continue;
      }
      if (is_space(c)) continue;
      args_ += c;
      if (c == '"') in_str_ = true;
      else if (c == '{' || c == '[') ++args_depth_;
      else if ((c == '}' || c == ']') && --args_depth_ == 0) capturing_ = false, args_done_ = true;
      continue;
    }
    if (in_str_) {
      if (esc_) esc_ = false;
      else if (c == '\\') esc_ = true;
      else if (c == '"') {
        in_str_ = false;
        if (depth_ == 1 && expect_value_) {  // a string value of the call object
          if (key_ == "name" && !name_) {
            boost::system::error_code ec;
            const json::value v = json::parse("\"" + str_ + "\"", ec);
            if (!ec && v.is_string() && !v.get_string().empty()) name_ = std::string(v.get_string());
          }
          expect_value_ = false;
        } else if (depth_ == 1) {
          key_ = str_;
        }
        continue;
      }
      str_ += c;
      continue;
    }
    switch (c) {
      case '"':
        in_str_ = true;
        str_.clear();
        break;
      case '{':
      case '[':
        if (depth_ == 1 && expect_value_ && c == '{' && !args_started_ && (key_ == "arguments" || key_ == "parameters")) {
          capturing_ = args_started_ = true;
          args_depth_ = 1;
          args_ = "{";
        } else {
          ++depth_;
        }
        expect_value_ = false;
        break;
      case '}':
      case ']':
        if (--depth_ == 0) object_done_ = true;
        break;
      case ':':
        if (depth_ == 1) expect_value_ = true;
        break;
      case ',':
        if (depth_ == 1) expect_value_ = false, key_.clear();
        break;
      default:
        if (depth_ == 1 && expect_value_ && !is_space(c)) expect_value_ = false;  // a number or literal
    }
  }
}

// Sends what the call streaming now has ready: its start once the name and an object of
// arguments are known, then the arguments written since.
void ToolCallParser::stream_call(std::string_view body, std::vector<ToolStreamEvent>& out) {
  if (body.size() > scanned_) {
    scan_.feed(body.substr(scanned_));
    scanned_ = body.size();
  }
  if (!scan_.name() || !scan_.args_started()) return;
  if (!started_) {
    started_ = true;
    index_ = next_index_++;
    pending_ws_.clear();
    out.push_back({"", index_, {new_tool_call_id(), *scan_.name(), ""}, true});
  }
  if (scan_.args().size() > args_sent_) {
    out.push_back({scan_.args().substr(args_sent_), index_, {}, false});
    args_sent_ = scan_.args().size();
  }
}

bool ToolCallParser::emit_call(std::string_view body, std::vector<ToolStreamEvent>& out) {
  boost::system::error_code ec;
  const json::value v = json::parse(trim(body), ec);
  std::optional<ParsedToolCall> c;
  if (!ec) c = call_of(v, body);
  return close_call(std::move(c), out);
}

bool ToolCallParser::close_call(std::optional<ParsedToolCall> c, std::vector<ToolStreamEvent>& out) {
  Streamed st = take_streamed();
  // The pieces sent are a prefix of the arguments whenever the call parses (the same scan
  // made both); anything else counts as a call that did not parse.
  if (c && st.started && (c->name != st.name || c->arguments.compare(0, st.args.size(), st.args) != 0)) c.reset();
  if (!c) {
    if (st.started) out.push_back({"", st.index, {}, false, true});
    return false;
  }
  ++calls_;
  pending_ws_.clear();
  if (st.started) {
    if (c->arguments.size() > st.args.size()) out.push_back({c->arguments.substr(st.args.size()), st.index, {}, false});
    return true;
  }
  const int index = next_index_++;
  c->id = new_tool_call_id();
  std::string args = std::move(c->arguments);
  out.push_back({"", index, std::move(*c), true});
  if (!args.empty()) out.push_back({std::move(args), index, {}, false});
  return true;
}

ToolCallParser::Streamed ToolCallParser::take_streamed() {
  if (done_.empty()) return pop_current();
  Streamed st = std::move(done_.front());
  done_.erase(done_.begin());
  return st;
}

ToolCallParser::Streamed ToolCallParser::pop_current() {
  Streamed st;
  st.started = started_;
  if (started_) {
    st.index = index_;
    st.name = *scan_.name();
    st.args = scan_.args().substr(0, args_sent_);
  }
  scan_ = ToolCallScanner();
  scanned_ = args_sent_ = 0;
  started_ = false;
  return st;
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
      if (at == std::string::npos) {
        stream_call(buf_, out);
        return;
      }
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
    cursor_ = size_t(s.data() - buf_.data());
  }
  if (mode_ == Mode::Text) {
    emit_text(std::move(buf_), out);
    buf_.clear();
    return;
  }
  // Json: the whole output is needed to know it is a list of calls (finish() decides), but
  // each object's arguments stream as they come: one object after another, ';' between.
  for (;;) {
    if (obj_begin_ == std::string::npos) {
      while (cursor_ < buf_.size() && (is_space(buf_[cursor_]) || buf_[cursor_] == ';')) ++cursor_;
      if (cursor_ >= buf_.size() || buf_[cursor_] != '{') return;
      obj_begin_ = cursor_;
    }
    stream_call(std::string_view(buf_).substr(obj_begin_), out);
    if (!scan_.object_done()) return;
    cursor_ = obj_begin_ + scan_.consumed();
    obj_begin_ = std::string::npos;
    done_.push_back(pop_current());
  }
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
    if (in_call_) stream_call(buf_, out);
    // An unclosed call (the model stopped, or a stop string cut the tag) that parses counts.
    if (in_call_ && !emit_call(buf_, out)) emit_text(std::string(kOpen) + buf_, out);
    else if (!in_call_) emit_text(buf_, out);
    in_call_ = false;
  } else if (kind_ == ToolParserKind::Llama3Json && !buf_.empty()) {
    std::string_view s = trim(buf_);
    if (s.substr(0, kPythonTag.size()) == kPythonTag) s = s.substr(kPythonTag.size());
    std::optional<std::vector<ParsedToolCall>> calls;
    if (mode_ != Mode::Text) calls = calls_of_json_list(s);
    if (obj_begin_ != std::string::npos) done_.push_back(pop_current());  // the last object, unfinished
    // The list parses: each call against what streamed of it (in order) before any is sent.
    for (size_t i = 0; calls && i < done_.size(); ++i) {
      const Streamed& st = done_[i];
      if (st.started && (i >= calls->size() || (*calls)[i].name != st.name ||
                         (*calls)[i].arguments.compare(0, st.args.size(), st.args) != 0))
        calls.reset();
    }
    if (calls) {
      for (auto& c : *calls) close_call(std::move(c), out);
    } else {
      for (const Streamed& st : done_)
        if (st.started) out.push_back({"", st.index, {}, false, true});
      emit_text(buf_, out);
    }
    done_.clear();
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

void ToolCallCollector::add(std::vector<ToolStreamEvent> events) {
  for (auto& e : events) {
    if (e.call < 0) {
      content_ += e.text;
      continue;
    }
    const auto at = std::find(index_.begin(), index_.end(), e.call);
    if (e.start) {
      index_.push_back(e.call);
      calls_.push_back(std::move(e.tool));
      calls_.back().arguments = std::move(e.text);
    } else if (at != index_.end() && e.failed) {
      calls_.erase(calls_.begin() + (at - index_.begin()));
      index_.erase(at);
    } else if (at != index_.end()) {
      calls_[size_t(at - index_.begin())].arguments += e.text;
    }
  }
}

ToolParseResult ToolCallCollector::result() const {
  ToolParseResult r;
  r.calls = calls_;
  std::string content = r.calls.empty() ? content_ : std::string(trim(content_));
  if (!content.empty()) r.content = std::move(content);
  return r;
}

ToolParseResult parse_tool_calls(ToolParserKind kind, std::string_view text) {
  ToolCallParser p(kind);
  ToolCallCollector c;
  c.add(p.feed(text));
  c.add(p.finish());
  return c.result();
}

}  // namespace troupe
