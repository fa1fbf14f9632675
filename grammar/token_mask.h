#pragma once
// Allowed-token masks: which tokens of the vocabulary the grammar lets come next.
//
// TokenTable holds every ordinary token's bytes sorted, so tokens sharing a prefix are
// neighbours and one walk of the sorted list is a walk of the token trie: the matcher state
// after a shared prefix is computed once.
//
// TokenMasker keeps xgrammar's adaptive cache, refined level by level. An entry is keyed by
// the top d positions of a stack (the element to match, then the d - 1 places it returns
// into) and sorts tokens into accepted (all bytes matched without popping past those d
// positions: valid whatever lies below), rejected, and uncertain (the path pops past them
// with bytes left, so the rest depends on the stack below). Depth 1 walks the whole token
// trie once per grammar position; depth d + 1 only re-walks the uncertain tokens of depth d,
// so deeper entries are cheap. A step's mask is, per stack, the entry at the shallowest
// depth whose uncertain set is small (or the whole stack), plus one check of those few
// uncertain tokens against the whole stack. Entries live in the masker, which
// grammar::masker() shares across engines and sequences by (constraint, vocabulary), and
// the hot path (a cached entry: bitset OR, a few token checks) allocates nothing.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "grammar/matcher.h"

namespace troupe {
class Tokenizer;
}

namespace troupe::grammar {

class TokenTable {
 public:
  // bytes[id]: the token's bytes; special[id]: never produced by a grammar (control tokens).
  TokenTable(const std::vector<std::string>& bytes, const std::vector<bool>& special, std::vector<int32_t> eos_ids);
  static std::shared_ptr<const TokenTable> from_tokenizer(const Tokenizer& tok);

  int32_t vocab_size() const { return vocab_size_; }
  size_t num_sorted() const { return ids_.size(); }
  int32_t id(size_t i) const { return ids_[i]; }
  const std::string& bytes(size_t i) const { return bytes_[i]; }
  uint32_t lcp(size_t i) const { return lcp_[i]; }  // common prefix with the previous one
  // A token's bytes by id; empty for special tokens and ids outside the table.
  const std::string& token_bytes(int32_t id) const;
  const std::vector<int32_t>& eos_ids() const { return eos_ids_; }

 private:
  int32_t vocab_size_;
  std::vector<int32_t> ids_;
  std::vector<std::string> bytes_;
  std::vector<uint32_t> lcp_;
  std::vector<int32_t> sorted_index_;  // by id: index into bytes_, or -1
  std::vector<int32_t> eos_ids_;
};

// A bit per token id.
class TokenBitmask {
 public:
  explicit TokenBitmask(int32_t n = 0) : words_((size_t(n) + 63) / 64, 0) {}
  void reset(int32_t n) { words_.assign((size_t(n) + 63) / 64, 0); }
  void set(int32_t id) { words_[size_t(id) >> 6] |= uint64_t(1) << (id & 63); }
  bool test(int32_t id) const { return (words_[size_t(id) >> 6] >> (id & 63)) & 1; }
  void merge(const TokenBitmask& o) {
    for (size_t i = 0; i < words_.size(); ++i) words_[i] |= o.words_[i];
  }
  size_t count() const;
  bool any() const;
  size_t num_words() const { return words_.size(); }
  uint64_t word(size_t i) const { return words_[i]; }
  // -inf on every logit whose bit is clear (logits.size() at most the mask's size).
  void apply_to(std::span<float> logits) const;

 private:
  std::vector<uint64_t> words_;
};

class TokenMasker {
 public:
  TokenMasker(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenTable> table);
  ~TokenMasker();

  // Tokens allowed after `m`'s bytes; the end-of-sequence ids (and `extra_end_ids`) only
  // where the grammar may end - and always when nothing else is allowed, so a finished
  // sequence can stop even if the grammar allows nothing more.
  void fill(const Matcher& m, TokenBitmask& mask, const std::vector<int32_t>& extra_end_ids = {}) const;
  const TokenTable& table() const { return *table_; }
  const std::shared_ptr<const Grammar>& grammar() const { return g_; }
  size_t cached_positions() const;  // cache entries (all depths)
  // Fills the depth-1 entry of every grammar position that can be a stack top, and the
  // deeper ones their callers give, until the uncertain sets are small (what fill() would
  // compute lazily on the way). Idempotent; safe to run beside fill().
  void precompute() const;
  // Whether a precompute() has finished (the cache then holds every entry it fills), and
  // how long the first one took.
  bool precomputed() const { return precomputed_.load(std::memory_order_acquire); }
  double precompute_ms() const { return precompute_ms_.load(std::memory_order_relaxed); }
  // Uncertain sets at most this big are checked against the whole stack rather than refined.
  static constexpr size_t kDirectCheck = 64;
  static constexpr size_t kMaxDepth = 24;

  struct Entry;

 private:
  const Entry& entry(const uint32_t* top, size_t depth, const Entry* parent) const;
  void precompute_entries() const;

  std::shared_ptr<const Grammar> g_;
  std::shared_ptr<const TokenTable> table_;
  struct Cache;
  std::unique_ptr<Cache> cache_;
  mutable std::atomic<bool> precomputed_{false};
  mutable std::atomic<double> precompute_ms_{0.0};
};

}  // namespace troupe::grammar
