#pragma once
// The text the tokenizer targets encode once a vocabulary loads: ASCII words, a special-token
// spelling, multi-byte UTF-8, an emoji (byte fallback), digits and runs of whitespace.
#include "tokenizer/tokenizer.h"

namespace troupe::fuzz {

inline void exercise_tokenizer(const Tokenizer& tok) {
  static constexpr std::string_view kText =
      "Once upon a time <s></s><|endoftext|> a caf\xc3\xa9 \xf0\x9f\x99\x82 sat 12345.\n\n  \t end";
  for (bool special : {false, true}) {
    const auto ids = tok.encode(kText, special);
    (void)tok.decode(ids, !special);
    IncrementalDecoder dec(tok, !special);
    for (int32_t id : ids) (void)dec.push(id);
    (void)dec.flush();
  }
  for (int32_t id = 0; id < tok.vocab_size() && id < 64; ++id) (void)tok.token_bytes(id);
}

}  // namespace troupe::fuzz
