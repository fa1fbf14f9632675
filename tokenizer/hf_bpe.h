#pragma once
// The Hugging Face tokenizers pipeline for BPE models, as far as Llama-family files use
// it: added tokens -> normalizer -> pre-tokenizer -> BPE with ranked merges -> ids.
// Built from tokenizer.json (tokenizer_json.cpp) and from GGUF "gpt2" vocabularies
// (make_byte_bpe_tokenizer), so both run the same code. Private to tokenizer/.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"

namespace troupe::detail {

struct NormalizerStep {
  enum Kind { kPrepend, kReplace, kNfc, kStrip } kind = kNfc;
  std::string text;                     // kPrepend: what to prepend; kReplace: literal pattern
  std::string with;                     // kReplace: replacement
  std::shared_ptr<const Regex> regex;   // kReplace with a regex pattern (instead of `text`)
  bool left = false, right = false;     // kStrip
};

struct PreTokenizerStep {
  enum Kind { kSplit, kByteLevel, kMetaspace } kind = kSplit;
  // kSplit: the pattern; kByteLevel: GPT-2's regex when use_regex, else null.
  std::shared_ptr<const Regex> regex;
  enum Behavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };
  Behavior behavior = kIsolated;
  bool invert = false;
  bool add_prefix_space = false;        // kByteLevel
  std::string replacement = "\xE2\x96\x81";  // kMetaspace
  enum Prepend { kAlways, kFirst, kNever } prepend = kAlways;
  bool split = true;                    // kMetaspace: split into words at the replacement
};

struct HfBpeSpec {
  std::string source;                   // file name for error messages
  std::vector<std::string> vocab;       // id -> piece as stored; "" for unused ids
  std::vector<std::pair<std::string, std::string>> merges;  // highest priority first
  std::vector<AddedToken> added;
  std::vector<NormalizerStep> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizers;
  bool byte_level = false;      // pieces are in GPT-2's byte alphabet ("Ġ" = space)
  bool metaspace = false;       // pieces use "▁" for spaces (SentencePiece style)
  bool ignore_merges = false;   // a pre-token that is a whole vocabulary piece skips BPE
  bool byte_fallback = false;   // unknown characters become <0xXX> tokens when present
  bool fuse_unk = false;        // a run of unknown characters gives one <unk>
  int32_t unk_id = -1;          // -1: unknown characters are dropped (as HF does)
  // transformers' non-legacy Llama rule: the "▁" put in front of the text is dropped when
  // a special token follows it (what "legacy": false in tokenizer_config.json asks).
  bool drop_prefix_before_special = false;
  int strip_leading_spaces = 0; // decoder: spaces removed from the start of decoded text
  int32_t bos_id = -1;
  std::vector<int32_t> eos_ids;
  bool add_bos = false;
};

std::unique_ptr<Tokenizer> make_hf_bpe(HfBpeSpec spec);

// Split regexes of the byte-level pre-tokenizers GGUF names ("llama-bpe", "qwen2", "gpt2").
// Null for unknown names.
const char* byte_level_regex(std::string_view pre);

}  // namespace troupe::detail
