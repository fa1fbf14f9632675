#pragma once
// A context-free grammar over bytes, flattened for the pushdown matcher (matcher.h).
//
// Every rule is a list of alternatives; every alternative a sequence of elements, each either
// a byte set (one input byte out of a set) or a reference to a rule. Unicode lives one level
// up: the GBNF parser (gbnf.h) turns codepoint classes into UTF-8 byte sequences, so the
// matcher only ever sees bytes, exactly what tokens are made of.
//
// Flattened layout: all alternatives of all rules in one element array, each alternative
// ended by an End element. A position is an index into that array; a matcher stack is a list
// of positions (the top is the next element to match, the ones below are where to resume
// after the rule being matched ends).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace troupe::grammar {

// 256 bits: which bytes an element accepts.
struct ByteSet {
  std::array<uint64_t, 4> bits{};
  void set(uint8_t b) { bits[b >> 6] |= uint64_t(1) << (b & 63); }
  void set_range(uint8_t lo, uint8_t hi) {
    for (unsigned b = lo; b <= hi; ++b) set(uint8_t(b));
  }
  bool test(uint8_t b) const { return (bits[b >> 6] >> (b & 63)) & 1; }
  bool operator==(const ByteSet&) const = default;
};

struct Element {
  enum class Kind : uint8_t { End, Bytes, Ref };
  Kind kind = Kind::End;
  uint32_t rule = 0;  // Ref: the referenced rule
  ByteSet bytes;      // Bytes: the accepted bytes
};

class Grammar {
 public:
  // Builds from rules given as alternatives of elements (End elements are added here).
  // `names[i]` names rule i in errors. Throws troupe::Error on a reference to a missing rule
  // or on left recursion (the matcher would expand it forever).
  Grammar(std::vector<std::string> names, const std::vector<std::vector<std::vector<Element>>>& rules,
          uint32_t root);

  uint32_t root() const { return root_; }
  size_t num_rules() const { return names_.size(); }
  const std::string& rule_name(uint32_t r) const { return names_[r]; }
  const Element& at(uint32_t pos) const { return elements_[pos]; }
  // First positions of the alternatives of rule r.
  const std::vector<uint32_t>& alternatives(uint32_t r) const { return alt_starts_[r]; }
  size_t num_positions() const { return elements_.size(); }

 private:
  void check_left_recursion() const;

  std::vector<std::string> names_;
  std::vector<Element> elements_;
  std::vector<std::vector<uint32_t>> alt_starts_;
  uint32_t root_;
};

}  // namespace troupe::grammar
