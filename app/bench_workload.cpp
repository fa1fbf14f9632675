#include "app/bench_workload.h"

#include <boost/json.hpp>

#include <fstream>
#include <random>
#include <thread>

#include "app/progress.h"
#include "core/error.h"

namespace troupe::app {

void add_workload_flags(config::FlagSet& f, ThroughputOpts& o) {
  f.option("--num-prompts", o.num_prompts)->capture_default_str()->check(CLI::Range(1, 1000000));
  f.option("--input-len", o.input_len, "Prompt tokens: N or MIN:MAX (uniform)")->capture_default_str();
  f.option("--output-len", o.output_len, "Output tokens: N or MIN:MAX (uniform)")->capture_default_str();
  f.option("--dataset", o.dataset, "JSONL file of {\"prompt\": ..., \"output_len\": N} (cycled up to --num-prompts)");
  f.option("--seed", o.seed)->capture_default_str();
  f.option("--temperature", o.temperature, "Sampling temperature of every request (0 = greedy)")->capture_default_str();
  f.option("--top-p", o.top_p)->capture_default_str();
  f.option("--top-k", o.top_k)->capture_default_str();
}

void add_workload_json(const ThroughputOpts& o, boost::json::object& js) {
  js["model"] = o.model;
  js["num_prompts"] = o.num_prompts;
  js["input_len"] = o.input_len;
  js["output_len"] = o.output_len;
  js["request_rate"] = o.request_rate > 0 ? boost::json::value(o.request_rate) : boost::json::value("inf");
  js["max_num_seqs"] = o.engine.scheduler.max_num_seqs;
  js["schedule_policy"] = schedule_policy_name(o.engine.scheduler.schedule_policy);
  js["max_num_batched_tokens"] = o.engine.scheduler.max_num_batched_tokens;
}

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
    std::vector<boost::json::object> rows;
    while (std::getline(in, line) && int(rows.size()) < o.num_prompts)
      if (!line.empty()) rows.push_back(boost::json::parse(line).as_object());
    if (rows.empty()) fail("{}: no prompts", o.dataset);
    // A file shorter than --num-prompts is cycled (as vLLM samples with replacement); each
    // repeat draws its own output length when the file gives none.
    for (int i = 0; i < o.num_prompts; ++i) {
      const auto& v = rows[size_t(i) % rows.size()];
      w.prompts.push_back(tok.encode(std::string(v.at("prompt").as_string()), true));
      w.output_lens.push_back(v.contains("output_len") ? int(v.at("output_len").as_int64())
                                                       : omin + int(rng() % (omax - omin + 1)));
    }
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

GenerateRequest workload_request(const ThroughputOpts& o, const Workload& w, size_t i, bool constrained) {
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

std::vector<RequestTrace> run_workload(Engine& engine, const ThroughputOpts& o, const Workload& w,
                                       double request_rate, const std::string& label, BenchClock::time_point& start) {
  RequestTracker tr;
  tr.traces.resize(w.prompts.size());
  std::mt19937_64 rng(o.seed + 1);
  std::exponential_distribution<double> gap(request_rate > 0 ? request_rate : 1.0);
  Progress progress(label, int64_t(w.prompts.size()));

  start = BenchClock::now();
  for (size_t i = 0; i < w.prompts.size(); ++i) {
    if (request_rate > 0 && i > 0) std::this_thread::sleep_for(std::chrono::duration<double>(gap(rng)));
    GenerateRequest req = workload_request(o, w, i);
    {
      std::lock_guard lk(tr.mu);
      tr.traces[i].submit = BenchClock::now();
      tr.traces[i].prompt_tokens = int64_t(w.prompts[i].size());
    }
    engine.submit(req, [&tr, &progress, i](const TokenEvent& ev) {
      std::lock_guard lk(tr.mu);
      auto& t = tr.traces[i];
      const auto now = BenchClock::now();
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
  return std::move(tr.traces);
}

BenchResult summarize_run(Engine& engine, const std::vector<RequestTrace>& traces, BenchClock::time_point start,
                          const SchedulerStats& before, const std::string& label) {
  const auto st = engine.stats();
  BenchResult r = summarize(traces, start);
  r.label = label;
  const int64_t steps = st.steps - before.steps;
  r.steps = steps;
  r.preemptions = st.preemptions - before.preemptions;
  // The drafter's time is part of the step's wall time but not of the target's forward pass.
  const double overhead = (st.step_wall_ms_total - before.step_wall_ms_total) -
                          (st.forward_ms_total - before.forward_ms_total) -
                          (st.sample_ms_total - before.sample_ms_total) -
                          (st.spec.draft_ms_total - before.spec.draft_ms_total);
  r.actor_overhead_ms_per_step = steps ? overhead / double(steps) : 0;
  r.forward_ms = st.forward_ms_total - before.forward_ms_total;
  r.forward_ms_per_step = steps ? r.forward_ms / double(steps) : 0;
  r.prefill_forward_ms = st.prefill_forward_ms_total - before.prefill_forward_ms_total;
  return r;
}

}  // namespace troupe::app
