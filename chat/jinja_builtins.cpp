// The filters, tests and methods chat templates call, and Python-like value helpers.
// Free functions: they need no renderer state (the renderer handles globals and scopes).
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

#include "chat/jinja_builtins.h"

namespace troupe::jinja::detail {

[[noreturn]] void error(SrcPos line, const std::string& what) {
  throw TemplateError("chat template " + to_string(line) + ": " + what);
}

namespace {

std::string strip_chars(const std::string& s, const std::string& chars, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && chars.find(s[b]) != std::string::npos) ++b;
  if (right)
    while (e > b && chars.find(s[e - 1]) != std::string::npos) --e;
  return s.substr(b, e - b);
}
const std::string kWhitespace = " \t\n\r\v\f";

std::vector<std::string> split(const std::string& s, const Value& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep.is_undefined() || sep.is_none()) {  // Python: split on runs of whitespace
    size_t i = 0;
    while (true) {
      while (i < s.size() && kWhitespace.find(s[i]) != std::string::npos) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
        out.push_back(strip_chars(s.substr(i), kWhitespace, false, true));
        break;
      }
      size_t j = i;
      while (j < s.size() && kWhitespace.find(s[j]) == std::string::npos) ++j;
      out.push_back(s.substr(i, j - i));
      i = j;
    }
    return out;
  }
  const std::string& d = sep.as_string();
  if (d.empty()) throw TemplateError("split: empty separator");
  size_t i = 0;
  while (true) {
    size_t j = s.find(d, i);
    if (j == std::string::npos || (maxsplit >= 0 && int64_t(out.size()) == maxsplit)) {
      out.push_back(s.substr(i));
      break;
    }
    out.push_back(s.substr(i, j - i));
    i = j + d.size();
  }
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  size_t i = 0;
  while ((i = s.find(from, i)) != std::string::npos) {
    s.replace(i, from.size(), to);
    i += to.size();
  }
  return s;
}

// Each character's byte offset, plus the end (strings work by code point, as Python's str
// does: bytes would cut characters apart).
std::vector<size_t> char_starts(const std::string& s) {
  std::vector<size_t> at;
  for (size_t i = 0; i < s.size(); ++i)
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) at.push_back(i);
  at.push_back(s.size());
  return at;
}

}  // namespace

std::vector<std::string> chars_of(const std::string& s) {
  auto at = char_starts(s);
  std::vector<std::string> out;
  for (size_t k = 0; k + 1 < at.size(); ++k) out.push_back(s.substr(at[k], at[k + 1] - at[k]));
  return out;
}

std::vector<int64_t> slice_indices(int64_t n, const Value& start, const Value& stop, const Value& step) {
  int64_t st = step.is_int() ? step.as_int() : 1;
  if (st == 0) throw TemplateError("slice step cannot be zero");
  auto norm = [&](const Value& v, int64_t dflt, int64_t lo, int64_t hi) {
    if (!v.is_int()) return dflt;
    int64_t x = v.as_int();
    if (x < 0) x += n;
    return std::clamp(x, lo, hi);
  };
  std::vector<int64_t> idx;
  if (st > 0) {
    for (int64_t i = norm(start, 0, 0, n), e = norm(stop, n, 0, n); i < e; i += st) idx.push_back(i);
  } else {
    for (int64_t i = norm(start, n - 1, -1, n - 1), e = norm(stop, -1, -1, n - 1); i > e; i += st)
      idx.push_back(i);
  }
  return idx;
}


List iterate(const Value& v, SrcPos line) {
  if (v.is_list()) return v.as_list();
  if (v.is_dict()) {
    List keys;
    for (const auto& kv : v.as_dict().items) keys.emplace_back(kv.first);
    return keys;
  }
  if (v.is_string()) {
    List chars;
    for (auto& c : chars_of(v.as_string())) chars.emplace_back(std::move(c));
    return chars;
  }
  if (v.is_undefined() || v.is_none()) return {};
  error(line, std::string("cannot iterate over a ") + v.type_name());
}

Value get_item(const Value& obj, const Value& key, SrcPos line) {
  if (obj.is_dict()) {
    if (!key.is_string()) return {};
    const Value* v = obj.as_dict().find(key.as_string());
    return v ? *v : Value();
  }
  if ((obj.is_list() || obj.is_string()) && key.is_int()) {
    std::vector<std::string> chars;
    if (obj.is_string()) chars = chars_of(obj.as_string());
    const int64_t n = obj.is_list() ? int64_t(obj.as_list().size()) : int64_t(chars.size());
    int64_t i = key.as_int();
    if (i < 0) i += n;
    if (i < 0 || i >= n) return {};
    return obj.is_list() ? obj.as_list()[size_t(i)] : Value(chars[size_t(i)]);
  }
  if (obj.is_list() && key.is_string() && !key.as_string().empty() &&
      std::all_of(key.as_string().begin(), key.as_string().end(), [](char c) { return c >= '0' && c <= '9'; })) {
    int64_t i = 0;
    const std::string& k = key.as_string();
    if (std::from_chars(k.data(), k.data() + k.size(), i).ec != std::errc()) return {};  // past any list's end
    return get_item(obj, Value(i), line);
  }
  return {};  // undefined, as Jinja's lenient lookup gives
}

const std::string& need_string(const Value* v, const char* what, SrcPos line) {
  if (!v || !v->is_string()) error(line, std::string(what) + " expects a string argument");
  return v->as_string();
}

Value call_method(const Value& obj, const std::string& m, const Args& a, SrcPos line) {
  if (obj.is_string()) {
    const std::string& s = obj.as_string();
    auto chars = [&] {
      const Value* c = a.get(0, "chars");
      return c && c->is_string() ? c->as_string() : kWhitespace;
    };
    if (m == "strip") return Value(strip_chars(s, chars(), true, true));
    if (m == "lstrip") return Value(strip_chars(s, chars(), true, false));
    if (m == "rstrip") return Value(strip_chars(s, chars(), false, true));
    if (m == "upper" || m == "lower") {  // ASCII only: non-ASCII letters keep their case
      std::string r = s;
      for (char& c : r) c = char(m == "upper" ? std::toupper((unsigned char)c) : std::tolower((unsigned char)c));
      return Value(std::move(r));
    }
    if (m == "title" || m == "capitalize") return apply_filter(m, obj, a, line);
    if (m == "startswith" || m == "endswith") {
      const Value* p = a.get(0, "prefix");
      List options = p && p->is_list() ? p->as_list() : List{p ? *p : Value()};
      for (const auto& o : options) {
        const std::string& x = need_string(&o, m.c_str(), line);
        if (m == "startswith" ? s.starts_with(x) : s.ends_with(x)) return Value(true);
      }
      return Value(false);
    }
    if (m == "splitlines") {
      List out;
      for (auto& l : split_lines(s)) out.emplace_back(std::move(l));
      return Value(std::move(out));
    }
    if (m == "split" || m == "rsplit") {
      Value max = a.or_default(1, "maxsplit", Value(int64_t(-1)));
      List out;
      for (auto& p : split(s, a.or_default(0, "sep"), max.is_int() ? max.as_int() : -1)) out.emplace_back(std::move(p));
      return Value(std::move(out));
    }
    if (m == "replace")
      return Value(replace_all(s, need_string(a.get(0, "old"), "replace", line), need_string(a.get(1, "new"), "replace", line)));
    if (m == "find") {
      const size_t at = s.find(need_string(a.get(0, "sub"), "find", line));
      if (at == std::string::npos) return Value(int64_t(-1));
      return Value(int64_t(char_starts(s.substr(0, at)).size() - 1));
    }
    if (m == "count") {
      const std::string& sub = need_string(a.get(0, "sub"), "count", line);
      int64_t c = 0;
      for (size_t i = s.find(sub); !sub.empty() && i != std::string::npos; i = s.find(sub, i + sub.size())) ++c;
      return Value(c);
    }
    if (m == "join") {
      const Value* l = a.get(0, "iterable");
      std::string r;
      List items = iterate(l ? *l : Value(), line);
      for (size_t i = 0; i < items.size(); ++i) r += (i ? s : "") + items[i].str();
      return Value(std::move(r));
    }
  } else if (obj.is_dict()) {
    const Dict& d = obj.as_dict();
    if (m == "get") {
      const Value* k = a.get(0, "key");
      const Value* v = k && k->is_string() ? d.find(k->as_string()) : nullptr;
      return v ? *v : a.or_default(1, "default", Value(None{}));
    }
    if (m == "items" || m == "keys" || m == "values") {
      List out;
      for (const auto& [k, v] : d.items) {
        if (m == "items") out.emplace_back(List{Value(k), v});
        else out.push_back(m == "keys" ? Value(k) : v);
      }
      return Value(std::move(out));
    }
  }
  error(line, std::string("unknown method '") + m + "' on a " + obj.type_name());
}

Value apply_filter(const std::string& f, const Value& v, const Args& a, SrcPos line) {
  if (f == "trim") {
    if (!v.is_string()) return Value(strip_chars(v.str(), kWhitespace, true, true));
    return Value(strip_chars(v.as_string(), kWhitespace, true, true));
  }
  if (f == "length" || f == "count") {
    if (v.is_string()) return Value(int64_t(char_starts(v.as_string()).size() - 1));
    if (v.is_list()) return Value(int64_t(v.as_list().size()));
    if (v.is_dict()) return Value(int64_t(v.as_dict().items.size()));
    error(line, std::string("object of type ") + v.type_name() + " has no length");
  }
  if (f == "tojson") {
    Value ind = a.or_default(0, "indent");
    return Value(v.to_json(ind.is_int() ? int(std::clamp<int64_t>(ind.as_int(), 0, 16)) : -1));
  }
  if (f == "string") return Value(v.str());
  if (f == "safe" || f == "e" || f == "escape") return v;  // chat templates render plain text
  if (f == "upper" || f == "lower") return call_method(Value(v.str()), f, {}, line);
  if (f == "capitalize" || f == "title") {
    std::string s = v.str();
    bool start = true;
    for (char& c : s) {
      const bool alpha = std::isalpha((unsigned char)c) != 0;
      if (f == "capitalize") c = char(start ? std::toupper((unsigned char)c) : std::tolower((unsigned char)c));
      else c = char(alpha && start ? std::toupper((unsigned char)c) : std::tolower((unsigned char)c));
      start = f == "capitalize" ? false : !alpha;
    }
    return Value(std::move(s));
  }
  if (f == "default" || f == "d") {
    const bool boolean = a.or_default(1, "boolean", Value(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return a.or_default(0, "default_value", Value(""));
    return v;
  }
  if (f == "first" || f == "last") {
    List items = iterate(v, line);
    if (items.empty()) return {};
    return f == "first" ? items.front() : items.back();
  }
  if (f == "join") {
    Value sep = a.or_default(0, "d", Value(""));
    Value attr = a.or_default(1, "attribute");
    std::string r;
    List items = iterate(v, line);
    for (size_t i = 0; i < items.size(); ++i)
      r += (i ? sep.str() : "") + (attr.is_undefined() ? items[i] : get_item(items[i], attr, line)).str();
    return Value(std::move(r));
  }
  if (f == "list") return Value(iterate(v, line));
  if (f == "reverse") {
    if (v.is_string()) {
      auto chars = chars_of(v.as_string());
      std::string r;
      for (auto it = chars.rbegin(); it != chars.rend(); ++it) r += *it;
      return Value(std::move(r));
    }
    List items = iterate(v, line);
    std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (f == "items") return call_method(v.is_dict() ? v : Value(Dict{}), "items", {}, line);
  if (f == "int") {
    if (v.is_int()) return v;
    if (v.is_float()) {
      // Python raises on inf/nan; a value past int64 (Python's ints are unbounded) saturates.
      const double d = v.as_number();
      if (!std::isfinite(d)) return a.or_default(0, "default", Value(int64_t(0)));
      if (d >= 9.2233720368547758e18) return Value(std::numeric_limits<int64_t>::max());
      if (d <= -9.2233720368547758e18) return Value(std::numeric_limits<int64_t>::min());
      return Value(int64_t(d));
    }
    if (v.is_string()) {
      try {
        return Value(int64_t(std::stoll(v.as_string())));
      } catch (const std::exception&) {
      }
    }
    return a.or_default(0, "default", Value(int64_t(0)));
  }
  if (f == "float") {
    if (v.is_number()) return Value(v.as_number());
    try {
      return Value(std::stod(v.str()));
    } catch (const std::exception&) {
      return Value(0.0);
    }
  }
  if (f == "abs" && v.is_number()) {
    if (v.is_int() && v.as_int() == std::numeric_limits<int64_t>::min())
      error(line, "integer overflow in abs (values past 64 bits)");
    return v.is_int() ? Value(std::abs(v.as_int())) : Value(std::fabs(v.as_number()));
  }
  if (f == "replace") return call_method(Value(v.str()), "replace", a, line);
  if (f == "selectattr" || f == "rejectattr" || f == "select" || f == "reject") {
    const bool by_attr = f == "selectattr" || f == "rejectattr";
    const bool keep_match = f == "selectattr" || f == "select";
    List out;
    for (const auto& item : iterate(v, line)) {
      Value subject = item;
      size_t k = 0;
      if (by_attr) subject = get_item(item, a.or_default(k++, "attribute"), line);
      Value test_name = a.or_default(k, "test");
      bool r;
      if (test_name.is_undefined()) {
        r = subject.truthy();
      } else {
        Args rest;
        for (size_t i = k + 1; i < a.pos.size(); ++i) rest.pos.push_back(a.pos[i]);
        r = apply_test(test_name.str(), subject, rest, line);
      }
      if (r == keep_match) out.push_back(item);
    }
    return Value(std::move(out));
  }
  if (f == "map") {
    Value attr = a.or_default(99, "attribute");
    List out;
    for (const auto& item : iterate(v, line)) {
      if (!attr.is_undefined()) out.push_back(get_item(item, attr, line));
      else if (!a.pos.empty()) out.push_back(apply_filter(a.pos[0].str(), item, {}, line));
      else out.push_back(item);
    }
    return Value(std::move(out));
  }
  if (f == "unique") {
    List out;
    for (const auto& item : iterate(v, line))
      if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
    return Value(std::move(out));
  }
  if (auto r = apply_more_filter(f, v, a, line)) return *r;
  error(line, "unknown filter '" + f + "'");
}

bool apply_test(const std::string& t, const Value& v, const Args& a, SrcPos line) {
  if (t == "defined") return !v.is_undefined();
  if (t == "undefined") return v.is_undefined();
  if (t == "none") return v.is_none();
  if (t == "string") return v.is_string();
  if (t == "number") return v.is_number();
  if (t == "integer") return v.is_int();
  if (t == "float") return v.is_float();
  if (t == "boolean") return v.is_bool();
  if (t == "true") return v.is_bool() && v.as_bool();
  if (t == "false") return v.is_bool() && !v.as_bool();
  if (t == "mapping") return v.is_dict();
  if (t == "sequence" || t == "iterable") return v.is_list() || v.is_string() || v.is_dict();
  if (t == "callable") return false;
  if (t == "lower" || t == "upper") {
    if (!v.is_string()) return false;
    for (char c : v.as_string())
      if (t == "lower" ? std::isupper((unsigned char)c) : std::islower((unsigned char)c)) return false;
    return true;
  }
  if (t == "odd" || t == "even") return v.is_int() && (v.as_int() % 2 != 0) == (t == "odd");
  if (t == "divisibleby") {
    Value d = a.or_default(0, "num");
    return v.is_int() && d.is_int() && d.as_int() != 0 && v.as_int() % d.as_int() == 0;
  }
  if (t == "equalto" || t == "eq" || t == "==" || t == "sameas") return v == a.or_default(0, "other");
  if (t == "ne" || t == "!=") return !(v == a.or_default(0, "other"));
  if (t == "in") {
    Value c = a.or_default(0, "seq");
    return contains(c, v, line);
  }
  error(line, "unknown test '" + t + "'");
}

bool contains(const Value& container, const Value& item, SrcPos line) {
  if (container.is_string()) {
    if (!item.is_string()) error(line, "'in <string>' requires a string on the left");
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_list()) {
    const auto& l = container.as_list();
    return std::find(l.begin(), l.end(), item) != l.end();
  }
  if (container.is_dict()) return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
  if (container.is_undefined() || container.is_none()) return false;
  error(line, std::string("argument of type ") + container.type_name() + " is not iterable");
}

}  // namespace troupe::jinja::detail
