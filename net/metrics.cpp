#include "net/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace troupe {

namespace {

// vLLM's bucket boundaries, extended downwards: a small model on a CPU produces tokens in
// well under vLLM's smallest bucket, and a histogram that puts everything in one bucket
// says nothing.
std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
          1.0,    2.5,   5.0,    7.5,   10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
}
std::vector<double> token_latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
          0.3,    0.4,     0.5,    0.75,  1.0,    2.5,   5.0,  7.5,   10.0, 20.0,  40.0, 80.0};
}
std::vector<double> request_buckets() {
  return {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,  0.3,  0.5,  0.8,   1.0,   1.5,   2.0,   2.5,   5.0,
          10.0,  15.0,  20.0, 30.0,  40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
}
std::vector<double> count_buckets() {
  return {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000};
}

// A request's time as a fraction of its target: <= 1 met it; the buckets resolve how close
// it came on both sides (an operator tunes targets from this, not from the hit count alone).
std::vector<double> attainment_buckets() { return {0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 4.0, 10.0}; }

std::string num(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  for (int prec = 1; prec <= 17; ++prec) {  // the shortest text that reads back exactly
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string escape_label(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void header(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, const std::string& labels, double v) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += num(v);
  out += '\n';
}

void atomic_add(std::atomic<double>& a, double v) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::observe(double v) {
  if (std::isnan(v)) return;
  const size_t i = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, v);
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : labels + ",";
  uint64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i].load(std::memory_order_relaxed);
    const std::string le = i < bounds_.size() ? num(bounds_[i]) : "+Inf";
    sample(out, name + "_bucket", sep + "le=\"" + le + "\"", double(cum));
  }
  sample(out, name + "_sum", labels, sum_.load(std::memory_order_relaxed));
  sample(out, name + "_count", labels, double(cum));
}

Metrics::Metrics(std::string model_name)
    : model_label_("model_name=\"" + escape_label(model_name) + "\""),
      ttft_(latency_buckets()),
      itl_(token_latency_buckets()),
      tpot_(token_latency_buckets()),
      e2e_(request_buckets()),
      queue_(request_buckets()),
      prefill_(request_buckets()),
      decode_(request_buckets()),
      prompt_tokens_(count_buckets()),
      gen_tokens_(count_buckets()),
      ttft_attainment_(attainment_buckets()),
      tpot_attainment_(attainment_buckets()) {
  for (auto& a : aborted_) a.store(0);
  for (auto& a : http_by_code_) a.store(0);
}

void Metrics::finished(const TokenEvent& ev) {
  const auto& u = ev.usage;
  const auto& t = ev.timings;
  if (ev.finish_reason == FinishReason::Error) {
    if (ev.error_kind == ErrorKind::Overloaded) rejected_overloaded_++;
    else if (ev.error_kind == ErrorKind::InvalidRequest) rejected_invalid_++;
    else failed_++;
    return;
  }
  if (ev.finish_reason == FinishReason::Stop) success_stop_++;
  else if (ev.finish_reason == FinishReason::Length) success_length_++;
  else success_abort_++;
  prompt_tokens_total_ += uint64_t(std::max<int64_t>(u.prompt_tokens, 0));
  gen_tokens_total_ += uint64_t(std::max<int64_t>(u.completion_tokens, 0));
  prompt_tokens_.observe(double(u.prompt_tokens));
  gen_tokens_.observe(double(u.completion_tokens));
  e2e_.observe(t.e2e_ms / 1e3);
  queue_.observe(t.queue_ms / 1e3);
  if (u.completion_tokens > 0) {
    prefill_.observe(std::max(0.0, t.ttft_ms - t.queue_ms) / 1e3);
    decode_.observe(std::max(0.0, t.e2e_ms - t.ttft_ms) / 1e3);
  }
  if (u.completion_tokens > 1) tpot_.observe(t.tpot_ms / 1e3);
  const SloOutcome& o = ev.slo;
  if (o.ttft_target_ms > 0 && u.completion_tokens > 0) ttft_attainment_.observe(o.ttft_ms / o.ttft_target_ms);
  if (o.tpot_target_ms > 0 && u.completion_tokens > 1) tpot_attainment_.observe(o.tpot_ms / o.tpot_target_ms);
}

void Metrics::aborted(AbortCause c) { aborted_[size_t(c)]++; }

void Metrics::http_response(int status) {
  if (status >= 100 && status < 600) http_by_code_[size_t(status)]++;
}

void Metrics::connection_opened(bool websocket) { (websocket ? open_ws_ : open_http_)++; }
void Metrics::connection_closed(bool websocket) { (websocket ? open_ws_ : open_http_)--; }

void Metrics::set_cold_start(double first, double steady) {
  cold_first_ttft_ = first;
  cold_steady_ttft_ = steady;
}

std::string Metrics::render(const SchedulerStats* st, bool ready, bool vllm_names) const {
  std::string out;
  out.reserve(32 * 1024);
  const std::string& L = model_label_;
  // vLLM names its metrics "vllm:...", but a colon marks recording-rule output and
  // promtool's lint rejects it in an exporter; the default exposition says "vllm_...".
  auto N = [&](const char* name) {
    std::string n = name;
    if (!vllm_names && n.rfind("vllm:", 0) == 0) n[4] = '_';
    return n;
  };
  auto gauge = [&](const char* name, const char* help, double v) {
    header(out, N(name), "gauge", help);
    sample(out, N(name), L, v);
  };
  auto counter = [&](const char* name, const char* help, double v) {
    header(out, N(name), "counter", help);
    sample(out, N(name), L, v);
  };
  const SchedulerStats empty;
  const SchedulerStats& s = st ? *st : empty;

  gauge("vllm:num_requests_running", "Number of requests in model execution batches.", double(s.running));
  gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", double(s.waiting));
  gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", s.kv.usage());
  gauge("vllm:gpu_cache_usage_perc", "KV-cache usage (vLLM v0 name; the cache lives wherever the backend runs).",
        s.kv.usage());
  gauge("vllm:gpu_prefix_cache_hit_rate", "Prefix-cache hit rate over all prompt tokens looked up (vLLM v0 name).",
        s.kv.prefix_hit_rate());
  counter("vllm:num_preemptions_total", "Cumulative number of preemptions from the engine.", double(s.preemptions));
  counter("vllm:prefix_cache_queries_total", "Prefix-cache queries, in prompt tokens looked up.",
          double(s.kv.prefix_query_tokens));
  counter("vllm:prefix_cache_hits_total", "Prefix-cache hits, in prompt tokens served from the cache.",
          double(s.kv.prefix_hit_tokens));
  counter("vllm:prompt_tokens_total", "Number of prefill tokens processed (finished requests).",
          double(prompt_tokens_total_.load()));
  counter("vllm:generation_tokens_total", "Number of generation tokens processed (finished requests).",
          double(gen_tokens_total_.load()));

  const std::string success = N("vllm:request_success_total");
  header(out, success, "counter", "Count of successfully processed requests.");
  sample(out, success, L + ",finished_reason=\"stop\"", double(success_stop_.load()));
  sample(out, success, L + ",finished_reason=\"length\"", double(success_length_.load()));
  sample(out, success, L + ",finished_reason=\"abort\"", double(success_abort_.load()));

  auto hist = [&](const Histogram& h, const char* name, const char* help) {
    header(out, N(name), "histogram", help);
    h.render(out, N(name), L);
  };
  hist(ttft_, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.");
  hist(itl_, "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.");
  hist(tpot_, "vllm:request_time_per_output_token_seconds",
       "Histogram of each request's mean time per output token in seconds.");
  hist(e2e_, "vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.");
  hist(queue_, "vllm:request_queue_time_seconds", "Histogram of time spent in the waiting queue in seconds.");
  hist(prefill_, "vllm:request_prefill_time_seconds", "Histogram of time spent in prefill in seconds.");
  hist(decode_, "vllm:request_decode_time_seconds", "Histogram of time spent in decode in seconds.");
  hist(prompt_tokens_, "vllm:request_prompt_tokens", "Number of prefill tokens processed per request.");
  hist(gen_tokens_, "vllm:request_generation_tokens", "Number of generation tokens processed per request.");

  if (s.spec.max_k > 0) {  // speculative decoding is on: vLLM's spec_decode metrics
    const auto& sp = s.spec;
    counter("vllm:spec_decode_num_drafts_total", "Number of spec decoding drafts.", double(sp.num_drafts));
    counter("vllm:spec_decode_num_draft_tokens_total", "Number of draft tokens.", double(sp.num_draft_tokens));
    counter("vllm:spec_decode_num_accepted_tokens_total", "Number of accepted tokens.",
            double(sp.num_accepted_tokens));
    const std::string per_pos = N("vllm:spec_decode_num_accepted_tokens_per_pos_total");
    header(out, per_pos, "counter", "Accepted tokens per draft position.");
    for (size_t i = 0; i < sp.accepted_per_pos.size(); ++i)
      sample(out, per_pos, L + ",position=\"" + std::to_string(i) + "\"", double(sp.accepted_per_pos[i]));
    gauge("vllm:spec_decode_draft_acceptance_rate", "Speculative token acceptance rate.", sp.acceptance_rate());
  }

  // troupe's own: things vLLM has no name for.
  gauge("troupe_ready", "1 once the model is loaded and warmed up.", ready ? 1 : 0);
  header(out, "troupe_requests_rejected_total", "counter", "Requests the engine refused, by reason.");
  sample(out, "troupe_requests_rejected_total", L + ",reason=\"overloaded\"", double(rejected_overloaded_.load()));
  sample(out, "troupe_requests_rejected_total", L + ",reason=\"invalid\"", double(rejected_invalid_.load()));
  counter("troupe_requests_failed_total", "Requests that failed inside the engine.", double(failed_.load()));
  header(out, "troupe_requests_aborted_total", "counter", "Requests cancelled before finishing, by cause.");
  const char* causes[] = {"client_disconnect", "client_cancel", "shutdown", "error"};
  for (size_t i = 0; i < aborted_.size(); ++i)
    sample(out, "troupe_requests_aborted_total", L + ",cause=\"" + causes[i] + "\"", double(aborted_[i].load()));
  counter("troupe_engine_requests_cancelled_total", "Requests the scheduler retired as cancelled.",
          double(s.cancelled));
  counter("troupe_engine_steps_total", "Engine steps (batched forward passes) run.", double(s.steps));
  // SLO-aware scheduling (--slo-ttft-ms / --slo-tpot-ms; zero without targets).
  counter("troupe_slo_goodput_requests_total", "Requests that ended normally within every SLO target.",
          double(s.slo.met));
  counter("troupe_slo_missed_requests_total", "Requests that ended normally but missed an SLO target.",
          double(s.slo.missed));
  counter("troupe_slo_rejected_requests_total", "Requests turned away at admission: their TTFT target could not be met.",
          double(s.slo.rejected));
  header(out, "troupe_slo_target_missed_requests_total", "counter", "Requests that ended normally past a target, by target.");
  sample(out, "troupe_slo_target_missed_requests_total", L + ",target=\"ttft\"", double(s.slo.ttft_missed));
  sample(out, "troupe_slo_target_missed_requests_total", L + ",target=\"tpot\"", double(s.slo.tpot_missed));
  hist(ttft_attainment_, "troupe_slo_ttft_attainment_ratio",
       "Each request's time to first token as a fraction of its target (<= 1: met).");
  hist(tpot_attainment_, "troupe_slo_tpot_attainment_ratio",
       "Each request's mean time per output token as a fraction of its target (<= 1: met).");
  header(out, "troupe_engine_step_tokens", "histogram", "Tokens computed per engine step (the step size).");
  int64_t cumulative = 0;
  for (size_t b = 0; b < s.slo.step_tokens_histogram.size(); ++b) {
    cumulative += s.slo.step_tokens_histogram[b];
    const bool last = b + 1 == s.slo.step_tokens_histogram.size();
    sample(out, "troupe_engine_step_tokens_bucket",
           L + ",le=\"" + (last ? std::string("+Inf") : std::to_string(SloStats::bucket_upper(b))) + "\"",
           double(cumulative));
  }
  sample(out, "troupe_engine_step_tokens_sum", L, double(s.slo.step_tokens_sum));
  sample(out, "troupe_engine_step_tokens_count", L, double(cumulative));
  gauge("troupe_kv_cache_blocks", "KV-cache blocks in the pool.", double(s.kv.num_blocks));
  gauge("troupe_kv_cache_blocks_used", "KV-cache blocks referenced by a running sequence.", double(s.kv.used_blocks));
  header(out, "troupe_open_connections", "gauge", "Open client connections by protocol.");
  sample(out, "troupe_open_connections", L + ",protocol=\"http\"", double(open_http_.load()));
  sample(out, "troupe_open_connections", L + ",protocol=\"websocket\"", double(open_ws_.load()));
  header(out, "troupe_http_responses_total", "counter", "HTTP responses sent, by status code.");
  for (size_t c = 100; c < http_by_code_.size(); ++c) {
    const uint64_t v = http_by_code_[c].load();
    if (v) sample(out, "troupe_http_responses_total", L + ",code=\"" + std::to_string(c) + "\"", double(v));
  }
  gauge("troupe_cold_start_first_ttft_seconds", "TTFT of the first (cold) request, from the warmup.",
        cold_first_ttft_.load());
  gauge("troupe_cold_start_steady_ttft_seconds", "Median TTFT of the later warmup requests.",
        cold_steady_ttft_.load());
  return out;
}

}  // namespace troupe
