#pragma once
// Reference cases from $TROUPE_MODELS/../fixtures/tokenizer_reference.json and cached
// tokenizers for the shared test files (loading Llama 3's 9 MB tokenizer.json once).
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace troupe::test {

struct TokCase {
  std::string text;
  std::vector<int32_t> ids;
};

// The cases under `key` ("llama3", "qwen3", "llama2_spm", "stories260k_spm",
// "tinystories656k"); fails the test when the fixture or key is missing.
std::vector<TokCase> tokenizer_cases(const std::string& key);
// The cases under `key` of another reference file in the same shape (a path).
std::vector<TokCase> tokenizer_cases_in(const std::string& json_path, const std::string& key);
// The rendered Llama 3 chat prompt of the fixture ("llama3_chat.text").
std::string llama3_chat_text();

// The tokenizer a fixture key refers to, loaded once per process.
const Tokenizer& fixture_tokenizer(const std::string& key);
// Path of the file behind a fixture key.
std::string fixture_tokenizer_path(const std::string& key);

}  // namespace troupe::test
