#pragma once
// Serving metrics in Prometheus text format, with vLLM's metric names where vLLM has the
// same quantity (dashboards built for vLLM work unchanged). Observations come from the
// engine's sink thread and the network threads, so everything here is lock-free atomics;
// engine-side gauges (running, waiting, KV, preemptions) come from a SchedulerStats snapshot
// taken when /metrics is scraped.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/request.h"
#include "actors/scheduler.h"

namespace troupe {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  // Appends the _bucket/_sum/_count lines. Counts are derived from one pass over the
  // buckets, so +Inf always equals _count even while observations race with the scrape.
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket (not cumulative), last is +Inf
  std::atomic<double> sum_{0.0};
};

// Why a request ended without completing, for troupe_requests_aborted_total.
// Error: cancelled because a sibling choice of the same HTTP request failed.
enum class AbortCause { ClientDisconnect, ClientCancel, Shutdown, Error };

class Metrics {
 public:
  explicit Metrics(std::string model_name);

  // Per-request observations (seconds).
  void first_token(double ttft_s) { ttft_.observe(ttft_s); }
  void token_gap(double itl_s) { itl_.observe(itl_s); }
  void finished(const TokenEvent& final_event);   // the request's last event
  void aborted(AbortCause c);
  void http_response(int status);
  void connection_opened(bool websocket);
  void connection_closed(bool websocket);
  void set_cold_start(double first_ttft_s, double steady_ttft_s);

  // The full exposition. `st` is null while the engine is still loading. With vllm_names
  // the vLLM-named metrics keep vLLM's exact "vllm:" names (drop-in for vLLM dashboards);
  // otherwise they read "vllm_..." so the output passes `promtool check metrics`.
  std::string render(const SchedulerStats* st, bool ready, bool vllm_names = false) const;

 private:
  std::string model_label_;
  Histogram ttft_, itl_, tpot_, e2e_, queue_, prefill_, decode_, prompt_tokens_, gen_tokens_;
  Histogram ttft_attainment_, tpot_attainment_;  // per-request time / target, with SLO targets
  std::atomic<uint64_t> success_stop_{0}, success_length_{0}, success_abort_{0}, failed_{0};
  std::atomic<uint64_t> rejected_overloaded_{0}, rejected_invalid_{0};
  std::atomic<uint64_t> prompt_tokens_total_{0}, gen_tokens_total_{0};
  std::array<std::atomic<uint64_t>, 4> aborted_{};
  std::array<std::atomic<uint64_t>, 600> http_by_code_{};  // indexed by status code
  std::atomic<int64_t> open_http_{0}, open_ws_{0};
  std::atomic<double> cold_first_ttft_{0}, cold_steady_ttft_{0};
};

}  // namespace troupe
