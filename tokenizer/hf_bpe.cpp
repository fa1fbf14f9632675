#include "tokenizer/hf_bpe.h"

#include <algorithm>
#include <array>

#include "core/error.h"
#include "tokenizer/rank_bpe.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab_base.h"

namespace troupe {
namespace detail {

namespace {

constexpr const char* kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
constexpr const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// "<0x41>" pieces of byte-fallback vocabularies.
std::string byte_piece(int b) {
  static const char* hex = "0123456789ABCDEF";
  return std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
}

// s = p + s (std::string::insert(0, ...) trips a GCC 12 -Wrestrict false positive).
void prepend(std::string& s, std::string_view p) {
  std::string r;
  r.reserve(p.size() + s.size());
  r.append(p).append(s);
  s.swap(r);
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  if (from.empty()) return std::string(s);
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out.append(s.substr(pos, hit - pos));
    out.append(to);
  }
  out.append(s.substr(pos));
  return out;
}

// Removes leading/trailing Unicode white space.
std::string_view strip_spaces(std::string_view s, bool left, bool right) {
  if (left) {
    size_t i = 0;
    while (i < s.size()) {
      size_t j = i;
      if (!unicode::is_space(unicode::next_cp(s, j))) break;
      i = j;
    }
    s.remove_prefix(i);
  }
  if (right) {
    while (!s.empty()) {
      size_t p = s.size() - 1;
      while (p > 0 && s.size() - p < 4 && (uint8_t(s[p]) & 0xC0) == 0x80) --p;
      size_t j = p;
      if (!unicode::is_space(unicode::next_cp(s, j)) || j != s.size()) break;
      s.remove_suffix(s.size() - p);
    }
  }
  return s;
}

// HF's SplitDelimiterBehavior over the segments of `s` (matches and the gaps between).
void split_by(std::string_view s, const Regex& re, PreTokenizerStep::Behavior behavior,
              bool invert, std::vector<std::string>& out) {
  struct Seg {
    size_t b, e;
    bool match;
  };
  std::vector<Seg> segs;
  size_t last = 0;
  re.for_each_match(s, [&](size_t b, size_t e) {
    if (b > last) segs.push_back({last, b, invert});
    segs.push_back({b, e, !invert});
    last = e;
  });
  if (last < s.size()) segs.push_back({last, s.size(), invert});

  std::vector<std::pair<size_t, size_t>> parts;
  switch (behavior) {
    case PreTokenizerStep::kIsolated:
      for (const auto& g : segs) parts.push_back({g.b, g.e});
      break;
    case PreTokenizerStep::kRemoved:
      for (const auto& g : segs)
        if (!g.match) parts.push_back({g.b, g.e});
      break;
    case PreTokenizerStep::kMergedWithPrevious: {
      bool prev_match = false;
      for (const auto& g : segs) {
        if (g.match && !prev_match && !parts.empty()) parts.back().second = g.e;
        else parts.push_back({g.b, g.e});
        prev_match = g.match;
      }
      break;
    }
    case PreTokenizerStep::kMergedWithNext: {
      bool next_match = false;  // walking backwards: was the segment after this a match?
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->match && !next_match && !parts.empty()) parts.back().first = it->b;
        else parts.push_back({it->b, it->e});
        next_match = it->match;
      }
      std::reverse(parts.begin(), parts.end());
      break;
    }
    case PreTokenizerStep::kContiguous: {
      bool prev_match = false;
      for (size_t i = 0; i < segs.size(); ++i) {
        if (i > 0 && segs[i].match == prev_match) parts.back().second = segs[i].e;
        else parts.push_back({segs[i].b, segs[i].e});
        prev_match = segs[i].match;
      }
      break;
    }
  }
  for (const auto& [b, e] : parts)
    if (e > b) out.emplace_back(s.substr(b, e - b));
}

class HfBpeTokenizer final : public VocabTokenizer {
 public:
  explicit HfBpeTokenizer(HfBpeSpec spec);
  std::vector<int32_t> encode(std::string_view text, bool add_special) const override;

 private:
  std::string normalize(std::string_view s) const;
  void pre_tokenize(std::string_view s, bool first, std::vector<std::string>& words) const;
  void bpe(std::string_view word, std::vector<int32_t>& out) const;

  HfBpeSpec spec_;                 // flags and steps (vocab/merges moved out)
  StringMap<int32_t> model_ids_;   // word bytes (byte-level) or piece -> id, for BPE
  RankMerges merges_;
  std::array<int32_t, 256> byte_ids_{};      // byte-level: the token of each single byte
  std::array<int32_t, 256> fallback_ids_{};  // byte fallback: <0xXX>
  AddedTokenSplitter raw_added_;   // matched in the input text
  AddedTokenSplitter norm_added_;  // matched after normalisation ("normalized": true)
  int32_t prefix_id_ = -1;         // the lone "▁" token
};

HfBpeTokenizer::HfBpeTokenizer(HfBpeSpec spec) : spec_(std::move(spec)) {
  const std::string& src = spec_.source;
  byte_ids_.fill(-1);
  fallback_ids_.fill(-1);
  reserve_tokens(spec_.vocab.size() + spec_.added.size());
  model_ids_.reserve(spec_.vocab.size());
  std::string bytes;
  for (size_t id = 0; id < spec_.vocab.size(); ++id) {
    std::string& piece = spec_.vocab[id];
    if (piece.empty()) continue;
    if (spec_.byte_level) {
      if (!unicode::decode_byte_level(piece, &bytes)) bytes = piece;  // verbatim token
    } else {
      bytes = spec_.metaspace ? replace_all(piece, unicode::kSpmSpace, " ") : piece;
    }
    model_ids_.emplace(spec_.byte_level ? bytes : piece, int32_t(id));
    set_token(int32_t(id), std::move(piece), bytes, false);
  }
  if (spec_.byte_level) {
    for (int b = 0; b < 256; ++b)
      if (const int32_t* id = find_in(model_ids_, std::string(1, char(b)))) byte_ids_[b] = *id;
  }
  if (spec_.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      if (auto id = token_id(byte_piece(b))) {
        fallback_ids_[b] = *id;
        bytes_[*id] = std::string(1, char(b));
      }
    }
  }
  if (spec_.metaspace)
    if (auto id = token_id(unicode::kSpmSpace)) prefix_id_ = *id;

  merges_.reserve(spec_.merges.size());
  for (const auto& [l, r] : spec_.merges) {
    const auto li = token_id(l), ri = token_id(r), mi = token_id(l + r);
    if (!li || !ri || !mi) fail("{}: merge \"{} {}\" uses a token missing from the vocabulary", src, l, r);
    merges_.add(*li, *ri, *mi);
  }
  spec_.merges = {};
  spec_.vocab = {};

  // Added tokens print as written (not through the byte alphabet).
  std::vector<AddedToken> raw, norm;
  for (const auto& t : spec_.added) {
    if (t.id < 0 || t.id > (1 << 26)) fail("{}: added token {} has a bad id {}", src, t.content, t.id);
    set_token(t.id, t.content, t.content, t.special);
    (t.normalized && !spec_.normalizers.empty() ? norm : raw).push_back(t);
  }
  raw_added_ = AddedTokenSplitter(raw);
  norm_added_ = AddedTokenSplitter(norm);
  strip_leading_spaces_ = spec_.strip_leading_spaces;
  bos_id_ = spec_.bos_id;
  eos_ids_ = spec_.eos_ids;
  add_bos_ = spec_.add_bos && bos_id_ >= 0;
}

std::string HfBpeTokenizer::normalize(std::string_view s) const {
  std::string cur(s);
  for (const auto& n : spec_.normalizers) {
    switch (n.kind) {
      case NormalizerStep::kPrepend:
        if (!cur.empty()) prepend(cur, n.text);
        break;
      case NormalizerStep::kReplace:
        if (n.regex) {
          std::string out;
          size_t last = 0;
          n.regex->for_each_match(cur, [&](size_t b, size_t e) {
            out.append(cur, last, b - last);
            out.append(n.with);
            last = e;
          });
          out.append(cur, last);
          cur = std::move(out);
        } else {
          cur = replace_all(cur, n.text, n.with);
        }
        break;
      case NormalizerStep::kNfc:
        cur = unicode::nfc(cur);
        break;
      case NormalizerStep::kStrip:
        cur = std::string(strip_spaces(cur, n.left, n.right));
        break;
    }
  }
  return cur;
}

void HfBpeTokenizer::pre_tokenize(std::string_view s, bool first,
                                  std::vector<std::string>& words) const {
  words.clear();
  words.emplace_back(s);
  std::vector<std::string> next;
  for (const auto& p : spec_.pre_tokenizers) {
    next.clear();
    for (size_t i = 0; i < words.size(); ++i) {
      std::string& w = words[i];
      if (w.empty()) continue;
      switch (p.kind) {
        case PreTokenizerStep::kSplit:
          split_by(w, *p.regex, p.behavior, p.invert, next);
          break;
        case PreTokenizerStep::kByteLevel:
          // The byte alphabet itself is applied implicitly: our byte-level vocabulary is
          // keyed by raw bytes, so only the optional space and regex split remain.
          if (p.add_prefix_space && w.front() != ' ') prepend(w, " ");
          if (p.regex) split_by(w, *p.regex, PreTokenizerStep::kIsolated, false, next);
          else next.push_back(std::move(w));
          break;
        case PreTokenizerStep::kMetaspace: {
          std::string m = replace_all(w, " ", p.replacement);
          const bool starts = m.compare(0, p.replacement.size(), p.replacement) == 0;
          if (!starts && (p.prepend == PreTokenizerStep::kAlways ||
                          (p.prepend == PreTokenizerStep::kFirst && first && i == 0)))
            prepend(m, p.replacement);
          if (p.split) {
            // Split before every replacement character, keeping it with the next word.
            size_t start = 0;
            for (size_t hit = m.find(p.replacement, 1); hit != std::string::npos;
                 hit = m.find(p.replacement, hit + p.replacement.size())) {
              if (hit > start) {
                next.push_back(m.substr(start, hit - start));
                start = hit;
              }
            }
            next.push_back(m.substr(start));
          } else {
            next.push_back(std::move(m));
          }
          break;
        }
      }
    }
    words.swap(next);
  }
}

void HfBpeTokenizer::bpe(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (spec_.ignore_merges)
    if (const int32_t* id = find_in(model_ids_, word)) {
      out.push_back(*id);
      return;
    }
  std::vector<BpeSymbol> syms;
  syms.reserve(word.size());
  if (spec_.byte_level) {
    for (size_t i = 0; i < word.size(); ++i)
      syms.push_back({byte_ids_[uint8_t(word[i])], uint32_t(i), uint32_t(i + 1)});
  } else {
    for (size_t i = 0; i < word.size();) {
      const size_t len = std::min(unicode::utf8_len(uint8_t(word[i])), word.size() - i);
      const int32_t* id = find_in(model_ids_, word.substr(i, len));
      syms.push_back({id ? *id : -1, uint32_t(i), uint32_t(i + len)});
      i += len;
    }
  }
  merges_.apply(syms);

  bool prev_unk = false;
  for (const auto& s : syms) {
    if (s.id >= 0) {
      out.push_back(s.id);
      prev_unk = false;
      continue;
    }
    const std::string_view piece = word.substr(s.begin, s.end - s.begin);
    if (spec_.byte_fallback) {
      bool all = true;
      for (char c : piece) all = all && fallback_ids_[uint8_t(c)] >= 0;
      if (all) {
        for (char c : piece) out.push_back(fallback_ids_[uint8_t(c)]);
        prev_unk = false;
        continue;
      }
    }
    if (spec_.unk_id >= 0 && !(spec_.fuse_unk && prev_unk)) out.push_back(spec_.unk_id);
    prev_unk = true;
  }
}

std::vector<int32_t> HfBpeTokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> out;
  if (add_special && add_bos_) out.push_back(bos_id_);
  const size_t body = out.size();

  std::vector<AddedTokenSplitter::Piece> raw_pieces, norm_pieces;
  std::vector<std::string> words;
  // Where the first added token written in the text landed in `out` (not an <unk> the
  // model produced for an unknown character: that keeps its "▁", as transformers does).
  size_t first_added = std::string::npos;
  auto push_added = [&](int32_t id) {
    if (first_added == std::string::npos) first_added = out.size();
    out.push_back(id);
  };
  raw_added_.split(text, raw_pieces);
  for (const auto& rp : raw_pieces) {
    if (rp.id >= 0) {
      push_added(rp.id);
      continue;
    }
    const std::string norm = normalize(rp.text);
    norm_pieces.clear();
    norm_added_.split(norm, norm_pieces);
    for (const auto& np : norm_pieces) {
      if (np.id >= 0) {
        push_added(np.id);
        continue;
      }
      // "First" = this text starts the input (Metaspace's prepend_scheme "first").
      const bool first = rp.text.data() == text.data() && np.text.data() == norm.data();
      pre_tokenize(np.text, first, words);
      for (const auto& w : words) bpe(w, out);
    }
  }
  if (spec_.drop_prefix_before_special && prefix_id_ >= 0 && first_added == body + 1 &&
      out[body] == prefix_id_ && is_special(out[body + 1]))
    out.erase(out.begin() + ptrdiff_t(body));
  return out;
}

}  // namespace

std::unique_ptr<Tokenizer> make_hf_bpe(HfBpeSpec spec) {
  return std::make_unique<HfBpeTokenizer>(std::move(spec));
}

const char* byte_level_regex(std::string_view pre) {
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") return kLlama3Regex;
  if (pre == "qwen2") return kQwen2Regex;
  if (pre == "gpt2" || pre == "gpt-2" || pre == "default") return kGpt2Regex;
  return nullptr;
}

}  // namespace detail

std::unique_ptr<Tokenizer> make_byte_bpe_tokenizer(ByteBpeVocab v) {
  constexpr const char* src = "byte-level BPE vocabulary";
  const char* regex = detail::byte_level_regex(v.pre);
  if (!regex) fail("{}: unsupported pre-tokenizer '{}' (known: llama-bpe, qwen2, gpt2)", src, v.pre);
  if (v.tokens.empty()) fail("{}: empty vocabulary", src);
  if (!v.types.empty() && v.types.size() != v.tokens.size())
    fail("{}: {} token types for {} tokens", src, v.types.size(), v.tokens.size());

  detail::HfBpeSpec spec;
  spec.source = src;
  spec.byte_level = true;
  // llama.cpp's "llama-bpe" takes whole-word vocabulary hits as Llama 3's tokenizer.json does.
  spec.ignore_merges = v.pre != "qwen2" && v.pre != "gpt2" && v.pre != "gpt-2" && v.pre != "default";
  detail::PreTokenizerStep split;
  split.kind = detail::PreTokenizerStep::kSplit;
  split.regex = std::make_shared<Regex>(regex, false, src);
  spec.pre_tokenizers.push_back(std::move(split));

  for (size_t i = 0; i < v.types.size(); ++i) {
    // Control (3) and user-defined (4) tokens are written verbatim and matched as a whole;
    // only control tokens count as special (decode skips them).
    if (v.types[i] == 3 || v.types[i] == 4) {
      detail::AddedToken t;
      t.content = v.tokens[i];
      t.id = int32_t(i);
      t.special = v.types[i] == 3;
      spec.added.push_back(std::move(t));
    }
  }
  for (const auto& m : v.merges) {
    const size_t sp = m.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == m.size())
      fail("{}: bad merge \"{}\"", src, m);
    spec.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  spec.vocab = std::move(v.tokens);
  const auto n = int32_t(spec.vocab.size());
  spec.bos_id = v.bos_id >= 0 && v.bos_id < n ? v.bos_id : -1;
  for (int32_t e : v.eos_ids)
    if (e >= 0 && e < n) spec.eos_ids.push_back(e);
  spec.add_bos = v.add_bos;
  return detail::make_hf_bpe(std::move(spec));
}

}  // namespace troupe
