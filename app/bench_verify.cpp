#include "app/bench_verify.h"

#include <algorithm>
#include <chrono>

#include "app/bench_stats.h"
#include "core/error.h"

namespace troupe::app {

void check_verify_fits(const Backend& backend, int64_t context, int max_k) {
  const int64_t len = context + max_k + 1;
  const KvCacheShape kv = backend.kv_shape();
  if (len > backend.config().max_position_embeddings || len > kv.num_blocks * kv.block_size)
    fail("--verify-rows: a {}-token context and 1 + {} rows do not fit the model's {} positions / KV cache of {}",
         context, max_k, backend.config().max_position_embeddings, kv.num_blocks * kv.block_size);
}

VerifyCost time_verify_steps(Backend& backend, int64_t context, int max_k, int rounds) {
  const ModelConfig& c = backend.config();
  const KvCacheShape kv = backend.kv_shape();
  if (max_k < 1 || rounds < 1) fail("verify steps: need max_k >= 1 and rounds >= 1");
  check_verify_fits(backend, context, max_k);
  const int64_t len = context + max_k + 1;
  std::vector<int32_t> table;
  for (int64_t b = 0; b < (len + kv.block_size - 1) / kv.block_size; ++b) table.push_back(int32_t(b));
  auto token = [&](int64_t i) { return int32_t((7 * i + 3) % c.vocab_size); };

  StepOutput out;
  if (context > 0) {  // the context's KV; its logits are not needed
    StepBatch pre;
    StepSeq s;
    s.block_table = table;
    for (int64_t i = 0; i < context; ++i) s.tokens.push_back(token(i));
    s.logit_rows = {int32_t(context) - 1};
    pre.seqs.push_back(std::move(s));
    backend.run_step(pre, out);
  }
  // batches[k]: the last accepted token and k drafts at positions context .. context + k.
  std::vector<StepBatch> batches(size_t(max_k) + 1);
  for (int k = 0; k <= max_k; ++k) {
    StepSeq s;
    s.start_pos = int32_t(context);
    s.block_table = table;
    for (int i = 0; i <= k; ++i) {
      s.tokens.push_back(token(context + i));
      s.logit_rows.push_back(int32_t(i));
    }
    batches[size_t(k)].seqs.push_back(std::move(s));
  }
  for (auto& b : batches) backend.run_step(b, out);  // warm-up: scratch sized for every k

  std::vector<std::vector<double>> ms(batches.size()), ratio(batches.size());
  std::vector<double> round_ms(batches.size());
  for (int r = 0; r < rounds; ++r) {
    for (size_t j = 0; j < batches.size(); ++j) {
      const size_t k = r % 2 ? batches.size() - 1 - j : j;
      const auto t0 = std::chrono::steady_clock::now();
      backend.run_step(batches[k], out);
      round_ms[k] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    for (size_t k = 0; k < batches.size(); ++k) {
      ms[k].push_back(round_ms[k]);
      ratio[k].push_back(round_ms[k] / round_ms[0]);
    }
  }
  VerifyCost res;
  res.context = context;
  res.rounds = rounds;
  auto best = [&](size_t k) { return *std::min_element(ms[k].begin(), ms[k].end()); };
  auto median = [](const std::vector<double>& v) { return LatencyStats::of(v).p50; };
  res.single_row_ms_median = median(ms[0]);
  res.single_row_ms_best = best(0);
  for (int k = 1; k <= max_k; ++k)
    res.rows.push_back({k, median(ms[size_t(k)]), median(ratio[size_t(k)]), best(size_t(k)), best(size_t(k)) / best(0)});
  return res;
}

}  // namespace troupe::app
