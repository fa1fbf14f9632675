#include "app/bench_grammar.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "grammar/constraint.h"
#include "grammar/gbnf.h"

namespace troupe::app {

namespace {

double us_since(BenchClock::time_point t0) {
  return std::chrono::duration<double, std::micro>(BenchClock::now() - t0).count();
}

}  // namespace

GrammarBenchResult bench_grammar_masks(const std::string& schema, const Tokenizer& tok, uint64_t seed, int walks,
                                       int max_steps) {
  GrammarBenchResult r;
  const grammar::ConstraintSpec spec{"json_schema", schema};
  auto t0 = BenchClock::now();
  auto g = std::make_shared<const grammar::Grammar>(grammar::parse_gbnf(grammar::to_gbnf(spec)));
  r.compile_ms = us_since(t0) / 1000.0;
  t0 = BenchClock::now();
  auto table = grammar::TokenTable::from_tokenizer(tok);
  r.table_ms = us_since(t0) / 1000.0;
  r.vocab = table->vocab_size();
  // The process-wide masker (what engines use) filled up front, as at compile time.
  t0 = BenchClock::now();
  auto shared = grammar::masker(spec, table);
  shared->precompute();
  r.precompute_ms = us_since(t0) / 1000.0;
  r.precomputed_entries = shared->cached_positions();
  // A fresh masker (not the process cache): the first walk pays for filling its cache lazily.
  grammar::TokenMasker masker(g, table);
  std::vector<float> logits(size_t(table->vocab_size()));
  grammar::TokenBitmask mask;
  std::vector<int32_t> allowed;
  // `walks` random grammatical walks (the same for a given seed), timing every step's mask
  // into times(walk number).
  const auto run_walks = [&](const grammar::TokenMasker& mk, const auto& times) {
    std::mt19937_64 rng(seed);
    for (int w = 0; w < walks; ++w) {
      grammar::Matcher m(g);
      for (int step = 0; step < max_steps; ++step) {
        std::fill(logits.begin(), logits.end(), 0.0f);
        const auto t = BenchClock::now();
        // What the sampler does per step: the mask, then -inf on every forbidden token.
        mk.fill(m, mask);
        mask.apply_to(logits);
        times(w).push_back(us_since(t));
        // A random allowed token; stop as soon as the grammar may end (as EOS would).
        if (m.can_end()) break;
        allowed.clear();
        for (size_t i = 0; i < logits.size(); ++i)
          if (logits[i] == 0.0f && !table->token_bytes(int32_t(i)).empty()) allowed.push_back(int32_t(i));
        if (allowed.empty()) break;
        // Prefer short tokens half the time: walks then visit structure, not only long strings.
        int32_t pick = allowed[rng() % allowed.size()];
        if (rng() % 2 == 0)
          for (int k = 0; k < 8; ++k) {
            const int32_t c = allowed[rng() % allowed.size()];
            if (table->token_bytes(c).size() < table->token_bytes(pick).size()) pick = c;
          }
        m.accept(table->token_bytes(pick));
      }
    }
  };
  std::vector<double> cold, warm, pre;
  run_walks(masker, [&](int w) -> std::vector<double>& { return w == 0 ? cold : warm; });
  r.cold_us = LatencyStats::of(cold);
  r.warm_us = LatencyStats::of(warm);
  r.tokens = int64_t(warm.size());
  r.lazy_entries = masker.cached_positions();
  // The same walks on the precomputed masker.
  run_walks(*shared, [&](int) -> std::vector<double>& { return pre; });
  r.precomputed_us = LatencyStats::of(pre);
  return r;
}

void print_grammar_result(const GrammarBenchResult& r) {
  std::printf("grammar compile     %.2f ms (token table %.1f ms, vocabulary %d)\n", r.compile_ms, r.table_ms, r.vocab);
  std::printf("mask per token      median %.1f us, p99 %.1f us, max %.1f us (%lld tokens after warm-up)\n",
              r.warm_us.p50, r.warm_us.p99, r.warm_us.max, static_cast<long long>(r.tokens));
  std::printf("mask, first walk    median %.1f us, p99 %.1f us (cache filling)\n", r.cold_us.p50, r.cold_us.p99);
  std::printf("mask precompute     %.1f ms (%zu cache entries; lazily after the walks: %zu)\n", r.precompute_ms,
              r.precomputed_entries, r.lazy_entries);
  std::printf("mask, precomputed   median %.1f us, p99 %.1f us, max %.1f us (all walks, cache filled up front)\n",
              r.precomputed_us.p50, r.precomputed_us.p99, r.precomputed_us.max);
}

boost::json::object to_json(const GrammarBenchResult& r) {
  auto stats = [](const LatencyStats& s) {
    return boost::json::object{{"mean", s.mean}, {"p50", s.p50}, {"p95", s.p95}, {"p99", s.p99}, {"max", s.max}};
  };
  return {{"compile_ms", r.compile_ms}, {"token_table_ms", r.table_ms}, {"vocab", r.vocab},
          {"mask_us", stats(r.warm_us)},  {"mask_us_first_walk", stats(r.cold_us)}, {"tokens", r.tokens},
          {"precompute_ms", r.precompute_ms}, {"precomputed_entries", r.precomputed_entries},
          {"lazy_entries", r.lazy_entries}, {"mask_us_precomputed", stats(r.precomputed_us)}};
}

}  // namespace troupe::app
