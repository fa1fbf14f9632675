// `troupe bench serve`: a vLLM-style online serving benchmark against a running daemon,
// over real HTTP and SSE. Requests arrive as a Poisson process (or all at once), each on its
// own connection and thread; TTFT, TPOT, ITL and E2E are measured at the client, and goodput
// counts the requests that met the SLO.
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <semaphore>
#include <thread>

#include <fmt/format.h>

#include "app/bench_stats.h"
#include "app/bench_sweep.h"
#include "app/progress.h"
#include "app/commands.h"
#include "client/http_client.h"
#include "config/bench_config.h"
#include "core/error.h"

namespace troupe::app {

namespace {

namespace json = boost::json;

struct Trace {
  BenchClock::time_point submit{}, finish{};
  std::vector<BenchClock::time_point> chunk_times;  // SSE events that carried text
  int64_t prompt_tokens = 0, output_tokens = 0;
  bool ok = false;
  std::string error;
};

std::pair<int, int> parse_len(const std::string& s, const char* flag) {
  try {
    const size_t colon = s.find(':');
    const int a = std::stoi(s.substr(0, colon));
    const int b = colon == std::string::npos ? a : std::stoi(s.substr(colon + 1));
    if (a < 1 || b < a) throw std::out_of_range(flag);
    return {a, b};
  } catch (const std::exception&) {
    fail("{} must be N or MIN:MAX with 1 <= MIN <= MAX, got '{}'", flag, s);
  }
}

// Synthetic prompts: words from a small story vocabulary, about one token per word for
// the Llama-family tokenizers. The server reports the exact prompt length in `usage`.
std::string make_prompt(std::mt19937_64& rng, int words) {
  static const char* vocab[] = {"once", "upon", "a", "time", "there", "was", "little", "girl", "named", "Lily",
                                "she", "loved", "to", "play", "in", "the", "park", "with", "her", "dog",
                                "one", "day", "they", "found", "big", "red", "ball", "and", "ran", "home",
                                "happy", "tree", "sun", "friend", "said", "went", "saw", "cat", "bird", "sky"};
  std::uniform_int_distribution<size_t> pick(0, std::size(vocab) - 1);
  std::string p;
  for (int i = 0; i < words; ++i) {
    if (i) p += ' ';
    p += vocab[pick(rng)];
  }
  return p;
}

std::string discover_model(const HttpUrl& u, const Headers& auth) {
  HttpClient c(u.host, u.port, 30);
  HttpResponse r = c.request("GET", u.path + "/v1/models", {}, auth);
  if (r.status != 200) fail("GET /v1/models returned {}: {}", r.status, r.body);
  json::value v = json::parse(r.body);
  return std::string(v.at("data").at(0).at("id").as_string());
}

void run_one(const HttpUrl& u, const Headers& headers, const std::string& target, const std::string& body,
             double timeout_s, Trace& t) {
  t.submit = BenchClock::now();
  try {
    HttpClient c(u.host, u.port, timeout_s);
    SseParser sse;
    bool done = false;
    HttpResponse r = c.request("POST", target, body, headers, [&](std::string_view bytes) {
      const auto now = BenchClock::now();
      sse.feed(bytes, [&](const std::string& data) {
        if (data == "[DONE]") {
          done = true;
          return;
        }
        json::value v = json::parse(data);
        const json::object& o = v.as_object();
        if (const json::value* err = o.if_contains("error")) t.error = json::serialize(*err);
        if (const json::value* us = o.if_contains("usage"); us && us->is_object()) {
          t.prompt_tokens = us->as_object().at("prompt_tokens").to_number<int64_t>();
          t.output_tokens = us->as_object().at("completion_tokens").to_number<int64_t>();
        }
        const json::value* ch = o.if_contains("choices");
        if (!ch || ch->as_array().empty()) return;
        const json::object& c0 = ch->as_array()[0].as_object();
        const json::value* text = c0.if_contains("text");
        if (const json::value* d = c0.if_contains("delta")) text = d->as_object().if_contains("content");
        if (text && text->is_string() && !text->as_string().empty()) t.chunk_times.push_back(now);
      });
      return true;
    });
    t.finish = BenchClock::now();
    if (r.status != 200) t.error = "HTTP " + std::to_string(r.status);
    else if (!done && t.error.empty()) t.error = "stream ended without [DONE]";
    t.ok = t.error.empty() && !t.chunk_times.empty();
    if (t.ok && t.output_tokens == 0) t.output_tokens = int64_t(t.chunk_times.size());
  } catch (const std::exception& e) {
    t.finish = BenchClock::now();
    t.error = e.what();
  }
}

double ms(BenchClock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string rate_label(double rate) { return std::isfinite(rate) ? fmt::format("{:g}", rate) : "inf"; }

// One run of the workload at `rate` requests/s: prints its summary and returns it as JSON.
// `seed` picks the prompts and arrivals (a sweep gives each rate its own prompts, so one
// rate's prefix-cache entries do not serve the next).
json::object run_at_rate(const ServeBenchOpts& o, const HttpUrl& u, const Headers& headers, const std::string& model,
                         double rate, uint64_t seed) {
  const bool chat = o.endpoint.find("chat") != std::string::npos;
  const auto in_len = parse_len(o.input_len, "--input-len");
  const auto out_len = parse_len(o.output_len, "--output-len");

  std::mt19937_64 rng(seed);
  std::vector<std::string> bodies;
  for (int i = 0; i < o.num_prompts; ++i) {
    const int in = std::uniform_int_distribution<int>(in_len.first, in_len.second)(rng);
    const int out = std::uniform_int_distribution<int>(out_len.first, out_len.second)(rng);
    json::object b{{"model", model},
                   {"max_tokens", out},
                   {"temperature", 0},
                   {"ignore_eos", true},
                   {"stream", true},
                   {"stream_options", json::object{{"include_usage", true}}}};
    const std::string prompt = make_prompt(rng, in);
    if (chat) b["messages"] = json::array{json::object{{"role", "user"}, {"content", prompt}}};
    else b["prompt"] = prompt;
    bodies.push_back(json::serialize(b));
  }
  // Arrivals at the given mean rate (all at once when infinite): exponential gaps (a Poisson
  // process) or, with --burstiness k != 1, gamma gaps of shape k and mean 1 / rate, whose
  // coefficient of variation is 1 / sqrt(k). The Poisson draws are those of earlier
  // versions, so a sweep's workload with the same seed is the same.
  std::vector<double> arrival_s(size_t(o.num_prompts), 0.0);
  if (std::isfinite(rate)) {
    std::exponential_distribution<double> poisson_gap(rate);
    std::gamma_distribution<double> gamma_gap(o.burstiness, 1.0 / (rate * o.burstiness));
    double t = 0;
    for (auto& a : arrival_s) {
      a = t;
      t += o.burstiness == 1.0 ? poisson_gap(rng) : gamma_gap(rng);
    }
  }

  std::printf("bench serve: %d requests to %s%s (model %s), rate %s req/s%s, max concurrency %s\n", o.num_prompts,
              o.url.c_str(), o.endpoint.c_str(), model.c_str(), rate_label(rate).c_str(),
              o.burstiness == 1.0 ? "" : fmt::format(" (burstiness {:g})", o.burstiness).c_str(),
              o.max_concurrency > 0 ? std::to_string(o.max_concurrency).c_str() : "unlimited");
  std::fflush(stdout);
  std::vector<Trace> traces(size_t(o.num_prompts));
  std::counting_semaphore<> slots(o.max_concurrency > 0 ? o.max_concurrency : o.num_prompts);
  std::vector<std::thread> threads;
  std::mutex mu;
  size_t finished = 0;
  Progress progress("requests", int64_t(o.num_prompts));
  const std::string target = u.path + o.endpoint;
  const auto start = BenchClock::now();
  for (size_t i = 0; i < traces.size(); ++i) {
    std::this_thread::sleep_until(start + std::chrono::duration_cast<BenchClock::duration>(
                                              std::chrono::duration<double>(arrival_s[i])));
    slots.acquire();
    threads.emplace_back([&, i] {
      run_one(u, headers, target, bodies[i], o.timeout_s, traces[i]);
      slots.release();
      std::lock_guard lk(mu);
      progress.update(++finished);
    });
  }
  for (auto& t : threads) t.join();
  progress.finish();

  BenchResult r;
  r.label = "serve " + o.endpoint;
  std::vector<double> ttft, tpot, itl, e2e;
  BenchClock::time_point end = start;
  int64_t good = 0, rejected = 0;
  std::string first_error;
  for (const auto& t : traces) {
    r.requests++;
    if (!t.ok) {
      r.failed++;
      rejected += t.error == "HTTP 429";
      if (first_error.empty()) first_error = t.error;
      continue;
    }
    end = std::max(end, t.finish);
    r.prompt_tokens += t.prompt_tokens;
    r.output_tokens += t.output_tokens;
    const double t_ttft = ms(t.chunk_times.front() - t.submit);
    const double t_e2e = ms(t.finish - t.submit);
    // vLLM's TPOT: decode time over the tokens after the first.
    const double t_tpot = t.output_tokens > 1 ? (t_e2e - t_ttft) / double(t.output_tokens - 1) : 0;
    ttft.push_back(t_ttft);
    e2e.push_back(t_e2e);
    if (t.output_tokens > 1) tpot.push_back(t_tpot);
    for (size_t k = 1; k < t.chunk_times.size(); ++k) itl.push_back(ms(t.chunk_times[k] - t.chunk_times[k - 1]));
    good += meets_slo({o.slo_ttft_ms, o.slo_tpot_ms}, t_ttft, t_tpot, t.output_tokens);
  }
  // Goodput is over the time the whole workload took (arrivals included), so turning
  // requests away early does not shorten the denominator.
  for (const auto& t : traces) end = std::max(end, t.finish);
  r.duration_s = std::chrono::duration<double>(end - start).count();
  if (r.duration_s > 0) {
    r.output_tokens_per_s = double(r.output_tokens) / r.duration_s;
    r.total_tokens_per_s = double(r.output_tokens + r.prompt_tokens) / r.duration_s;
    r.requests_per_s = double(r.requests - r.failed) / r.duration_s;
    if (o.slo_ttft_ms > 0 || o.slo_tpot_ms > 0) r.goodput_requests_per_s = double(good) / r.duration_s;
  }
  r.ttft = LatencyStats::of(ttft);
  r.tpot = LatencyStats::of(tpot);
  r.itl = LatencyStats::of(itl);
  r.e2e = LatencyStats::of(e2e);
  print_result(r);
  // The first request of a fresh server pays the cold start; compare it with the median.
  double cold_ratio = 0;
  if (!traces.empty() && traces[0].ok && r.ttft.p50 > 0) {
    cold_ratio = ms(traces[0].chunk_times.front() - traces[0].submit) / r.ttft.p50;
    std::printf("first request TTFT / median TTFT: %.2f\n", cold_ratio);
  }
  if (r.goodput_requests_per_s >= 0)
    std::printf("SLO: TTFT <= %.1f ms, TPOT <= %.1f ms: %lld of %lld requests (%.1f%%)\n", o.slo_ttft_ms,
                o.slo_tpot_ms, (long long)good, (long long)r.requests, r.requests ? 100.0 * double(good) / double(r.requests) : 0.0);
  if (r.failed) std::printf("failed: %lld (%lld turned away with 429); first failure: %s\n", (long long)r.failed,
                            (long long)rejected, first_error.c_str());
  json::object j = to_json(r);
  j["request_rate"] = std::isfinite(rate) ? json::value(rate) : json::value("inf");
  j["first_ttft_over_median"] = cold_ratio;
  // The burstiness the workload got: the coefficient of variation of its arrival gaps.
  if (arrival_s.size() > 2 && std::isfinite(rate)) {
    std::vector<double> gaps;
    for (size_t i = 1; i < arrival_s.size(); ++i) gaps.push_back(arrival_s[i] - arrival_s[i - 1]);
    double mean = 0, var = 0;
    for (double g : gaps) mean += g / double(gaps.size());
    for (double g : gaps) var += (g - mean) * (g - mean) / double(gaps.size() - 1);
    j["arrival_gap_cv"] = mean > 0 ? std::sqrt(var) / mean : 0.0;
  }
  j["rejected_429"] = rejected;
  if (r.goodput_requests_per_s >= 0) j["good_requests"] = good;
  if (r.failed == r.requests && rejected < r.requests) fail("every request failed: {}", first_error);
  return j;
}

void run_serve_bench(const ServeBenchOpts& o) {
  if (!o.plot_only.empty()) {  // draw earlier sweeps, run nothing
    if (o.plot_path.empty()) fail("--plot-only needs --plot PNG");
    std::vector<json::object> series{read_sweep_json(o.plot_only)};
    for (const auto& path : o.plot_with) series.push_back(read_sweep_json(path));
    plot_rate_sweep(series, o.plot_path);
    return;
  }
  const HttpUrl u = parse_http_url(o.url);
  Headers headers;
  if (!o.api_key.empty()) headers.emplace_back("Authorization", "Bearer " + o.api_key);
  const std::string model = o.model.empty() ? discover_model(u, headers) : o.model;
  const std::vector<double> rates = parse_rates(o.request_rate);
  json::object out{{"label", o.label.empty() ? o.endpoint : o.label},
                   {"url", o.url},
                   {"endpoint", o.endpoint},
                   {"model", model},
                   {"num_prompts", o.num_prompts},
                   {"max_concurrency", o.max_concurrency},
                   {"input_len", o.input_len},
                   {"output_len", o.output_len},
                   {"seed", o.seed},
                   {"burstiness", o.burstiness}};
  if (o.slo_ttft_ms > 0 || o.slo_tpot_ms > 0) {
    out["slo_ttft_ms"] = o.slo_ttft_ms;
    out["slo_tpot_ms"] = o.slo_tpot_ms;
  }
  json::array runs;
  for (size_t i = 0; i < rates.size(); ++i) {
    json::object j = run_at_rate(o, u, headers, model, rates[i], o.seed + i);
    if (rates.size() == 1) {  // one rate: its figures at the top level, as before sweeps
      for (auto& kv : j) out[kv.key()] = kv.value();
    }
    runs.push_back(std::move(j));
  }
  out["runs"] = std::move(runs);
  if (!o.json_path.empty()) std::ofstream(o.json_path) << json::serialize(out) << "\n";
  if (!o.plot_path.empty()) {
    std::vector<json::object> series{out};
    for (const auto& path : o.plot_with) series.push_back(read_sweep_json(path));
    plot_rate_sweep(series, o.plot_path);
  }
}

}  // namespace

void register_bench_serve(CLI::App& bench) {
  auto o = std::make_shared<ServeBenchOpts>();
  auto* cmd = bench.add_subcommand("serve", "Online serving benchmark against a running `troupe serve` (HTTP + SSE)");
  cmd->add_option("--url", o->url, "Server base URL")->capture_default_str();
  cmd->add_option("--endpoint", o->endpoint, "/v1/completions or /v1/chat/completions")
      ->capture_default_str()
      ->check(CLI::IsMember({"/v1/completions", "/v1/chat/completions"}));
  cmd->add_option("--model", o->model, "Model name (default: the server's, from /v1/models)");
  cmd->add_option("--api-key", o->api_key, "Bearer token for the server");
  cmd->add_option("--num-prompts", o->num_prompts, "Requests to send")->capture_default_str()->check(CLI::Range(1, 1000000));
  cmd->add_option("--request-rate", o->request_rate,
                  "Poisson arrival rate in requests/s (inf: all at once); a comma-separated list sweeps the rates in turn")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) {
            try {
              parse_rates(v);
              return std::string();
            } catch (const std::exception& e) {
              return std::string(e.what());
            }
          },
          "RATE[,RATE...]"));
  cmd->add_option("--burstiness", o->burstiness,
                  "Arrival burstiness: gamma gaps of this shape at the same mean rate (1: Poisson; "
                  "below 1: requests in bursts; above 1: more even)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-concurrency", o->max_concurrency, "Requests in flight at most (0: unlimited)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  cmd->add_option("--input-len", o->input_len, "Prompt words: N or MIN:MAX (uniform)")->capture_default_str();
  cmd->add_option("--output-len", o->output_len, "max_tokens (with ignore_eos): N or MIN:MAX")->capture_default_str();
  cmd->add_option("--slo-ttft-ms", o->slo_ttft_ms, "Goodput SLO on TTFT (ms)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--slo-tpot-ms", o->slo_tpot_ms, "Goodput SLO on TPOT (ms)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->seed, "Seed for prompts and arrivals")->capture_default_str();
  cmd->add_option("--timeout", o->timeout_s, "Per-request timeout (s)")->capture_default_str();
  cmd->add_option("--json", o->json_path, "Also write the results to this JSON file (a sweep: one entry per rate in `runs`)");
  cmd->add_option("--label", o->label, "Name of this run in the JSON and on plots (e.g. the server's configuration)");
  cmd->add_option("--plot", o->plot_path, "Write a PNG (gnuplot) of goodput, p95 TTFT and p95 TPOT against the request rate");
  cmd->add_option("--plot-with", o->plot_with, "Earlier --json files to draw on the same plot (one line each)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--plot-only", o->plot_only, "Run nothing: plot this earlier --json file (and --plot-with ones)")
      ->check(CLI::ExistingFile);
  cmd->callback([o] { run_serve_bench(*o); });
}

}  // namespace troupe::app
