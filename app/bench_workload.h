#pragma once
// The workload of the in-process benchmarks (`bench throughput`, `bench stack`): prompts and
// output lengths from --input-len/--output-len (random tokens, seeded) or a JSONL dataset,
// and one pass of it through an Engine, all at once or as Poisson arrivals.
#include <boost/json.hpp>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "actors/engine.h"
#include "app/bench_stats.h"
#include "config/bench_config.h"
#include "config/flags.h"

namespace troupe::app {

struct Workload {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<int> output_lens;
};

// Requests in flight: their traces, filled by the engine's sinks, and how many finished.
struct RequestTracker {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<RequestTrace> traces;
  size_t done = 0;
};

// --num-prompts, --input-len, --output-len, --dataset, --seed, --temperature, --top-p, --top-k.
void add_workload_flags(config::FlagSet& f, ThroughputOpts& o);
// The workload and the engine limits, in the --json of every in-process benchmark.
void add_workload_json(const ThroughputOpts& o, boost::json::object& js);

// "N" or "A:B" (uniform in [A, B]); fails naming `flag` otherwise.
std::pair<int, int> parse_range(const std::string& s, const char* flag);

// The same (o.seed, o.num_prompts, lengths or o.dataset) gives the same workload.
Workload make_workload(const ThroughputOpts& o, const Tokenizer& tok, int64_t vocab);

// Request i of the workload: its prompt and output length, the run's sampling settings
// (seeded per request when sampling), ignore_eos so it produces exactly that many tokens.
GenerateRequest workload_request(const ThroughputOpts& o, const Workload& w, size_t i, bool constrained = false);

// One pass of the whole workload through `engine`: requests arrive as a Poisson process
// at `request_rate` per second (seeded by o.seed + 1; <= 0: all at once). Returns every
// request's trace; `start` gets the time of the first submission.
std::vector<RequestTrace> run_workload(Engine& engine, const ThroughputOpts& o, const Workload& w,
                                       double request_rate, const std::string& label, BenchClock::time_point& start);

// summarize() plus the engine's step counters since `before` (steps, forward and actor time).
BenchResult summarize_run(Engine& engine, const std::vector<RequestTrace>& traces, BenchClock::time_point start,
                          const SchedulerStats& before, const std::string& label);

}  // namespace troupe::app
