#include "grammar/matcher.h"

#include <algorithm>

namespace troupe::grammar {

void expand_stack(const Grammar& g, Stack stack, std::vector<Stack>& out, bool* bottom) {
  for (;;) {
    if (stack.empty()) {
      if (bottom) {
        *bottom = true;
      } else {
        out.push_back(std::move(stack));
      }
      return;
    }
    const uint32_t pos = stack.back();
    const Element& e = g.at(pos);
    if (e.kind == Element::Kind::Bytes) {
      out.push_back(std::move(stack));
      return;
    }
    stack.pop_back();
    if (e.kind == Element::Kind::End) continue;  // alternative done: resume the caller
    // A reference: remember where to resume (unless the reference ends its alternative -
    // then there is nothing to resume, which keeps right recursion from growing the stack).
    if (g.at(pos + 1).kind != Element::Kind::End) stack.push_back(pos + 1);
    const auto& alts = g.alternatives(e.rule);
    for (size_t i = 0; i + 1 < alts.size(); ++i) {
      Stack s = stack;
      s.push_back(alts[i]);
      expand_stack(g, std::move(s), out, bottom);
    }
    stack.push_back(alts.back());
  }
}

void advance_stacks(const Grammar& g, const std::vector<Stack>& in, uint8_t b, std::vector<Stack>& out,
                    bool* bottom) {
  out.clear();
  for (const Stack& s : in) {
    if (s.empty() || !g.at(s.back()).bytes.test(b)) continue;
    Stack next = s;
    next.back() += 1;
    expand_stack(g, std::move(next), out, bottom);
  }
  if (out.size() > 1) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }
}

Matcher::Matcher(std::shared_ptr<const Grammar> g) : g_(std::move(g)) {
  for (uint32_t a : g_->alternatives(g_->root())) expand_stack(*g_, Stack{a}, stacks_);
  std::sort(stacks_.begin(), stacks_.end());
  stacks_.erase(std::unique(stacks_.begin(), stacks_.end()), stacks_.end());
}

bool Matcher::accept(std::string_view bytes) {
  std::vector<Stack> cur = stacks_, next;
  for (char c : bytes) {
    advance_stacks(*g_, cur, uint8_t(c), next);
    if (next.empty()) return false;
    cur.swap(next);
  }
  stacks_ = std::move(cur);
  return true;
}

bool Matcher::can_accept(std::string_view bytes) const {
  Matcher copy = *this;
  return copy.accept(bytes);
}

bool Matcher::can_end() const {
  return std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.empty(); });
}

bool Matcher::finished() const {
  return std::all_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.empty(); });
}

}  // namespace troupe::grammar
