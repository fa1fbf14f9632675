// SentencePiece BPE as sentencepiece's bpe_model.cc and llama.cpp's SPM tokenizer run it:
// start from single characters and repeatedly merge the adjacent pair whose concatenation
// is a vocabulary piece with the highest score (leftmost on ties). Pieces left outside the
// vocabulary become byte tokens <0xXX>, or <unk> when the vocabulary has no byte tokens.
#include <array>
#include <queue>

#include "core/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/spm.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab_base.h"

namespace troupe {
namespace detail {

namespace {

enum SpmType : int32_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6
};

// "<0x41>" -> 0x41, or -1.
int parse_byte_piece(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                          : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  const int hi = hex(p[3]), lo = hex(p[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string unescape_spaces(std::string_view piece) {
  std::string out;
  out.reserve(piece.size());
  for (size_t i = 0; i < piece.size();) {
    if (piece.substr(i, 3) == unicode::kSpmSpace) {
      out += ' ';
      i += 3;
    } else {
      out += piece[i++];
    }
  }
  return out;
}

class SpmTokenizer final : public VocabTokenizer {
 public:
  SpmTokenizer(SpmVocab v, const SpmOptions& opts);
  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;

 private:
  void encode_segment(std::string_view text, bool prefix, std::vector<int32_t>& out) const;
  void bpe(std::string_view word, std::vector<int32_t>& out) const;

  StringMap<int32_t> mergeable_;  // pieces BPE may produce: normal, user-defined, unused
  std::vector<float> scores_;
  std::vector<int32_t> types_;
  std::array<int32_t, 256> byte_ids_{};
  AddedTokenSplitter specials_;
  int32_t unk_id_;
  bool add_space_prefix_;
  bool remove_extra_ws_;
};

SpmTokenizer::SpmTokenizer(SpmVocab v, const SpmOptions& opts)
    : unk_id_(v.unk_id), add_space_prefix_(v.add_space_prefix),
      remove_extra_ws_(opts.remove_extra_whitespaces) {
  const size_t n = v.tokens.size();
  if (n == 0) fail("{}: empty vocabulary", opts.source);
  if (!v.scores.empty() && v.scores.size() != n)
    fail("{}: {} scores for {} tokens", opts.source, v.scores.size(), n);
  if (!v.types.empty() && v.types.size() != n)
    fail("{}: {} token types for {} tokens", opts.source, v.types.size(), n);
  scores_ = v.scores.empty() ? std::vector<float>(n, 0.0f) : std::move(v.scores);
  types_ = v.types.empty() ? std::vector<int32_t>(n, kNormal) : std::move(v.types);
  byte_ids_.fill(-1);

  std::vector<AddedToken> specials;
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = int32_t(i);
    std::string& piece = v.tokens[i];
    int32_t& type = types_[i];
    const int byte = parse_byte_piece(piece);
    if (type == kByte || (type == kUndefined && byte >= 0)) {
      if (byte < 0) fail("{}: byte token {} is not of the form <0xXX>", opts.source, piece);
      type = kByte;
      if (byte_ids_[byte] < 0) byte_ids_[byte] = id;
      set_token(id, piece, std::string(1, char(byte)), false);
      continue;
    }
    // Control tokens and the unknown token print as written; decode skips them.
    const bool special = type == kControl || type == kUnknown;
    if (type == kControl || type == kUserDefined)
      specials.push_back({.content = piece, .id = id, .special = type == kControl});
    if (type == kNormal || type == kUndefined || type == kUserDefined || type == kUnused)
      mergeable_.emplace(piece, id);
    set_token(id, piece, special ? piece : unescape_spaces(piece), special);
  }
  specials_ = AddedTokenSplitter(specials);
  if (unk_id_ >= int32_t(n)) fail("{}: unknown-token id {} out of range", opts.source, unk_id_);
  bos_id_ = v.bos_id >= 0 && v.bos_id < int32_t(n) ? v.bos_id : -1;
  if (v.eos_id >= 0 && v.eos_id < int32_t(n)) eos_ids_ = {v.eos_id};
  add_bos_ = v.add_bos && bos_id_ >= 0;
  strip_leading_spaces_ = add_space_prefix_ ? 1 : 0;
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> out;
  if (add_special && add_bos_) out.push_back(bos_id_);
  std::vector<AddedTokenSplitter::Piece> pieces;
  specials_.split(text, pieces);
  // As llama.cpp does: the text after a special token starts a new "sentence" and gets its
  // own dummy prefix (Llama-2 chat prompts are "<s>[INST]" = <s> "▁[INST]").
  bool prefix = add_space_prefix_;
  for (const auto& p : pieces) {
    if (p.id >= 0) {
      out.push_back(p.id);
      prefix = add_space_prefix_;
    } else {
      encode_segment(p.text, prefix, out);
      prefix = false;
    }
  }
  return out;
}

void SpmTokenizer::encode_segment(std::string_view text, bool prefix,
                                  std::vector<int32_t>& out) const {
  // sentencepiece's normaliser: leading spaces go, runs of spaces collapse to one, and
  // every trailing "▁" goes (escaped spaces and literal U+2581 alike, as it checks the
  // escaped output).
  if (remove_extra_ws_)
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  if (text.empty()) return;
  std::string word;
  word.reserve(text.size() + text.size() / 4 + 3);
  if (prefix) word += unicode::kSpmSpace;
  bool prev_space = false;
  for (char c : text) {
    if (c == ' ') {
      if (!(remove_extra_ws_ && prev_space)) word += unicode::kSpmSpace;
      prev_space = true;
    } else {
      word += c;
      prev_space = false;
    }
  }
  if (remove_extra_ws_)
    while (std::string_view(word).ends_with(unicode::kSpmSpace)) word.resize(word.size() - 3);
  bpe(word, out);
}

void SpmTokenizer::bpe(std::string_view word, std::vector<int32_t>& out) const {
  struct Sym {
    uint32_t begin, len;
    int32_t prev, next;
  };
  std::vector<Sym> syms;
  for (size_t i = 0; i < word.size();) {
    const size_t len = std::min(unicode::utf8_len(uint8_t(word[i])), word.size() - i);
    syms.push_back({uint32_t(i), uint32_t(len), int32_t(syms.size()) - 1, int32_t(syms.size()) + 1});
    i += len;
  }
  if (syms.empty()) return;
  syms.back().next = -1;

  struct Bigram {
    float score;
    int32_t left, right;
    uint32_t len;
    bool operator<(const Bigram& o) const {  // highest score first, then leftmost
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::priority_queue<Bigram> queue;
  // Unused pieces may be merged through but must not be output: remember what they were
  // built from so they can be split again (sentencepiece's "resegment").
  StringMap<std::pair<std::string_view, std::string_view>> rev_merge;
  auto try_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const std::string_view piece = word.substr(syms[l].begin, syms[l].len + syms[r].len);
    const int32_t* id = find_in(mergeable_, piece);
    if (!id) return;
    queue.push({scores_[*id], l, r, uint32_t(piece.size())});
    if (types_[*id] == kUnused)  // the latest candidate wins, as in sentencepiece
      rev_merge.insert_or_assign(std::string(piece),
                                 std::make_pair(word.substr(syms[l].begin, syms[l].len),
                                                word.substr(syms[r].begin, syms[r].len)));
  };
  for (size_t i = 1; i < syms.size(); ++i) try_pair(int32_t(i) - 1, int32_t(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Sym& l = syms[b.left];
    Sym& r = syms[b.right];
    // Stale: one side already merged elsewhere (its length changed or it is gone).
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.len) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    try_pair(l.prev, b.left);
    try_pair(b.left, l.next);
  }

  bool prev_unk = false;  // sentencepiece reports a run of unknown pieces as one <unk>
  std::function<void(std::string_view)> emit = [&](std::string_view piece) {
    if (const int32_t* id = find_in(mergeable_, piece)) {
      if (types_[*id] == kUnused) {
        if (const auto* parts = find_in(rev_merge, piece)) {
          emit(parts->first);
          emit(parts->second);
          return;
        }
      }
      out.push_back(*id);
      prev_unk = false;
      return;
    }
    bool all_bytes = true;
    for (char c : piece) all_bytes = all_bytes && byte_ids_[uint8_t(c)] >= 0;
    if (all_bytes) {
      for (char c : piece) out.push_back(byte_ids_[uint8_t(c)]);
      prev_unk = false;
    } else if (!prev_unk && unk_id_ >= 0) {
      out.push_back(unk_id_);
      prev_unk = true;
    }
  };
  for (int32_t i = 0; i >= 0; i = syms[i].next) emit(word.substr(syms[i].begin, syms[i].len));
}

}  // namespace

std::unique_ptr<Tokenizer> make_spm(SpmVocab vocab, const SpmOptions& opts) {
  return std::make_unique<SpmTokenizer>(std::move(vocab), opts);
}

}  // namespace detail

std::unique_ptr<Tokenizer> make_spm_tokenizer(SpmVocab vocab) {
  return detail::make_spm(std::move(vocab), detail::SpmOptions{});
}

}  // namespace troupe
