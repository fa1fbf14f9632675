// The filters, tests and methods chat templates call, and Python-like value helpers.
// Free functions: they need no renderer state (the renderer handles globals and scopes).
#include <algorithm>
#include <cctype>
#include <charconv>
#include <clocale>
#include <cmath>
#include <cstdlib>
#include <cwctype>
#include <limits>

#include "chat/jinja_builtins.h"
#include "tokenizer/unicode.h"

namespace troupe::jinja::detail {

[[noreturn]] void error(SrcPos line, const std::string& what) {
  throw TemplateError("chat template " + to_string(line) + ": " + what);
}

namespace {
thread_local int64_t padding_used = 0;
}

void reset_padding_budget() { padding_used = 0; }

void charge_padding(int64_t bytes, SrcPos line) {
  padding_used += std::max<int64_t>(bytes, 0);
  if (padding_used > kMaxPaddingBytes) error(line, "template padding exceeded its budget");
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
        out.push_back(s.substr(i));  // the rest as is, trailing whitespace included
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

std::string replace_all(std::string s, const std::string& from, const std::string& to, int64_t count = -1) {
  if (from.empty()) return s;
  size_t i = 0;
  while (count-- != 0 && (i = s.find(from, i)) != std::string::npos) {
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

// rsplit: like split, but the maxsplit splits are taken from the right.
std::vector<std::string> rsplit(const std::string& s, const Value& sep, int64_t maxsplit) {
  if (maxsplit < 0) return split(s, sep, maxsplit);
  std::vector<std::string> out;
  size_t end = s.size();
  if (sep.is_undefined() || sep.is_none()) {
    while (true) {
      while (end > 0 && kWhitespace.find(s[end - 1]) != std::string::npos) --end;
      if (end == 0) break;
      if (int64_t(out.size()) == maxsplit) {
        out.push_back(strip_chars(s.substr(0, end), kWhitespace, true, false));
        break;
      }
      size_t b = end;
      while (b > 0 && kWhitespace.find(s[b - 1]) == std::string::npos) --b;
      out.push_back(s.substr(b, end - b));
      end = b;
    }
  } else {
    const std::string& d = sep.as_string();
    if (d.empty()) throw TemplateError("rsplit: empty separator");
    while (true) {
      const size_t j = end >= d.size() ? s.rfind(d, end - d.size()) : std::string::npos;
      if (j == std::string::npos || int64_t(out.size()) == maxsplit) {
        out.push_back(s.substr(0, end));
        break;
      }
      out.push_back(s.substr(j + d.size(), end - j - d.size()));
      end = j;
    }
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::optional<int64_t> parse_int(const std::string& s, int base) {
  if (s.empty() || base < 0 || base == 1 || base > 36) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, base);
  if (errno != 0 || end != s.c_str() + s.size()) return std::nullopt;
  return int64_t(v);
}

}  // namespace

std::optional<double> parse_float(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return d;
}

locale_t utf8_locale() {
  static const locale_t loc = [] {
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t(0));
    return l ? l : newlocale(LC_CTYPE_MASK, "C", locale_t(0));
  }();
  return loc;
}

std::string change_case(const std::string& s, CaseChange how) {
  const locale_t loc = utf8_locale();
  std::string out;
  bool prev_letter = false, word_start = true, first = true;
  for (size_t i = 0; i < s.size();) {
    const char32_t cp = unicode::next_cp(s, i);
    const wint_t c = wint_t(cp);
    const bool letter = ::iswalpha_l(c, loc) != 0;
    wint_t r = c;
    switch (how) {
      case CaseChange::Upper: r = ::towupper_l(c, loc); break;
      case CaseChange::Lower: r = ::towlower_l(c, loc); break;
      case CaseChange::Swap: r = ::iswupper_l(c, loc) ? ::towlower_l(c, loc) : ::towupper_l(c, loc); break;
      case CaseChange::Title: r = prev_letter ? ::towlower_l(c, loc) : ::towupper_l(c, loc); break;
      case CaseChange::Capitalize: r = first ? ::towupper_l(c, loc) : ::towlower_l(c, loc); break;
      case CaseChange::JinjaTitle: {
        const bool boundary = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || ::iswspace_l(c, loc);
        r = boundary ? c : (word_start ? ::towupper_l(c, loc) : ::towlower_l(c, loc));
        word_start = boundary;
        break;
      }
    }
    prev_letter = letter;
    first = false;
    unicode::append_utf8(out, char32_t(r));
  }
  return out;
}

bool all_chars(const std::string& s, int (*pred)(wint_t, locale_t)) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size();)
    if (!pred(wint_t(unicode::next_cp(s, i)), utf8_locale())) return false;
  return true;
}

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
  // groupby's groups are [grouper, list] pairs standing in for Jinja2's named tuples.
  if (obj.is_list() && obj.as_list().size() == 2 && key.is_string() && (key.as_string() == "grouper" || key.as_string() == "list"))
    return obj.as_list()[key.as_string() == "grouper" ? 0 : 1];
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
    if (m == "upper") return Value(change_case(s, CaseChange::Upper));
    if (m == "lower" || m == "casefold") return Value(change_case(s, CaseChange::Lower));
    if (m == "swapcase") return Value(change_case(s, CaseChange::Swap));
    if (m == "title") return Value(change_case(s, CaseChange::Title));
    if (m == "capitalize") return Value(change_case(s, CaseChange::Capitalize));
    if (m == "isdigit" || m == "isnumeric" || m == "isdecimal") return Value(all_chars(s, ::iswdigit_l));
    if (m == "isalpha") return Value(all_chars(s, ::iswalpha_l));
    if (m == "isalnum") return Value(all_chars(s, ::iswalnum_l));
    if (m == "isspace") return Value(all_chars(s, ::iswspace_l));
    if (m == "isupper" || m == "islower") {  // some cased letter, and none of the other case
      bool cased = false;
      for (size_t i = 0; i < s.size();) {
        const wint_t c = wint_t(unicode::next_cp(s, i));
        if (m == "isupper" ? ::iswlower_l(c, utf8_locale()) : ::iswupper_l(c, utf8_locale())) return Value(false);
        cased = cased || ::iswalpha_l(c, utf8_locale());
      }
      return Value(cased);
    }
    if (m == "startswith" || m == "endswith") {
      const Value* p = a.get(0, "prefix");
      if (!p || !(p->is_string() || p->is_list())) error(line, m + " expects a string or a tuple of strings");
      const Value start = a.or_default(1, "start");
      const std::string subject = start.is_int() ? call_method(obj, "__slice_from", Args{{start}, {}}, line).as_string() : s;
      List options = p->is_list() ? p->as_list() : List{*p};
      for (const auto& o : options) {
        const std::string& x = need_string(&o, m.c_str(), line);
        if (m == "startswith" ? subject.starts_with(x) : subject.ends_with(x)) return Value(true);
      }
      return Value(false);
    }
    if (m == "__slice_from") {  // internal: s[start:]
      std::string out;
      for (int64_t i : slice_indices(int64_t(char_starts(s).size() - 1), a.pos[0], Value(), Value())) out += chars_of(s)[size_t(i)];
      return Value(std::move(out));
    }
    if (m == "ljust" || m == "rjust" || m == "center" || m == "zfill") {
      const Value w = a.or_default(0, "width");
      if (!w.is_int()) error(line, m + " expects an integer width");
      const std::string fill = m == "zfill" ? "0" : a.or_default(1, "fillchar", Value(" ")).str();
      if (char_starts(fill).size() != 2) error(line, m + ": the fill character must be exactly one character");
      const int64_t n = int64_t(char_starts(s).size() - 1), missing = w.as_int() - n;
      if (missing <= 0) return obj;
      charge_padding(missing * int64_t(fill.size()), line);
      auto repeat = [&](int64_t k) {
        std::string r;
        for (int64_t i = 0; i < k; ++i) r += fill;
        return r;
      };
      if (m == "ljust") return Value(s + repeat(missing));
      if (m == "rjust") return Value(repeat(missing) + s);
      if (m == "zfill") {
        const bool sign = !s.empty() && (s[0] == '-' || s[0] == '+');
        return Value((sign ? s.substr(0, 1) : "") + repeat(missing) + (sign ? s.substr(1) : s));
      }
      // Python's center puts the extra fill on the left when the string's length is odd.
      const int64_t left = missing / 2 + (missing & n & 1);
      return Value(repeat(left) + s + repeat(missing - left));
    }
    if (m == "partition" || m == "rpartition") {
      const std::string& sep = need_string(a.get(0, "sep"), m.c_str(), line);
      const size_t at = m == "partition" ? s.find(sep) : s.rfind(sep);
      if (at == std::string::npos)
        return m == "partition" ? Value(List{Value(s), Value(""), Value("")}) : Value(List{Value(""), Value(""), Value(s)});
      return Value(List{Value(s.substr(0, at)), Value(sep), Value(s.substr(at + sep.size()))});
    }
    if (m == "removeprefix" || m == "removesuffix") {
      const std::string& x = need_string(a.get(0, "prefix"), m.c_str(), line);
      if (m == "removeprefix") return Value(s.starts_with(x) ? s.substr(x.size()) : s);
      return Value(s.ends_with(x) ? s.substr(0, s.size() - x.size()) : s);
    }
    if (m == "format") return Value(str_format(s, a, line));
    if (m == "splitlines") {
      List out;
      for (auto& l : split_lines(s)) out.emplace_back(std::move(l));
      return Value(std::move(out));
    }
    if (m == "split" || m == "rsplit") {
      Value max = a.or_default(1, "maxsplit", Value(int64_t(-1)));
      List out;
      const int64_t n = max.is_int() ? max.as_int() : -1;
      for (auto& p : m == "split" ? split(s, a.or_default(0, "sep"), n) : rsplit(s, a.or_default(0, "sep"), n))
        out.emplace_back(std::move(p));
      return Value(std::move(out));
    }
    if (m == "replace") {
      const Value count = a.or_default(2, "count", Value(int64_t(-1)));
      return Value(replace_all(s, need_string(a.get(0, "old"), "replace", line), need_string(a.get(1, "new"), "replace", line),
                               count.is_int() ? count.as_int() : -1));
    }
    if (m == "find" || m == "rfind" || m == "index" || m == "rindex") {
      const std::string& sub = need_string(a.get(0, "sub"), m.c_str(), line);
      const size_t at = m == "find" || m == "index" ? s.find(sub) : s.rfind(sub);
      if (at == std::string::npos) {
        if (m == "index" || m == "rindex") error(line, "substring not found");
        return Value(int64_t(-1));
      }
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
    const Value chars = a.or_default(0, "chars", Value(None{}));
    return Value(strip_chars(v.str(), chars.is_string() ? chars.as_string() : kWhitespace, true, true));
  }
  if (f == "length" || f == "count") {
    if (v.is_string()) return Value(int64_t(char_starts(v.as_string()).size() - 1));
    if (v.is_list()) return Value(int64_t(v.as_list().size()));
    if (v.is_dict()) return Value(int64_t(v.as_dict().items.size()));
    error(line, std::string("object of type ") + v.type_name() + " has no length");
  }
  if (f == "tojson") {  // HF's override: json.dumps(x, ensure_ascii, indent, separators, sort_keys)
    JsonOptions o;
    o.ensure_ascii = a.or_default(0, "ensure_ascii", Value(false)).truthy();
    const Value ind = a.or_default(1, "indent", Value(None{}));
    if (ind.is_int() || ind.is_string()) {
      o.indented = true;
      o.indent = ind.is_string() ? ind.as_string() : std::string(size_t(std::clamp<int64_t>(ind.as_int(), 0, 64)), ' ');
      o.item_sep = ",";
    } else if (!ind.is_none()) {
      error(line, "tojson: indent must be an int or a string");
    }
    const Value sep = a.or_default(2, "separators", Value(None{}));
    if (sep.is_list() && sep.as_list().size() == 2 && sep.as_list()[0].is_string() && sep.as_list()[1].is_string()) {
      o.item_sep = sep.as_list()[0].as_string();
      o.key_sep = sep.as_list()[1].as_string();
    } else if (!sep.is_none()) {
      error(line, "tojson: separators must be a pair of strings");
    }
    o.sort_keys = a.or_default(3, "sort_keys", Value(false)).truthy();
    return Value(v.to_json(o));
  }
  if (f == "string") return Value(v.str());
  if (f == "safe" || f == "e" || f == "escape") return v;  // chat templates render plain text
  if (f == "upper") return Value(change_case(v.str(), CaseChange::Upper));
  if (f == "lower") return Value(change_case(v.str(), CaseChange::Lower));
  if (f == "capitalize") return Value(change_case(v.str(), CaseChange::Capitalize));
  if (f == "title") return Value(change_case(v.str(), CaseChange::JinjaTitle));
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
  if (f == "int") {  // int(value, base), else int(float(value)), else the default
    if (v.is_int()) return v;
    if (v.is_bool()) return Value(int64_t(v.as_bool()));
    // Python raises on inf/nan; a value past int64 (Python's ints are unbounded) saturates.
    auto from_double = [&](double d) {
      if (!std::isfinite(d)) return a.or_default(0, "default", Value(int64_t(0)));
      if (d >= 9.2233720368547758e18) return Value(std::numeric_limits<int64_t>::max());
      if (d <= -9.2233720368547758e18) return Value(std::numeric_limits<int64_t>::min());
      return Value(int64_t(d));
    };
    if (v.is_float()) return from_double(v.as_number());
    if (v.is_string()) {
      const Value base = a.or_default(1, "base", Value(int64_t(10)));
      const std::string s = strip_chars(v.as_string(), kWhitespace, true, true);
      if (auto i = parse_int(s, base.is_int() ? int(base.as_int()) : 10)) return Value(*i);
      if (auto d = parse_float(s)) return from_double(*d);
    }
    return a.or_default(0, "default", Value(int64_t(0)));
  }
  if (f == "float") {
    if (v.is_number()) return Value(v.as_number());
    if (v.is_bool()) return Value(v.as_bool() ? 1.0 : 0.0);
    if (v.is_string())
      if (auto d = parse_float(strip_chars(v.as_string(), kWhitespace, true, true))) return Value(*d);
    return a.or_default(0, "default", Value(0.0));
  }
  if (f == "abs" && v.is_number()) {
    if (v.is_int() && v.as_int() == std::numeric_limits<int64_t>::min())
      error(line, "integer overflow in abs (values past 64 bits)");
    return v.is_int() ? Value(std::abs(v.as_int())) : Value(std::fabs(v.as_number()));
  }
  if (f == "replace") return call_method(Value(v.str()), "replace", a, line);
  if (f == "items" && !v.is_dict() && !v.is_undefined()) error(line, "items expects a mapping");
  if (f == "format") {
    if (!a.kw.empty() && !a.pos.empty()) error(line, "format: positional or keyword arguments, not both");
    if (a.kw.empty()) return Value(percent_format(v.str(), Value(a.pos), true, line));
    Dict d;
    for (const auto& [k, x] : a.kw) d.set(k, x);
    return Value(percent_format(v.str(), Value(std::move(d)), false, line));
  }
  if (f == "wordcount") {  // Python's \w+ runs
    int64_t words = 0;
    bool in_word = false;
    const std::string s = v.str();
    for (size_t i = 0; i < s.size();) {
      const char32_t cp = unicode::next_cp(s, i);
      const bool w = cp == '_' || ::iswalnum_l(wint_t(cp), utf8_locale());
      words += w && !in_word;
      in_word = w;
    }
    return Value(words);
  }
  if (f == "center") return call_method(Value(v.str()), "center", Args{{a.or_default(0, "width", Value(int64_t(80)))}, {}}, line);
  if (f == "attr") return Value();  // the sandbox's getattr: a dict's keys are no attributes
  if (auto r = apply_collection_filter(f, v, a, line)) return *r;
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
  if (t == "gt" || t == ">" || t == "greaterthan") return value_less(a.or_default(0, "other"), v, line);
  if (t == "lt" || t == "<" || t == "lessthan") return value_less(v, a.or_default(0, "other"), line);
  if (t == "ge" || t == ">=") return !value_less(v, a.or_default(0, "other"), line);
  if (t == "le" || t == "<=") return !value_less(a.or_default(0, "other"), v, line);
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
