#include "grammar/regex.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"

namespace troupe::grammar {

namespace {

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

Ranges normalized(Ranges r) {
  std::sort(r.begin(), r.end());
  Ranges out;
  for (auto [lo, hi] : r) {
    if (!out.empty() && lo <= out.back().second + 1) {
      out.back().second = std::max(out.back().second, hi);
    } else {
      out.emplace_back(lo, hi);
    }
  }
  return out;
}

Ranges complement(const Ranges& in) {
  Ranges r = normalized(in), out;
  uint32_t next = 0;
  for (auto [lo, hi] : r) {
    if (lo > next) out.emplace_back(next, lo - 1);
    next = hi + 1;
  }
  if (next <= 0x10FFFF) out.emplace_back(next, 0x10FFFF);
  return out;
}

Ranges subtract(const Ranges& a, const Ranges& b) {
  Ranges nb = complement(b), out;
  for (auto [lo, hi] : normalized(a))
    for (auto [l2, h2] : nb) {
      const uint32_t l = std::max(lo, l2), h = std::min(hi, h2);
      if (l <= h) out.emplace_back(l, h);
    }
  return out;
}

const Ranges kDigit = {{'0', '9'}};
const Ranges kWord = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
const Ranges kSpace = {{'\t', '\r'}, {' ', ' '}};
const Ranges kJsonUnsafe = {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}};

std::string class_text(const Ranges& r) {
  std::string s = "[";
  for (auto [lo, hi] : normalized(r)) {
    s += fmt::format("\\U{:08X}", lo);
    if (hi != lo) s += fmt::format("-\\U{:08X}", hi);
  }
  return s + "]";
}

class RegexParser {
 public:
  RegexParser(std::string_view p, bool json) : p_(p), json_(json) {}

  std::string parse() {
    if (!p_.empty() && p_[0] == '^') ++pos_;
    std::string out = alternation();
    if (pos_ < p_.size()) error(p_[pos_] == ')' ? "unbalanced ')'" : "unexpected character");
    return "(" + out + ")";
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail("regex '{}': {} at offset {}", p_, what, pos_);
  }

  bool at_end_anchor() const { return pos_ + 1 == p_.size() && p_[pos_] == '$'; }

  std::string alternation() {
    std::string out = sequence();
    while (pos_ < p_.size() && p_[pos_] == '|') {
      ++pos_;
      out += " | " + sequence();
    }
    return out;
  }

  std::string sequence() {
    std::string out;
    while (pos_ < p_.size() && p_[pos_] != '|' && p_[pos_] != ')') {
      if (at_end_anchor()) {
        ++pos_;
        break;
      }
      std::string a = atom();
      a = quantified(std::move(a));
      out += (out.empty() ? "" : " ") + a;
    }
    return out.empty() ? "\"\"" : out;
  }

  std::string quantified(std::string a) {
    if (pos_ >= p_.size()) return a;
    const char c = p_[pos_];
    std::string q;
    if (c == '*' || c == '+' || c == '?') {
      q = std::string(1, c);
      ++pos_;
    } else if (c == '{') {
      const size_t close = p_.find('}', pos_);
      if (close == std::string_view::npos) error("unterminated '{'");
      const std::string_view body = p_.substr(pos_ + 1, close - pos_ - 1);
      if (body.empty() || body.find_first_not_of("0123456789,") != std::string_view::npos || body[0] == ',')
        error("bad repetition '{" + std::string(body) + "}'");
      q.assign(1, '{');
      q += body;
      q += '}';
      pos_ = close + 1;
    } else {
      return a;
    }
    if (pos_ < p_.size() && (p_[pos_] == '?' || p_[pos_] == '+')) ++pos_;  // lazy / possessive
    return "(" + a + ")" + q;
  }

  uint32_t hex(int digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      if (pos_ >= p_.size() || !std::isxdigit(static_cast<unsigned char>(p_[pos_]))) error("bad hex escape");
      const char c = p_[pos_++];
      v = v * 16 + uint32_t(std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(c) - 'a' + 10);
    }
    return v;
  }

  uint32_t utf8_char() {
    const unsigned char c = static_cast<unsigned char>(p_[pos_]);
    const int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || pos_ + size_t(len) > p_.size()) error("invalid UTF-8");
    uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int i = 1; i < len; ++i) v = (v << 6) | (static_cast<unsigned char>(p_[pos_ + size_t(i)]) & 0x3F);
    pos_ += size_t(len);
    return v;
  }

  // An escape after '\': a class (\d...) or one codepoint.
  Ranges escape(bool in_class) {
    if (pos_ >= p_.size()) error("trailing '\\'");
    const char e = p_[pos_++];
    switch (e) {
      case 'd': return kDigit;
      case 'D': return complement(kDigit);
      case 'w': return kWord;
      case 'W': return complement(kWord);
      case 's': return kSpace;
      case 'S': return complement(kSpace);
      case 'n': return {{'\n', '\n'}};
      case 'r': return {{'\r', '\r'}};
      case 't': return {{'\t', '\t'}};
      case 'f': return {{'\f', '\f'}};
      case 'v': return {{'\v', '\v'}};
      case 'x': { const uint32_t v = hex(2); return {{v, v}}; }
      case 'u': { const uint32_t v = hex(4); return {{v, v}}; }
      case 'b':
        if (in_class) return {{'\b', '\b'}};
        --pos_;
        error("word boundaries (\\b) are not supported");
      case 'B': --pos_; error("word boundaries (\\B) are not supported");
      default:
        if (std::isalnum(static_cast<unsigned char>(e))) {
          --pos_;
          error(std::string("escape '\\") + e + "' is not supported (backreference or unknown class)");
        }
        return {{uint32_t(static_cast<unsigned char>(e)), uint32_t(static_cast<unsigned char>(e))}};
    }
  }

  std::string set_text(Ranges r) {
    if (json_) r = subtract(r, kJsonUnsafe);
    if (r.empty()) error("a character class that matches nothing" + std::string(json_ ? " inside a JSON string" : ""));
    return class_text(r);
  }

  std::string literal(uint32_t cp) {
    if (json_ && (cp < 0x20 || cp == '"' || cp == '\\'))
      error("a pattern that needs a quote, backslash or control character is not supported inside a JSON string");
    return class_text({{cp, cp}});
  }

  std::string atom() {
    const char c = p_[pos_];
    if (c == '(') {
      ++pos_;
      if (p_.substr(pos_, 2) == "?:") {
        pos_ += 2;
      } else if (p_.substr(pos_, 2) == "?<" && p_.substr(pos_, 3) != "?<=" && p_.substr(pos_, 3) != "?<!") {
        const size_t close = p_.find('>', pos_);
        if (close == std::string_view::npos) error("unterminated group name");
        pos_ = close + 1;
      } else if (pos_ < p_.size() && p_[pos_] == '?') {
        error("lookaround and inline flags '(?' are not supported");
      }
      std::string inner = alternation();
      if (pos_ >= p_.size() || p_[pos_] != ')') error("missing ')'");
      ++pos_;
      return "(" + inner + ")";
    }
    if (c == '[') return char_class();
    if (c == '.') {
      ++pos_;
      return set_text(complement({{'\n', '\n'}}));
    }
    if (c == '\\') {
      ++pos_;
      const Ranges r = escape(false);
      return r.size() == 1 && r[0].first == r[0].second ? literal(r[0].first) : set_text(r);
    }
    if (c == '*' || c == '+' || c == '?' || c == '{') error(std::string("'") + c + "' has nothing to repeat");
    if (c == '^' || c == '$') error("anchors are only supported at the start and end");
    return literal(utf8_char());
  }

  std::string char_class() {
    ++pos_;  // '['
    bool negate = false;
    if (pos_ < p_.size() && p_[pos_] == '^') {
      negate = true;
      ++pos_;
    }
    Ranges r;
    bool first = true;
    while (pos_ < p_.size() && (p_[pos_] != ']' || first)) {
      first = false;
      Ranges item;
      if (p_[pos_] == '\\') {
        ++pos_;
        item = escape(true);
      } else {
        const uint32_t cp = utf8_char();
        item = {{cp, cp}};
      }
      if (item.size() == 1 && item[0].first == item[0].second && pos_ + 1 < p_.size() && p_[pos_] == '-' &&
          p_[pos_ + 1] != ']') {
        ++pos_;
        uint32_t hi;
        if (p_[pos_] == '\\') {
          ++pos_;
          const Ranges h = escape(true);
          if (h.size() != 1 || h[0].first != h[0].second) error("a class cannot end a range");
          hi = h[0].first;
        } else {
          hi = utf8_char();
        }
        if (hi < item[0].first) error("character range is out of order");
        item[0].second = hi;
      }
      r.insert(r.end(), item.begin(), item.end());
    }
    if (pos_ >= p_.size()) error("unterminated '['");
    ++pos_;
    return set_text(negate ? complement(r) : r);
  }

  std::string_view p_;
  bool json_;
  size_t pos_ = 0;
};

}  // namespace

std::string regex_to_gbnf(std::string_view pattern, bool json_string) {
  return RegexParser(pattern, json_string).parse();
}

std::string gbnf_literal(std::string_view text) {
  std::string s = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      s += '\\';
      s += c;
    } else if (u < 0x20) {
      s += fmt::format("\\x{:02X}", u);
    } else {
      s += c;
    }
  }
  return s + "\"";
}

}  // namespace troupe::grammar
