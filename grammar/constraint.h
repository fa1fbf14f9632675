#pragma once
// A request's output constraint as a plain value (it travels in SamplingParams, across
// actors and the wire), and the process-wide cache that turns it into a compiled grammar
// and, per vocabulary, a TokenMasker with its warm mask cache.
#include <cstdint>
#include <memory>
#include <string>

#include "grammar/token_mask.h"

namespace troupe::grammar {

struct ConstraintSpec {
  // "" (none), "json_schema", "json_object", "regex", "choice" (text: a JSON array of
  // strings), "gbnf"
  std::string kind;
  std::string text;
  bool empty() const { return kind.empty(); }
  bool operator==(const ConstraintSpec&) const = default;
};

// The GBNF text a constraint compiles to (throws troupe::Error naming the problem).
std::string to_gbnf(const ConstraintSpec& spec);

// Compiled grammar for a constraint, cached by (kind, text). Throws troupe::Error for a bad
// schema, regex or grammar; call it where the request arrives to report a 400.
std::shared_ptr<const Grammar> compile(const ConstraintSpec& spec);

// The masker for a constraint over a vocabulary, cached by (kind, text, table).
std::shared_ptr<const TokenMasker> masker(const ConstraintSpec& spec, const std::shared_ptr<const TokenTable>& table);

// When on, masker() starts TokenMasker::precompute() for each masker it creates, on a
// detached thread at the lowest CPU priority, and returns at once: the first requests of a
// new constraint fill the cache lazily beside it (the two share it; nothing waits on the
// precompute), the later ones find it full. Off by default (tests, tools); `troupe serve`
// turns it on.
void set_background_precompute(bool on);
// Background precomputes started and not finished yet (for tests and metrics).
int background_precomputes_running();

}  // namespace troupe::grammar
