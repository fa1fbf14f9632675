#pragma once
// The step API every backend implements: one forward pass over a batch of sequences of
// different lengths. A sequence may prefill a chunk of its prompt, decode one token, or
// verify 1 + k draft tokens; logits come back only for the rows asked for.
#include <cstdint>
#include <vector>

namespace troupe {

struct StepSeq {
  int64_t seq_id = 0;
  std::vector<int32_t> tokens;       // tokens computed this step
  int32_t start_pos = 0;             // position of tokens[0]; K/V of [0, start_pos) are cached
  std::vector<int32_t> block_table;  // physical KV blocks covering [0, start_pos + tokens.size())
  std::vector<int32_t> logit_rows;   // indices into `tokens` whose logits are wanted
  bool operator==(const StepSeq&) const = default;  // field by field (protocol tests)
};

struct StepBatch {
  std::vector<StepSeq> seqs;
  int64_t num_tokens() const {
    int64_t n = 0;
    for (auto& s : seqs) n += static_cast<int64_t>(s.tokens.size());
    return n;
  }
  int64_t num_logit_rows() const {
    int64_t n = 0;
    for (auto& s : seqs) n += static_cast<int64_t>(s.logit_rows.size());
    return n;
  }
  bool operator==(const StepBatch&) const = default;  // field by field (protocol tests)
};

struct StepOutput {
  int64_t vocab_size = 0;
  // [num_logit_rows, vocab_size]: sequences in batch order, each one's rows in order.
  std::vector<float> logits;
  const float* row(int64_t i) const { return logits.data() + i * vocab_size; }
  bool operator==(const StepOutput&) const = default;  // field by field (protocol tests)
};

}  // namespace troupe
