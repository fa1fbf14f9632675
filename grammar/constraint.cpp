#include "grammar/constraint.h"

#include <boost/json.hpp>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

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

std::atomic<bool> background_precompute{false};
std::atomic<int> precomputes_running{0};

// Fills `m`'s cache on a thread of its own. The lowest priority (nice 19 for this thread
// only, on Linux) keeps it from slowing the steps it would speed up: it uses what the
// forward passes leave idle. The thread holds the masker, so the cache's eviction of the
// constraint cannot free it underneath.
void start_background_precompute(std::shared_ptr<const TokenMasker> m) {
  precomputes_running.fetch_add(1);
  std::thread([m = std::move(m)] {
#ifdef __linux__
    setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 19);
#endif
    try {
      m->precompute();
    } catch (...) {
      // The lazy path computes whatever is missing (and reports any error on its own thread).
    }
    precomputes_running.fetch_sub(1);
  }).detach();
}

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
  if (background_precompute.load()) start_background_precompute(m);
  return m;
}

void set_background_precompute(bool on) { background_precompute.store(on); }

int background_precomputes_running() { return precomputes_running.load(); }

}  // namespace troupe::grammar
