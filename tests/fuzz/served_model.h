#pragma once
// The model the request targets parse against: stories260K's tokenizer (a real GGUF
// vocabulary) and a ChatML template with tool calls, so chat messages really render.
#include "net/api.h"

namespace troupe::fuzz {

const ModelInfo& served_model();

}  // namespace troupe::fuzz
