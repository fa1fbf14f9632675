#include "grammar/gbnf.h"

#include <algorithm>
#include <string>
#include <unordered_map>

#include "core/error.h"

namespace troupe::grammar {

namespace {

using Seq = std::vector<Element>;
using Alts = std::vector<Seq>;
using CodeRanges = std::vector<std::pair<uint32_t, uint32_t>>;

constexpr uint32_t kMaxRepeat = 10000;  // {m,n} bounds: larger ones are almost surely a mistake

Element bytes_element(uint8_t lo, uint8_t hi) {
  Element e;
  e.kind = Element::Kind::Bytes;
  e.bytes.set_range(lo, hi);
  return e;
}

Element ref(uint32_t rule) {
  Element e;
  e.kind = Element::Kind::Ref;
  e.rule = rule;
  return e;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Grammar parse(std::string_view root) {
    skip_space(true);
    while (pos_ < s_.size()) {
      const std::string name = parse_name();
      skip_space(false);
      if (s_.substr(pos_, 3) != "::=") error("expected '::=' after rule name '" + name + "'");
      pos_ += 3;
      const uint32_t id = rule_id(name);
      if (defined_[id]) error("rule '" + name + "' is defined twice");
      defined_[id] = true;
      rules_[id] = parse_alternatives(name, false);
      skip_space(true);
    }
    const auto it = ids_.find(std::string(root));
    if (it == ids_.end()) fail("grammar: no '{}' rule", root);
    for (size_t i = 0; i < rules_.size(); ++i)
      if (!defined_[i]) fail("grammar: rule '{}' is used but never defined", names_[i]);
    return Grammar(names_, rules_, it->second);
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    fail("grammar: {} at line {}, column {}", what, line, col);
  }

  // Spaces and comments; newlines too when `newlines` (inside groups, between rules).
  void skip_space(bool newlines) {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == '#') {
        while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) {
        ++pos_;
      } else {
        break;
      }
    }
  }

  static bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }

  std::string parse_name() {
    const size_t start = pos_;
    while (pos_ < s_.size() && name_char(s_[pos_])) ++pos_;
    if (start == pos_) error("expected a rule name");
    return std::string(s_.substr(start, pos_ - start));
  }

  uint32_t rule_id(const std::string& name) {
    auto [it, fresh] = ids_.emplace(name, uint32_t(names_.size()));
    if (fresh) {
      names_.push_back(name);
      rules_.emplace_back();
      defined_.push_back(false);
    }
    return it->second;
  }

  uint32_t new_rule(const std::string& base, Alts alts) {
    const uint32_t id = uint32_t(names_.size());
    names_.push_back(base + "-" + std::to_string(id));
    rules_.push_back(std::move(alts));
    defined_.push_back(true);
    return id;
  }

  Alts parse_alternatives(const std::string& name, bool nested) {
    Alts alts;
    alts.push_back(parse_sequence(name, nested));
    for (;;) {
      const size_t save = pos_;
      skip_space(true);
      if (pos_ < s_.size() && s_[pos_] == '|') {
        ++pos_;
        alts.push_back(parse_sequence(name, nested));
        continue;
      }
      if (!nested) pos_ = save;  // a newline ends the rule unless the next line goes on with '|'
      return alts;
    }
  }

  uint32_t parse_codepoint_escape(int digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      if (pos_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[pos_]))) error("bad hex escape");
      const char c = s_[pos_++];
      v = v * 16 + uint32_t(std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10));
    }
    return v;
  }

  // One character of a literal or class: an escape or a UTF-8 encoded codepoint.
  uint32_t parse_char() {
    if (pos_ >= s_.size()) error("unexpected end of grammar");
    const unsigned char c = static_cast<unsigned char>(s_[pos_]);
    if (c == '\\') {
      if (++pos_ >= s_.size()) error("unexpected end of grammar after '\\'");
      const char e = s_[pos_++];
      switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case 'f': return '\f';
        case 'v': return '\v';
        case '0': return 0;
        case 'x': return parse_codepoint_escape(2);
        case 'u': return parse_codepoint_escape(4);
        case 'U': return parse_codepoint_escape(8);
        case '\\': case '"': case '[': case ']': case '-': case '^': case '/': case '.': case '\'':
          return uint32_t(e);
        default: --pos_; error(std::string("unknown escape '\\") + e + "'");
      }
    }
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || pos_ + size_t(len) > s_.size()) error("invalid UTF-8");
    uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int i = 1; i < len; ++i) {
      const unsigned char k = static_cast<unsigned char>(s_[pos_ + size_t(i)]);
      if ((k & 0xC0) != 0x80) error("invalid UTF-8");
      v = (v << 6) | (k & 0x3F);
    }
    pos_ += size_t(len);
    return v;
  }

  // Appends the elements matching one codepoint out of `ranges` (a rule when multi-byte).
  void append_class(const std::string& name, const CodeRanges& ranges, Seq& seq) {
    const auto seqs = utf8_sequences(ranges);
    if (seqs.empty()) error("empty character class");
    if (seqs.size() == 1) {  // one byte sequence (a single codepoint, say): inline it
      for (auto [lo, hi] : seqs[0]) seq.push_back(bytes_element(lo, hi));
      return;
    }
    if (std::all_of(seqs.begin(), seqs.end(), [](const auto& q) { return q.size() == 1; })) {
      Element e = bytes_element(seqs[0][0].first, seqs[0][0].second);
      for (const auto& q : seqs) e.bytes.set_range(q[0].first, q[0].second);
      seq.push_back(e);
      return;
    }
    Alts alts;
    for (const auto& q : seqs) {
      Seq s;
      for (auto [lo, hi] : q) s.push_back(bytes_element(lo, hi));
      alts.push_back(std::move(s));
    }
    seq.push_back(ref(new_rule(name, std::move(alts))));
  }

  CodeRanges parse_class() {
    ++pos_;  // '['
    bool negate = false;
    if (pos_ < s_.size() && s_[pos_] == '^') {
      negate = true;
      ++pos_;
    }
    CodeRanges r;
    while (pos_ < s_.size() && s_[pos_] != ']') {
      const uint32_t lo = parse_char();
      uint32_t hi = lo;
      if (pos_ + 1 < s_.size() && s_[pos_] == '-' && s_[pos_ + 1] != ']') {
        ++pos_;
        hi = parse_char();
        if (hi < lo) error("character range is out of order");
      }
      r.emplace_back(lo, hi);
    }
    if (pos_ >= s_.size()) error("unterminated character class");
    ++pos_;  // ']'
    if (!negate) return r;
    std::sort(r.begin(), r.end());
    CodeRanges inv;
    uint32_t next = 0;
    for (auto [lo, hi] : r) {
      if (lo > next) inv.emplace_back(next, lo - 1);
      next = std::max(next, hi + 1);
    }
    if (next <= 0x10FFFF) inv.emplace_back(next, 0x10FFFF);
    return inv;
  }

  uint32_t parse_count() {
    const size_t start = pos_;
    uint32_t v = 0;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
      v = v * 10 + uint32_t(s_[pos_++] - '0');
      if (v > kMaxRepeat) error("repetition count over " + std::to_string(kMaxRepeat));
    }
    if (start == pos_) error("expected a number in '{...}'");
    return v;
  }

  // item{lo,hi} (hi == UINT32_MAX: unbounded) in place of seq[start..].
  void repeat(const std::string& name, Seq& seq, size_t start, uint32_t lo, uint32_t hi) {
    const Seq item(seq.begin() + long(start), seq.end());
    seq.resize(start);
    for (uint32_t i = 0; i < lo; ++i) seq.insert(seq.end(), item.begin(), item.end());
    if (hi == lo) return;
    if (hi == UINT32_MAX) {  // star ::= item star | ""
      const uint32_t star = new_rule(name, {});
      Seq loop = item;
      loop.push_back(ref(star));
      rules_[star] = {loop, {}};
      seq.push_back(ref(star));
      return;
    }
    // Up to (hi - lo) more, nested: opt_k ::= item opt_{k+1} | ""
    uint32_t tail = UINT32_MAX;
    for (uint32_t k = 0; k < hi - lo; ++k) {
      Seq more = item;
      if (tail != UINT32_MAX) more.push_back(ref(tail));
      tail = new_rule(name, {more, {}});
    }
    seq.push_back(ref(tail));
  }

  Seq parse_sequence(const std::string& name, bool nested) {
    Seq seq;
    size_t last = SIZE_MAX;  // where the last item starts (for a postfix operator)
    for (;;) {
      skip_space(nested);
      if (pos_ >= s_.size()) break;
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        last = seq.size();
        while (pos_ < s_.size() && s_[pos_] != '"') {
          const uint32_t cp = parse_char();
          append_class(name, {{cp, cp}}, seq);  // one codepoint: its UTF-8 bytes, in sequence
        }
        if (pos_ >= s_.size()) error("unterminated string literal");
        ++pos_;
        if (last == seq.size()) last = SIZE_MAX;  // "" is nothing to repeat
      } else if (c == '[') {
        last = seq.size();
        append_class(name, parse_class(), seq);
      } else if (c == '.') {
        ++pos_;
        last = seq.size();
        append_class(name, {{0, 0x10FFFF}}, seq);
      } else if (c == '(') {
        ++pos_;
        Alts alts = parse_alternatives(name, true);
        skip_space(true);
        if (pos_ >= s_.size() || s_[pos_] != ')') error("expected ')'");
        ++pos_;
        last = seq.size();
        seq.push_back(ref(new_rule(name, std::move(alts))));
      } else if (name_char(c)) {
        const size_t save = pos_;
        const std::string ref_name = parse_name();
        skip_space(false);
        if (s_.substr(pos_, 3) == "::=") {  // the next rule starts: this one ended
          pos_ = save;
          if (nested) error("expected ')'");
          break;
        }
        last = seq.size();
        seq.push_back(ref(rule_id(ref_name)));
      } else if (c == '*' || c == '+' || c == '?' || c == '{') {
        if (last == SIZE_MAX) error(std::string("'") + c + "' has nothing to repeat");
        ++pos_;
        uint32_t lo = 0, hi = UINT32_MAX;
        if (c == '+') lo = 1;
        if (c == '?') hi = 1;
        if (c == '{') {
          skip_space(false);
          lo = parse_count();
          skip_space(false);
          hi = lo;
          if (pos_ < s_.size() && s_[pos_] == ',') {
            ++pos_;
            skip_space(false);
            hi = (pos_ < s_.size() && s_[pos_] == '}') ? UINT32_MAX : parse_count();
            skip_space(false);
          }
          if (pos_ >= s_.size() || s_[pos_] != '}') error("expected '}'");
          ++pos_;
          if (hi < lo) error("repetition {m,n} with n < m");
        }
        // Wrap a multi-element item (a literal) so it repeats as a whole.
        if (seq.size() - last > 1) {
          Seq item(seq.begin() + long(last), seq.end());
          seq.resize(last);
          seq.push_back(ref(new_rule(name, {item})));
        }
        repeat(name, seq, last, lo, hi);
        last = SIZE_MAX;
      } else {
        break;  // '|', ')', a newline: the caller decides
      }
    }
    return seq;
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::vector<std::string> names_;
  std::vector<Alts> rules_;
  std::vector<bool> defined_;
  std::unordered_map<std::string, uint32_t> ids_;
};

}  // namespace

Grammar parse_gbnf(std::string_view text, std::string_view root) { return Parser(text).parse(root); }

}  // namespace troupe::grammar
