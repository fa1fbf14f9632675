#pragma once
// Text for calibration (`troupe quantize`) and evaluation (`troupe eval`), and running whole
// token sequences through a backend.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/backend.h"
#include "tokenizer/tokenizer.h"

namespace troupe::app {

// Samples of a data file: .jsonl gives one sample per line (its "text" field, or "prompt" +
// "completion"); any other file is plain text, one sample per paragraph (blank-line
// separated). At most max_samples (<= 0: all); throws troupe::Error if none.
std::vector<std::string> read_text_samples(const std::string& path, int64_t max_samples);

// Token ids of a sample: BOS (when the tokenizer adds one) + text, cut to max_len.
std::vector<int32_t> sample_ids(const Tokenizer& tok, const std::string& text, int64_t max_len);

// Runs `ids` through `backend` as one sequence from position 0 (KV blocks 0.. of the pool),
// in chunks of at most `chunk` tokens. With want_logits, returns the logits of every
// position [ids.size(), vocab]; otherwise nothing (calibration only needs the forward).
std::vector<float> forward_sequence(Backend& backend, const std::vector<int32_t>& ids,
                                    bool want_logits, int64_t chunk = 256);

// Samples `n` continuations of BOS from `backend` in one batch (temperature 1, seeded),
// `len` tokens each (EOS is not a stop: a sample runs on past it). Used for calibration
// text when the user has none; the model's own distribution is in-domain by construction.
std::vector<std::vector<int32_t>> sample_from_model(Backend& backend, const Tokenizer& tok,
                                                    int64_t n, int64_t len, uint64_t seed,
                                                    const std::function<void(int64_t)>& progress = {});

}  // namespace troupe::app
