#pragma once
// Allowed-token masks: which tokens of the vocabulary the grammar lets come next.
//
// TokenTable holds every ordinary token's bytes sorted, so tokens sharing a prefix are
// neighbours and one walk of the sorted list is a walk of the token trie: the matcher state
// after a shared prefix is computed once.
//
// TokenMasker keeps xgrammar's adaptive cache: for each top of a stack (its last
// kContextDepth positions: the element to match and the rules it returns into), it walks the
// whole trie once from that top alone and sorts tokens into accepted (all bytes matched
// before the top is popped: valid whatever is below on the stack), rejected (fails before),
// and uncertain (the top is popped inside the token, so the rest depends on the stack). A
// step's mask is then, per stack, the cached accepted set plus a full check of the few
// uncertain tokens. Keying on a few positions rather than one matters: a JSON string
// character is its own one-character rule, so with one position nearly every token would be
// uncertain; with the enclosing string's positions only tokens that close the string are.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <map>
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

 private:
  std::vector<uint64_t> words_;
};

class TokenMasker {
 public:
  TokenMasker(std::shared_ptr<const Grammar> g, std::shared_ptr<const TokenTable> table);

  // Tokens allowed after `m`'s bytes; the end-of-sequence ids (and `extra_end_ids`) only
  // where the grammar may end - and always when nothing else is allowed, so a finished
  // sequence can stop even if the grammar allows nothing more.
  void fill(const Matcher& m, TokenBitmask& mask, const std::vector<int32_t>& extra_end_ids = {}) const;
  const TokenTable& table() const { return *table_; }
  const std::shared_ptr<const Grammar>& grammar() const { return g_; }
  size_t cached_positions() const;
  static constexpr size_t kContextDepth = 4;

 private:
  struct PositionMasks {
    TokenBitmask accepted;
    std::vector<uint32_t> uncertain;  // indices into the sorted table
  };
  const PositionMasks& masks_for(const Stack& top) const;
  PositionMasks compute(const Stack& top) const;

  std::shared_ptr<const Grammar> g_;
  std::shared_ptr<const TokenTable> table_;
  mutable std::mutex mu_;
  mutable std::map<Stack, std::unique_ptr<PositionMasks>> cache_;
};

}  // namespace troupe::grammar
