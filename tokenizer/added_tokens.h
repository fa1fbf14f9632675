#pragma once
// Finds added/special tokens written in the text before any normalisation or BPE runs,
// the way Hugging Face's AddedVocabulary does: leftmost match first, then the longest.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::detail {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;      // skipped by decode(skip_special)
  bool lstrip = false;       // also swallows white space on its left
  bool rstrip = false;       // ... and on its right
  bool single_word = false;  // only matches when not touching a word character
  bool normalized = false;   // tokenizer.json: matched in the normalised text
};

class AddedTokenSplitter {
 public:
  AddedTokenSplitter() = default;
  explicit AddedTokenSplitter(const std::vector<AddedToken>& tokens);

  bool empty() const { return tokens_.empty(); }

  struct Piece {
    std::string_view text;  // the plain text (id < 0), or the matched span
    int32_t id;             // token id, or -1 for plain text
  };
  // Appends the pieces of `text` to `out`; empty plain-text pieces are left out.
  void split(std::string_view text, std::vector<Piece>& out) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
    int32_t token = -1;                             // index into tokens_
  };
  int32_t child(int32_t node, uint8_t b) const;

  std::vector<Node> nodes_;  // a byte trie over the token contents; nodes_[0] is the root
  std::vector<AddedToken> tokens_;
};

}  // namespace troupe::detail
