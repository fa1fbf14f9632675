// String formatting as Python does it: printf-style `fmt % args` (and Jinja's `format`
// filter, which is the same), and str.format's plain fields ("{}", "{0}", "{name}"). Widths
// and precisions count characters, not bytes.
#include <cmath>
#include <cstdio>

#include "chat/jinja_builtins.h"
#include "tokenizer/unicode.h"

namespace troupe::jinja::detail {

namespace {

size_t char_count(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string pad(std::string s, int64_t width, bool left, SrcPos line) {
  const size_t n = char_count(s);
  if (width <= 0 || size_t(width) <= n) return s;
  charge_padding(width - int64_t(n), line);
  const std::string fill(size_t(width) - n, ' ');
  return left ? s + fill : fill + s;
}

// One conversion spec's parts, after the '%'.
struct Spec {
  std::string flags;
  int64_t width = -1, precision = -1;
  char conv = 0;
};

std::string printf_number(const Spec& sp, char conv, double d, int64_t i, bool integral, SrcPos line) {
  if (sp.width > 1000 || sp.precision > 300) error(line, "format width or precision too large");
  std::string f = "%" + sp.flags;
  if (sp.width >= 0) f += std::to_string(std::min<int64_t>(sp.width, 1000));
  if (sp.precision >= 0) {  // (appended piecewise: gcc 12 -Wrestrict misfires on "." + string)
    f += '.';
    f += std::to_string(std::min<int64_t>(sp.precision, 300));
  }
  char buf[2048];
  if (integral) {
    f += "ll";
    f += conv;
    std::snprintf(buf, sizeof buf, f.c_str(), static_cast<long long>(i));
  } else {
    f += conv;
    std::snprintf(buf, sizeof buf, f.c_str(), d);
  }
  std::string out = buf;
  // C writes 0X/0 for %#X/%#o; Python writes 0X and 0o.
  if (sp.flags.find('#') != std::string::npos && conv == 'o') {
    const size_t z = out.find('0');
    if (z != std::string::npos && i != 0) out.insert(z + 1, 1, 'o');
    else if (i == 0) out.replace(out.find('0'), 1, "0o0");
  }
  return out;
}

std::string convert(const Spec& sp, const Value& v0, SrcPos line) {
  const Value v = v0.is_bool() ? Value(int64_t(v0.as_bool())) : v0;
  const bool left = sp.flags.find('-') != std::string::npos;
  switch (sp.conv) {
    case 's':
    case 'r':
    case 'a': {
      std::string s = sp.conv == 's' ? v0.str() : v0.repr();
      if (sp.precision >= 0) {
        const auto chars = chars_of(s);
        if (size_t(sp.precision) < chars.size()) {
          s.clear();
          for (int64_t k = 0; k < sp.precision; ++k) s += chars[size_t(k)];
        }
      }
      return pad(std::move(s), sp.width, left, line);
    }
    case 'c': {
      std::string s;
      if (v.is_int() && v.as_int() >= 0 && v.as_int() <= 0x10FFFF) unicode::append_utf8(s, char32_t(v.as_int()));
      else if (v.is_string() && char_count(v.as_string()) == 1) s = v.as_string();
      else error(line, "%c requires an int or a single character");
      return pad(std::move(s), sp.width, left, line);
    }
    case 'd':
    case 'i':
    case 'u':
      if (!v.is_number()) error(line, std::string("%") + sp.conv + " format: a real number is required, not " + v0.type_name());
      return printf_number(sp, 'd', 0, v.is_int() ? v.as_int() : int64_t(std::trunc(v.as_number())), true, line);
    case 'x':
    case 'X':
    case 'o':
      if (!v.is_int()) error(line, std::string("%") + sp.conv + " format: an integer is required, not " + v0.type_name());
      {
        // C prints negatives as two's complement; Python as a sign and the magnitude.
        Spec s = sp;
        const int64_t x = v.as_int();
        std::string body = printf_number(s, sp.conv, 0, x < 0 ? -x : x, true, line);
        if (x < 0) {
          const size_t first = body.find_first_not_of(' ');
          body.insert(first, 1, '-');
          if (first > 0) body.erase(0, 1);
        }
        return body;
      }
    case 'e':
    case 'E':
    case 'f':
    case 'F':
    case 'g':
    case 'G':
      if (!v.is_number()) error(line, std::string("%") + sp.conv + " format: a real number is required, not " + v0.type_name());
      return printf_number(sp, sp.conv, v.as_number(), 0, false, line);
    default: error(line, std::string("unsupported format character '") + sp.conv + "'");
  }
}

}  // namespace

std::string percent_format(const std::string& fmt, const Value& args, bool spread, SrcPos line) {
  List positional = spread ? args.as_list() : List{args};
  const Dict* mapping = !spread && args.is_dict() ? &args.as_dict() : nullptr;
  size_t next = 0;
  bool used_mapping = false;
  auto take = [&]() -> Value {
    if (next >= positional.size()) error(line, "not enough arguments for format string");
    return positional[next++];
  };
  auto number = [&](size_t& i, int64_t& into) {
    if (i < fmt.size() && fmt[i] == '*') {
      Value w = take();
      if (!w.is_int()) error(line, "* wants int");
      into = w.as_int();
      ++i;
      return;
    }
    if (i < fmt.size() && std::isdigit((unsigned char)fmt[i])) {
      into = 0;
      while (i < fmt.size() && std::isdigit((unsigned char)fmt[i])) into = std::min<int64_t>(into * 10 + (fmt[i++] - '0'), 1000000000);
    }
  };
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    ++i;
    if (i >= fmt.size()) error(line, "incomplete format");
    if (fmt[i] == '%') {
      out += '%';
      continue;
    }
    std::optional<Value> keyed;
    if (fmt[i] == '(') {
      const size_t close = fmt.find(')', i);
      if (close == std::string::npos) error(line, "incomplete format key");
      if (!mapping) error(line, "format requires a mapping");
      const Value* v = mapping->find(fmt.substr(i + 1, close - i - 1));
      if (!v) error(line, "format key '" + fmt.substr(i + 1, close - i - 1) + "' not found");
      keyed = *v;
      used_mapping = true;
      i = close + 1;
    }
    Spec sp;
    while (i < fmt.size() && std::string("-+ 0#").find(fmt[i]) != std::string::npos) sp.flags += fmt[i++];
    number(i, sp.width);
    if (sp.width < -1) {  // a negative * width left-aligns, as in C
      sp.width = -sp.width;
      sp.flags += '-';
    }
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      sp.precision = 0;
      number(i, sp.precision);
    }
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) error(line, "incomplete format");
    sp.conv = fmt[i];
    out += convert(sp, keyed ? *keyed : take(), line);
  }
  if (!used_mapping && next < positional.size() && !(mapping && next == 0))
    error(line, "not all arguments converted during string formatting");
  return out;
}

std::string str_format(const std::string& fmt, const Args& a, SrcPos line) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}' ) {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') ++i;
      else error(line, "single '}' in format string");
      out += '}';
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) error(line, "single '{' in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    char conversion = 's';
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      conversion = bang + 1 < field.size() ? field[bang + 1] : 's';
      field.resize(bang);
    }
    if (field.find(':') != std::string::npos) error(line, "format specs in str.format are not supported");
    const Value* v = nullptr;
    if (field.empty()) {
      v = auto_index < a.pos.size() ? &a.pos[auto_index] : nullptr;
      ++auto_index;
    } else if (std::isdigit((unsigned char)field[0])) {
      const size_t k = size_t(std::stoul(field));
      v = k < a.pos.size() ? &a.pos[k] : nullptr;
    } else {
      for (const auto& [k, x] : a.kw)
        if (k == field) v = &x;
    }
    if (!v) error(line, "format field '{" + field + "}' has no argument");
    out += conversion == 'r' ? v->repr() : v->str();
  }
  return out;
}

}  // namespace troupe::jinja::detail
