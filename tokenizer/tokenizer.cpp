// IncrementalDecoder: token bytes are buffered until they form whole UTF-8 characters, so
// a streamed response never shows half of a multi-byte character (byte-fallback and
// byte-level vocabularies split emoji and CJK text across tokens).
#include "tokenizer/tokenizer.h"

#include "tokenizer/unicode.h"

namespace troupe {

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tok, bool skip_special)
    : tok_(tok), skip_special_(skip_special) {}

std::string IncrementalDecoder::push(int32_t id) {
  if (skip_special_ && tok_.is_special(id)) return {};
  pending_ += tok_.token_bytes(id);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    size_t len = 0;
    const auto st = unicode::check_utf8(pending_, i, &len);
    if (st == unicode::Utf8::kIncomplete) break;  // may still complete: hold it back
    if (st == unicode::Utf8::kComplete) out.append(pending_, i, len);
    else out.append(unicode::kReplacement);      // can never become valid
    i += len;
  }
  pending_.erase(0, i);
  return out;
}

std::string IncrementalDecoder::flush() {
  std::string out = unicode::sanitize_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace troupe
