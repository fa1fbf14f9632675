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
#include "actors/static_batching_bound.h"
#include "app/bench_grammar.h"
#include "app/bench_stats.h"
#include "app/bench_workload.h"
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

struct RunResult {
  BenchResult bench;
  std::vector<int> output_lens;  // the workload's, in arrival order
  spec::SpecMetrics spec;
  std::string speculation;
  std::vector<StepObservation> steps;  // every step of the run, in order
};

// An observer stage that keeps every step's observation (the scheduler sends one a step).
struct StepLog {
  std::mutex mu;
  std::vector<StepObservation> steps;
};
struct StepRecorderState {
  static inline const char* name = "bench_step_recorder";
};
observer_actor::behavior_type step_recorder(observer_actor::stateful_pointer<StepRecorderState>,
                                            std::shared_ptr<StepLog> log) {
  return {[log](StepObservation& s) {
    std::lock_guard lk(log->mu);
    log->steps.push_back(std::move(s));
  }};
}

RunResult run_once(const ThroughputOpts& o, Scheduling mode, const char* label, bool speculate) {
  EngineConfig cfg = o.engine;
  cfg.scheduler.scheduling = mode;
  // --scheduling both compares with the arrival-order baseline whatever --schedule-policy
  // says (--scheduling static with lof: the engine refuses it).
  if (mode == Scheduling::Static && o.scheduling == "both") cfg.scheduler.schedule_policy = SchedulePolicy::Fcfs;
  if (!speculate) cfg.speculative = SpeculativeConfig{};
  auto log = std::make_shared<StepLog>();
  EngineHooks hooks;
  hooks.customize = [log](PipelineBuilder& b, caf::actor_system& sys) { b.observer(sys.spawn(step_recorder, log)); };
  Engine engine(cfg, hooks);
  const Workload w = make_workload(o, engine.tokenizer(), engine.tokenizer().vocab_size());
  const SchedulerStats before = engine.stats();
  BenchClock::time_point t0;
  const auto traces = run_workload(engine, o, w, o.request_rate, label, t0);
  RunResult r{summarize_run(engine, traces, t0, before, label), w.output_lens, engine.stats().spec,
              engine.speculation(), {}};
  engine.stop();  // the recorder has every step once the pipeline has stopped
  std::lock_guard lk(log->mu);
  r.steps = std::move(log->steps);
  return r;
}

// --steps-csv: one row per step of every run (run label, round, then the observation).
void write_steps_csv(const std::string& path, const std::vector<const RunResult*>& runs,
                     const std::vector<int>& rounds) {
  std::ofstream f(path);
  if (!f) fail("--steps-csv {}: cannot open for writing", path);
  f << "run,round,step,seqs,tokens,prefill_tokens,outputs,generated,draft_tokens,accepted,waiting,running,"
       "wall_ms,forward_ms,sample_ms\n";
  for (size_t i = 0; i < runs.size(); ++i)
    for (const StepObservation& s : runs[i]->steps)
      f << runs[i]->bench.label << ',' << rounds[i] << ',' << s.step_id << ',' << s.num_seqs << ',' << s.num_tokens
        << ',' << s.num_prefill_tokens << ',' << s.num_outputs << ',' << s.num_generated << ','
        << s.num_draft_tokens << ',' << s.num_accepted << ',' << s.waiting << ',' << s.running << ','
        << s.wall_ms << ',' << s.forward_ms << ',' << s.sample_ms << '\n';
}

// The continuous/static bound for the workload (actors/static_batching_bound.h): on its
// sampled output lengths, and in expectation (uniform --output-len range, or the lengths'
// empirical distribution for a dataset or fixed lengths).
struct Bound {
  double sampled = 1, expected = 1;            // an endless stream: the batch stays full
  double fcfs_sampled = 1, fcfs_expected = 1;  // these requests, first come first served
  double lof_sampled = 1, lof_expected = 1;    // these requests, longest output first
};
Bound static_bound(const ThroughputOpts& o, const std::vector<int>& outs) {
  const int64_t batch = std::max<int64_t>(1, o.engine.scheduler.max_num_seqs);
  Bound b;
  b.sampled = static_bound_sampled(outs, batch);
  b.fcfs_sampled = static_bound_finite(outs, batch, SchedulePolicy::Fcfs);
  b.lof_sampled = static_bound_finite(outs, batch, SchedulePolicy::LongestOutputFirst);
  std::vector<int> pool = outs;  // what the lengths are drawn from
  if (o.dataset.empty()) {
    const auto [lo, hi] = parse_range(o.output_len, "--output-len");
    b.expected = static_bound_uniform(lo, hi, batch);
    pool.clear();
    for (int v = lo; v <= hi; ++v) pool.push_back(v);
  } else {
    b.expected = static_bound_empirical(outs, batch);
  }
  b.fcfs_expected = static_bound_finite_expected(pool, outs.size(), batch, 2000, SchedulePolicy::Fcfs);
  b.lof_expected = static_bound_finite_expected(pool, outs.size(), batch, 2000, SchedulePolicy::LongestOutputFirst);
  return b;
}

// Continuous batching's drain: its steps after the last one that computed prompt tokens,
// when slots empty and none refill. `full_step_ms`: the median forward time of its decode
// steps with every slot taken, what the drain's tokens would have cost in full steps.
struct Drain {
  int64_t steps = 0, tokens = 0;
  double forward_ms = 0, full_step_ms = 0;
};
Drain drain_of(const std::vector<StepObservation>& steps, int64_t batch) {
  Drain d;
  size_t first = 0;
  for (size_t i = 0; i < steps.size(); ++i)
    if (steps[i].num_prefill_tokens > 0) first = i + 1;
  std::vector<double> full;
  for (size_t i = 0; i < steps.size(); ++i) {
    const StepObservation& s = steps[i];
    if (s.num_prefill_tokens == 0 && s.num_seqs == batch) full.push_back(s.forward_ms);
    if (i < first) continue;
    ++d.steps;
    d.tokens += s.num_generated;
    d.forward_ms += s.forward_ms;
  }
  if (!full.empty()) {
    std::nth_element(full.begin(), full.begin() + full.size() / 2, full.end());
    d.full_step_ms = full[full.size() / 2];
  }
  return d;
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

// Requests [begin, end) of the workload, all at once, in mode A or B of a paired comparison
// (`b`: speculation on, or the grammar constraint on).
void run_wave(Engine& engine, const ThroughputOpts& o, const Workload& w, size_t begin, size_t end, bool b,
              bool constrain_b, ModeTotals& m) {
  RequestTracker tr;
  tr.traces.resize(end - begin);
  const auto st0 = engine.stats();
  const auto t0 = Clock::now();
  for (size_t i = begin; i < end; ++i) {
    GenerateRequest req = workload_request(o, w, i, constrain_b && b);
    if (!constrain_b) req.num_speculative_tokens = b ? -1 : 0;
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

// Every wave of max_num_seqs requests once in mode A and once in mode B, back to back in
// alternating order, o.compare_rounds times, after one unrecorded pass of the first wave in
// each mode (the first steps of a given size grow scratch buffers and fault in KV pages, a
// cost whichever mode ran first would pay).
void run_paired_waves(Engine& engine, const ThroughputOpts& o, const Workload& w, bool constrain_b,
                      const char* label, ModeTotals& a, ModeTotals& b) {
  const size_t wave = size_t(std::max<int64_t>(1, o.engine.scheduler.max_num_seqs));
  {
    ModeTotals warm;
    const size_t e = std::min(w.prompts.size(), wave);
    for (bool mode_b : {false, true}) run_wave(engine, o, w, 0, e, mode_b, constrain_b, warm);
  }
  Progress progress(label, int64_t(size_t(o.compare_rounds) * ((w.prompts.size() + wave - 1) / wave)));
  size_t done = 0;
  for (int r = 0; r < o.compare_rounds; ++r) {
    for (size_t begin = 0; begin < w.prompts.size(); begin += wave) {
      const size_t e = std::min(w.prompts.size(), begin + wave);
      const bool b_first = (begin / wave + size_t(r)) % 2 == 1;
      for (bool mode_b : {b_first, !b_first}) run_wave(engine, o, w, begin, e, mode_b, constrain_b, mode_b ? b : a);
      progress.update(++done);
    }
  }
  progress.finish();
}

EngineConfig paired_engine_config(const ThroughputOpts& o) {
  EngineConfig cfg = o.engine;
  cfg.scheduler.scheduling = Scheduling::Continuous;
  // Every wave runs twice on the same prompts: with prefix caching the second run would
  // skip the prefill the first one paid for, and whichever mode goes first would lose.
  cfg.scheduler.enable_prefix_caching = false;
  return cfg;
}

void compare_speculation(const ThroughputOpts& o) {
  Engine engine(paired_engine_config(o));
  const Workload w = make_workload(o, engine.tokenizer(), engine.tokenizer().vocab_size());
  const size_t wave = size_t(std::max<int64_t>(1, o.engine.scheduler.max_num_seqs));
  ModeTotals off, on;
  run_paired_waves(engine, o, w, false, "spec vs no-spec", off, on);
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

boost::json::object totals_json(const ModeTotals& m) {
  boost::json::object js;
  js["output_tokens"] = m.tokens;
  js["seconds"] = m.seconds;
  js["output_tokens_per_s"] = m.seconds > 0 ? double(m.tokens) / m.seconds : 0.0;
  js["steps"] = m.steps;
  js["forward_ms_per_step"] = m.steps ? m.forward_ms / double(m.steps) : 0.0;
  return js;
}

// --json-schema: the grammar's own costs, then the same workload unconstrained and
// constrained in one engine, as paired waves (run_paired_waves): two separate runs measured
// the process's cold start and the machine's drift, not the constraint.
void compare_constrained(ThroughputOpts o) {
  std::ifstream in(o.json_schema);
  if (!in) fail("--json-schema {}: cannot open", o.json_schema);
  o.json_schema.assign(std::istreambuf_iterator<char>(in), {});
  grammar::compile({"json_schema", o.json_schema});  // a bad schema fails before any run
  // The grammar's own costs first (a fresh mask cache, then the process-wide masker's
  // precompute, which the engine's constrained waves use).
  const auto tok = load_tokenizer(o.engine.model);
  const GrammarBenchResult g = bench_grammar_masks(o.json_schema, *tok, o.seed);
  print_grammar_result(g);
  std::fflush(stdout);
  Engine engine(paired_engine_config(o));
  const Workload w = make_workload(o, engine.tokenizer(), engine.tokenizer().vocab_size());
  const size_t wave = size_t(std::max<int64_t>(1, o.engine.scheduler.max_num_seqs));
  ModeTotals plain, constrained;
  run_paired_waves(engine, o, w, true, "constrained vs not", plain, constrained);
  const double tps_plain = double(plain.tokens) / plain.seconds;
  const double tps_constrained = double(constrained.tokens) / constrained.seconds;
  const double ratio = tps_constrained / tps_plain;
  const auto per_step = [](const ModeTotals& m) { return m.steps ? m.forward_ms / double(m.steps) : 0.0; };
  std::printf("\n%d rounds of paired waves of %zu requests, %lld output tokens per mode\n", o.compare_rounds, wave,
              (long long)constrained.tokens);
  std::printf("output tokens/s: %.2f unconstrained, %.2f constrained\n", tps_plain, tps_constrained);
  std::printf("forward per step: %.2f ms unconstrained, %.2f ms constrained\n", per_step(plain),
              per_step(constrained));
  std::printf("constrained/unconstrained output throughput ratio: %.3f\n", ratio);
  boost::json::object js;
  js["unconstrained"] = totals_json(plain);
  js["constrained"] = totals_json(constrained);
  js["throughput_ratio"] = ratio;
  js["rounds"] = o.compare_rounds;
  js["wave"] = wave;
  js["grammar"] = to_json(g);
  add_workload_json(o, js);
  if (!o.json_path.empty()) std::ofstream(o.json_path) << boost::json::serialize(js) << "\n";
}

void run_throughput(const ThroughputOpts& o) {
  const bool speculate = o.engine.speculative.enabled();
  if (!o.json_schema.empty()) {
    if (o.compare || o.scheduling != "continuous" || !o.plot_path.empty() || !o.steps_csv.empty() ||
        o.request_rate > 0)
      fail("--json-schema runs its own comparison (unconstrained vs constrained waves of --max-num-seqs "
           "requests, continuous batching); it does not combine with --compare-no-spec, --scheduling, "
           "--plot, --steps-csv or --request-rate");
    return compare_constrained(o);
  }
  if (o.compare) {
    // Refused rather than ignored: a run the user did not ask for, or a plot never written.
    if (!speculate)
      fail("--compare-no-spec needs speculation: --speculative-model or --speculative-method, "
           "with --num-speculative-tokens > 0");
    if (!o.plot_path.empty()) fail("--plot plots the scheduling runs; --compare-no-spec has none (use --json)");
    if (!o.steps_csv.empty()) fail("--steps-csv records the scheduling runs; --compare-no-spec has none (use --json)");
    return compare_speculation(o);
  }
  // With --scheduling both, --compare-rounds rounds of the two runs (each in a fresh engine),
  // back to back in alternating order, and the round with the median ratio is reported: the
  // machine's speed drifts between runs seconds apart (session 33: single rounds of issue
  // 19's workload read 1.31-1.80x, the static run's decode steps 14.1-18.1 ms on average).
  const bool both = o.scheduling == "both";
  const int rounds = both ? std::max(1, o.compare_rounds) : 1;
  std::vector<RunResult> continuous_runs, static_runs;
  for (int r = 0; r < rounds; ++r) {
    const bool static_first = r % 2 == 1;
    const auto run_static = [&] {
      if (o.scheduling != "continuous") static_runs.push_back(run_once(o, Scheduling::Static, "static", false));
    };
    if (static_first) run_static();
    if (o.scheduling != "static")
      continuous_runs.push_back(
          run_once(o, Scheduling::Continuous, speculate ? "speculative" : "continuous", speculate));
    if (!static_first) run_static();
  }
  if (!o.steps_csv.empty()) {
    std::vector<const RunResult*> all;
    std::vector<int> run_rounds;
    for (int r = 0; r < rounds; ++r)
      for (const auto* runs : {&continuous_runs, &static_runs})
        if (size_t(r) < runs->size()) all.push_back(&(*runs)[size_t(r)]), run_rounds.push_back(r);
    write_steps_csv(o.steps_csv, all, run_rounds);
  }
  std::vector<double> round_ratios;
  for (int r = 0; both && r < rounds; ++r)
    round_ratios.push_back(continuous_runs[r].bench.output_tokens_per_s / static_runs[r].bench.output_tokens_per_s);
  size_t shown = 0;  // the round reported: the median ratio's (the lower middle of an even count)
  if (both) {
    std::vector<size_t> order(round_ratios.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return round_ratios[a] < round_ratios[b]; });
    shown = order[(order.size() - 1) / 2];
  }
  std::vector<BenchResult> results;
  std::optional<RunResult> spec;
  std::vector<int> output_lens;
  if (!continuous_runs.empty()) {
    spec = continuous_runs[shown];
    results.push_back(spec->bench);
    output_lens = spec->output_lens;
  }
  if (!static_runs.empty()) results.push_back(static_runs[shown].bench);
  for (auto& r : results) print_result(r);
  boost::json::object js;
  if (spec && speculate) {
    std::printf("\n");
    print_spec_metrics(spec->spec);
    js["spec_decode"] = spec_metrics_json(spec->spec);
    js["speculation"] = spec->speculation;
  }
  if (results.size() == 2 && both) {
    const double ratio = round_ratios[shown];
    std::printf("\ncontinuous/static output throughput ratio: %.2fx", ratio);
    if (rounds > 1) {
      std::printf(" (the median of %d rounds, shown above; each round's:", rounds);
      for (double x : round_ratios) std::printf(" %.2f", x);
      std::printf(")");
    }
    std::printf("\n");
    const Bound b = static_bound(o, output_lens);
    std::printf("bound on compute-bound steps, E[max of a batch's outputs] / E[mean output]: %.3fx for this "
                "workload's lengths (%.3fx expected); measured ratio reaches %.2f of it (%.2f of the expectation)\n",
                b.sampled, b.expected, ratio / b.sampled, ratio / b.expected);
    // That bound keeps continuous batching's batch full, as in an endless stream; these
    // requests end in a drain (actors/static_batching_bound.h).
    std::printf("the same for these %zu requests admitted first come, first served (steps of the same cost; counts "
                "continuous batching's drain after its last admission): %.3fx (%.3fx expected); measured ratio "
                "reaches %.2f of it (%.2f of the expectation)\n",
                output_lens.size(), b.fcfs_sampled, b.fcfs_expected, ratio / b.fcfs_sampled, ratio / b.fcfs_expected);
    const bool lof = o.engine.scheduler.schedule_policy == SchedulePolicy::LongestOutputFirst;
    std::printf("the same admitted longest output first (--schedule-policy lof%s; static batching keeps arrival "
                "order): %.3fx (%.3fx expected); measured ratio reaches %.2f of it (%.2f of the expectation)\n",
                lof ? ", as this run's continuous batching was" : "", b.lof_sampled, b.lof_expected,
                ratio / b.lof_sampled, ratio / b.lof_expected);
    // Both leave out the prompts, which both modes compute: the ratio they give with static
    // batching's own split of prefill and decode time, an estimate.
    const BenchResult& st = results[1];
    const double prefill_ms = st.prefill_forward_ms, decode_ms = std::max(0.0, st.forward_ms - prefill_ms);
    const double with_prefill = static_estimate_with_prefill(b.sampled, prefill_ms, decode_ms);
    const double with_prefill_fcfs = static_estimate_with_prefill(b.fcfs_sampled, prefill_ms, decode_ms);
    std::printf("with the prompts, which both modes compute (static: %.2f s of prefill steps, %.2f s of decode "
                "steps): about %.3fx from the first and %.3fx from the second (estimates, not bounds); measured "
                "ratio reaches %.2f and %.2f of them\n",
                prefill_ms / 1e3, decode_ms / 1e3, with_prefill, with_prefill_fcfs, ratio / with_prefill,
                ratio / with_prefill_fcfs);
    const int64_t batch = std::max<int64_t>(1, o.engine.scheduler.max_num_seqs);
    const Drain drain = drain_of(continuous_runs[shown].steps, batch);
    std::printf("continuous batching's drain (its steps after the last that computed prompt tokens): %lld of %lld "
                "steps, %.2f of %.2f s of forward time, for %lld tokens",
                (long long)drain.steps, (long long)results[0].steps, drain.forward_ms / 1e3,
                results[0].forward_ms / 1e3, (long long)drain.tokens);
    if (drain.full_step_ms > 0)
      std::printf("; steps of %lld sequences (median %.2f ms) would take %.2f s for them", (long long)batch,
                  drain.full_step_ms, double(drain.tokens) / double(batch) * drain.full_step_ms / 1e3);
    std::printf("\n");
    std::printf("p95 TTFT continuous %.1f ms vs static %.1f ms\n", results[0].ttft.p95, results[1].ttft.p95);
    js["continuous"] = to_json(results[0]);
    js["static"] = to_json(results[1]);
    js["throughput_ratio"] = ratio;
    js["static_bound_sampled"] = b.sampled;
    js["static_bound_expected"] = b.expected;
    js["fraction_of_bound"] = ratio / b.sampled;
    js["fraction_of_expected_bound"] = ratio / b.expected;
    js["static_estimate_with_prefill"] = with_prefill;
    js["fraction_of_estimate_with_prefill"] = ratio / with_prefill;
    js["static_bound_fcfs_sampled"] = b.fcfs_sampled;
    js["static_bound_fcfs_expected"] = b.fcfs_expected;
    js["fraction_of_fcfs_bound"] = ratio / b.fcfs_sampled;
    js["static_estimate_fcfs_with_prefill"] = with_prefill_fcfs;
    js["static_bound_lof_sampled"] = b.lof_sampled;
    js["static_bound_lof_expected"] = b.lof_expected;
    js["fraction_of_lof_bound"] = ratio / b.lof_sampled;
    js["drain_steps"] = drain.steps;
    js["drain_tokens"] = drain.tokens;
    js["drain_forward_ms"] = drain.forward_ms;
    js["full_step_forward_ms"] = drain.full_step_ms;
    js["rounds"] = rounds;
    js["round_ratios"] = boost::json::value_from(round_ratios);
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
  add_workload_flags(*f, *o);
  f->option("--request-rate", o->request_rate, "Poisson arrivals per second (0 = all at once)")->capture_default_str();
  // Not add_scheduling_flag: "both" runs the two modes back to back.
  f->option("--scheduling", o->scheduling, "continuous, static, or both (back to back on the same workload)")
      ->check(CLI::IsMember({"continuous", "static", "both"}))
      ->capture_default_str();
  f->option("--json", o->json_path, "Write results as JSON");
  f->option("--plot", o->plot_path, "Write a PNG plot (gnuplot)");
  f->option("--steps-csv", o->steps_csv,
            "Write every step of every run to this CSV file (sequences, tokens, prefill tokens, forward ms, ...)");
  add_scheduler_flags(*f, o->engine.scheduler);
  add_speculative_flags(*f, o->engine.speculative);
  f->flag("--compare-no-spec", o->compare,
          "With speculation: run every wave of requests without and with it, alternating in one engine, "
          "and report the speedup against theory");
  f->option("--compare-rounds", o->compare_rounds,
            "Rounds of paired waves for --compare-no-spec and --json-schema; with --scheduling both, rounds of the "
            "two runs in alternating order (the median round is reported)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
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
