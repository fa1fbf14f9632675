// `troupe serve`: the daemon. Listens first (so /health can say "loading"), loads the model
// and runs the warmup on a helper thread, then serves until SIGINT/SIGTERM, which drains:
// requests in flight get --shutdown-timeout seconds to finish (Server::shutdown). A signal
// while the model loads or warms up stops the process promptly instead.
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <exception>
#include <memory>
#include <thread>

#include "app/commands.h"
#include "config/flags.h"
#include "core/error.h"
#include "net/server.h"
#include "net/service.h"

namespace troupe::app {

namespace {

// A SIGINT/SIGTERM that reached a thread which does not block it: threads started before
// serve() blocks them (OpenBLAS starts its pool when the library loads, TSan has its own) may
// take one whenever the main thread is not inside sigtimedwait. With the default action that
// killed the process; this handler keeps it for the wait loop to pick up.
// An atomic, not a volatile sig_atomic_t: the handler runs on another thread than the reader.
std::atomic<int> g_stray_signal{0};  // lock-free, so async-signal-safe
static_assert(std::atomic<int>::is_always_lock_free);
extern "C" void keep_stray_signal(int sig) { g_stray_signal.store(sig); }

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

  // Signals go to sigwait below, not to whichever thread happens to run: block them before
  // any thread starts so every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGINT, keep_stray_signal);
  std::signal(SIGTERM, keep_stray_signal);
  std::signal(SIGPIPE, SIG_IGN);

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

  const timespec tick{0, 200'000'000};
  int sig = -1;
  while (sig < 0) {
    sig = sigtimedwait(&sigs, nullptr, &tick);
    if (sig < 0 && g_stray_signal.load()) sig = g_stray_signal.load();
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
