#pragma once
// SentencePiece BPE (score-based merges) shared by GGUF "llama" vocabularies and .model
// files. Private to tokenizer/.
#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace troupe::detail {

struct SpmOptions {
  std::string source = "sentencepiece vocabulary";  // names the input in error messages
  // sentencepiece's normaliser option: drop leading/trailing spaces and collapse runs of
  // spaces. Only .model files carry it; GGUF vocabularies never ask for it.
  bool remove_extra_whitespaces = false;
};

std::unique_ptr<Tokenizer> make_spm(SpmVocab vocab, const SpmOptions& opts);

}  // namespace troupe::detail
