// `troupe serve`: the daemon. Listens first (so /health can say "loading"), loads the model
// and runs the warmup on a helper thread, then serves until SIGINT/SIGTERM.
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <exception>
#include <memory>
#include <thread>

#include "app/commands.h"
#include "app/quant_flags.h"
#include "app/spec_options.h"
#include "core/error.h"
#include "net/config_file.h"
#include "net/server.h"
#include "net/service.h"

namespace troupe::app {

namespace {

struct ServeOpts {
  std::string model, config, chat_template, scheduling = "continuous";
  ServerOptions server;
  ServiceOptions service;
  EngineConfig engine;
  int64_t max_body_bytes = 1 << 20;
  bool print_config = false;
};

// Config-file values fill in every option the command line did not set.
void apply_config_file(CLI::App* cmd, const std::string& path) {
  for (const ConfigEntry& e : read_config_file(path)) {
    if (e.key == "config" || e.key == "print-config") fail("{}: '{}' cannot be set from a config file", path, e.key);
    CLI::Option* opt = cmd->get_option_no_throw("--" + e.key);
    if (!opt) fail("{}: unknown key '{}' (keys are the flags of `troupe serve`)", path, e.key);
    if (opt->count() > 0) continue;
    try {
      if (opt->get_expected_min() == 0) {  // a flag: "true"/"false" (negated names honoured)
        if (e.values.size() != 1) fail("{}: '{}' takes one value", path, e.key);
        opt->add_result(opt->get_flag_value(e.key, e.values[0]));
      } else {
        opt->add_result(e.values);
      }
      opt->run_callback();
    } catch (const CLI::Error& err) {
      fail("{}: bad value for '{}': {}", path, e.key, err.what());
    }
  }
}

boost::json::object effective_config(const ServeOpts& o) {
  const auto& s = o.engine.scheduler;
  return {{"model", o.model},
          {"host", o.server.host},
          {"port", o.server.port},
          {"api-key", o.server.api_key.empty() ? "" : "<set>"},
          {"served-model-name", o.service.served_model_name},
          {"chat-template", o.chat_template},
          {"max-num-seqs", s.max_num_seqs},
          {"max-num-batched-tokens", s.max_num_batched_tokens},
          {"max-model-len", o.engine.max_model_len},
          {"block-size", o.engine.block_size},
          {"kv-cache-memory", o.engine.kv_cache_bytes},
          {"max-waiting", o.engine.max_waiting},
          {"threads", o.engine.threads},
          {"scheduling", o.scheduling},
          {"quantization", quant::describe(o.engine.quantization)},
          {"speculative-model", o.engine.speculative.model},
          {"speculative-method", o.engine.speculative.method},
          {"num-speculative-tokens", o.engine.speculative.num_speculative_tokens},
          {"enable-prefix-caching", s.enable_prefix_caching},
          {"warmup", o.service.warmup},
          {"heartbeat-interval", o.service.heartbeat_interval_s},
          {"max-body-bytes", o.max_body_bytes},
          {"max-connections", o.server.max_connections},
          {"io-threads", o.server.io_threads},
          {"ws-ping-interval", o.server.ws_ping_interval_s},
          {"ws-max-inflight", o.server.ws_max_inflight}};
}

void serve(ServeOpts& o) {
  if (o.model.empty()) fail("--model is required (on the command line or in the config file)");
  o.engine.model = o.model;
  o.engine.scheduler.scheduling = o.scheduling == "static" ? Scheduling::Static : Scheduling::Continuous;
  o.server.max_body_bytes = size_t(o.max_body_bytes);
  o.service.model_path = o.model;
  o.service.chat_template_path = o.chat_template;
  if (o.print_config) {
    std::printf("%s\n", boost::json::serialize(effective_config(o)).c_str());
    return;
  }

  // Signals go to sigwait below, not to whichever thread happens to run: block them before
  // any thread starts so every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Service service(o.service);
  Server server(o.server, service);
  server.start();
  std::printf("troupe serve: listening on http://%s:%u (model %s loading)\n", o.server.host.c_str(),
              unsigned(server.port()), o.model.c_str());
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
    if (sig < 0 && loaded && load_error) break;
  }
  loader.join();
  if (sig >= 0) spdlog::info("signal {}: shutting down", sig);
  server.stop();
  service.stop();
  if (load_error) std::rethrow_exception(load_error);
}

}  // namespace

void register_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOpts>();
  auto* cmd = app.add_subcommand("serve", "Serve a model over HTTP (OpenAI-compatible) and WebSocket");
  cmd->add_option("--model", o->model, "Model: Hugging Face directory or .gguf file");
  cmd->add_option("--config", o->config, "JSON or YAML file with the same keys as these flags (flags win)");
  cmd->add_option("--host", o->server.host, "Address to bind (loopback unless told otherwise)")->capture_default_str();
  cmd->add_option("--port", o->server.port, "Port (0: any free port)")->capture_default_str();
  cmd->add_option("--api-key", o->server.api_key, "Require 'Authorization: Bearer KEY' on /v1/*");
  cmd->add_option("--served-model-name", o->service.served_model_name, "Model name in the API (default: the model's directory or file name)");
  cmd->add_option("--chat-template", o->chat_template, "Jinja chat template file (or a tokenizer_config.json) overriding the model's");
  auto& sc = o->engine.scheduler;
  cmd->add_option("--max-num-seqs", sc.max_num_seqs, "Maximum sequences per batch")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-num-batched-tokens", sc.max_num_batched_tokens, "Token budget per engine step")->capture_default_str()->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--max-model-len", o->engine.max_model_len, "Prompt + completion tokens per request (0: the model's)")->capture_default_str()->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--block-size", o->engine.block_size, "KV-cache block size in tokens")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--kv-cache-memory", o->engine.kv_cache_bytes, "KV-cache bytes (0: enough for max-num-seqs full sequences, at most 25% of RAM)")->capture_default_str()->check(CLI::Range(int64_t(0), int64_t(1) << 50));
  cmd->add_option("--max-waiting", o->engine.max_waiting, "Queued requests beyond which new ones get 429")->capture_default_str()->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  cmd->add_option("--threads", o->engine.threads, "Compute threads (0: all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
  cmd->add_option("--scheduling", o->scheduling, "continuous or static batching")->capture_default_str()->check(CLI::IsMember({"continuous", "static"}));
  add_quantization_flags(cmd, o->engine.quantization);
  add_speculative_options(cmd, o->engine.speculative);
  cmd->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", sc.enable_prefix_caching, "Automatic prefix caching (default on)");
  cmd->add_option("--warmup", o->service.warmup, "Synthetic requests to run before reporting ready")->capture_default_str()->check(CLI::Range(0, 10000));
  cmd->add_option("--heartbeat-interval", o->service.heartbeat_interval_s, "Seconds of idleness after which a tiny request keeps the engine warm (0: off)")->capture_default_str()->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--max-body-bytes", o->max_body_bytes, "Largest request body / WebSocket message")->capture_default_str()->check(CLI::Range(int64_t(1024), int64_t(1) << 32));
  cmd->add_option("--max-connections", o->server.max_connections, "Open connections beyond which clients get 503")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--io-threads", o->server.io_threads, "Network threads")->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_option("--ws-ping-interval", o->server.ws_ping_interval_s, "Seconds between WebSocket keepalive pings on an idle connection")->capture_default_str()->check(CLI::Range(1, 3600));
  cmd->add_option("--ws-max-inflight", o->server.ws_max_inflight, "Requests in flight per WebSocket connection")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_flag("--print-config", o->print_config, "Print the effective configuration as JSON and exit");
  cmd->callback([o, cmd] {
    if (!o->config.empty()) apply_config_file(cmd, o->config);
    serve(*o);
  });
}

}  // namespace troupe::app
