#include "grammar/constraint.h"

#include <boost/json.hpp>
#include <map>
#include <mutex>

#include "core/error.h"
#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "grammar/regex.h"

namespace troupe::grammar {

namespace {

// Bounded: a client sending endless distinct schemas must not grow memory without limit.
constexpr size_t kMaxCached = 256;

struct Caches {
  std::mutex mu;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<const Grammar>> grammars;
  std::map<std::tuple<std::string, std::string, const TokenTable*>,
           std::pair<std::weak_ptr<const TokenTable>, std::shared_ptr<const TokenMasker>>>
      maskers;
};

Caches& caches() {
  static Caches c;
  return c;
}

std::vector<std::string> choices(const std::string& text) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(text, ec);
  if (ec || !v.is_array()) fail("choice: expected a JSON array of strings");
  std::vector<std::string> out;
  for (const auto& c : v.as_array()) {
    if (!c.is_string()) fail("choice: every choice must be a string");
    out.emplace_back(c.as_string());
  }
  return out;
}

}  // namespace

std::string to_gbnf(const ConstraintSpec& spec) {
  if (spec.kind == "json_schema") return json_schema_to_gbnf(spec.text);
  if (spec.kind == "json_object") return json_object_gbnf();
  if (spec.kind == "regex") return "root ::= " + regex_to_gbnf(spec.text) + "\n";
  if (spec.kind == "choice") return choice_gbnf(choices(spec.text));
  if (spec.kind == "gbnf") return spec.text;
  fail("unknown constraint kind '{}'", spec.kind);
}

std::shared_ptr<const Grammar> compile(const ConstraintSpec& spec) {
  Caches& c = caches();
  const auto key = std::make_pair(spec.kind, spec.text);
  {
    std::lock_guard lock(c.mu);
    if (auto it = c.grammars.find(key); it != c.grammars.end()) return it->second;
  }
  auto g = std::make_shared<const Grammar>(parse_gbnf(to_gbnf(spec)));
  std::lock_guard lock(c.mu);
  if (c.grammars.size() >= kMaxCached) c.grammars.clear();
  return c.grammars.emplace(key, std::move(g)).first->second;
}

std::shared_ptr<const TokenMasker> masker(const ConstraintSpec& spec, const std::shared_ptr<const TokenTable>& table) {
  auto g = compile(spec);
  Caches& c = caches();
  const auto key = std::make_tuple(spec.kind, spec.text, table.get());
  std::lock_guard lock(c.mu);
  if (auto it = c.maskers.find(key); it != c.maskers.end() && it->second.first.lock() == table)
    return it->second.second;
  if (c.maskers.size() >= kMaxCached) c.maskers.clear();
  auto m = std::make_shared<const TokenMasker>(std::move(g), table);
  c.maskers[key] = {table, m};
  return m;
}

}  // namespace troupe::grammar
