// `troupe bench throughput`: offline throughput/latency of the Engine in the spirit of
// vLLM's benchmark_throughput/serving scripts. Requests with fixed or uniformly drawn
// lengths (or from a JSONL file) arrive all at once or as a Poisson process; with
// --scheduling both, continuous and static batching run back to back on the same workload.
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include "actors/engine.h"
#include "app/bench_stats.h"
#include "app/commands.h"
#include "app/quant_flags.h"
#include "core/error.h"

namespace troupe::app {

namespace {

struct ThroughputOpts {
  std::string model, dataset, json_path, plot_path, input_len = "128", output_len = "128";
  std::string scheduling = "continuous";
  int num_prompts = 64;
  double request_rate = 0;  // 0 = all at once
  uint64_t seed = 0;
  EngineConfig engine;
};

struct Workload {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<int> output_lens;
};

// "N" or "A:B" (uniform in [A, B]).
std::pair<int, int> parse_range(const std::string& s, const char* flag) {
  try {
    auto colon = s.find(':');
    if (colon == std::string::npos) {
      int v = std::stoi(s);
      return {v, v};
    }
    return {std::stoi(s.substr(0, colon)), std::stoi(s.substr(colon + 1))};
  } catch (const std::exception&) {
    fail("{} must be N or MIN:MAX, got '{}'", flag, s);
  }
}

Workload make_workload(const ThroughputOpts& o, const Tokenizer& tok, int64_t vocab) {
  Workload w;
  std::mt19937_64 rng(o.seed);
  if (!o.dataset.empty()) {  // JSONL: {"prompt": "...", "output_len": N}
    std::ifstream in(o.dataset);
    if (!in) fail("{}: cannot open", o.dataset);
    std::string line;
    auto [omin, omax] = parse_range(o.output_len, "--output-len");
    while (std::getline(in, line) && int(w.prompts.size()) < o.num_prompts) {
      if (line.empty()) continue;
      auto v = boost::json::parse(line).as_object();
      w.prompts.push_back(tok.encode(std::string(v.at("prompt").as_string()), true));
      w.output_lens.push_back(v.contains("output_len") ? int(v.at("output_len").as_int64())
                                                       : omin + int(rng() % (omax - omin + 1)));
    }
    if (w.prompts.empty()) fail("{}: no prompts", o.dataset);
    return w;
  }
  auto [imin, imax] = parse_range(o.input_len, "--input-len");
  auto [omin, omax] = parse_range(o.output_len, "--output-len");
  if (imin < 1 || imax < imin || omin < 1 || omax < omin) fail("bad --input-len/--output-len range");
  for (int i = 0; i < o.num_prompts; ++i) {
    const int n = imin + int(rng() % (imax - imin + 1));
    std::vector<int32_t> ids;
    if (tok.bos_id() >= 0) ids.push_back(tok.bos_id());
    while (int(ids.size()) < n) {  // random ordinary tokens, as vLLM's random dataset
      const int32_t t = int32_t(rng() % vocab);
      if (!tok.is_special(t)) ids.push_back(t);
    }
    w.prompts.push_back(std::move(ids));
    w.output_lens.push_back(omin + int(rng() % (omax - omin + 1)));
  }
  return w;
}

struct Tracker {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<RequestTrace> traces;
  size_t done = 0;
};

BenchResult run_once(const ThroughputOpts& o, Scheduling mode, const char* label) {
  EngineConfig cfg = o.engine;
  cfg.scheduler.scheduling = mode;
  Engine engine(cfg);
  const Workload w = make_workload(o, engine.tokenizer(), engine.tokenizer().vocab_size());
  Tracker tr;
  tr.traces.resize(w.prompts.size());
  std::mt19937_64 rng(o.seed + 1);
  std::exponential_distribution<double> gap(o.request_rate > 0 ? o.request_rate : 1.0);
  Progress progress(label, w.prompts.size());

  const auto t0 = Clock::now();
  for (size_t i = 0; i < w.prompts.size(); ++i) {
    if (o.request_rate > 0 && i > 0)
      std::this_thread::sleep_for(std::chrono::duration<double>(gap(rng)));
    GenerateRequest req;
    req.prompt_ids = w.prompts[i];
    req.params.temperature = 0;
    req.params.ignore_eos = true;
    req.params.max_tokens = w.output_lens[i];
    {
      std::lock_guard lk(tr.mu);
      tr.traces[i].submit = Clock::now();
      tr.traces[i].prompt_tokens = int64_t(w.prompts[i].size());
    }
    engine.submit(req, [&tr, &progress, i](const TokenEvent& ev) {
      std::lock_guard lk(tr.mu);
      auto& t = tr.traces[i];
      const auto now = Clock::now();
      for (size_t k = 0; k < ev.token_ids.size(); ++k) t.token_times.push_back(now);
      if (ev.finished) {
        t.finish = now;
        t.ok = ev.finish_reason == "length" || ev.finish_reason == "stop";
        t.error = ev.error;
        ++tr.done;
        progress.update(tr.done);
        tr.cv.notify_all();
      }
    });
  }
  {
    std::unique_lock lk(tr.mu);
    tr.cv.wait(lk, [&] { return tr.done == tr.traces.size(); });
  }
  progress.finish();
  auto st = engine.stats();
  BenchResult r = summarize(tr.traces, t0);
  r.label = label;
  r.steps = st.steps;
  r.preemptions = st.preemptions;
  r.actor_overhead_ms_per_step =
      st.steps ? (st.step_wall_ms_total - st.forward_ms_total - st.sample_ms_total) / double(st.steps) : 0;
  r.forward_ms_per_step = st.steps ? st.forward_ms_total / double(st.steps) : 0;
  return r;
}

void run_throughput(const ThroughputOpts& o) {
  std::vector<BenchResult> results;
  if (o.scheduling == "continuous" || o.scheduling == "both")
    results.push_back(run_once(o, Scheduling::Continuous, "continuous"));
  if (o.scheduling == "static" || o.scheduling == "both")
    results.push_back(run_once(o, Scheduling::Static, "static"));
  for (auto& r : results) print_result(r);
  boost::json::object js;
  if (results.size() == 2) {
    const double ratio = results[0].output_tokens_per_s / results[1].output_tokens_per_s;
    std::printf("\ncontinuous/static output throughput ratio: %.2fx\n", ratio);
    std::printf("p95 TTFT continuous %.1f ms vs static %.1f ms\n", results[0].ttft.p95, results[1].ttft.p95);
    js["continuous"] = to_json(results[0]);
    js["static"] = to_json(results[1]);
    js["throughput_ratio"] = ratio;
  } else {
    js[results[0].label] = to_json(results[0]);
  }
  js["model"] = o.model;
  js["num_prompts"] = o.num_prompts;
  js["input_len"] = o.input_len;
  js["output_len"] = o.output_len;
  js["request_rate"] = o.request_rate > 0 ? boost::json::value(o.request_rate) : boost::json::value("inf");
  js["max_num_seqs"] = o.engine.scheduler.max_num_seqs;
  js["max_num_batched_tokens"] = o.engine.scheduler.max_num_batched_tokens;
  if (!o.json_path.empty()) std::ofstream(o.json_path) << boost::json::serialize(js) << "\n";
  if (!o.plot_path.empty()) plot_results(results, o.plot_path);
}

}  // namespace

void register_bench_throughput(CLI::App& bench) {
  auto o = std::make_shared<ThroughputOpts>();
  o->engine.scheduler.max_num_seqs = 32;
  auto* c = bench.add_subcommand("throughput", "Offline throughput and latency of continuous vs static batching");
  c->add_option("--model", o->model, "Model path")->required();
  c->add_option("--num-prompts", o->num_prompts)->capture_default_str()->check(CLI::Range(1, 1000000));
  c->add_option("--input-len", o->input_len, "Prompt tokens: N or MIN:MAX (uniform)")->capture_default_str();
  c->add_option("--output-len", o->output_len, "Output tokens: N or MIN:MAX (uniform)")->capture_default_str();
  c->add_option("--dataset", o->dataset, "JSONL file of {\"prompt\": ..., \"output_len\": N}");
  c->add_option("--request-rate", o->request_rate, "Poisson arrivals per second (0 = all at once)")->capture_default_str();
  c->add_option("--scheduling", o->scheduling)->check(CLI::IsMember({"continuous", "static", "both"}))->capture_default_str();
  c->add_option("--seed", o->seed)->capture_default_str();
  c->add_option("--json", o->json_path, "Write results as JSON");
  c->add_option("--plot", o->plot_path, "Write a PNG plot (gnuplot)");
  c->add_option("--threads", o->engine.threads)->capture_default_str();
  c->add_option("--max-num-seqs", o->engine.scheduler.max_num_seqs)->capture_default_str();
  c->add_option("--max-num-batched-tokens", o->engine.scheduler.max_num_batched_tokens)->capture_default_str();
  c->add_option("--batch-wait-ms", o->engine.scheduler.batch_wait_ms)->capture_default_str();
  c->add_option("--block-size", o->engine.block_size)->capture_default_str();
  c->add_option("--kv-cache-memory", o->engine.kv_cache_bytes, "KV cache bytes (0 = auto)")->capture_default_str();
  add_quantization_flags(c, o->engine.quantization);
  c->callback([o] {
    o->engine.model = o->model;
    run_throughput(*o);
  });
}

}  // namespace troupe::app
