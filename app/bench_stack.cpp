// `troupe bench stack`: what continuous batching, quantization and speculative decoding give
// together, against naive serving, as cost per 1M output tokens. One workload (the same seed
// and prompts for every rung) runs in process through a ladder of engine configurations:
//   naive        weights as stored, static batching, no speculation
//   +continuous  continuous batching
//   +int8, +int4 continuous batching and quantized weights (int4 is AWQ with --awq-model)
//   +spec        continuous batching and speculative decoding
//   stacked      all three (the last quantization rung)
// Each rung is priced where the decision is made: at its goodput capacity, the highest Poisson
// request rate at which >= --slo-attainment of the requests meet both SLOs, in two regimes
// (interactive: a reader's pace; batch: loose). Quality beside speed: KL and top-1 agreement
// of each quantized model to the unquantized one on the workload's own prompts.
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "actors/engine.h"
#include "app/bench_stats.h"
#include "app/bench_workload.h"
#include "app/commands.h"
#include "app/loaded_model.h"
#include "app/logit_compare.h"
#include "app/spec_options.h"
#include "config/bench_config.h"
#include "config/flags.h"
#include "core/error.h"
#include "quant/options.h"

namespace troupe::app {

namespace {

namespace json = boost::json;

struct Rung {
  std::string name, base;  // base: the rung this one is judged against ("" for naive)
  Scheduling scheduling = Scheduling::Continuous;
  quant::Options quant;
  std::string model;  // the target checkpoint (the AWQ one for an awq rung)
  bool speculate = false;
};

struct Regime {
  std::string name;
  Slo slo;
};

// One pass of the workload at one request rate; attainment per regime.
struct Probe {
  double rate = 0;
  BenchResult result;
  std::vector<double> attainment, goodput;  // per regime
};

struct Capacity {
  double rate = 0;                // 0: no probed rate met the SLOs
  std::optional<Probe> at;        // the probe at `rate`
  double lowest_failed = 0;       // with rate 0: the lowest rate probed
  std::vector<double> probed;     // in probe order
};

std::vector<Rung> make_ladder(const StackOpts& o) {
  const std::string& model = o.run.engine.model;
  std::vector<Rung> ladder;
  Rung naive{"naive", "", Scheduling::Static, {}, model, false};
  ladder.push_back(naive);
  Rung cont{"+continuous", "naive", Scheduling::Continuous, {}, model, false};
  ladder.push_back(cont);
  std::stringstream list(o.quantization_rungs);
  std::optional<Rung> last_quant;
  for (std::string item; std::getline(list, item, ',');) {
    Rung r = cont;
    r.base = "+continuous";
    r.quant = o.run.engine.quantization;  // --group-size, --lm-head
    r.quant.method = quant::parse_method(item);
    if (r.quant.method == quant::Method::None) fail("--quantization-rungs: 'none' is the +continuous rung already");
    // The INT4 rung: AWQ when a calibrated checkpoint is given, round-to-nearest otherwise.
    if (r.quant.method == quant::Method::Int4 && !o.awq_model.empty()) r.quant.method = quant::Method::Awq;
    if (r.quant.method == quant::Method::Awq) {
      if (o.awq_model.empty()) fail("--quantization-rungs awq needs --awq-model (a `troupe quantize` checkpoint)");
      r.model = o.awq_model;
    }
    r.name = "+" + std::string(quant::method_name(r.quant.method));
    ladder.push_back(r);
    last_quant = r;
  }
  Rung spec = cont;
  spec.name = "+spec";
  spec.base = "+continuous";
  spec.speculate = true;
  ladder.push_back(spec);
  Rung stacked = last_quant ? *last_quant : cont;
  stacked.name = "stacked";
  stacked.base = "+continuous";
  stacked.speculate = true;
  ladder.push_back(stacked);
  return ladder;
}

int cores_of(const StackOpts& o) {
  return o.run.engine.threads > 0 ? o.run.engine.threads : int(std::thread::hardware_concurrency());
}

// Core-hours per 1M output tokens at `tokens_per_s`, on `cores` cores.
double core_hours_per_million(double tokens_per_s, int cores) {
  return tokens_per_s > 0 ? double(cores) * 1e6 / (tokens_per_s * 3600.0) : NAN;
}

json::value num_or_null(double v) { return std::isfinite(v) ? json::value(v) : json::value(nullptr); }

json::object latency_json(const LatencyStats& s) { return {{"p50", s.p50}, {"p95", s.p95}, {"p99", s.p99}}; }

// KL and top-1 agreement of each quantized rung's weights to the unquantized model, on the
// workload's prompts; one entry per quantization method (the stacked rung shares its own).
std::map<std::string, QualityVsReference> measure_quality(const StackOpts& o, const std::vector<Rung>& ladder,
                                                          const Workload& w) {
  std::map<std::string, QualityVsReference> out;
  auto backend_opts = [&](const quant::Options& q) {
    cpu::CpuBackendOptions bo;
    bo.num_threads = o.run.engine.threads;
    bo.quantization = q;
    bo.num_blocks = (o.quality_max_len + bo.block_size - 1) / bo.block_size;
    return bo;
  };
  std::optional<LoadedModel> ref;
  for (const auto& r : ladder) {
    const std::string key(quant::describe(r.quant));
    if (r.quant.method == quant::Method::None || out.count(key)) continue;
    if (!ref) ref = load_cpu_model(o.run.engine.model, backend_opts({}));
    const int64_t max_len = std::min(o.quality_max_len, ref->backend->config().max_position_embeddings);
    // Each distinct prompt once: a dataset shorter than --num-prompts is cycled.
    std::set<std::vector<int32_t>> seqs;
    for (const auto& p : w.prompts) seqs.emplace(p.begin(), p.begin() + std::min<int64_t>(int64_t(p.size()), max_len));
    LoadedModel m = load_cpu_model(r.model, backend_opts(r.quant));
    if (m.backend->config().vocab_size != ref->backend->config().vocab_size)
      fail("{} and {} have different vocabularies", r.model, o.run.engine.model);
    out[key] = compare_to_reference(*m.backend, *ref->backend, {seqs.begin(), seqs.end()});
    std::fprintf(stderr, "quality of %s: KL %.6f nats/token, top-1 agreement %.4f over %lld positions\n", key.c_str(),
                 out[key].kl_mean, out[key].top1_agreement, (long long)out[key].tokens);
  }
  return out;
}

// The search for one rung's capacity in one regime: the highest rate, up to the offline
// capacity `hi` (no steady Poisson load can exceed what all-at-once achieves), at which the
// attainment holds: `hi` first, then halving until a rate passes, then bisection between the
// best pass and the lowest fail, `steps` probes after the first. A state machine, so that
// the rungs' searches take turns probe by probe (a change in the machine's load then hits
// every rung alike) instead of each rung's whole search running at a different time.
class RateSearch {
 public:
  RateSearch(double hi, int steps) : hi_(hi), steps_(steps) {}
  bool done() const { return done_; }
  double next() const { return !started_ ? hi_ : lo_ > 0 ? (lo_ + hi_) / 2 : hi_ / 2; }
  void record(double rate, bool passed) {
    c_.probed.push_back(rate);
    if (!started_) {
      started_ = true;
      if (passed) lo_ = hi_, done_ = true;
      done_ = done_ || steps_ == 0;
      return;
    }
    (passed ? lo_ : hi_) = rate;
    done_ = ++steps_done_ >= steps_;
  }
  // Once done(); `at` filled by the caller from the probe at `rate`.
  Capacity capacity() const {
    Capacity c = c_;
    c.rate = lo_;
    if (lo_ < hi_) c.lowest_failed = hi_;
    return c;
  }

 private:
  double lo_ = 0, hi_;
  int steps_, steps_done_ = 0;
  bool started_ = false, done_ = false;
  Capacity c_;
};

class RungRunner {
 public:
  RungRunner(const StackOpts& o, const Rung& r, const std::vector<Regime>& regimes)
      : o_(o), rung_(r), regimes_(regimes) {
    EngineConfig cfg = o.run.engine;
    cfg.model = r.model;
    cfg.quantization = r.quant;
    cfg.scheduler.scheduling = r.scheduling;
    // The static rung is the arrival-order baseline (--schedule-policy lof: the others').
    if (r.scheduling == Scheduling::Static) cfg.scheduler.schedule_policy = SchedulePolicy::Fcfs;
    // Every probe replays the same prompts: a prefix cache would serve later probes from
    // the earlier ones' KV and make them look faster than a first visit.
    cfg.scheduler.enable_prefix_caching = false;
    if (!r.speculate) cfg.speculative = SpeculativeConfig{};
    engine_ = std::make_unique<Engine>(cfg);
    workload_ = make_workload(o.run, engine_->tokenizer(), engine_->tokenizer().vocab_size());
  }

  Engine& engine() { return *engine_; }
  const Workload& workload() const { return workload_; }

  // An unrecorded pass of the first batch of requests: the first steps of each size grow
  // scratch buffers and fault in KV pages and weights, a cost only the first run would pay.
  void warm_up() {
    ThroughputOpts first = o_.run;
    Workload w = workload_;
    const size_t n = std::min(w.prompts.size(), size_t(std::max<int64_t>(1, o_.run.engine.scheduler.max_num_seqs)));
    w.prompts.resize(n);
    w.output_lens.resize(n);
    BenchClock::time_point t0;
    run_workload(*engine_, first, w, 0, rung_.name + " warm-up", t0);
  }

  // The workload all at once, once more; the best pass so far is the rung's offline probe.
  void offline_pass(int round) {
    const Probe p = run(0, fmt::format("{} offline ({}/{})", rung_.name, round + 1, o_.offline_rounds));
    offline_rates_.push_back(p.result.requests_per_s);
    auto it = probes_.find(0.0);
    if (it == probes_.end() || p.result.requests_per_s > it->second.result.requests_per_s) probes_[0.0] = p;
  }
  const std::vector<double>& offline_rates() const { return offline_rates_; }

  // The workload at `rate` (0: all at once), kept so both regimes' searches share it.
  const Probe& probe(double rate) {
    auto it = probes_.find(rate);
    if (it != probes_.end()) return it->second;
    return probes_.emplace(rate, run(rate, fmt::format("{} at {:.3g} req/s", rung_.name, rate))).first->second;
  }

  // Whether the probe at `rate` meets the regime's attainment.
  bool passes(size_t regime, double rate) { return probe(rate).attainment[regime] >= o_.attainment; }
  const Probe& probe_at(double rate) const { return probes_.at(rate); }

 private:
  Probe run(double rate, const std::string& label) {
    const SchedulerStats before = engine_->stats();
    BenchClock::time_point t0;
    const auto traces = run_workload(*engine_, o_.run, workload_, rate, label, t0);
    Probe p;
    p.rate = rate;
    p.result = summarize_run(*engine_, traces, t0, before, rung_.name);
    if (p.result.failed) fail("bench stack: {} request(s) of {} failed", p.result.failed, label);
    for (const auto& g : regimes_) {
      const auto good = count_within_slo(traces, g.slo);
      p.attainment.push_back(double(good) / double(traces.size()));
      p.goodput.push_back(p.result.duration_s > 0 ? double(good) / p.result.duration_s : 0);
    }
    return p;
  }

  const StackOpts& o_;
  const Rung& rung_;
  const std::vector<Regime>& regimes_;
  std::unique_ptr<Engine> engine_;
  Workload workload_;
  std::map<double, Probe> probes_;
  std::vector<double> offline_rates_;  // requests/s of each all-at-once pass
};

struct RungResult {
  const Rung* rung = nullptr;
  BenchResult offline;
  std::vector<double> offline_goodput;
  std::vector<Capacity> capacity;  // per regime
  std::vector<double> cost;        // USD per 1M output tokens at capacity, per regime (NaN: none)
  std::optional<QualityVsReference> quality;
  json::object json;
};

// An upper bound on stacked ÷ naive cost in regime g where naive has no capacity there but
// stacked has one: naive's capacity is below the lowest rate it failed at, so the ratio is
// below that rate ÷ stacked's capacity (costs are inversely proportional to capacity). NAN
// where the plain ratio is defined, or no bound follows.
double naive_ratio_bound(const RungResult& naive, const RungResult& stacked, size_t g) {
  const Capacity& n = naive.capacity[g];
  const Capacity& s = stacked.capacity[g];
  if (n.rate > 0 || n.lowest_failed <= 0 || s.rate <= 0) return NAN;
  return n.lowest_failed / s.rate;
}

// "helped"/"hurt"/"no clear change" for the cost ratio of a rung to its base in one regime
// (5% either way is noise on a shared machine). Where only one of the two has a capacity,
// that one is cheaper whatever the ratio.
std::string verdict(double cost, double base_cost) {
  const double ratio = cost / base_cost;
  if (std::isfinite(cost) && !std::isfinite(base_cost))
    return "helped (met the SLOs, where its base did at no probed rate)";
  if (!std::isfinite(cost) && std::isfinite(base_cost))
    return "hurt (met the SLOs at no probed rate, where its base did)";
  if (!std::isfinite(ratio)) return "no verdict (neither met the SLOs at a probed rate)";
  if (ratio < 0.95) return fmt::format("helped (cost x{:.2f})", ratio);
  if (ratio > 1.05) return fmt::format("hurt (cost x{:.2f})", ratio);
  return fmt::format("no clear change (cost x{:.2f})", ratio);
}

// One sentence: where this rung helped against its base rung, with the numbers behind it.
std::string sentence(const RungResult& r, const RungResult* base, const std::vector<Regime>& regimes) {
  std::string s = r.rung->name + ": ";
  if (!base) {
    s += fmt::format("the baseline, {:.1f} output tokens/s offline", r.offline.output_tokens_per_s);
    for (size_t g = 0; g < regimes.size(); ++g)
      s += fmt::format("{} {} capacity {:.3g} req/s", g ? "," : ";", regimes[g].name, r.capacity[g].rate);
    return s + ".";
  }
  s += "against " + base->rung->name + ",";
  for (size_t g = 0; g < regimes.size(); ++g)
    s += fmt::format("{} {} in the {} regime ({:.3g} -> {:.3g} req/s)", g ? " and" : "",
                     verdict(r.cost[g], base->cost[g]), regimes[g].name, base->capacity[g].rate,
                     r.capacity[g].rate);
  if (r.quality)
    s += fmt::format(", at KL {:.2g} nats/token and {:.1f}% top-1 agreement to the unquantized model",
                     r.quality->kl_mean, 100.0 * r.quality->top1_agreement);
  return s + ".";
}

void plot_stack(const std::vector<RungResult>& results, const std::vector<Regime>& regimes, double mean_out,
                const std::string& png) {
  std::ostringstream d;
  d << "# rung offline_tok_s " << regimes[0].name << "_capacity_tok_s " << regimes[1].name
    << "_capacity_tok_s ttft_p95_ms tpot_p95_ms " << regimes[0].name << "_cost " << regimes[1].name << "_cost\n";
  auto nan_or = [](double v) { return std::isfinite(v) ? fmt::format("{}", v) : std::string("nan"); };
  for (const auto& r : results) {
    d << '"' << r.rung->name << "\" " << r.offline.output_tokens_per_s;
    for (const auto& c : r.capacity) d << " " << c.rate * mean_out;
    d << " " << r.offline.ttft.p95 << " " << r.offline.tpot.p95;
    for (double c : r.cost) d << " " << nan_or(c);
    d << "\n";
  }
  run_gnuplot(png, d.str(), [&](const std::string& dat) {
    std::ostringstream f;
    f << "set terminal pngcairo size 1500,500\nset output '" << png << "'\n"
      << "set multiplot layout 1,2\nset style data histograms\nset style histogram clustered gap 1\n"
      << "set style fill solid 0.8 border -1\nset grid ytics\nset datafile missing 'nan'\n"
      << "set key below horizontal\n"
      << "set title 'output tokens/s (bars) and offline p95 latency (lines, right axis)'\n"
      << "set yrange [0:*]\nset logscale y2\nset ytics nomirror\nset y2tics\nset y2label 'ms (log)'\n"
      << "plot '" << dat << "' using 2:xtic(1) title 'offline', '' using 3 title '" << regimes[0].name
      << " capacity', '' using 4 title '" << regimes[1].name << " capacity', "
      << "'' using 0:5 axes x1y2 with linespoints lw 2 title 'TTFT p95 (offline)', "
      << "'' using 0:6 axes x1y2 with linespoints lw 2 title 'TPOT p95 (offline)'\n"
      << "unset y2tics\nunset y2label\nunset logscale y2\nset ytics mirror\n"
      << "set title 'USD per 1M output tokens at goodput capacity'\n"
      << "plot '" << dat << "' using 7:xtic(1) title '" << regimes[0].name << "', '' using 8 title '"
      << regimes[1].name << "'\nunset multiplot\n";
    return f.str();
  });
}

void run_stack(StackOpts o) {
  if (o.run.engine.quantization.method != quant::Method::None)
    fail("bench stack sets each rung's weights itself: use --quantization-rungs, not --quantization");
  if (!o.run.engine.speculative.enabled()) {
    // Something to stack: n-gram drafting needs no second model.
    o.run.engine.speculative.method = "ngram";
    o.run.engine.speculative.num_speculative_tokens = 4;
    std::fprintf(stderr, "no speculation given: the +spec and stacked rungs use --speculative-method ngram "
                         "--num-speculative-tokens 4\n");
  }
  o.run.model = o.run.engine.model;
  const std::vector<Regime> regimes{{"interactive", {o.slo_ttft_ms, o.slo_tpot_ms}},
                                    {"batch", {o.batch_slo_ttft_ms, o.batch_slo_tpot_ms}}};
  const std::vector<Rung> ladder = make_ladder(o);
  const int cores = cores_of(o);

  std::vector<RungResult> results;
  std::map<std::string, QualityVsReference> quality;
  double mean_out = 0;
  json::string speculation;
  // Every rung's engine stays up for the whole run, so that the probes can take turns:
  // first each rung's offline pass, then rounds of one search probe per rung and regime,
  // the rungs' order rotated each round.
  std::vector<std::unique_ptr<RungRunner>> runners;
  for (const auto& rung : ladder) {
    std::fprintf(stderr, "== rung %s: loading ==\n", rung.name.c_str());
    runners.push_back(std::make_unique<RungRunner>(o, rung, regimes));
    if (runners.size() == 1) {  // the same workload for every rung (same seed, same tokenizer)
      const Workload& w = runners.front()->workload();
      mean_out = std::accumulate(w.output_lens.begin(), w.output_lens.end(), 0.0) / double(w.output_lens.size());
      quality = measure_quality(o, ladder, w);
    }
  }
  for (auto& runner : runners) runner->warm_up();
  for (int round = 0; round < o.offline_rounds; ++round)
    for (size_t k = 0; k < runners.size(); ++k) runners[(k + size_t(round)) % runners.size()]->offline_pass(round);
  std::vector<std::vector<RateSearch>> searches;
  for (auto& runner : runners) {
    RungResult& r = results.emplace_back();
    const Probe& offline = runner->probe(0);
    r.offline = offline.result;
    r.offline_goodput = offline.goodput;
    searches.emplace_back(regimes.size(), RateSearch(r.offline.requests_per_s, o.search_steps));
  }
  for (size_t round = 0, pending = 1; pending > 0; ++round) {
    pending = 0;
    for (size_t k = 0; k < runners.size(); ++k) {
      const size_t i = (k + round) % runners.size();
      for (size_t g = 0; g < regimes.size(); ++g) {
        RateSearch& search = searches[i][g];
        if (search.done()) continue;
        const double rate = search.next();
        search.record(rate, runners[i]->passes(g, rate));
        pending += !search.done();
      }
    }
  }
  for (size_t i = 0; i < ladder.size(); ++i) {
    const Rung& rung = ladder[i];
    RungRunner& runner = *runners[i];
    RungResult& r = results[i];
    r.rung = &rung;
    for (size_t g = 0; g < regimes.size(); ++g) {
      Capacity c = searches[i][g].capacity();
      if (c.rate > 0) c.at = runner.probe_at(c.rate);
      r.cost.push_back(c.rate > 0 ? core_hours_per_million(c.rate * mean_out, cores) * o.core_hour_price : NAN);
      r.capacity.push_back(std::move(c));
    }
    if (rung.quant.method != quant::Method::None) r.quality = quality.at(std::string(quant::describe(rung.quant)));

    json::object& j = r.json;
    j["name"] = rung.name;
    j["model"] = rung.model;
    j["scheduling"] = rung.scheduling == Scheduling::Static ? "static" : "continuous";
    j["quantization"] = quant::describe(rung.quant);
    j["speculation"] = runner.engine().speculation();
    j["output_tokens_per_s"] = r.offline.output_tokens_per_s;
    j["requests_per_s"] = r.offline.requests_per_s;
    j["tokens_per_core_s"] = r.offline.output_tokens_per_s / double(cores);
    j["ttft_ms"] = latency_json(r.offline.ttft);
    j["tpot_ms"] = latency_json(r.offline.tpot);
    j["cost_per_1m_output_tokens_offline"] =
        num_or_null(core_hours_per_million(r.offline.output_tokens_per_s, cores) * o.core_hour_price);
    j["offline"] = to_json(r.offline);
    json::array offline_rates;
    for (double x : runner.offline_rates()) offline_rates.push_back(x);
    j["offline_passes_requests_per_s"] = offline_rates;
    json::object regimes_json;
    for (size_t g = 0; g < regimes.size(); ++g) {
      const Capacity& c = r.capacity[g];
      json::array probed;
      for (double p : c.probed) probed.push_back(p);
      json::object rj{{"goodput_requests_per_s_offline", r.offline_goodput[g]},
                      {"capacity_requests_per_s", c.rate},
                      {"capacity_output_tokens_per_s", c.rate * mean_out},
                      {"probed_rates", probed},
                      {"core_hours_per_1m_output_tokens", num_or_null(core_hours_per_million(c.rate * mean_out, cores))},
                      {"cost_per_1m_output_tokens", num_or_null(r.cost[g])}};
      if (c.at) {
        rj["attainment"] = c.at->attainment[g];
        rj["goodput_requests_per_s"] = c.at->goodput[g];
        rj["ttft_ms"] = latency_json(c.at->result.ttft);
        rj["tpot_ms"] = latency_json(c.at->result.tpot);
      } else {
        rj["attainment"] = nullptr;
        rj["goodput_requests_per_s"] = nullptr;
        rj["ttft_ms"] = nullptr;
        rj["tpot_ms"] = nullptr;
        rj["lowest_rate_probed"] = c.lowest_failed;
      }
      regimes_json[regimes[g].name] = rj;
    }
    j["regimes"] = regimes_json;
    if (r.quality)
      j["quality"] = json::object{{"kl_mean", r.quality->kl_mean},
                                  {"kl_p99", r.quality->kl_p99},
                                  {"top1_agreement", r.quality->top1_agreement},
                                  {"tokens", r.quality->tokens}};
    else
      j["quality"] = nullptr;  // weights as stored; speculation is lossless
    if (rung.speculate) j["spec_decode"] = spec_metrics_json(runner.engine().stats().spec);
  }

  auto find = [&](const std::string& name) -> const RungResult* {
    for (const auto& r : results)
      if (r.rung->name == name) return &r;
    return nullptr;
  };
  std::printf("bench stack: %s, %d requests, %d cores, USD %.4f per core-hour; SLO attainment >= %.0f%%\n",
              o.run.model.c_str(), o.run.num_prompts, cores, o.core_hour_price, 100 * o.attainment);
  for (const auto& g : regimes)
    std::printf("  %s regime: TTFT <= %.0f ms, TPOT <= %.0f ms\n", g.name.c_str(), g.slo.ttft_ms, g.slo.tpot_ms);
  std::printf("\n%-12s %9s %8s %8s %8s %8s %8s %10s %10s %10s %10s %9s %7s\n", "rung", "tok/s", "req/s", "tok/core-s",
              "TTFTp95", "TPOTp50", "TPOTp95", "int.cap", "int.$/1M", "batch.cap", "batch.$/1M", "KL", "top-1");
  json::array rungs;
  for (auto& r : results) {
    std::printf("%-12s %9.1f %8.2f %8.1f %8.1f %8.2f %8.2f %10.3g %10.4g %10.3g %10.4g", r.rung->name.c_str(),
                r.offline.output_tokens_per_s, r.offline.requests_per_s, r.offline.output_tokens_per_s / cores,
                r.offline.ttft.p95, r.offline.tpot.p50, r.offline.tpot.p95, r.capacity[0].rate, r.cost[0],
                r.capacity[1].rate, r.cost[1]);
    if (r.quality) std::printf(" %9.2g %7.4f", r.quality->kl_mean, r.quality->top1_agreement);
    std::printf("\n");
  }
  std::printf("\n");
  for (auto& r : results) {
    r.json["summary"] = sentence(r, r.rung->base.empty() ? nullptr : find(r.rung->base), regimes);
    std::printf("%s\n", std::string(r.json["summary"].as_string()).c_str());
    rungs.push_back(r.json);
  }
  const RungResult* naive = find("naive");
  const RungResult* stacked = find("stacked");
  json::object ratio, bound;
  std::printf("\nstacked cost / naive cost:");
  for (size_t g = 0; g < regimes.size(); ++g) {
    const double x = stacked->cost[g] / naive->cost[g];
    ratio[regimes[g].name] = num_or_null(x);
    // Assumes, as the search does, that a rate above a failed one fails too.
    const double below = naive_ratio_bound(*naive, *stacked, g);
    bound[regimes[g].name] = num_or_null(below);
    if (std::isfinite(below))
      std::printf(" %s < %.3f (naive missed the SLOs at every probed rate, down to %.3g req/s)",
                  regimes[g].name.c_str(), below, naive->capacity[g].lowest_failed);
    else
      std::printf(" %s %.3f", regimes[g].name.c_str(), x);
    std::printf("%s", g + 1 < regimes.size() ? "," : "\n");
  }

  json::object js;
  add_workload_json(o.run, js);
  js.erase("request_rate");  // searched per rung
  js["dataset"] = o.run.dataset;
  js["seed"] = o.run.seed;
  js["mean_output_len"] = mean_out;
  js["cores"] = cores;
  js["core_hour_price_usd"] = o.core_hour_price;
  js["slo_attainment"] = o.attainment;
  js["search_steps"] = o.search_steps;
  js["offline_rounds"] = o.offline_rounds;
  json::object rj;
  for (const auto& g : regimes) rj[g.name] = json::object{{"slo_ttft_ms", g.slo.ttft_ms}, {"slo_tpot_ms", g.slo.tpot_ms}};
  js["regimes"] = rj;
  js["rungs"] = rungs;
  js["stacked_over_naive_cost"] = ratio;
  js["stacked_over_naive_cost_below"] = bound;
  if (!o.run.json_path.empty()) {
    std::ofstream f(o.run.json_path);
    f << json::serialize(js) << "\n";
    if (!f) fail("{}: cannot write", o.run.json_path);
  }
  if (!o.run.plot_path.empty()) plot_stack(results, regimes, mean_out, o.run.plot_path);
}

}  // namespace

void register_bench_stack(CLI::App& bench) {
  auto o = std::make_shared<StackOpts>();
  o->run.engine.scheduler.max_num_seqs = 32;
  auto* c = bench.add_subcommand(
      "stack",
      "Naive serving vs continuous batching, quantization and speculation, alone and stacked: "
      "cost per 1M output tokens at each configuration's goodput capacity");
  c->footer(
      "Rungs: naive (weights as stored, static batching), +continuous, one per --quantization-rungs entry, "
      "+spec (continuous + speculation; n-gram with K=4 unless --speculative-model/--speculative-method is given), "
      "stacked (continuous + the last quantization rung + speculation). Every rung runs the same workload "
      "(same seed): --offline-rounds times all at once (the best pass is the offline capacity), then per regime a rate search: the offline rate, "
      "then halving until a rate passes, then bisection, --search-steps probes after the first, "
      "--num-prompts requests each (probes shared by the two regimes). Every rung's engine stays loaded and the "
      "rungs take turns, one probe each per round, so load changes hit all rungs alike (size --kv-cache-memory "
      "for that many engines). Cost per 1M output tokens = "
      "cores x --core-hour-price / (capacity x mean output tokens x 3600) x 1e6. The default price is "
      "AWS EC2 c7i.large on demand (Linux, us-east-1): USD 0.08925/hour for 2 vCPUs = 0.044625 per vCPU-hour. "
      "The goodput SLOs are --interactive-slo-* and --batch-slo-*; the scheduler's own --slo-ttft-ms/--slo-tpot-ms "
      "(SLO-aware scheduling, off by default) apply to every rung alike.");
  auto f = std::make_shared<config::FlagSet>(c);
  add_engine_flags(*f, o->run.engine);
  f->add_config_flags();
  add_workload_flags(*f, o->run);
  add_scheduler_flags(*f, o->run.engine.scheduler);
  add_speculative_flags(*f, o->run.engine.speculative);
  f->option("--quantization-rungs", o->quantization_rungs,
            "Comma-separated quantization rungs: int8, int4 (AWQ when --awq-model is given), awq")
      ->capture_default_str();
  f->option("--awq-model", o->awq_model, "A calibrated AWQ checkpoint of --model (`troupe quantize`) for the int4 rung");
  f->option("--interactive-slo-ttft-ms", o->slo_ttft_ms, "Interactive regime: TTFT bound (ms)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  f->option("--interactive-slo-tpot-ms", o->slo_tpot_ms, "Interactive regime: TPOT bound (ms per output token; 50 = a reader's pace)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  f->option("--batch-slo-ttft-ms", o->batch_slo_ttft_ms, "Batch regime: TTFT bound (ms)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  f->option("--batch-slo-tpot-ms", o->batch_slo_tpot_ms, "Batch regime: TPOT bound (ms per output token)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  f->option("--slo-attainment", o->attainment, "Share of requests inside both SLOs for a rate to count as sustained")
      ->capture_default_str()->check(CLI::Range(0.01, 1.0));
  f->option("--search-steps", o->search_steps, "Rate-search probes per regime after the one at the offline rate")
      ->capture_default_str()->check(CLI::Range(0, 20));
  f->option("--offline-rounds", o->offline_rounds,
            "All-at-once passes per rung (the rungs take turns); the best is the rung's offline rate")
      ->capture_default_str()->check(CLI::Range(1, 20));
  f->option("--core-hour-price", o->core_hour_price,
            "USD per core-hour (default: AWS EC2 c7i.large on demand, us-east-1, USD 0.08925/h for 2 vCPUs)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  f->option("--quality-max-len", o->quality_max_len, "Tokens of each prompt in the quality comparison")
      ->capture_default_str()->check(CLI::Range(2, 1 << 20));
  f->option("--json", o->run.json_path, "Write results as JSON");
  f->option("--plot", o->run.plot_path, "Write a PNG (gnuplot): tokens/s bars and p95 lines per rung, cost per rung");
  c->callback([o, f] {
    if (f->finish()) return;
    run_stack(*o);
  });
}

}  // namespace troupe::app
