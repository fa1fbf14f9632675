#pragma once
// The daemon's transport-independent core: owns the Engine, the chat template and the
// metrics; tracks readiness (loading -> warming_up -> ready); keeps an idle engine warm.
// HTTP and WebSocket sessions talk to the engine only through submit()/cancel() here, so
// every request is measured the same way whatever protocol it came in on.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "actors/engine.h"
#include "chat/chat_template.h"
#include "config/server_config.h"
#include "net/api.h"
#include "net/metrics.h"

namespace troupe {

enum class ServiceState { Loading, WarmingUp, Ready, Failed, Stopping };

class Service {
 public:
  explicit Service(ServiceOptions opts);
  ~Service();  // stop()

  // Loads the model and starts the engine (blocking; seconds for a big model), then runs
  // the warmup and becomes ready. Throws troupe::Error (state Failed) if loading fails.
  void start(const EngineConfig& cfg);
  void stop();
  // A graceful shutdown began: ready() turns false and /health says "stopping"; requests
  // already submitted run on.
  void begin_shutdown();
  // A signal arrived while start() runs: the warmup stops after its current request and
  // start() throws. (Loading itself cannot be interrupted; the caller stops waiting for it.)
  void interrupt_startup() { startup_interrupted_ = true; }

  ServiceState state() const { return state_.load(); }
  // Ready, and with workers able to serve: every pipeline stage up, or some replica up.
  bool ready() const;
  // A worker is down or refused (requests still run while ready()).
  bool degraded() const;
  // Why requests are turned away now ("the model is loading", "pipeline degraded: ...").
  std::string unavailable_reason() const;
  const ModelInfo& model() const { return model_; }  // valid once ready
  const std::string& model_name() const { return model_.name; }
  Metrics& metrics() { return metrics_; }

  // Submits to the engine with metrics recorded on the way back. `sink` runs on an engine
  // thread and must not block. Precondition: ready().
  int64_t submit(GenerateRequest req, TokenSink sink);
  void cancel(int64_t request_id, AbortCause cause);

  // Calls `done` with the Prometheus exposition, from the service's helper thread (the
  // engine's stats are a blocking round trip that must not stall a network thread).
  void scrape(std::function<void(std::string)> done, bool vllm_names = false);
  std::string health_body() const;
  int64_t started_unix() const { return started_unix_; }

 private:
  void warm_up();
  // The heartbeat: a timer on the helper's io_context, re-armed after every check.
  void arm_heartbeat(std::chrono::duration<double> after);
  void heartbeat();
  void arm_stats_log();
  int64_t submit_internal(const std::string& prompt, int max_tokens, TokenSink sink);

  ServiceOptions opts_;
  std::atomic<ServiceState> state_{ServiceState::Loading};
  std::unique_ptr<Engine> engine_;
  ChatTemplate chat_;
  ModelInfo model_;
  Metrics metrics_;
  int64_t started_unix_ = 0;
  std::atomic<int64_t> last_activity_ns_{0};

  std::atomic<bool> stopping_{false};
  std::atomic<bool> startup_interrupted_{false};
  // One thread running an Asio io_context: scrape() jobs are posted to it and the
  // heartbeat timer fires on it (service.cpp; keeps Asio out of this header).
  struct Helper;
  std::unique_ptr<Helper> helper_;
};

std::string to_string(ServiceState s);

}  // namespace troupe
