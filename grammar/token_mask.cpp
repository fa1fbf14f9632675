#include "grammar/token_mask.h"

#include <algorithm>
#include <bit>
#include <numeric>

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
  for (int32_t i = 0; i < n; ++i) {
    special[size_t(i)] = tok.is_special(i);
    if (!special[size_t(i)]) bytes[size_t(i)] = tok.token_bytes(i);
  }
  return std::make_shared<TokenTable>(bytes, special, tok.eos_ids());
}

size_t TokenBitmask::count() const {
  size_t n = 0;
  for (uint64_t w : words_) n += size_t(std::popcount(w));
  return n;
}

TokenMasker::TokenMasker(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenTable> table)
    : g_(std::move(g)), table_(std::move(table)) {}

size_t TokenMasker::cached_positions() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

const TokenMasker::PositionMasks& TokenMasker::masks_for(const Stack& top) const {
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(top);
    if (it != cache_.end()) return *it->second;
  }
  auto fresh = std::make_unique<PositionMasks>(compute(top));  // outside the lock: it is slow
  std::lock_guard lock(mu_);
  auto [it, _] = cache_.emplace(top, std::move(fresh));
  return *it->second;  // entries are never erased, so the reference stays valid
}

// One walk of the sorted table from the stack's top alone. A path that pops past it
// ("bottom") with token bytes left depends on the real stack: the token is uncertain.
TokenMasker::PositionMasks TokenMasker::compute(const Stack& top) const {
  struct Level {
    std::vector<Stack> stacks;
    bool at_bottom = false;   // a path ended pos's rule exactly at this depth
    bool ctx_before = false;  // a path ended it at a smaller depth
  };
  const TokenTable& t = *table_;
  PositionMasks out{TokenBitmask(t.vocab_size()), {}};
  std::vector<Level> levels(1);
  levels[0].stacks.push_back(top);
  size_t valid = 0;  // levels[0..valid] describe the current token's prefix
  for (size_t i = 0; i < t.num_sorted(); ++i) {
    const std::string& tok = t.bytes(i);
    valid = std::min<size_t>(valid, t.lcp(i));
    while (valid < tok.size() && !levels[valid].stacks.empty()) {
      if (levels.size() < valid + 2) levels.resize(valid + 2);
      const Level& cur = levels[valid];
      Level& next = levels[valid + 1];
      bool bottom = false;
      advance_stacks(*g_, cur.stacks, uint8_t(tok[valid]), next.stacks, &bottom);
      next.at_bottom = bottom;
      next.ctx_before = cur.ctx_before || cur.at_bottom;
      ++valid;
    }
    const Level& l = levels[valid];
    if (valid == tok.size()) {
      if (!l.stacks.empty() || l.at_bottom) {
        out.accepted.set(t.id(i));
      } else if (l.ctx_before) {
        out.uncertain.push_back(uint32_t(i));
      }
    } else if (l.ctx_before || l.at_bottom) {
      out.uncertain.push_back(uint32_t(i));
    }
  }
  return out;
}

void TokenMasker::fill(const Matcher& m, TokenBitmask& mask, const std::vector<int32_t>& extra_end_ids) const {
  const TokenTable& t = *table_;
  mask.reset(t.vocab_size());
  const auto top_of = [](const Stack& s) {
    return Stack(s.end() - long(std::min(s.size(), kContextDepth)), s.end());
  };
  std::vector<Stack> tops;
  for (const Stack& s : m.stacks())
    if (!s.empty()) tops.push_back(top_of(s));
  std::sort(tops.begin(), tops.end());
  tops.erase(std::unique(tops.begin(), tops.end()), tops.end());
  for (const Stack& top : tops) mask.merge(masks_for(top).accepted);
  // Uncertain tokens: checked against every stack with that top, the whole stack this time.
  std::vector<Stack> cur, next;
  for (const Stack& s : m.stacks()) {
    if (s.empty()) continue;
    for (uint32_t idx : masks_for(top_of(s)).uncertain) {
      const int32_t id = t.id(idx);
      if (mask.test(id)) continue;
      cur.assign(1, s);
      bool ok = true;
      for (char c : t.bytes(idx)) {
        advance_stacks(*g_, cur, uint8_t(c), next);
        if (next.empty()) {
          ok = false;
          break;
        }
        cur.swap(next);
      }
      if (ok) mask.set(id);
    }
  }
  if (m.can_end() || mask.count() == 0) {
    for (int32_t id : t.eos_ids())
      if (id >= 0 && id < t.vocab_size()) mask.set(id);
    for (int32_t id : extra_end_ids)
      if (id >= 0 && id < t.vocab_size()) mask.set(id);
  }
}

}  // namespace troupe::grammar
