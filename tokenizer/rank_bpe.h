#pragma once
// Merge loop of rank-based BPE (GPT-2 / Hugging Face tokenizers): the adjacent pair with
// the lowest merge rank is merged first, the leftmost one on ties, until no listed pair
// is left. A priority queue with lazily dropped stale entries keeps it O(n log n), which
// matters for SentencePiece-style models that BPE a whole line as one word.
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace troupe::detail {

struct BpeSymbol {
  int32_t id;          // token id, or -1 for a character not in the vocabulary (never merges)
  uint32_t begin, end;  // byte range in the word
};

class RankMerges {
 public:
  void reserve(size_t n) { merges_.reserve(n); }
  // The next rank. Returns false when the pair is already listed (the first one wins).
  bool add(int32_t left, int32_t right, int32_t result);
  size_t size() const { return merges_.size(); }
  // Merges `syms` in place.
  void apply(std::vector<BpeSymbol>& syms) const;

 private:
  struct Merge {
    int32_t rank, result;
  };
  static uint64_t key(int32_t l, int32_t r) { return uint64_t(uint32_t(l)) << 32 | uint32_t(r); }
  const Merge* find(int32_t l, int32_t r) const;

  std::unordered_map<uint64_t, Merge> merges_;
};

}  // namespace troupe::detail
