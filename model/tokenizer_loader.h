#pragma once
// Finds and loads the tokenizer that belongs to a model path: a .gguf file (embedded
// tokenizer.ggml.* vocabulary), a .model sentencepiece file, or a directory holding
// tokenizer.json (+ tokenizer_config.json) or tokenizer.model - with or without weights.
#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace troupe {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace troupe
