// jinja::Value: truthiness, Python-style str()/repr(), json.dumps-compatible tojson.
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "chat/jinja.h"
#include "tokenizer/unicode.h"

namespace troupe::jinja {

std::string to_string(SrcPos at) {
  return "line " + std::to_string(at.line) + ", column " + std::to_string(at.col);
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Dict::set(std::string key, Value v) {
  for (auto& [k, old] : items) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(v));
}

bool Value::truthy() const {
  if (is_undefined() || is_none()) return false;
  if (is_bool()) return as_bool();
  if (is_int()) return as_int() != 0;
  if (is_float()) return as_number() != 0.0;
  if (is_string()) return !as_string().empty();
  if (is_list()) return !as_list().empty();
  if (is_callable()) return true;
  return !as_dict().items.empty();
}

namespace {

// Python's float repr: shortest round-trip digits, always with a '.' or exponent.
std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[32];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string s = buf;
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

std::string quote_py(const std::string& s) {
  // Python prefers single quotes unless the string contains one and no double quote.
  const bool dq = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = dq ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    if (c == q || c == '\\') out += '\\';
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  out += q;
  return out;
}

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  char buf[16];
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20 || (ensure_ascii && c == 0x7f)) {
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else if (ensure_ascii && c >= 0x80) {
          // Python escapes each code point, beyond the BMP as a UTF-16 surrogate pair.
          char32_t cp = unicode::next_cp(s, i);
          --i;  // next_cp moved past the character; the loop's ++i does that too
          if (cp >= 0x10000) {
            cp -= 0x10000;
            std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", unsigned(0xD800 + (cp >> 10)), unsigned(0xDC00 + (cp & 0x3FF)));
          } else {
            std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(cp));
          }
          out += buf;
        } else {
          out += char(c);  // ensure_ascii=False: UTF-8 passes through
        }
    }
  }
  out += '"';
}

// A namespace can be made to contain itself ({% set ns.me = ns %}); cap the depth so
// printing it is an error instead of a stack overflow.
constexpr int kMaxNesting = 100;

// Recursion depth of repr() and ==, per thread.
thread_local int nesting = 0;
struct NestingGuard {
  NestingGuard() {
    if (nesting >= kMaxNesting) throw TemplateError("value nested too deeply");
    ++nesting;
  }
  ~NestingGuard() { --nesting; }
};

void to_json_impl(const Value& v, std::string& out, const JsonOptions& o, int level) {
  if (level > kMaxNesting) throw TemplateError("value nested too deeply to print");
  auto newline = [&](int lvl) {
    if (!o.indented) return;
    out += '\n';
    for (int k = 0; k < lvl; ++k) out += o.indent;
  };
  if (v.is_undefined() || v.is_none()) {
    out += "null";
  } else if (v.is_bool()) {
    out += v.as_bool() ? "true" : "false";
  } else if (v.is_int()) {
    out += std::to_string(v.as_int());
  } else if (v.is_float()) {
    const double d = v.as_number();
    out += std::isfinite(d) ? float_repr(d) : (std::isnan(d) ? "NaN" : (d > 0 ? "Infinity" : "-Infinity"));
  } else if (v.is_string()) {
    json_string(out, v.as_string(), o.ensure_ascii);
  } else if (v.is_list()) {
    const auto& l = v.as_list();
    out += '[';
    for (size_t i = 0; i < l.size(); ++i) {
      if (i) out += o.item_sep;
      newline(level + 1);
      to_json_impl(l[i], out, o, level + 1);
    }
    if (!l.empty()) newline(level);
    out += ']';
  } else if (v.is_dict()) {
    std::vector<const std::pair<std::string, Value>*> items;
    for (const auto& kv : v.as_dict().items) items.push_back(&kv);
    if (o.sort_keys)  // byte order of UTF-8 is code point order, as Python sorts str
      std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
    out += '{';
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += o.item_sep;
      newline(level + 1);
      json_string(out, items[i]->first, o.ensure_ascii);
      out += o.key_sep;
      to_json_impl(items[i]->second, out, o, level + 1);
    }
    if (!items.empty()) newline(level);
    out += '}';
  } else {
    throw TemplateError(std::string("Object of type ") + v.type_name() + " is not JSON serializable");
  }
}

}  // namespace

std::string Value::str() const {
  if (is_undefined()) return "";
  if (is_string()) return as_string();
  return repr();
}

std::string Value::repr() const {
  if (is_undefined()) return "";
  if (is_none()) return "None";
  if (is_bool()) return as_bool() ? "True" : "False";
  if (is_int()) return std::to_string(as_int());
  if (is_float()) return float_repr(as_number());
  if (is_string()) return quote_py(as_string());
  if (is_callable()) return "<macro>";
  NestingGuard guard;
  std::string out;
  if (is_list()) {
    out = "[";
    const auto& l = as_list();
    for (size_t i = 0; i < l.size(); ++i) out += (i ? ", " : "") + l[i].repr();
    return out + "]";
  }
  out = "{";
  const auto& d = as_dict();
  for (size_t i = 0; i < d.items.size(); ++i)
    out += (i ? ", " : "") + quote_py(d.items[i].first) + ": " + d.items[i].second.repr();
  return out + "}";
}

std::string Value::to_json(int indent) const {
  JsonOptions o;
  if (indent >= 0) {
    o.indented = true;
    o.indent.assign(size_t(indent), ' ');
    o.item_sep.assign(1, ',');
  }
  return to_json(o);
}

std::string Value::to_json(const JsonOptions& opts) const {
  std::string out;
  to_json_impl(*this, out, opts, 0);
  return out;
}

const char* Value::type_name() const {
  if (is_undefined()) return "undefined";
  if (is_none()) return "none";
  if (is_bool()) return "bool";
  if (is_int()) return "int";
  if (is_float()) return "float";
  if (is_string()) return "string";
  if (is_list()) return "list";
  if (is_callable()) return "macro";
  return "dict";
}

bool operator==(const Value& a, const Value& b) {
  NestingGuard guard;
  if (a.is_number() && b.is_number()) return a.as_number() == b.as_number();
  if (a.is_bool() && b.is_bool()) return a.as_bool() == b.as_bool();
  if (a.is_string() && b.is_string()) return a.as_string() == b.as_string();
  if ((a.is_none() && b.is_none()) || (a.is_undefined() && b.is_undefined())) return true;
  if (a.is_list() && b.is_list()) return a.as_list() == b.as_list();
  if (a.is_callable() && b.is_callable()) return &a.as_callable() == &b.as_callable();
  if (a.is_dict() && b.is_dict()) {
    const auto& x = a.as_dict().items;
    const auto& y = b.as_dict().items;
    if (x.size() != y.size()) return false;
    for (const auto& [k, v] : x) {
      const Value* o = b.as_dict().find(k);
      if (!o || !(*o == v)) return false;
    }
    return true;
  }
  return false;
}

Value from_json(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null: return Value(None{});
    case boost::json::kind::bool_: return Value(v.get_bool());
    case boost::json::kind::int64: return Value(v.get_int64());
    case boost::json::kind::uint64: return Value(double(v.get_uint64()));
    case boost::json::kind::double_: return Value(v.get_double());
    case boost::json::kind::string: return Value(std::string(v.get_string()));
    case boost::json::kind::array: {
      List l;
      for (const auto& x : v.get_array()) l.push_back(from_json(x));
      return Value(std::move(l));
    }
    case boost::json::kind::object: {
      Dict d;
      for (const auto& kv : v.get_object()) d.items.emplace_back(std::string(kv.key()), from_json(kv.value()));
      return Value(std::move(d));
    }
  }
  return {};
}

}  // namespace troupe::jinja
