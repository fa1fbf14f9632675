#include "app/bench_tuning.h"

#include <algorithm>

#include "app/bench_stats.h"
#include "cpu/host_tuning.h"

namespace troupe::app {

std::vector<TuningCompared> compare_host_tunings(Backend& backend, const Tokenizer& tok,
                                                 const std::vector<int32_t>& prompt,
                                                 const SamplingParams& params, int rounds) {
  const std::vector<cpu::HostTuning> tables = {cpu::amd_host_tuning(), cpu::intel_host_tuning()};
  const cpu::HostTuning in_use = cpu::host_tuning();
  std::vector<std::vector<double>> rates(tables.size());
  for (int r = 0; r < rounds; ++r)
    for (size_t i = 0; i < tables.size(); ++i) {
      const size_t t = r % 2 == 0 ? i : tables.size() - 1 - i;
      cpu::set_host_tuning(tables[t]);
      const SequenceResult s = run_sequence(backend, tok, prompt, params);
      rates[t].push_back(double(s.decode_steps) / s.decode_s);
    }
  cpu::set_host_tuning(in_use);
  std::vector<TuningCompared> out;
  for (size_t t = 0; t < tables.size(); ++t) {
    std::vector<double> ratios;
    for (int r = 0; r < rounds; ++r) ratios.push_back(rates[t][size_t(r)] / rates[0][size_t(r)]);
    out.push_back({tables[t].name, LatencyStats::of(rates[t]).p50, LatencyStats::of(ratios).p50});
  }
  return out;
}

}  // namespace troupe::app
