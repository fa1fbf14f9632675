// `troupe worker`: a process that hosts pipeline stages for a head (`serve`, `generate` or
// `bench throughput` with --pipeline-workers). It publishes one worker actor on the given
// address over CAF remoting and serves until SIGINT/SIGTERM. Plain remoting is neither
// encrypted nor authenticated: bind it to a private network only.
#include <caf/io/middleman.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>

#include "actors/pipeline.h"
#include "actors/remote/cluster_protocol.h"
#include "actors/remote/worker.h"
#include "actors/remote/worker_link.h"
#include "app/commands.h"
#include "app/stop_signals.h"
#include "core/error.h"

namespace troupe::app {

namespace {

struct WorkerOpts {
  std::string listen;
  WorkerOptions worker;
  TlsFiles tls;
};

void run_worker(const WorkerOpts& o) {
  const auto [host, port] = parse_host_port(o.listen, true);
  StopSignals signals;  // before any thread starts

  caf::actor_system_config cfg;
  configure_actor_system(cfg);
  configure_remoting(cfg, o.tls);
  caf::actor_system sys{cfg};
  worker_actor worker = spawn_worker(sys, o.worker);
  auto bound = publish_worker(sys, worker, port, host, o.tls.enabled());
  if (!bound) {
    caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
    fail("worker: cannot listen on {}: {}", o.listen, sys.render(bound.error()));
  }
  std::printf("troupe worker: listening on %s:%u%s\n", host.c_str(), unsigned(*bound),
              o.tls.enabled() ? " (TLS, peers need a certificate from the CA)" : "");
  std::fflush(stdout);
  const int sig = signals.wait();
  spdlog::info("signal {}: worker shutting down", sig);
  caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
}

}  // namespace

void register_worker(CLI::App& app) {
  auto o = std::make_shared<WorkerOpts>();
  auto* cmd = app.add_subcommand("worker", "Host pipeline stages for a head over CAF remoting (private networks only)");
  cmd->add_option("--listen", o->listen, "HOST:PORT to listen on (only that address is bound; port 0: any free one)")
      ->required();
  cmd->add_option("--model", o->worker.model,
                  "Model path on this machine (default: the path the head names); the head checks it is the same model");
  cmd->add_option("--threads", o->worker.threads, "Compute threads per hosted stage (0: all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--tls-cert", o->tls.cert, "TLS: this worker's certificate (PEM)");
  cmd->add_option("--tls-key", o->tls.key, "TLS: its private key (PEM)");
  cmd->add_option("--tls-ca", o->tls.ca, "TLS: the CA whose certificates heads must present (PEM)");
  cmd->callback([o] { run_worker(*o); });
}

}  // namespace troupe::app
