#pragma once
// The pushdown automaton's state for one sequence: the set of stacks of grammar positions
// that the bytes so far can lead to (several when the grammar is ambiguous so far). Every
// stack is kept expanded: its top is a byte-set element, or it is empty, meaning the
// grammar may end here. A plain value: copying it is how a draft or a verifier looks ahead
// without touching the original, and how a rejected draft "rolls back".
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "grammar/grammar.h"

namespace troupe::grammar {

using Stack = std::vector<uint32_t>;

// Expands `stack` (pops finished alternatives, replaces a rule reference by its
// alternatives) into `out`. When `bottom` is non-null, an empty stack is the end of the
// enclosing context rather than of the grammar: it sets *bottom instead of being emitted.
void expand_stack(const Grammar& g, Stack stack, std::vector<Stack>& out, bool* bottom = nullptr);
// The stacks after `b`, deduplicated.
void advance_stacks(const Grammar& g, const std::vector<Stack>& in, uint8_t b, std::vector<Stack>& out,
                    bool* bottom = nullptr);

class Matcher {
 public:
  explicit Matcher(std::shared_ptr<const Grammar> g);

  // Consumes bytes; returns false (and leaves the state unchanged) if the grammar forbids them.
  bool accept(std::string_view bytes);
  // Whether `bytes` could be consumed, without consuming them.
  bool can_accept(std::string_view bytes) const;
  bool can_end() const;                 // the bytes so far form a complete sentence
  bool finished() const;                // ...and nothing may follow
  const std::vector<Stack>& stacks() const { return stacks_; }
  const Grammar& grammar() const { return *g_; }

 private:
  std::shared_ptr<const Grammar> g_;
  std::vector<Stack> stacks_;
};

}  // namespace troupe::grammar
