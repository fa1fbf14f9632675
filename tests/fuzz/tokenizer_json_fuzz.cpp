// Fuzz target: Hugging Face tokenizer.json parsing (tokenizer/tokenizer_json*.cpp: model,
// vocab, merges, added tokens, pre-tokenizer regexes, normalizers, decoders); a vocabulary
// that loads then encodes and decodes a fixed text (tokenize_text.h).
#include "core/error.h"
#include "fuzz_support.h"
#include "tokenize_text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = troupe::fuzz::scratch_file(data, size, "tokenizer.json");
  try {
    const auto tok = troupe::load_tokenizer_json(path);
    troupe::fuzz::exercise_tokenizer(*tok);
  } catch (const troupe::Error&) {
  }
  return 0;
}
