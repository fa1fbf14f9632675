#pragma once
// The grammar side of `troupe bench throughput --json-schema FILE`: compile time of the
// schema, and the per-token cost of masking (allowed-token mask + applying it to a
// vocabulary of logits), measured along random grammatical walks over the real tokenizer.
#include <cstdint>
#include <string>

#include "app/bench_stats.h"
#include "tokenizer/tokenizer.h"

namespace troupe::app {

struct GrammarBenchResult {
  double compile_ms = 0;       // schema -> GBNF -> grammar
  double table_ms = 0;         // the vocabulary's sorted token table (once per model)
  LatencyStats cold_us;        // per-token mask time during the first walk (cache filling)
  LatencyStats warm_us;        // ...during the later walks
  int64_t tokens = 0;          // masked steps measured after warm-up
  double precompute_ms = 0;    // TokenMasker::precompute() of the process-wide masker
  size_t precomputed_entries = 0, lazy_entries = 0;
  LatencyStats precomputed_us; // the same walks, on the precomputed masker
  int32_t vocab = 0;
};

GrammarBenchResult bench_grammar_masks(const std::string& schema, const Tokenizer& tok, uint64_t seed,
                                       int walks = 20, int max_steps = 256);
void print_grammar_result(const GrammarBenchResult& r);
boost::json::object to_json(const GrammarBenchResult& r);

}  // namespace troupe::app
