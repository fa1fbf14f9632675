#include "grammar/token_mask.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <deque>
#include <map>
#include <mutex>
#include <numeric>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace troupe::grammar {

TokenTable::TokenTable(const std::vector<std::string>& bytes, const std::vector<bool>& special,
                       std::vector<int32_t> eos_ids)
    : vocab_size_(int32_t(bytes.size())), eos_ids_(std::move(eos_ids)) {
  std::vector<int32_t> order;
  for (size_t i = 0; i < bytes.size(); ++i)
    if (!bytes[i].empty() && !(i < special.size() && special[i])) order.push_back(int32_t(i));
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return bytes[size_t(a)] < bytes[size_t(b)]; });
  ids_ = order;
  bytes_.reserve(order.size());
  lcp_.reserve(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    bytes_.push_back(bytes[size_t(order[i])]);
    uint32_t l = 0;
    if (i > 0) {
      const std::string& a = bytes_[i - 1];
      const std::string& b = bytes_[i];
      while (l < a.size() && l < b.size() && a[l] == b[l]) ++l;
    }
    lcp_.push_back(l);
  }
  sorted_index_.assign(bytes.size(), -1);
  for (size_t i = 0; i < ids_.size(); ++i) sorted_index_[size_t(ids_[i])] = int32_t(i);
}

const std::string& TokenTable::token_bytes(int32_t id) const {
  static const std::string kNone;
  if (id < 0 || id >= vocab_size_ || sorted_index_[size_t(id)] < 0) return kNone;
  return bytes_[size_t(sorted_index_[size_t(id)])];
}

std::shared_ptr<const TokenTable> TokenTable::from_tokenizer(const Tokenizer& tok) {
  const int32_t n = tok.vocab_size();
  std::vector<std::string> bytes(static_cast<size_t>(n));
  std::vector<bool> special(static_cast<size_t>(n));
  uint64_t h = 0xcbf29ce484222325ull;
  const auto mix = [&h](uint64_t x) { h = (h ^ x) * 0x100000001b3ull; };
  for (int32_t i = 0; i < n; ++i) {
    special[size_t(i)] = tok.is_special(i);
    if (!special[size_t(i)]) bytes[size_t(i)] = tok.token_bytes(i);
    mix(special[size_t(i)]);
    for (char c : bytes[size_t(i)]) mix(uint8_t(c));
    mix(0x100);
  }
  for (int32_t e : tok.eos_ids()) mix(uint64_t(uint32_t(e)) + 0x200);
  // One table per distinct vocabulary in the process: every engine (and pipeline stage) of
  // a model shares it, and with it the maskers and their caches (grammar::masker()).
  static std::mutex mu;
  static std::map<uint64_t, std::weak_ptr<const TokenTable>> tables;
  std::lock_guard lock(mu);
  if (auto it = tables.find(h); it != tables.end()) {
    if (auto t = it->second.lock()) {
      bool same = t->vocab_size() == n && t->eos_ids() == tok.eos_ids();
      for (int32_t i = 0; same && i < n; ++i)
        same = t->token_bytes(i) == (special[size_t(i)] ? std::string() : bytes[size_t(i)]);
      if (same) return t;
    }
  }
  auto t = std::make_shared<const TokenTable>(bytes, special, tok.eos_ids());
  tables[h] = t;
  return t;
}

size_t TokenBitmask::count() const {
  size_t n = 0;
  for (uint64_t w : words_) n += size_t(std::popcount(w));
  return n;
}

bool TokenBitmask::any() const {
  return std::any_of(words_.begin(), words_.end(), [](uint64_t w) { return w != 0; });
}

void TokenBitmask::apply_to(std::span<float> logits) const {
  // A word at a time: most are all-forbidden (a fill) or all-allowed (a skip).
  const size_t n = std::min(logits.size(), words_.size() * 64);
  for (size_t w = 0; w * 64 < n; ++w) {
    const uint64_t bits = words_[w];
    const size_t lo = w * 64, hi = std::min(n, lo + 64);
    if (bits == ~uint64_t(0)) continue;
    if (bits == 0) {
      std::fill(logits.begin() + long(lo), logits.begin() + long(hi), -INFINITY);
      continue;
    }
    for (size_t i = lo; i < hi; ++i)
      if (!((bits >> (i - lo)) & 1)) logits[i] = -INFINITY;
  }
}

namespace {

// Stacks stored back to back (no allocation per stack once the buffers have grown).
struct FlatStacks {
  std::vector<uint32_t> data;
  std::vector<uint32_t> ends;
  void clear() {
    data.clear();
    ends.clear();
  }
  size_t size() const { return ends.size(); }
  bool empty() const { return ends.empty(); }
  uint32_t begin(size_t i) const { return i == 0 ? 0 : ends[i - 1]; }
  uint32_t top(size_t i) const { return data[ends[i] - 1]; }
  void push(const std::vector<uint32_t>& s, int64_t extra = -1) {
    data.insert(data.end(), s.begin(), s.end());
    if (extra >= 0) data.push_back(uint32_t(extra));
    ends.push_back(uint32_t(data.size()));
  }
  bool contains(const std::vector<uint32_t>& s) const {
    // From the top down: stacks of one set share their bottoms and differ near the top.
    for (size_t i = 0; i < size(); ++i) {
      const uint32_t b = begin(i);
      if (ends[i] - b == s.size() && std::equal(s.rbegin(), s.rend(), data.rbegin() + long(data.size() - ends[i])))
        return true;
    }
    return false;
  }
};

// The matcher's stack expansion and byte step (matcher.cpp) over flat stacks, with an
// explicit work list instead of recursion and copies. "Bottom": a path popped every
// position of the stack it started from (below a key: context; below a whole stack: the
// end of the grammar).
class Walker {
 public:
  struct Level {
    FlatStacks stacks;
    bool at_bottom = false;   // a path popped everything exactly at this depth
    bool ctx_before = false;  // ...at a smaller depth, with bytes still to come
  };

  // Sorts the tokens `subset` (indices into the sorted table, ascending; null: all of them)
  // by walking them as a trie from `stack` (its top a byte-set element).
  template <class OnAccepted, class OnUncertain>
  void classify(const Grammar& g, const TokenTable& t, const uint32_t* stack, size_t n,
                const std::vector<uint32_t>* subset, OnAccepted&& accepted, OnUncertain&& uncertain) {
    if (levels_.empty()) levels_.resize(8);
    Level& l0 = levels_[0];
    l0.stacks.clear();
    l0.stacks.data.assign(stack, stack + n);
    l0.stacks.ends.push_back(uint32_t(n));
    l0.at_bottom = l0.ctx_before = false;
    size_t valid = 0;  // levels_[0..valid] describe the current token's prefix
    const std::string* prev = nullptr;
    // All tokens: only those whose first byte the top accepts can be anything but rejected.
    const ByteSet& first = g.at(stack[n - 1]).bytes;
    const size_t count = subset ? subset->size() : t.num_sorted();
    for (size_t k = 0; k < count; ++k) {
      const size_t i = subset ? (*subset)[k] : k;
      const std::string& tok = t.bytes(i);
      if (!subset && !first.test(uint8_t(tok[0]))) {
        valid = 0;
        prev = &tok;
        continue;
      }
      size_t lcp = 0;
      if (prev) {
        if (subset) {
          while (lcp < valid && lcp < prev->size() && lcp < tok.size() && (*prev)[lcp] == tok[lcp]) ++lcp;
        } else {
          lcp = t.lcp(i);
        }
      }
      prev = &tok;
      valid = std::min(valid, lcp);
      while (valid < tok.size() && !levels_[valid].stacks.empty()) {
        if (levels_.size() < valid + 2) levels_.resize(valid + 2);
        const Level& cur = levels_[valid];
        Level& next = levels_[valid + 1];
        advance(g, cur, uint8_t(tok[valid]), next);
        next.ctx_before = cur.ctx_before || cur.at_bottom;
        ++valid;
      }
      const Level& l = levels_[valid];
      if (valid == tok.size()) {
        if (!l.stacks.empty() || l.at_bottom) {
          accepted(uint32_t(i));
        } else if (l.ctx_before) {
          uncertain(uint32_t(i));
        }
      } else if (l.ctx_before || l.at_bottom) {
        uncertain(uint32_t(i));
      }
    }
  }

 private:
  void advance(const Grammar& g, const Level& in, uint8_t b, Level& out) {
    out.stacks.clear();
    out.at_bottom = false;
    for (size_t i = 0; i < in.stacks.size(); ++i) {
      if (!g.at(in.stacks.top(i)).bytes.test(b)) continue;
      cur_.assign(in.stacks.data.begin() + in.stacks.begin(i), in.stacks.data.begin() + in.stacks.ends[i]);
      cur_.back() += 1;
      expand(g, out);
    }
  }

  // Expands cur_ into out (deduplicated).
  void expand(const Grammar& g, Level& out) {
    pending_.clear();
    for (;;) {
      for (;;) {
        if (cur_.empty()) {
          out.at_bottom = true;
          break;
        }
        const uint32_t pos = cur_.back();
        const Element& e = g.at(pos);
        if (e.kind == Element::Kind::Bytes) {
          if (!out.stacks.contains(cur_)) out.stacks.push(cur_);
          break;
        }
        cur_.pop_back();
        if (e.kind == Element::Kind::End) continue;
        if (g.at(pos + 1).kind != Element::Kind::End) cur_.push_back(pos + 1);
        const auto& alts = g.alternatives(e.rule);
        for (size_t a = 0; a + 1 < alts.size(); ++a) pending_.push(cur_, alts[a]);
        cur_.push_back(alts.back());
      }
      if (pending_.empty()) return;
      const uint32_t b = pending_.begin(pending_.size() - 1);
      cur_.assign(pending_.data.begin() + b, pending_.data.end());
      pending_.data.resize(b);
      pending_.ends.pop_back();
    }
  }

  std::vector<Level> levels_;
  std::vector<uint32_t> cur_;
  FlatStacks pending_;
};

Walker& walker() {
  thread_local Walker w;
  return w;
}

struct KeyHash {
  size_t operator()(const std::vector<uint32_t>& k) const {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (uint32_t x : k) h = (h ^ x) * 0xff51afd7ed558ccdull;
    return size_t(h ^ (h >> 29));
  }
};

}  // namespace

struct TokenMasker::Entry {
  const Entry* parent = nullptr;       // accepted = parent's accepted + added (when no `full`)
  std::unique_ptr<TokenBitmask> full;  // or the whole accepted set
  std::vector<int32_t> added;          // token ids
  std::vector<uint32_t> uncertain;     // indices into the sorted table

  void apply(TokenBitmask& mask) const {
    for (const Entry* e = this; e; e = e->parent) {
      for (int32_t id : e->added) mask.set(id);
      if (e->full) {
        mask.merge(*e->full);
        break;
      }
    }
  }
};

struct TokenMasker::Cache {
  std::mutex mu;
  std::unordered_map<std::vector<uint32_t>, std::unique_ptr<Entry>, KeyHash> entries;
};

TokenMasker::TokenMasker(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenTable> table)
    : g_(std::move(g)), table_(std::move(table)), cache_(std::make_unique<Cache>()) {}

TokenMasker::~TokenMasker() = default;

size_t TokenMasker::cached_positions() const {
  std::lock_guard lock(cache_->mu);
  return cache_->entries.size();
}

// The entry for the top `depth` positions ending at `top` (top[depth - 1] is the stack's
// top); `parent` is the entry for depth - 1 (null for depth 1).
const TokenMasker::Entry& TokenMasker::entry(const uint32_t* top, size_t depth, const Entry* parent) const {
  thread_local std::vector<uint32_t> key;
  key.assign(top, top + depth);
  {
    std::lock_guard lock(cache_->mu);
    if (auto it = cache_->entries.find(key); it != cache_->entries.end()) return *it->second;
  }
  // Computed outside the lock (it can be slow); a racing duplicate is dropped below.
  const TokenTable& t = *table_;
  auto e = std::make_unique<Entry>();
  std::vector<uint32_t> accepted;
  walker().classify(
      *g_, t, top, depth, parent ? &parent->uncertain : nullptr, [&](uint32_t i) { accepted.push_back(i); },
      [&](uint32_t i) { e->uncertain.push_back(i); });
  // Few additions: a list on top of the parent's set (if any); many: a bitset of its own.
  if (accepted.size() > size_t(t.vocab_size()) / 64) {
    e->full = std::make_unique<TokenBitmask>(t.vocab_size());
    if (parent) parent->apply(*e->full);
    for (uint32_t i : accepted) e->full->set(t.id(i));
  } else {
    e->parent = parent;
    e->added.reserve(accepted.size());
    for (uint32_t i : accepted) e->added.push_back(t.id(i));
  }
  std::lock_guard lock(cache_->mu);
  auto [it, _] = cache_->entries.emplace(key, std::move(e));
  return *it->second;  // entries are never erased, so the reference stays valid
}

void TokenMasker::fill(const Matcher& m, TokenBitmask& mask, const std::vector<int32_t>& extra_end_ids) const {
  const TokenTable& t = *table_;
  mask.reset(t.vocab_size());
  for (const Stack& s : m.stacks()) {
    if (s.empty()) continue;
    const uint32_t* end = s.data() + s.size();
    const size_t max_depth = std::min(s.size(), kMaxDepth);
    size_t d = 1;
    const Entry* e = &entry(end - 1, 1, nullptr);
    while (e->uncertain.size() > kDirectCheck && d < max_depth) {
      ++d;
      e = &entry(end - d, d, e);
    }
    e->apply(mask);
    // The uncertain tokens against the whole stack (below it: the end of the grammar, so a
    // token still uncertain there is rejected).
    if (d < s.size() && !e->uncertain.empty())
      walker().classify(*g_, t, s.data(), s.size(), &e->uncertain, [&](uint32_t i) { mask.set(t.id(i)); },
                        [](uint32_t) {});
  }
  if (m.can_end() || !mask.any()) {
    for (int32_t id : t.eos_ids())
      if (id >= 0 && id < t.vocab_size()) mask.set(id);
    for (int32_t id : extra_end_ids)
      if (id >= 0 && id < t.vocab_size()) mask.set(id);
  }
}

void TokenMasker::precompute() const {
  const auto t0 = std::chrono::steady_clock::now();
  precompute_entries();
  if (!precomputed_.exchange(true, std::memory_order_acq_rel))
    precompute_ms_.store(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(),
                         std::memory_order_relaxed);
}

void TokenMasker::precompute_entries() const {
  // Where a rule returns to: the position after each reference to it (a reference that ends
  // its alternative returns wherever its own rule returns).
  const Grammar& g = *g_;
  std::vector<uint32_t> rule_of(g.num_positions());
  for (uint32_t r = 0; r < g.num_rules(); ++r)
    for (uint32_t p : g.alternatives(r))
      for (uint32_t q = p;; ++q) {
        rule_of[q] = r;
        if (g.at(q).kind == Element::Kind::End) break;
      }
  std::vector<std::vector<uint32_t>> returns(g.num_rules());
  std::vector<std::vector<uint32_t>> tail_callers(g.num_rules());
  for (uint32_t p = 0; p < g.num_positions(); ++p) {
    const Element& e = g.at(p);
    if (e.kind != Element::Kind::Ref) continue;
    if (g.at(p + 1).kind != Element::Kind::End) {
      returns[e.rule].push_back(p + 1);
    } else {
      tail_callers[e.rule].push_back(rule_of[p]);
    }
  }
  const auto below = [&](uint32_t rule) {  // positions that can sit under one of `rule`'s
    std::vector<uint32_t> out;
    std::vector<bool> seen(g.num_rules(), false);
    std::vector<uint32_t> todo{rule};
    seen[rule] = true;
    while (!todo.empty()) {
      const uint32_t r = todo.back();
      todo.pop_back();
      out.insert(out.end(), returns[r].begin(), returns[r].end());
      for (uint32_t c : tail_callers[r])
        if (!seen[c]) todo.push_back(c), seen[c] = true;
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  };
  std::vector<std::vector<uint32_t>> below_of(g.num_rules());
  for (uint32_t r = 0; r < g.num_rules(); ++r) below_of[r] = below(r);
  // Breadth first over keys (bottom..top), so the shallow entries every stack passes through
  // come before deep ones, refining while the uncertain set is large. Only positions a stack
  // can rest on (byte sets, and return points under them) appear. The callers are an
  // over-approximation (not every chain occurs), so the number of refinements is bounded.
  std::deque<std::pair<std::vector<uint32_t>, const Entry*>> todo;
  for (uint32_t p = 0; p < g.num_positions(); ++p)
    if (g.at(p).kind == Element::Kind::Bytes) todo.emplace_back(std::vector<uint32_t>{p}, &entry(&p, 1, nullptr));
  for (size_t budget = 4096; !todo.empty() && budget > 0; todo.pop_front()) {
    const auto& [key, parent] = todo.front();
    if (parent->uncertain.size() <= kDirectCheck || key.size() >= kMaxDepth) continue;
    --budget;
    for (uint32_t u : below_of[rule_of[key.front()]]) {
      std::vector<uint32_t> deeper{u};
      deeper.insert(deeper.end(), key.begin(), key.end());
      const Entry* e = &entry(deeper.data(), deeper.size(), parent);
      todo.emplace_back(std::move(deeper), e);
    }
  }
}

}  // namespace troupe::grammar
