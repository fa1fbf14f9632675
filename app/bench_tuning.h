#pragma once
// `troupe bench decode --compare-host-tuning N`: batch-1 decode under each host tuning table
// (cpu/host_tuning.h) in one process, in turns, so a user on a new host can see which table
// suits it. The tables differ only in how streaming kernels fetch ahead and pace themselves,
// never in the bits they compute. The Zen 5 host's memory moved between ~45 and ~80 GB/s
// from process to process (session 28), which separate processes cannot tell from a kernel
// change; rounds of one run per table, paired, in one process, can.
#include <string>
#include <vector>

#include "app/sequence_loop.h"

namespace troupe::app {

struct TuningCompared {
  std::string name;              // "amd", "intel"
  double tokens_per_s_median = 0;
  double ratio_median = 0;       // median over rounds of this table's tok/s / the first table's
};

// Runs `rounds` rounds; in each, one decode run of `prompt` + params.max_tokens tokens per
// table, the order reversed every other round. Restores the tuning in use when it returns.
std::vector<TuningCompared> compare_host_tunings(Backend& backend, const Tokenizer& tok,
                                                 const std::vector<int32_t>& prompt,
                                                 const SamplingParams& params, int rounds);

}  // namespace troupe::app
