#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace troupe::detail {

namespace {

// Start of the code point that ends just before `pos`.
size_t prev_cp_start(std::string_view s, size_t pos) {
  size_t p = pos - 1;
  while (p > 0 && pos - p < 4 && (uint8_t(s[p]) & 0xC0) == 0x80) --p;
  return p;
}

bool word_char_at(std::string_view s, size_t pos, size_t len) {
  // \w with Unicode properties: letters, digits, marks and '_', as HF's single_word test.
  static const Regex word("\\w", false, "added tokens");
  return word.full_match(s.substr(pos, len));
}

}  // namespace

AddedTokenSplitter::AddedTokenSplitter(const std::vector<AddedToken>& tokens) {
  nodes_.emplace_back();
  for (const auto& t : tokens) {
    if (t.content.empty()) continue;
    int32_t node = 0;
    for (char c : t.content) {
      int32_t next = child(node, uint8_t(c));
      if (next < 0) {
        next = int32_t(nodes_.size());
        auto& kids = nodes_[node].next;
        kids.insert(std::upper_bound(kids.begin(), kids.end(), std::make_pair(uint8_t(c), -1)),
                    {uint8_t(c), next});
        nodes_.emplace_back();  // after the insert: `kids` may point into nodes_
      }
      node = next;
    }
    if (nodes_[node].token < 0) {  // the first of duplicate contents wins
      nodes_[node].token = int32_t(tokens_.size());
      tokens_.push_back(t);
    }
  }
}

int32_t AddedTokenSplitter::child(int32_t node, uint8_t b) const {
  const auto& kids = nodes_[node].next;
  auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(b, int32_t(-1)));
  return (it != kids.end() && it->first == b) ? it->second : -1;
}

void AddedTokenSplitter::split(std::string_view text, std::vector<Piece>& out) const {
  size_t text_start = 0;  // start of the plain text not yet emitted
  size_t i = 0;
  while (i < text.size()) {
    // Longest token starting at i.
    int32_t best = -1;
    size_t best_end = 0;
    int32_t node = 0;
    for (size_t j = i; j < text.size(); ++j) {
      node = child(node, uint8_t(text[j]));
      if (node < 0) break;
      if (nodes_[node].token >= 0) {
        best = nodes_[node].token;
        best_end = j + 1;
      }
    }
    if (best < 0) {
      ++i;
      continue;
    }
    const AddedToken& tok = tokens_[best];
    size_t start = i, end = best_end;
    if (tok.single_word) {
      bool touches = false;
      if (start > 0) {
        const size_t p = prev_cp_start(text, start);
        touches = word_char_at(text, p, start - p);
      }
      if (!touches && end < text.size())
        touches = word_char_at(text, end, std::min(unicode::utf8_len(uint8_t(text[end])), text.size() - end));
      if (touches) {
        ++i;
        continue;
      }
    }
    if (tok.lstrip) {
      while (start > text_start) {
        size_t p = prev_cp_start(text, start), q = p;
        if (!unicode::is_space(unicode::next_cp(text, q))) break;
        start = p;
      }
    }
    if (tok.rstrip) {
      while (end < text.size()) {
        size_t q = end;
        if (!unicode::is_space(unicode::next_cp(text, q))) break;
        end = q;
      }
    }
    if (start > text_start) out.push_back({text.substr(text_start, start - text_start), -1});
    out.push_back({text.substr(start, end - start), tok.id});
    text_start = i = end;
  }
  if (text_start < text.size()) out.push_back({text.substr(text_start), -1});
}

}  // namespace troupe::detail
