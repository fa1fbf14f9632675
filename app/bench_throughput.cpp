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
#include <iterator>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "actors/engine.h"
#include "app/bench_grammar.h"
#include "app/bench_stats.h"
#include "app/progress.h"
#include "app/commands.h"
#include "app/spec_options.h"
#include "config/bench_config.h"
#include "config/flags.h"
#include "core/error.h"
#include "grammar/constraint.h"
#include "model/tokenizer_loader.h"

namespace troupe::app {

namespace {

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

// Request i of the workload: its prompt and output length, the run's sampling settings
// (seeded per request when sampling), ignore_eos so it produces exactly that many tokens.
GenerateRequest workload_request(const ThroughputOpts& o, const Workload& w, size_t i, bool constrained = false) {
  GenerateRequest req;
  // ignore_eos keeps output lengths equal to the unconstrained run's: past the end of the
  // document the grammar allows only EOS, which is still masked and sampled every step.
  if (constrained) req.params.constraint = {"json_schema", o.json_schema};
  req.prompt_ids = w.prompts[i];
  req.params.temperature = o.temperature;
  req.params.top_p = o.top_p;
  req.params.top_k = o.top_k;
  if (o.temperature > 0) req.params.seed = o.seed + i;
  req.params.ignore_eos = true;
  req.params.max_tokens = w.output_lens[i];
  return req;
}

struct Tracker {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<RequestTrace> traces;
  size_t done = 0;
};

struct RunResult {
  BenchResult bench;
  spec::SpecMetrics spec;
  std::string speculation;
};

RunResult run_once(const ThroughputOpts& o, Scheduling mode, const char* label, bool speculate,
                   bool constrained = false) {
  EngineConfig cfg = o.engine;
  cfg.scheduler.scheduling = mode;
  if (!speculate) cfg.speculative = SpeculativeConfig{};
  Engine engine(cfg);
  const Workload w = make_workload(o, engine.tokenizer(), engine.tokenizer().vocab_size());
  Tracker tr;
  tr.traces.resize(w.prompts.size());
  std::mt19937_64 rng(o.seed + 1);
  std::exponential_distribution<double> gap(o.request_rate > 0 ? o.request_rate : 1.0);
  Progress progress(label, int64_t(w.prompts.size()));

  const auto t0 = Clock::now();
  for (size_t i = 0; i < w.prompts.size(); ++i) {
    if (o.request_rate > 0 && i > 0)
      std::this_thread::sleep_for(std::chrono::duration<double>(gap(rng)));
    GenerateRequest req = workload_request(o, w, i, constrained);
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
        t.ok = ev.finish_reason == FinishReason::Length || ev.finish_reason == FinishReason::Stop;
        t.error = ev.error;
        ++tr.done;
        progress.update(int64_t(tr.done));
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
  // The drafter's time is part of the step's wall time but not of the target's forward pass.
  r.actor_overhead_ms_per_step =
      st.steps ? (st.step_wall_ms_total - st.forward_ms_total - st.sample_ms_total - st.spec.draft_ms_total) /
                     double(st.steps)
               : 0;
  r.forward_ms_per_step = st.steps ? st.forward_ms_total / double(st.steps) : 0;
  return {r, st.spec, engine.speculation()};
}

// Speculation against the same workload without it, in ONE engine: the workload is cut
// into waves of max_num_seqs requests, and every wave runs once without speculation (its
// requests set num_speculative_tokens = 0) and once with it, back to back, in alternating
// order, --compare-rounds times. On a shared machine whose load drifts by the minute,
// paired waves compare like with like; two separate runs would not.
struct ModeTotals {
  double seconds = 0, forward_ms = 0;
  int64_t tokens = 0, steps = 0;
};

void run_wave(Engine& engine, const ThroughputOpts& o, const Workload& w, size_t begin, size_t end, bool spec,
              ModeTotals& m) {
  Tracker tr;
  tr.traces.resize(end - begin);
  const auto st0 = engine.stats();
  const auto t0 = Clock::now();
  for (size_t i = begin; i < end; ++i) {
    GenerateRequest req = workload_request(o, w, i);
    req.num_speculative_tokens = spec ? -1 : 0;
    engine.submit(req, [&tr, j = i - begin](const TokenEvent& ev) {
      std::lock_guard lk(tr.mu);
      tr.traces[j].token_times.resize(tr.traces[j].token_times.size() + ev.token_ids.size());
      if (ev.finished) {
        tr.traces[j].ok = ev.finish_reason == FinishReason::Length || ev.finish_reason == FinishReason::Stop;
        tr.traces[j].error = ev.error;
        ++tr.done;
        tr.cv.notify_all();
      }
    });
  }
  {
    std::unique_lock lk(tr.mu);
    tr.cv.wait(lk, [&] { return tr.done == tr.traces.size(); });
  }
  m.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  const auto st1 = engine.stats();
  for (auto& t : tr.traces) {
    if (!t.ok) fail("bench: a request failed: {}", t.error);
    m.tokens += int64_t(t.token_times.size());
  }
  m.steps += st1.steps - st0.steps;
  m.forward_ms += st1.forward_ms_total - st0.forward_ms_total;
}

// The workload and engine limits, in every --json of this command.
void add_workload_json(const ThroughputOpts& o, boost::json::object& js) {
  js["model"] = o.model;
  js["num_prompts"] = o.num_prompts;
  js["input_len"] = o.input_len;
  js["output_len"] = o.output_len;
  js["request_rate"] = o.request_rate > 0 ? boost::json::value(o.request_rate) : boost::json::value("inf");
  js["max_num_seqs"] = o.engine.scheduler.max_num_seqs;
  js["max_num_batched_tokens"] = o.engine.scheduler.max_num_batched_tokens;
}

void compare_speculation(const ThroughputOpts& o) {
  EngineConfig cfg = o.engine;
  cfg.scheduler.scheduling = Scheduling::Continuous;
  // Every wave runs twice on the same prompts: with prefix caching the second run would
  // skip the prefill the first one paid for, and whichever mode goes first would lose.
  cfg.scheduler.enable_prefix_caching = false;
  Engine engine(cfg);
  const Workload w = make_workload(o, engine.tokenizer(), engine.tokenizer().vocab_size());
  const size_t wave = size_t(std::max<int64_t>(1, cfg.scheduler.max_num_seqs));
  ModeTotals off, on;
  {
    // One unrecorded pass of the first wave in each mode: the first steps of a given size
    // grow scratch buffers and fault in KV pages, a cost whichever mode ran first would pay.
    ModeTotals warm;
    const size_t e = std::min(w.prompts.size(), wave);
    for (bool spec : {false, true}) run_wave(engine, o, w, 0, e, spec, warm);
  }
  Progress progress("spec vs no-spec", int64_t(size_t(o.compare_rounds) * ((w.prompts.size() + wave - 1) / wave)));
  size_t done = 0;
  for (int r = 0; r < o.compare_rounds; ++r) {
    for (size_t b = 0; b < w.prompts.size(); b += wave) {
      const size_t e = std::min(w.prompts.size(), b + wave);
      const bool spec_first = (b / wave + size_t(r)) % 2 == 1;
      for (bool spec : {spec_first, !spec_first}) run_wave(engine, o, w, b, e, spec, spec ? on : off);
      progress.update(++done);
    }
  }
  progress.finish();
  const auto st = engine.stats();
  const auto& m = st.spec;
  const double tps_off = double(off.tokens) / off.seconds, tps_on = double(on.tokens) / on.seconds;
  const double step_off = off.steps ? off.forward_ms / double(off.steps) : 0.0;
  const double step_on = on.steps ? on.forward_ms / double(on.steps) : 0.0;
  const double speedup = tps_on / tps_off;
  // c: one draft pass against one target step without speculation (same batch).
  const double pass_ms = m.draft_passes ? m.draft_ms_total / double(m.draft_passes) : 0.0;
  const double c = step_off > 0 ? pass_ms / step_off : 0.0;
  double drafting = 0, k_sum = 0;
  for (size_t k = 1; k < m.k_histogram.size(); ++k) {
    drafting += double(m.k_histogram[k]);
    k_sum += double(k) * double(m.k_histogram[k]);
  }
  const double k_mean = drafting > 0 ? k_sum / drafting : 0.0;
  const double alpha = m.alpha();
  const double theory_K = theoretical_speedup(alpha, double(m.max_k), c);
  const double theory_k = theoretical_speedup(alpha, k_mean, c);
  // The formula takes verifying 1 + k tokens to cost one decode step; what it costs here:
  const double verify_ratio = step_off > 0 ? step_on / step_off : 0.0;
  std::printf("\nspeculation: %s\n", engine.speculation().c_str());
  std::printf("  %d rounds of paired waves of %zu requests, %lld output tokens per mode\n", o.compare_rounds, wave,
              (long long)on.tokens);
  std::printf("  output tokens/s: %.2f without speculation, %.2f with: measured speedup %.3fx\n", tps_off, tps_on,
              speedup);
  std::printf("  target forward per step: %.2f ms without, %.2f ms with (verifying; x%.3f)\n", step_off, step_on,
              verify_ratio);
  print_spec_metrics(m);
  std::printf("  alpha %.3f, c %.4f (draft pass %.3f ms / target step %.3f ms), mean k of drafting steps %.2f\n",
              alpha, c, pass_ms, step_off, k_mean);
  std::printf("  theoretical speedup (1-a^(k+1))/((1-a)(kc+1)): %.3fx at k=K=%lld, %.3fx at k=%.2f; "
              "measured/theory %.1f%% (at mean k %.1f%%)\n",
              theory_K, (long long)m.max_k, theory_k, k_mean, 100.0 * speedup / theory_K,
              100.0 * speedup / theory_k);
  boost::json::object js;
  add_workload_json(o, js);
  js["speculation"] = engine.speculation();
  js["spec_decode"] = spec_metrics_json(m);
  js["rounds"] = o.compare_rounds;
  js["wave"] = wave;
  js["tokens_per_s_no_spec"] = tps_off;
  js["tokens_per_s_spec"] = tps_on;
  js["speedup"] = speedup;
  js["forward_ms_per_step_no_spec"] = step_off;
  js["forward_ms_per_step_spec"] = step_on;
  js["alpha"] = alpha;
  js["cost_ratio_c"] = c;
  js["mean_k"] = k_mean;
  js["theoretical_speedup_K"] = theory_K;
  js["theoretical_speedup_mean_k"] = theory_k;
  if (!o.json_path.empty()) std::ofstream(o.json_path) << boost::json::serialize(js) << "\n";
}

// --json-schema: the same workload unconstrained and constrained, then the grammar's own costs.
void compare_constrained(ThroughputOpts o) {
  std::ifstream in(o.json_schema);
  if (!in) fail("--json-schema {}: cannot open", o.json_schema);
  o.json_schema.assign(std::istreambuf_iterator<char>(in), {});
  grammar::compile({"json_schema", o.json_schema});  // a bad schema fails before any run
  // The grammar's own costs first (a fresh mask cache), then the engine runs.
  const auto tok = load_tokenizer(o.engine.model);
  const GrammarBenchResult g = bench_grammar_masks(o.json_schema, *tok, o.seed);
  print_grammar_result(g);
  std::fflush(stdout);
  const bool speculate = o.engine.speculative.enabled();
  const RunResult plain = run_once(o, Scheduling::Continuous, "unconstrained", speculate);
  const RunResult constrained = run_once(o, Scheduling::Continuous, "constrained", speculate, true);
  print_result(plain.bench);
  print_result(constrained.bench);
  const double ratio = constrained.bench.output_tokens_per_s / plain.bench.output_tokens_per_s;
  std::printf("\nconstrained/unconstrained output throughput ratio: %.3f\n", ratio);
  boost::json::object js;
  js["unconstrained"] = to_json(plain.bench);
  js["constrained"] = to_json(constrained.bench);
  js["throughput_ratio"] = ratio;
  js["grammar"] = to_json(g);
  add_workload_json(o, js);
  if (!o.json_path.empty()) std::ofstream(o.json_path) << boost::json::serialize(js) << "\n";
}

void run_throughput(const ThroughputOpts& o) {
  const bool speculate = o.engine.speculative.enabled();
  if (!o.json_schema.empty()) {
    if (o.compare || o.scheduling != "continuous" || !o.plot_path.empty())
      fail("--json-schema runs its own comparison (unconstrained vs constrained, continuous batching); "
           "it does not combine with --compare-no-spec, --scheduling or --plot");
    return compare_constrained(o);
  }
  if (o.compare) {
    // Refused rather than ignored: a run the user did not ask for, or a plot never written.
    if (!speculate)
      fail("--compare-no-spec needs speculation: --speculative-model or --speculative-method, "
           "with --num-speculative-tokens > 0");
    if (!o.plot_path.empty()) fail("--plot plots the scheduling runs; --compare-no-spec has none (use --json)");
    return compare_speculation(o);
  }
  std::vector<BenchResult> results;
  std::optional<RunResult> spec;
  if (o.scheduling == "continuous" || o.scheduling == "both") {
    spec = run_once(o, Scheduling::Continuous, speculate ? "speculative" : "continuous", speculate);
    results.push_back(spec->bench);
  }
  if (o.scheduling == "static" || o.scheduling == "both")
    results.push_back(run_once(o, Scheduling::Static, "static", false).bench);
  for (auto& r : results) print_result(r);
  boost::json::object js;
  if (spec && speculate) {
    std::printf("\n");
    print_spec_metrics(spec->spec);
    js["spec_decode"] = spec_metrics_json(spec->spec);
    js["speculation"] = spec->speculation;
  }
  if (results.size() == 2 && o.scheduling == "both") {
    const double ratio = results[0].output_tokens_per_s / results[1].output_tokens_per_s;
    std::printf("\ncontinuous/static output throughput ratio: %.2fx\n", ratio);
    std::printf("p95 TTFT continuous %.1f ms vs static %.1f ms\n", results[0].ttft.p95, results[1].ttft.p95);
    js["continuous"] = to_json(results[0]);
    js["static"] = to_json(results[1]);
    js["throughput_ratio"] = ratio;
  } else {
    js[results[0].label] = to_json(results[0]);
  }
  add_workload_json(o, js);
  if (!o.json_path.empty()) std::ofstream(o.json_path) << boost::json::serialize(js) << "\n";
  if (!o.plot_path.empty()) plot_results(results, o.plot_path);
}

}  // namespace

void register_bench_throughput(CLI::App& bench) {
  auto o = std::make_shared<ThroughputOpts>();
  o->engine.scheduler.max_num_seqs = 32;
  auto* c = bench.add_subcommand("throughput", "Offline throughput and latency of continuous vs static batching");
  auto f = std::make_shared<config::FlagSet>(c);
  add_engine_flags(*f, o->engine);
  f->add_config_flags();
  f->option("--num-prompts", o->num_prompts)->capture_default_str()->check(CLI::Range(1, 1000000));
  f->option("--input-len", o->input_len, "Prompt tokens: N or MIN:MAX (uniform)")->capture_default_str();
  f->option("--output-len", o->output_len, "Output tokens: N or MIN:MAX (uniform)")->capture_default_str();
  f->option("--dataset", o->dataset, "JSONL file of {\"prompt\": ..., \"output_len\": N}");
  f->option("--request-rate", o->request_rate, "Poisson arrivals per second (0 = all at once)")->capture_default_str();
  // Not add_scheduling_flag: "both" runs the two modes back to back.
  f->option("--scheduling", o->scheduling, "continuous, static, or both (back to back on the same workload)")
      ->check(CLI::IsMember({"continuous", "static", "both"}))
      ->capture_default_str();
  f->option("--seed", o->seed)->capture_default_str();
  f->option("--json", o->json_path, "Write results as JSON");
  f->option("--plot", o->plot_path, "Write a PNG plot (gnuplot)");
  add_scheduler_flags(*f, o->engine.scheduler);
  f->option("--temperature", o->temperature, "Sampling temperature of every request (0 = greedy)")->capture_default_str();
  f->option("--top-p", o->top_p)->capture_default_str();
  f->option("--top-k", o->top_k)->capture_default_str();
  add_speculative_flags(*f, o->engine.speculative);
  f->flag("--compare-no-spec", o->compare,
          "With speculation: run every wave of requests without and with it, alternating in one engine, "
          "and report the speedup against theory");
  f->option("--compare-rounds", o->compare_rounds, "Rounds of --compare-no-spec")->capture_default_str();
  f->option("--json-schema", o->json_schema,
            "Constrain every request's output to this JSON schema file; runs the workload unconstrained and "
            "constrained and reports the ratio, the grammar compile time and the per-token mask time");
  c->callback([o, f] {
    if (f->finish()) return;
    o->model = o->engine.model;
    run_throughput(*o);
  });
}

}  // namespace troupe::app
