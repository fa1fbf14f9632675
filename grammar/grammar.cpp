#include "grammar/grammar.h"

#include <functional>

#include "core/error.h"

namespace troupe::grammar {

Grammar::Grammar(std::vector<std::string> names, const std::vector<std::vector<std::vector<Element>>>& rules,
                 uint32_t root)
    : names_(std::move(names)), root_(root) {
  if (names_.size() != rules.size()) fail("grammar: {} rule names for {} rules", names_.size(), rules.size());
  if (root_ >= rules.size()) fail("grammar: no root rule");
  alt_starts_.resize(rules.size());
  for (size_t r = 0; r < rules.size(); ++r) {
    if (rules[r].empty()) fail("grammar: rule '{}' is used but never defined", names_[r]);
    for (const auto& alt : rules[r]) {
      alt_starts_[r].push_back(uint32_t(elements_.size()));
      for (const Element& e : alt) {
        if (e.kind == Element::Kind::Ref && e.rule >= rules.size()) fail("grammar: reference to a missing rule");
        if (e.kind != Element::Kind::End) elements_.push_back(e);
      }
      elements_.push_back(Element{});
    }
  }
  check_left_recursion();
}

// A rule that can reach itself without consuming a byte would make stack expansion loop;
// GBNF (like llama.cpp) rejects it. Nullable rules count: in `a ::= b a`, b may be empty.
void Grammar::check_left_recursion() const {
  const size_t n = names_.size();
  std::vector<bool> nullable(n, false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < n; ++r) {
      if (nullable[r]) continue;
      for (uint32_t p : alt_starts_[r]) {
        while (elements_[p].kind == Element::Kind::Ref && nullable[elements_[p].rule]) ++p;
        if (elements_[p].kind == Element::Kind::End) {
          nullable[r] = changed = true;
          break;
        }
      }
    }
  }
  std::vector<std::vector<uint32_t>> left(n);  // rules reachable at the left edge of r
  for (size_t r = 0; r < n; ++r)
    for (uint32_t p : alt_starts_[r])
      for (; elements_[p].kind == Element::Kind::Ref; ++p) {
        left[r].push_back(elements_[p].rule);
        if (!nullable[elements_[p].rule]) break;
      }
  std::vector<uint8_t> state(n, 0);  // 0 new, 1 on the DFS path, 2 done
  std::function<void(uint32_t)> visit = [&](uint32_t r) {
    state[r] = 1;
    for (uint32_t x : left[r]) {
      if (state[x] == 1) fail("grammar: rule '{}' is left-recursive", names_[x]);
      if (state[x] == 0) visit(x);
    }
    state[r] = 2;
  };
  for (uint32_t r = 0; r < n; ++r)
    if (state[r] == 0) visit(r);
}

}  // namespace troupe::grammar
