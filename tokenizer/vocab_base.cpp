#include "tokenizer/vocab_base.h"

#include "tokenizer/unicode.h"

namespace troupe::detail {

void VocabTokenizer::set_token(int32_t id, std::string piece, std::string bytes, bool special) {
  if (size_t(id) >= pieces_.size()) {
    pieces_.resize(size_t(id) + 1);
    bytes_.resize(size_t(id) + 1);
    special_.resize(size_t(id) + 1);
  }
  piece_to_id_.emplace(piece, id);
  pieces_[id] = std::move(piece);
  bytes_[id] = std::move(bytes);
  special_[id] = special;
}

void VocabTokenizer::reserve_tokens(size_t n) {
  pieces_.reserve(n);
  bytes_.reserve(n);
  special_.reserve(n);
  piece_to_id_.reserve(n);
}

std::string VocabTokenizer::token_bytes(int32_t id) const {
  return (id >= 0 && size_t(id) < bytes_.size()) ? bytes_[id] : std::string();
}

std::optional<int32_t> VocabTokenizer::token_id(std::string_view piece) const {
  if (const int32_t* id = find_in(piece_to_id_, piece)) return *id;
  return std::nullopt;
}

bool VocabTokenizer::is_special(int32_t id) const {
  return id >= 0 && size_t(id) < special_.size() && special_[id];
}

std::string VocabTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (skip_special && is_special(id)) continue;
    std::string_view b = id >= 0 && size_t(id) < bytes_.size() ? bytes_[id] : std::string_view();
    if (out.empty()) {
      // Only the start of the whole text carries the dummy prefix.
      for (int n = 0; n < strip_leading_spaces_ && !b.empty() && b.front() == ' '; ++n)
        b.remove_prefix(1);
    }
    out.append(b);
  }
  // Byte tokens may leave partial characters (cut-off text): show them as U+FFFD.
  return unicode::sanitize_utf8(out);
}

}  // namespace troupe::detail
