#pragma once
// What every tokenizer here shares: the id <-> piece tables, token bytes and decoding.
// Subclasses fill the tables in their constructor and implement encode().
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace troupe::detail {

// Hash map keyed by std::string that can be probed with a std::string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

template <typename V>
const V* find_in(const StringMap<V>& m, std::string_view key) {
  auto it = m.find(key);
  return it == m.end() ? nullptr : &it->second;
}

class VocabTokenizer : public Tokenizer {
 public:
  // Out-of-range ids (a model's padded embedding rows) have no bytes.
  std::string token_bytes(int32_t id) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special = true) const override;
  int32_t vocab_size() const override { return int32_t(pieces_.size()); }
  std::optional<int32_t> token_id(std::string_view piece) const override;
  bool is_special(int32_t id) const override;

 protected:
  // Registers token `id`: its piece as stored in the vocabulary, its decoded bytes.
  // A later call for the same id replaces the earlier one; the first id registered for
  // a piece is what token_id() returns.
  void set_token(int32_t id, std::string piece, std::string bytes, bool special);
  void reserve_tokens(size_t n);

  std::vector<std::string> pieces_;
  std::vector<std::string> bytes_;
  std::vector<uint8_t> special_;
  StringMap<int32_t> piece_to_id_;
  // Spaces decode() removes from the very start of its output: SentencePiece-style
  // tokenizers put one in front of the text ("▁Hello").
  int strip_leading_spaces_ = 0;
};

}  // namespace troupe::detail
