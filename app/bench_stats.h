#pragma once
// Latency/throughput bookkeeping shared by the benchmarks: per-request traces in,
// vLLM-style summaries (TTFT, TPOT, ITL, E2E percentiles; tokens/s) out.
#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace troupe::app {

using BenchClock = std::chrono::steady_clock;

struct RequestTrace {
  BenchClock::time_point submit{}, finish{};
  std::vector<BenchClock::time_point> token_times;
  int64_t prompt_tokens = 0;
  bool ok = false;
  std::string error;
};

struct LatencyStats {
  double mean = 0, p50 = 0, p95 = 0, p99 = 0, max = 0;
  static LatencyStats of(std::vector<double> ms);
};

struct BenchResult {
  std::string label;
  int64_t requests = 0, failed = 0, output_tokens = 0, prompt_tokens = 0;
  double duration_s = 0, output_tokens_per_s = 0, requests_per_s = 0, total_tokens_per_s = 0;
  LatencyStats ttft, tpot, itl, e2e;  // milliseconds
  int64_t steps = 0, preemptions = 0;
  double actor_overhead_ms_per_step = 0, forward_ms_per_step = 0;
  // Forward time of all steps, and of those that computed prompt tokens (SchedulerStats).
  double forward_ms = 0, prefill_forward_ms = 0;
  double goodput_requests_per_s = -1;  // set when an SLO is given
};

// Goodput's service-level objectives (0: no bound on that one).
struct Slo {
  double ttft_ms = 0, tpot_ms = 0;
  bool any() const { return ttft_ms > 0 || tpot_ms > 0; }
};
// Whether one request met `slo`; TPOT is decode time over the tokens after the first (vLLM's),
// so a one-token output has none and meets any TPOT bound.
bool meets_slo(const Slo& slo, double ttft_ms, double tpot_ms, int64_t output_tokens);
// Requests of `traces` that finished and met `slo`.
int64_t count_within_slo(const std::vector<RequestTrace>& traces, const Slo& slo);

BenchResult summarize(const std::vector<RequestTrace>& traces, BenchClock::time_point start);
void print_result(const BenchResult& r);
boost::json::object to_json(const BenchResult& r);
// Writes `data` to PNG.dat and script(PNG.dat) to PNG.gp, runs gnuplot on it (which must
// write png_path), removes both and says where the plot is; fails when gnuplot does.
void run_gnuplot(const std::string& png_path, const std::string& data,
                 const std::function<std::string(const std::string& dat_path)>& script);
// TTFT and E2E latency distributions of each result as a PNG (gnuplot).
void plot_results(const std::vector<BenchResult>& results, const std::string& png_path);

}  // namespace troupe::app
