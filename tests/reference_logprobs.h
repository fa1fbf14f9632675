#pragma once
// The plain reference for logprob tests: the CPU backend's forward pass over a whole
// prompt, reduced to a float64 full-vocabulary log-softmax per position.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cpu/cpu_backend.h"
#include "model/weights.h"

namespace troupe::test {

// log-softmax rows for every position of `ids`: row i is the distribution of token i + 1.
// The KV cache is the commands' default (f16), as in the `troupe serve` these are compared with.
inline std::vector<std::vector<double>> reference_logprobs(const std::string& model, const std::vector<int32_t>& ids,
                                                           KvDtype kv_dtype = KvDtype::F16) {
  cpu::CpuBackendOptions opts;
  opts.kv_dtype = kv_dtype;
  opts.block_size = 16;
  opts.num_blocks = int64_t(ids.size()) / 16 + 2;
  cpu::CpuBackend be(load_model(model), opts);
  StepBatch batch;
  StepSeq s;
  s.tokens = ids;
  for (int32_t b = 0; b < int32_t(opts.num_blocks); ++b) s.block_table.push_back(b);
  for (int32_t r = 0; r < int32_t(ids.size()); ++r) s.logit_rows.push_back(r);
  batch.seqs.push_back(s);
  StepOutput out;
  be.run_step(batch, out);
  std::vector<std::vector<double>> rows;
  for (size_t r = 0; r < ids.size(); ++r) {
    const float* x = out.row(int64_t(r));
    const double max = *std::max_element(x, x + out.vocab_size);
    double sum = 0;
    for (int64_t v = 0; v < out.vocab_size; ++v) sum += std::exp(double(x[v]) - max);
    std::vector<double> lp(size_t(out.vocab_size));
    for (int64_t v = 0; v < out.vocab_size; ++v) lp[size_t(v)] = double(x[v]) - max - std::log(sum);
    rows.push_back(std::move(lp));
  }
  return rows;
}

}  // namespace troupe::test
