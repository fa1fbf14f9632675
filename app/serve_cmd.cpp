// `troupe serve`: the daemon. Listens first (so /health can say "loading"), loads the model
// and runs the warmup on a helper thread, then serves until SIGINT/SIGTERM, which drains:
// requests in flight get --shutdown-timeout seconds to finish (Server::shutdown). A signal
// while the model loads or warms up stops the process promptly instead.
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <thread>

#include "app/commands.h"
#include "app/stop_signals.h"
#include "config/flags.h"
#include "core/error.h"
#include "net/server.h"
#include "net/service.h"

namespace troupe::app {

namespace {

// Nothing is served yet, so there is nothing to drain. The warmup stops between requests, so
// it gets a short grace to end and the engine stops cleanly. Loading a model cannot be
// interrupted (it may block on a slow disk for long), so then the process exits at once
// without waiting for it (no file is half-written by loading: there is nothing to clean up).
void stop_during_startup(int sig, Service& service, Server& server, const std::atomic<bool>& loaded,
                         std::thread& loader) {
  const bool warming_up = service.state() == ServiceState::WarmingUp;
  spdlog::info("signal {} while the model {}: stopping", sig, warming_up ? "warms up" : "loads");
  service.interrupt_startup();
  for (int i = 0; warming_up && i < 20 && !loaded; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server.stop();
  if (!loaded) {
    std::fflush(nullptr);
    std::_Exit(0);
  }
  loader.join();
  service.stop();
}

void serve(ServeOpts& o) {
  o.service.model_path = o.engine.model;
  resolve_api_key(o.server);

  StopSignals signals;  // before any thread starts

  Service service(o.service);
  Server server(o.server, service);
  server.start();
  std::printf("troupe serve: listening on http://%s:%u (model %s loading)\n", o.server.host.c_str(),
              unsigned(server.port()), o.engine.model.c_str());
  std::fflush(stdout);

  std::exception_ptr load_error;
  std::atomic<bool> loaded{false};
  std::thread loader([&] {
    try {
      service.start(o.engine);
      std::printf("troupe serve: ready (model %s)\n", service.model_name().c_str());
      std::fflush(stdout);
    } catch (...) {
      load_error = std::current_exception();
    }
    loaded = true;
  });

  int sig = -1;
  while (sig < 0) {
    sig = signals.wait_for(std::chrono::milliseconds(200));
    if (sig < 0 && loaded && load_error) break;
  }
  if (sig >= 0 && !loaded) return stop_during_startup(sig, service, server, loaded, loader);
  loader.join();
  if (load_error) {
    server.stop();
    service.stop();
    std::rethrow_exception(load_error);
  }
  spdlog::info("signal {}: shutting down", sig);
  const int ended = server.shutdown(std::chrono::duration<double>(o.server.shutdown_timeout_s));
  service.stop();
  spdlog::info("shut down ({} requests ended by the timeout)", ended);
}

}  // namespace

void register_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOpts>();
  auto* cmd = app.add_subcommand("serve", "Serve a model over HTTP (OpenAI-compatible) and WebSocket");
  auto flags = std::make_shared<config::FlagSet>(cmd);
  add_engine_flags(*flags, o->engine);
  flags->add_config_flags();
  add_scheduler_flags(*flags, o->engine.scheduler);
  add_scheduling_flag(*flags, o->engine.scheduler.scheduling);
  add_speculative_flags(*flags, o->engine.speculative);
  add_server_flags(*flags, o->server);
  add_service_flags(*flags, o->service);
  cmd->callback([o, flags] {
    if (flags->finish()) return;
    serve(*o);
  });
}

}  // namespace troupe::app
