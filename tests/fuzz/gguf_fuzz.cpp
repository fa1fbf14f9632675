// Fuzz target: the GGUF reader (model/gguf.cpp) and what is built on it: the whole-model
// loader (config keys, tensor shapes and dtypes, docs/architecture.md) and the embedded
// tokenizer (tokenizer.ggml.*), which then encodes and decodes a fixed text.
// A malformed file must end in troupe::Error, never in a crash or a read outside the map.
#include "core/error.h"
#include "fuzz_support.h"
#include "model/gguf.h"
#include "model/loaders.h"
#include "model/tokenizer_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = troupe::fuzz::scratch_file(data, size, "model.gguf");
  try {
    const auto g = troupe::GgufFile::open(path);
    for (const auto& t : g.tensors()) (void)t.shape();
  } catch (const troupe::Error&) {
    return 0;  // the reader refused it; the loaders would too
  }
  try {
    (void)troupe::detail::load_gguf(path);
  } catch (const troupe::Error&) {
  }
  try {
    const auto tok = troupe::load_tokenizer(path);
    const auto ids = tok->encode("Once upon a time, <s> a caf\xc3\xa9 \xf0\x9f\x99\x82 sat.", true);
    (void)tok->decode(ids, false);
  } catch (const troupe::Error&) {
  }
  return 0;
}
