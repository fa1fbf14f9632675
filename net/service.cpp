#include "net/service.h"
#include "net/stats_log.h"

#include "grammar/constraint.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <future>
#include <thread>
#include <utility>

namespace troupe {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

std::string default_name(const std::string& model_path) {
  std::filesystem::path p(model_path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // trailing slash
  std::string name = p.filename().string();
  return name.empty() ? model_path : name;
}

// Requests the service itself makes (warmup, heartbeat) count in no client metric.
constexpr const char* kWarmupPrompt = "Once upon a time";

}  // namespace

namespace asio = boost::asio;

// Everything here runs on `thread`, one handler at a time, so the timer needs no lock.
struct Service::Helper {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  asio::steady_timer heartbeat_timer{io};
  asio::steady_timer stats_timer{io};
  SchedulerStats last_stats;  // the stats line's previous snapshot (helper thread only)
  std::thread thread{[this] { io.run(); }};
};

std::string to_string(ServiceState s) {
  switch (s) {
    case ServiceState::Loading: return "loading";
    case ServiceState::WarmingUp: return "warming_up";
    case ServiceState::Ready: return "ready";
    case ServiceState::Failed: return "failed";
    case ServiceState::Stopping: return "stopping";
  }
  return "?";
}

Service::Service(ServiceOptions opts)
    : opts_(std::move(opts)),
      metrics_(opts_.served_model_name.empty() ? default_name(opts_.model_path) : opts_.served_model_name),
      started_unix_(int64_t(std::time(nullptr))) {
  model_.name = opts_.served_model_name.empty() ? default_name(opts_.model_path) : opts_.served_model_name;
  last_activity_ns_ = now_ns();
  helper_ = std::make_unique<Helper>();
}

Service::~Service() { stop(); }

void Service::start(const EngineConfig& cfg) {
  try {
    engine_ = std::make_unique<Engine>(cfg);
    chat_ = ChatTemplate::load(opts_.model_path, opts_.chat_template_path, engine_->tokenizer());
  } catch (...) {
    state_ = ServiceState::Failed;
    throw;
  }
  const Tokenizer& tok = engine_->tokenizer();
  model_.max_model_len = engine_->max_model_len();
  model_.vocab_size = tok.vocab_size();
  model_.tokenizer = &tok;
  model_.chat = &chat_;
  model_.speculative = cfg.speculative.enabled();
  grammar::set_background_precompute(opts_.grammar_precompute);
  if (auto parser = tool_parser_kind(opts_.tool_call_parser)) model_.tool_parser = *parser;
  else fail("--tool-call-parser: unknown parser '{}' (none, hermes, llama3_json)", opts_.tool_call_parser);
  spdlog::info("model {} loaded: max_model_len {}, chat template: {}", model_.name, model_.max_model_len,
               chat_.origin());
  if (const std::string st = engine_->startup_step_time(); !st.empty()) spdlog::info("step-time model: {}", st);
  state_ = ServiceState::WarmingUp;  // publishes engine_ and model_ to the other threads
  try {
    warm_up();
  } catch (...) {
    state_ = ServiceState::Failed;
    throw;
  }
  state_ = ServiceState::Ready;
  if (opts_.heartbeat_interval_s > 0) {
    const auto interval = std::chrono::duration<double>(opts_.heartbeat_interval_s);
    asio::post(helper_->io, [this, interval] { arm_heartbeat(interval); });
  }
  if (opts_.log_stats_interval_s > 0)
    asio::post(helper_->io, [this] {
      helper_->last_stats = engine_->stats();
      arm_stats_log();
    });
}

// Every log_stats_interval_s: one stats line if the engine did anything (stats_log.h).
void Service::arm_stats_log() {
  if (stopping_) return;
  const auto interval = std::chrono::duration<double>(opts_.log_stats_interval_s);
  helper_->stats_timer.expires_after(std::chrono::duration_cast<asio::steady_timer::duration>(interval));
  helper_->stats_timer.async_wait([this](boost::system::error_code ec) {
    if (ec || stopping_) return;
    SchedulerStats now = engine_->stats();
    if (auto line = stats_line(helper_->last_stats, now, opts_.log_stats_interval_s)) spdlog::info("{}", *line);
    helper_->last_stats = std::move(now);
    arm_stats_log();
  });
}

void Service::stop() {
  if (stopping_.exchange(true)) return;
  // The helper thread drains and ends: queued scrape jobs see stopping_ and drop their
  // callbacks unrun (those would post to network executors that are going away), the
  // heartbeat timer is cancelled, and run() returns once no work is left.
  asio::post(helper_->io, [h = helper_.get()] {
    h->heartbeat_timer.cancel();
    h->stats_timer.cancel();
  });
  helper_->work.reset();
  helper_->thread.join();
  if (state_ != ServiceState::Loading) state_ = ServiceState::Stopping;
  if (engine_) engine_->stop();
}

void Service::begin_shutdown() {
  ServiceState s = ServiceState::Ready;
  state_.compare_exchange_strong(s, ServiceState::Stopping);
}

int64_t Service::submit_internal(const std::string& prompt, int max_tokens, TokenSink sink) {
  GenerateRequest req;
  req.prompt = prompt;
  req.params.temperature = 0;
  req.params.ignore_eos = true;
  req.params.max_tokens = max_tokens;
  return engine_->submit(std::move(req), std::move(sink));
}

// Runs the synthetic requests one after another and records the cold-start figure: the
// first request pays for page faults, allocator growth and cold caches; the rest show the
// steady TTFT.
void Service::warm_up() {
  std::vector<double> ttft;
  for (int i = 0; i < opts_.warmup; ++i) {
    if (startup_interrupted_) fail("warmup interrupted by a signal");
    auto done = std::make_shared<std::promise<TokenEvent>>();
    auto fut = done->get_future();
    submit_internal(kWarmupPrompt, 8, [done](const TokenEvent& ev) {
      if (ev.finished) done->set_value(ev);
    });
    TokenEvent ev = fut.get();
    if (ev.finish_reason == FinishReason::Error) fail("warmup request failed: {}", ev.error);
    ttft.push_back(ev.timings.ttft_ms / 1e3);
  }
  if (ttft.size() >= 2) {
    std::vector<double> rest(ttft.begin() + 1, ttft.end());
    std::nth_element(rest.begin(), rest.begin() + long(rest.size() / 2), rest.end());
    const double steady = rest[rest.size() / 2];
    metrics_.set_cold_start(ttft[0], steady);
    spdlog::info("warmup: {} requests, first TTFT {:.2f} ms, steady TTFT {:.2f} ms, cold-start ratio {:.1f}",
                 ttft.size(), ttft[0] * 1e3, steady * 1e3, steady > 0 ? ttft[0] / steady : 0.0);
  }
}

int64_t Service::submit(GenerateRequest req, TokenSink sink) {
  struct Track {
    Clock::time_point start = Clock::now(), last{};
    bool first = true;
  };
  auto tr = std::make_shared<Track>();
  last_activity_ns_ = now_ns();
  // The sink runs on the scheduler actor, one event at a time per request, so Track needs
  // no lock.
  return engine_->submit(std::move(req), [this, tr, sink = std::move(sink)](const TokenEvent& ev) {
    const auto now = Clock::now();
    if (!ev.token_ids.empty()) {
      if (tr->first) metrics_.first_token(std::chrono::duration<double>(now - tr->start).count());
      else metrics_.token_gap(std::chrono::duration<double>(now - tr->last).count());
      tr->first = false;
      tr->last = now;
    }
    if (ev.finished) {
      if (tr->first && ev.timings.ttft_ms > 0) metrics_.first_token(ev.timings.ttft_ms / 1e3);
      metrics_.finished(ev);
      last_activity_ns_ = now_ns();
    }
    sink(ev);
  });
}

void Service::cancel(int64_t request_id, AbortCause cause) {
  metrics_.aborted(cause);
  if (engine_) engine_->cancel(request_id);
}

void Service::scrape(std::function<void(std::string)> done, bool vllm_names) {
  if (stopping_) return;
  asio::post(helper_->io, [this, done = std::move(done), vllm_names] {
    if (stopping_) return;
    const ServiceState s = state_.load();
    if (s == ServiceState::WarmingUp || s == ServiceState::Ready) {
      SchedulerStats st = engine_->stats();
      done(metrics_.render(&st, s == ServiceState::Ready, vllm_names));
    } else {
      done(metrics_.render(nullptr, false, vllm_names));
    }
  });
}

void Service::arm_heartbeat(std::chrono::duration<double> after) {
  if (stopping_) return;  // stop() is draining the helper
  // expires_after() also cancels a pending wait (the 30 s guard below) with operation_aborted.
  helper_->heartbeat_timer.expires_after(std::chrono::duration_cast<asio::steady_timer::duration>(after));
  helper_->heartbeat_timer.async_wait([this](boost::system::error_code ec) {
    if (!ec) heartbeat();
  });
}

// Every heartbeat_interval_s: if the engine has been idle that long, one short greedy
// request touches every weight and the KV pool again, so the next real request does not
// pay for pages the OS reclaimed or caches that went cold. The next check is a full
// interval after that request finishes (or after 30 s, if it has not).
void Service::heartbeat() {
  if (stopping_) return;
  const auto interval = std::chrono::duration<double>(opts_.heartbeat_interval_s);
  const double idle_s = double(now_ns() - last_activity_ns_.load()) / 1e9;
  if (idle_s + 1e-3 < opts_.heartbeat_interval_s) return arm_heartbeat(interval);
  auto finished = std::make_shared<bool>(false);  // only touched on the helper thread
  auto done = [this, finished, interval] {
    if (std::exchange(*finished, true)) return;
    last_activity_ns_ = now_ns();
    arm_heartbeat(interval);
  };
  submit_internal(kWarmupPrompt, 2, [this, done](const TokenEvent& ev) {
    if (ev.finished) asio::post(helper_->io, done);
  });
  helper_->heartbeat_timer.expires_after(std::chrono::seconds(30));
  helper_->heartbeat_timer.async_wait([done](boost::system::error_code ec) {
    if (!ec) done();
  });
}

bool Service::degraded() const {
  if (state() != ServiceState::Ready) return false;  // engine_ is published with WarmingUp
  const auto cluster = engine_->cluster();
  return cluster && !cluster->all_up();
}

bool Service::ready() const {
  if (state() != ServiceState::Ready) return false;
  const auto cluster = engine_->cluster();
  return !cluster || cluster->serving();
}

std::string Service::unavailable_reason() const {
  if (state() != ServiceState::Ready) return "the model is " + to_string(state());
  if (!ready()) return "degraded: " + engine_->cluster()->first_problem();
  return "";
}

std::string Service::health_body() const {
  const ServiceState s = state();
  boost::json::object o{{"status", degraded() ? "degraded" : to_string(s)}, {"model", model_.name}};
  if (s == ServiceState::Ready) o["max_model_len"] = model_.max_model_len;
  if (s == ServiceState::Ready || s == ServiceState::WarmingUp)
    if (const auto cluster = engine_->cluster()) {
      boost::json::array workers;
      for (const WorkerStatus& w : cluster->snapshot())
        workers.push_back({{"address", w.address}, {"role", w.role}, {"state", to_string(w.state)},
                           {"detail", w.detail}, {"losses", w.losses}, {"routed", w.routed}});
      o["workers"] = std::move(workers);
    }
  o["uptime_s"] = int64_t(std::time(nullptr)) - started_unix_;
  return boost::json::serialize(o);
}

}  // namespace troupe
