#pragma once
// Options of the benchmarks: `troupe bench decode`, `bench throughput` (an Engine in
// process) and `bench serve` (a client of a running daemon).
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "config/engine_config.h"
#include "config/quant_config.h"

namespace troupe::app {

// `troupe bench decode`
struct DecodeBenchOpts {
  std::string model, json_path;
  int threads = 0;
  int prompt_len = 128;
  int gen_tokens = 64;
  int repeats = 3;
  int verify_rows = 0;     // --verify-rows K: also time 1 + k-row steps, k = 1..K (bench_verify.h)
  int verify_rounds = 40;  // paired rounds of those steps
  int tuning_rounds = 0;   // --compare-host-tuning N: decode under each host tuning table
  bool fuse_linears = true;
  quant::Options quantization;
  KvDtype kv_dtype = KvDtype::F32;
};

// `troupe bench throughput`
struct ThroughputOpts {
  std::string model, dataset, json_path, plot_path, steps_csv, input_len = "128", output_len = "128";
  std::string scheduling = "continuous";
  int num_prompts = 64;
  double request_rate = 0;  // 0 = all at once
  uint64_t seed = 0;
  EngineConfig engine;
  // Sampling of every request (greedy by default); sampled requests get seed + index.
  float temperature = 0, top_p = 1;
  int32_t top_k = 0;
  bool compare = false;    // speculation vs none, interleaved in one engine (compare_speculation)
  int compare_rounds = 1;
  // --json-schema FILE: every request's output follows this schema (the run is compared with
  // the same workload unconstrained, and the grammar's compile and mask times are reported).
  std::string json_schema;
};

// `troupe bench stack`: the workload of `bench throughput` (its rate is searched, not given)
// through a ladder of configurations, each priced at its goodput capacity.
struct StackOpts {
  ThroughputOpts run;  // workload, engine, speculation; run.request_rate is unused
  std::string quantization_rungs = "int8,int4";  // one rung each; int4 is AWQ with awq_model
  std::string awq_model;  // a calibrated checkpoint of the same model (`troupe quantize`)
  // Interactive: a reader's pace (~20 tokens/s) and a first token within a second.
  double slo_ttft_ms = 1000, slo_tpot_ms = 50;
  // Batch: nobody watches the stream; a bound only so the queue cannot grow without end.
  double batch_slo_ttft_ms = 30000, batch_slo_tpot_ms = 1000;
  double attainment = 0.9;  // the share of requests inside both SLOs that counts as sustained
  int search_steps = 3;
  // All-at-once passes per rung, taking turns across the rungs; the best is the rung's
  // offline rate, where its search starts (one pass let a slow minute cap a rung's capacity).
  int offline_rounds = 2;
  // USD per vCPU-hour. Public list price: AWS EC2 c7i.large (2 vCPUs) on demand, Linux,
  // us-east-1, USD 0.08925 per hour.
  double core_hour_price = 0.08925 / 2;
  int64_t quality_max_len = 256;  // tokens of each prompt the quality comparison runs
};

// `troupe bench serve`
struct ServeBenchOpts {
  std::string url = "http://127.0.0.1:8000", endpoint = "/v1/completions", model, api_key, json_path;
  std::string input_len = "128", output_len = "128";
  int num_prompts = 100;
  std::string request_rate = "inf";  // requests/s, or a comma-separated list to sweep
  // Shape of the gamma-distributed gaps between arrivals at the same mean rate: 1 is a
  // Poisson process, below 1 requests come in bursts (vLLM's benchmark_serving calls it the
  // same), above 1 more evenly.
  double burstiness = 1.0;
  int max_concurrency = 0;  // 0: unlimited
  std::string label, plot_path, plot_only;
  std::vector<std::string> plot_with;  // earlier --json sweeps drawn on the same plot
  double slo_ttft_ms = 0, slo_tpot_ms = 0;
  uint64_t seed = 0;
  double timeout_s = 600;
};

}  // namespace troupe::app
