// Fuzz target: a WebSocket text message as ws_session.cpp handles it (net/api_parse.cpp):
// classified by parse_ws_message, then a `generate` parsed into an engine request. A bad
// message must be a 400 (Invalid or ApiError), never a crash or another exception.
#include <spdlog/spdlog.h>

#include "fuzz_support.h"
#include "net/api.h"
#include "served_model.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  (void)troupe::fuzz::served_model();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const troupe::WsMessage msg = troupe::parse_ws_message(troupe::fuzz::as_text(data, size));
  if (msg.kind != troupe::WsMessage::Kind::Generate) return 0;
  try {
    (void)troupe::parse_ws_generate(msg.body, troupe::fuzz::served_model());
  } catch (const troupe::ApiError& e) {
    (void)troupe::error_body(e);
  }
  return 0;
}
