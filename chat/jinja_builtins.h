#pragma once
// Internal to the Jinja interpreter: the builtins (filters, tests, methods) and the value
// helpers the renderer shares with them.
#include <optional>
#include <string>
#include <utility>
#include <vector>
#include <cwctype>
#include <locale.h>
#include <wctype.h>

#include "chat/jinja.h"

namespace troupe::jinja::detail {

[[noreturn]] void error(SrcPos line, const std::string& what);

// Bytes of padding a render may create (ljust, center, zfill, % widths, batch fill): a
// template cannot multiply small inputs into gigabytes through a loop of them. The renderer
// resets it per render (a thread renders one template at a time).
inline constexpr int64_t kMaxPaddingBytes = 64 << 20;
void reset_padding_budget();
void charge_padding(int64_t bytes, SrcPos line);

// Call arguments: positional, then keyword.
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  const Value* get(size_t i, const char* name) const {
    if (i < pos.size()) return &pos[i];
    for (const auto& [k, v] : kw)
      if (k == name) return &v;
    return nullptr;
  }
  Value or_default(size_t i, const char* name, Value d = {}) const {
    const Value* v = get(i, name);
    return v ? *v : d;
  }
};

// Strings index, slice, iterate and measure by code point, as Python's str does.
std::vector<std::string> chars_of(const std::string& s);
// Python's slice semantics (negative indices and steps) over n elements.
std::vector<int64_t> slice_indices(int64_t n, const Value& start, const Value& stop, const Value& step);
// What `for x in v` iterates: list items, dict keys, string characters (none: nothing).
List iterate(const Value& v, SrcPos line);
// v.key / v[key]; undefined when absent (Jinja's lenient lookup).
Value get_item(const Value& obj, const Value& key, SrcPos line);
const std::string& need_string(const Value* v, const char* what, SrcPos line);

Value call_method(const Value& obj, const std::string& m, const Args& a, SrcPos line);
Value apply_filter(const std::string& f, const Value& v, const Args& a, SrcPos line);
bool apply_test(const std::string& t, const Value& v, const Args& a, SrcPos line);
bool contains(const Value& container, const Value& item, SrcPos line);
// Python's str case changes over Unicode letters (C.UTF-8's tables): upper(), lower(),
// swapcase(), title() (after any non-letter), capitalize(), and Jinja's title filter (words
// begin after whitespace, '-', '(', '{', '[' or '<').
enum class CaseChange { Upper, Lower, Swap, Title, Capitalize, JinjaTitle };
std::string change_case(const std::string& s, CaseChange how);
// Unicode letter / digit tests over every character (false for an empty string).
bool all_chars(const std::string& s, int (*pred)(wint_t, locale_t));
locale_t utf8_locale();
std::optional<double> parse_float(const std::string& s);
// Python's < for the values sorting compares: numbers (bools as ints), strings, lists.
bool value_less(const Value& a, const Value& b, SrcPos line);
// item.a.b.0 for attribute="a.b.0" (Jinja's attribute paths); an int attribute indexes.
Value attribute_path(const Value& item, const Value& attribute, SrcPos line);
// dictsort, groupby, unique, map, select(attr), reject(attr), batch, slice
// (jinja_filters_seq.cpp); nullopt: not one of them.
std::optional<Value> apply_collection_filter(const std::string& f, const Value& v, const Args& a, SrcPos line);
// sum, min, max, sort, round, indent, truncate (jinja_filters_more.cpp); nullopt: not one of them.
std::optional<Value> apply_more_filter(const std::string& f, const Value& v, const Args& a, SrcPos line);
// `fmt % args` as Python formats it; `spread`: args is a tuple (its items are the arguments).
std::string percent_format(const std::string& fmt, const Value& args, bool spread, SrcPos line);
// str.format with plain fields: {} {0} {name} {{ }} and !r / !s.
std::string str_format(const std::string& fmt, const Args& a, SrcPos line);
// Python's str.splitlines() (ASCII line boundaries).
std::vector<std::string> split_lines(const std::string& s);

}  // namespace troupe::jinja::detail
