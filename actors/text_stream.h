#pragma once
// One request's text as it streams: incremental detokenization (UTF-8 safe) and stop
// strings (text that may start one is held back). The output stage keeps one per request;
// `troupe generate`'s plain sequence loop uses the same class.
#include <string>
#include <vector>

#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace troupe {

class TextStream {
 public:
  TextStream(const Tokenizer& tok, std::vector<std::string> stops) : detok_(tok), stops_(std::move(stops)) {}
  // Text that is safe to emit after `token` (possibly empty).
  std::string push(int32_t token) { return stops_.push(detok_.push(token)); }
  // At the end of generation: whatever was held back (nothing once a stop string matched).
  std::string finish() {
    if (stops_.stopped()) return {};
    std::string out = stops_.push(detok_.flush());
    if (!stops_.stopped()) out += stops_.flush();
    return out;
  }
  bool stopped() const { return stops_.stopped(); }

 private:
  IncrementalDecoder detok_;
  StopMatcher stops_;
};

}  // namespace troupe
