// Fuzz target: request JSON -> engine request (net/api_parse.cpp). The first byte picks the
// endpoint (/v1/completions, /v1/chat/completions, /tokenize, /detokenize), the rest is the
// body. A bad body must be an ApiError (the 400 the client sees), never a crash or another
// exception (which the server would turn into a 500).
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "fuzz_support.h"
#include "net/api.h"
#include "served_model.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // unknown fields are logged once per name
  (void)troupe::fuzz::served_model();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const troupe::ModelInfo& m = troupe::fuzz::served_model();
  const std::string_view body = troupe::fuzz::as_text(data + 1, size - 1);
  try {
    switch (data[0] % 4) {
      case 0: (void)troupe::parse_openai_request(troupe::Endpoint::Completions, body, m); break;
      case 1: (void)troupe::parse_openai_request(troupe::Endpoint::Chat, body, m); break;
      case 2: (void)troupe::parse_tokenize_request(body, m); break;
      case 3: (void)troupe::parse_detokenize_request(body, m); break;
    }
  } catch (const troupe::ApiError& e) {
    (void)troupe::error_body(e);
  }
  return 0;
}
