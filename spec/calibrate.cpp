#include "spec/calibrate.h"

#include <algorithm>
#include <chrono>

namespace troupe::spec {

std::vector<int64_t> calibration_sizes(int64_t max_tokens) {
  std::vector<int64_t> out;
  // Every count up to 64: kernels switch algorithms at some row count (the row-major
  // multi-row GEMV ends at 12-48 rows depending on the CPU and dtype; the panel kernel
  // leaves its single pass above 6 rows; the quantized kernels have their own) and one
  // token more can cost 40% more; an interpolated grid would hide that cliff. Beyond, 1/8
  // steps (the curve is linear there).
  for (int64_t n = 1; n <= max_tokens; n = n < 64 ? n + 1 : n + n / 8) out.push_back(n);
  if (out.empty() || out.back() != max_tokens) out.push_back(std::max<int64_t>(1, max_tokens));
  return out;
}

std::vector<StepTiming> time_steps(Backend& backend, std::span<const int64_t> sizes, int64_t start,
                                   int64_t chunk, int reps) {
  const KvCacheShape kv = backend.kv_shape();
  const int64_t max_pos = backend.config().max_position_embeddings;
  chunk = std::clamp<int64_t>(chunk, 1, max_pos);
  const int64_t ctx = std::clamp<int64_t>(start, 0, max_pos - chunk);
  const int64_t blocks_per_seq = (ctx + chunk + kv.block_size - 1) / kv.block_size;
  std::vector<StepBatch> batches;
  std::vector<StepTiming> out;
  for (int64_t n : sizes) {
    const int64_t num_seqs = (n + chunk - 1) / chunk;
    if (n <= 0 || num_seqs * blocks_per_seq > kv.num_blocks) continue;
    StepBatch batch;
    StepTiming t{n, 0, 0};
    for (int64_t s = 0, left = n; s < num_seqs; ++s, left -= chunk) {
      StepSeq q;
      q.seq_id = s;
      q.start_pos = int32_t(ctx);
      const int64_t len = std::min(chunk, left);
      // Arbitrary but valid tokens; the cost does not depend on which. The context's KV is
      // whatever the pool holds: only its size matters here.
      for (int64_t i = 0; i < len; ++i) q.tokens.push_back(int32_t((i * 7 + s) % backend.config().vocab_size));
      for (int64_t b = 0; b < blocks_per_seq; ++b) q.block_table.push_back(int32_t(s * blocks_per_seq + b));
      for (int64_t i = 0; i < len; ++i) q.logit_rows.push_back(int32_t(i));
      // Row i attends to positions [0, ctx + i].
      t.context += double(len) * double(ctx) + double(len) * double(len + 1) / 2;
      batch.seqs.push_back(std::move(q));
    }
    batches.push_back(std::move(batch));
    out.push_back(t);
  }
  // Round robin over the sizes, so a burst of other load on the machine lands on all of
  // them alike instead of skewing the curve's shape; the median of the rounds per size.
  // At least two rounds; more while they take under a few seconds in all (big models).
  std::vector<std::vector<double>> ms(batches.size());
  StepOutput o;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) {
    if (r >= 2 && std::chrono::steady_clock::now() - t0 > std::chrono::seconds(6)) break;
    for (size_t i = 0; i < batches.size(); ++i) {
      const auto t1 = std::chrono::steady_clock::now();
      backend.run_step(batches[i], o);
      ms[i].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count());
    }
  }
  for (size_t i = 0; i < batches.size(); ++i) {
    // The lower median: other load only ever adds time, so of two rounds keep the faster.
    auto& v = ms[i];
    const size_t mid = (v.size() - 1) / 2;
    std::nth_element(v.begin(), v.begin() + ptrdiff_t(mid), v.end());
    out[i].ms = v[mid];
  }
  return out;
}

std::vector<std::pair<int64_t, double>> calibrate_backend(Backend& backend, std::span<const int64_t> sizes,
                                                          int reps) {
  // Decode happens deep into a sequence, not at position 0: attend over a context.
  std::vector<std::pair<int64_t, double>> out;
  for (const StepTiming& t : time_steps(backend, sizes, 128, 64, reps)) out.push_back({t.tokens, t.ms});
  return out;
}

}  // namespace troupe::spec
