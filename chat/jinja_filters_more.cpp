// Jinja2 filters over sequences and numbers (sum, min, max, sort, round) and text layout
// (indent, truncate), with Jinja2 3.1's defaults: min/max/sort compare strings without case,
// truncate has a leeway of 5, indent leaves blank lines and the first line alone.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "chat/jinja_builtins.h"

namespace troupe::jinja::detail {

namespace {

std::vector<std::string> split_on(const std::string& s, char sep);

// What sort/min/max compare: the item or its attribute (several: "age,name" sorts by a
// list of them), strings lowercased unless case_sensitive.
Value sort_key(const Value& item, const Value& attribute, bool case_sensitive, SrcPos line) {
  if (attribute.is_string() && attribute.as_string().find(',') != std::string::npos) {
    List keys;
    for (const std::string& part : split_on(attribute.as_string(), ','))
      keys.push_back(sort_key(item, Value(part), case_sensitive, line));
    return Value(std::move(keys));
  }
  Value k = attribute.is_undefined() ? item : attribute_path(item, attribute, line);
  if (k.is_string() && !case_sensitive) return Value(change_case(k.as_string(), CaseChange::Lower));
  return k;
}

bool less(const Value& a, const Value& b, SrcPos line) { return value_less(a, b, line); }

std::vector<std::string> split_on(const std::string& s, char sep) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == sep) out.emplace_back();
    else out.back() += c;
  }
  return out;
}

// Python's round() to `digits` decimals: correctly rounded from the exact binary value,
// exact ties to even (2.675 is 2.67499999... in binary: 2.67). printf rounds the same way.
double round_half_even(double x, int64_t digits) {
  if (digits < 0) {
    const double scale = std::pow(10.0, double(-digits));
    return std::nearbyint(x / scale) * scale;
  }
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.*f", int(digits), x);
  return std::strtod(buf, nullptr);
}

}  // namespace

bool value_less(const Value& a0, const Value& b0, SrcPos line) {
  const Value a = a0.is_bool() ? Value(int64_t(a0.as_bool())) : a0;
  const Value b = b0.is_bool() ? Value(int64_t(b0.as_bool())) : b0;
  if (a.is_number() && b.is_number()) return a.as_number() < b.as_number();
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list()) {  // lexicographic, as Python compares tuples
    const List &x = a.as_list(), &y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (value_less(x[i], y[i], line)) return true;
      if (value_less(y[i], x[i], line)) return false;
    }
    return x.size() < y.size();
  }
  error(line, std::string("'<' not supported between ") + a.type_name() + " and " + b.type_name());
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\n' || c == '\r' || c == '\v' || c == '\f' || c == '\x1c' || c == '\x1d' || c == '\x1e') {
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::optional<Value> apply_more_filter(const std::string& f, const Value& v, const Args& a, SrcPos line) {
  if (f == "sum") {
    const Value attribute = a.or_default(99, "attribute");
    Value total = a.or_default(0, "start", Value(int64_t(0)));
    for (const auto& item : iterate(v, line)) {
      const Value x = attribute.is_undefined() ? item : attribute_path(item, attribute, line);
      if (!x.is_number() || !total.is_number()) error(line, std::string("cannot sum ") + x.type_name());
      total = total.is_int() && x.is_int() ? Value(total.as_int() + x.as_int()) : Value(total.as_number() + x.as_number());
    }
    return total;
  }
  if (f == "min" || f == "max" || f == "sort") {
    const size_t first_kw = f == "sort" ? 1 : 0;  // sort(reverse, case_sensitive, attribute)
    const bool reverse = f == "sort" && a.or_default(0, "reverse", Value(false)).truthy();
    const bool case_sensitive = a.or_default(first_kw, "case_sensitive", Value(false)).truthy();
    const Value attribute = a.or_default(first_kw + 1, "attribute");
    List items = iterate(v, line);
    auto before = [&](const Value& x, const Value& y) {
      return less(sort_key(x, attribute, case_sensitive, line), sort_key(y, attribute, case_sensitive, line), line);
    };
    if (f == "sort") {
      std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
        return reverse ? before(y, x) : before(x, y);
      });
      return Value(std::move(items));
    }
    if (items.empty()) return Value();  // undefined, as Jinja2
    // Python's min/max keep the first of equal items.
    Value best = items.front();
    for (size_t i = 1; i < items.size(); ++i)
      if (f == "min" ? before(items[i], best) : before(best, items[i])) best = items[i];
    return best;
  }
  if (f == "round") {
    if (!v.is_number()) error(line, std::string("cannot round ") + v.type_name());
    const Value digits = a.or_default(0, "precision", Value(int64_t(0)));
    const std::string method = a.or_default(1, "method", Value("common")).str();
    const int64_t d = digits.is_int() ? std::clamp<int64_t>(digits.as_int(), -15, 15) : 0;
    const double scale = std::pow(10.0, double(d));
    if (method == "floor") return Value(std::floor(v.as_number() * scale) / scale);
    if (method == "ceil") return Value(std::ceil(v.as_number() * scale) / scale);
    if (method != "common") error(line, "round: method must be common, ceil or floor");
    if (v.is_int()) return v;  // Python's round(int, n) stays an int
    return Value(round_half_even(v.as_number(), d));
  }
  if (f == "indent") {
    const Value width = a.or_default(0, "width", Value(int64_t(4)));
    const bool first = a.or_default(1, "first", Value(false)).truthy();
    const bool blank = a.or_default(2, "blank", Value(false)).truthy();
    const std::string pad = width.is_string() ? width.as_string()
                                               : std::string(size_t(std::clamp<int64_t>(width.is_int() ? width.as_int() : 4, 0, 256)), ' ');
    // Jinja2 appends a newline before splitting, so a trailing newline survives.
    const std::vector<std::string> lines = split_lines(v.str() + "\n");
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) out += "\n";
      if ((i > 0 || first) && (blank || !lines[i].empty() || i == 0)) out += pad;
      out += lines[i];
    }
    return Value(std::move(out));
  }
  if (f == "truncate") {
    const std::vector<std::string> chars = chars_of(v.str());
    const int64_t length = a.or_default(0, "length", Value(int64_t(255))).is_int()
                               ? a.or_default(0, "length", Value(int64_t(255))).as_int() : 255;
    const bool killwords = a.or_default(1, "killwords", Value(false)).truthy();
    const std::string end = a.or_default(2, "end", Value("...")).str();
    const Value lw = a.or_default(3, "leeway", Value(int64_t(5)));
    const int64_t leeway = lw.is_int() ? lw.as_int() : 5;
    const int64_t end_len = int64_t(chars_of(end).size());
    if (length < end_len || leeway < 0) error(line, "truncate: length must cover the end marker, leeway >= 0");
    if (int64_t(chars.size()) <= length + leeway) return Value(v.str());
    std::string head;
    for (int64_t i = 0; i < length - end_len; ++i) head += chars[size_t(i)];
    if (!killwords) {
      const size_t space = head.rfind(' ');
      if (space != std::string::npos) head.resize(space);
    }
    return Value(head + end);
  }
  return std::nullopt;
}

}  // namespace troupe::jinja::detail
