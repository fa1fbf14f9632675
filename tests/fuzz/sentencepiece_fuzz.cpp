// Fuzz target: SentencePiece .model parsing (tokenizer/sentencepiece_model.cpp and our own
// reader of the serialized proto, tokenizer/sentencepiece_proto.cpp); a model that loads then
// encodes and decodes a fixed text (tokenize_text.h).
#include "core/error.h"
#include "fuzz_support.h"
#include "tokenize_text.h"
#include "tokenizer/sentencepiece_proto.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Our proto reader alone first: libsentencepiece refuses most mutants before it would run.
  try {
    (void)troupe::parse_spm_proto(troupe::fuzz::as_text(data, size), "fuzz input");
  } catch (const troupe::Error&) {
  }
  const std::string path = troupe::fuzz::scratch_file(data, size, "tokenizer.model");
  try {
    const auto tok = troupe::load_sentencepiece_model(path);
    troupe::fuzz::exercise_tokenizer(*tok);
  } catch (const troupe::Error&) {
  }
  return 0;
}
