#include "config/flags.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "config/config_file.h"
#include "config/kv_config.h"
#include "core/error.h"
#include "quant/options.h"

namespace troupe::config {

boost::json::value FlagSet::to_json(const float& v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf - 1, v);
  *r.ptr = '\0';
  return boost::json::value(std::strtod(buf, nullptr));
}

CLI::Option* FlagSet::flag(const std::string& names, bool& var, const std::string& help) {
  return remember(cmd_->add_flag(names, var, help), [&var] { return boost::json::value(var); });
}

CLI::Option* FlagSet::remember(CLI::Option* opt, std::function<boost::json::value()> get) {
  flags_.push_back({opt, std::move(get)});
  return opt;
}

void FlagSet::add_config_flags() {
  cmd_->add_option("--config", config_path_,
                   "JSON or YAML file whose keys are these flags (flags on the command line win)");
  cmd_->add_flag("--print-config", print_config_,
                 "Print the effective configuration as JSON (a valid --config file) and exit");
}

const FlagSet::Remembered* FlagSet::find(const std::string& key) const {
  const CLI::Option* opt = cmd_->get_option_no_throw("--" + key);
  for (const auto& r : flags_)
    if (r.opt == opt) return &r;
  return nullptr;
}

namespace {

// "bench throughput": the subcommand path below the program.
std::string command_name(const CLI::App* c) {
  std::string n = c->get_name();
  for (const CLI::App* p = c->get_parent(); p && p->get_parent(); p = p->get_parent()) n = p->get_name() + " " + n;
  return n;
}

}  // namespace

void FlagSet::apply_file(const std::string& path) {
  for (const ConfigEntry& e : read_config_file(path)) {
    if (e.key == "config" || e.key == "print-config") fail("{}: '{}' cannot be set from a config file", path, e.key);
    const Remembered* r = find(e.key);
    if (!r) fail("{}: unknown key '{}' (keys are the flags of `troupe {}`)", path, e.key, command_name(cmd_));
    CLI::Option* opt = r->opt;
    if (opt->count() > 0) continue;  // the command line wins
    // An empty list or string leaves the default (what --print-config shows for unset ones).
    if (e.values.empty() || (e.values.size() == 1 && e.values[0].empty())) continue;
    const bool is_flag = opt->get_expected_min() == 0;
    if (is_flag && e.values.size() != 1) fail("{}: '{}' takes one value (true or false)", path, e.key);
    try {
      if (is_flag) {  // true/false/yes/no; a negated name ("no-enable-prefix-caching") inverts
        opt->add_result(opt->get_flag_value(e.key, e.values[0]));
      } else {
        opt->add_result(e.values);
      }
      opt->run_callback();
    } catch (const CLI::Error& err) {
      fail("{}: bad value for '{}': {}", path, e.key, err.what());
    } catch (const Error& err) {
      fail("{}: bad value for '{}': {}", path, e.key, err.what());
    }
  }
}

bool FlagSet::finish() {
  if (!config_path_.empty()) apply_file(config_path_);
  for (const CLI::Option* opt : required_)
    if (opt->count() == 0) fail("{} is required (on the command line or in the config file)", opt->get_name());
  if (!print_config_) return false;
  std::printf("%s\n", boost::json::serialize(values()).c_str());
  std::fflush(stdout);
  return true;
}

boost::json::object FlagSet::values() const {
  boost::json::object o;
  for (const auto& r : flags_) o[r.opt->get_lnames().front()] = r.get();
  return o;
}

CLI::Option* add_threads_flag(FlagSet& f, int& threads) {
  return f.option("--threads", threads, "Compute threads (0: all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
}

void add_quantization_flags(FlagSet& f, quant::Options& o) {
  f.remember(f.cmd()->add_option_function<std::string>(
                    "--quantization", [&o](const std::string& s) { o.method = quant::parse_method(s); },
                    "Weights: none (as stored; GGUF Q8_0/Q4_0 run natively) | int8 | int4 (round-to-nearest "
                    "at load) | awq (pre-quantized checkpoint, e.g. from `troupe quantize`)")
                 ->check(CLI::IsMember({"none", "int8", "int4", "awq"}))
                 ->default_str("none"),
             [&o] { return boost::json::value(std::string(quant::method_name(o.method))); });
  f.option("--group-size", o.group_size, "INT4 group size (32, 64, 128)")
      ->check(CLI::IsMember({32, 64, 128}))
      ->capture_default_str();
  f.remember(f.cmd()->add_option_function<std::string>(
                    "--lm-head", [&o](const std::string& s) { o.lm_head = quant::parse_lm_head(s); },
                    "LM head: auto (INT8 under int8/int4, else as stored) | float | int8 | int4")
                 ->check(CLI::IsMember({"auto", "float", "int8", "int4"}))
                 ->default_str("auto"),
             [&o] { return boost::json::value(std::string(quant::lm_head_name(o.lm_head))); });
}

void add_kv_flags(FlagSet& f, KvCacheConfig& kv) {
  f.option("--block-size", kv.block_size, "KV-cache block size in tokens")->capture_default_str()->check(CLI::Range(1, 4096));
  f.option("--kv-cache-memory", kv.kv_cache_bytes,
           "KV-cache bytes, with an optional unit: 536870912, 512MiB, 2GiB (k/m/g and kb/mb/gb are 1024-based too); "
           "0: enough for max-num-seqs full sequences, at most 25% of RAM")
      ->capture_default_str()
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(int64_t(0), int64_t(1) << 50));
  add_kv_dtype_flag(f, "--kv-cache-dtype", kv.dtype);
}

void add_kv_dtype_flag(FlagSet& f, const std::string& name, KvDtype& dtype) {
  dtype = kCommandKvDtype;  // the commands' default (config/kv_config.h), not the struct's
  f.remember(f.cmd()->add_option_function<std::string>(
                    name, [&dtype](const std::string& s) { dtype = parse_kv_dtype(s); },
                    "KV-cache element type: f32 | f16 | bf16 (2 bytes) | int8 (1 byte + a float scale per "
                    "token per KV head); attention math stays f32")
                 ->check(CLI::IsMember({"f32", "f16", "bf16", "int8"}))
                 ->default_str(std::string(kv_dtype_name(dtype))),
             [&dtype] { return boost::json::value(std::string(kv_dtype_name(dtype))); });
}

void add_fuse_linears_flag(FlagSet& f, bool& fuse) {
  f.option("--fuse-linears", fuse, "Run q/k/v and gate/up as one stacked matmul each (false: one per layer, as before)")
      ->capture_default_str();
}

void add_engine_flags(FlagSet& f, EngineConfig& cfg) {
  f.require(f.option("--model", cfg.model, "Model: Hugging Face directory or .gguf file"));
  add_threads_flag(f, cfg.threads);
  add_kv_flags(f, cfg.kv);
  f.option("--max-model-len", cfg.max_model_len, "Prompt + completion tokens per request (0: the model's)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 24));
  f.option("--max-waiting", cfg.max_waiting, "Queued requests beyond which new ones get 429")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  add_quantization_flags(f, cfg.quantization);
  add_cluster_flags(f, cfg.cluster);
}

void add_tls_flags(FlagSet& f, TlsFiles& tls) {
  f.option("--tls-cert", tls.cert, "Remoting over TLS: this side's certificate (PEM)");
  f.option("--tls-key", tls.key, "Remoting over TLS: its private key (PEM)");
  f.option("--tls-ca", tls.ca, "Remoting over TLS: the CA whose certificates peers must present (PEM)");
}

void add_cluster_flags(FlagSet& f, ClusterConfig& cfg) {
  f.option("--pipeline-workers", cfg.pipeline_workers,
           "Pipeline-parallel stages, in layer order: HOST:PORT of a `troupe worker`, or local")
      ->delimiter(',');
  f.option("--pipeline-layers", cfg.pipeline_layers,
           "Layers of each stage, e.g. 0:6,6:12 (default: divided evenly)");
  f.option("--pipeline-depth", cfg.pipeline_depth,
           "Steps in flight through the pipeline stages, each over different sequences (0: one per stage)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(0), int64_t(1024)));
  f.option("--replica-workers", cfg.replica_workers,
           "Engine replicas: HOST:PORT of a `troupe worker`, or local; requests are routed between them")
      ->delimiter(',');
  add_tls_flags(f, cfg.tls);
  f.option("--worker-timeout", cfg.worker_timeout_s,
           "Seconds to wait for a worker to connect and load its stage")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
}

void add_scheduler_flags(FlagSet& f, SchedulerConfig& cfg) {
  f.option("--max-num-seqs", cfg.max_num_seqs, "Maximum sequences per batch")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  f.option("--max-num-batched-tokens", cfg.max_num_batched_tokens, "Token budget per engine step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  f.remember(f.cmd()->add_option_function<std::string>(
                    "--schedule-policy",
                    [&cfg](const std::string& v) {
                      cfg.schedule_policy = v == "lof" ? SchedulePolicy::LongestOutputFirst : SchedulePolicy::Fcfs;
                    },
                    "Waiting-queue order within a priority: fcfs (arrival) or lof (most max_tokens first; "
                    "continuous batching)")
                 ->check(CLI::IsMember({"fcfs", "lof"}))
                 ->default_str("fcfs"),
             [&cfg] { return boost::json::value(schedule_policy_name(cfg.schedule_policy)); });
  f.option("--batch-wait-ms", cfg.batch_wait_ms, "Static batching: wait this long to fill a batch")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 30));
  f.flag("--enable-prefix-caching,!--no-enable-prefix-caching", cfg.enable_prefix_caching,
         "Automatic prefix caching (default on)");
  f.option("--slo-ttft-ms", cfg.slo_ttft_ms, "Time-to-first-token target in ms (0: none): requests that cannot meet it are turned away")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e9));
  f.option("--slo-tpot-ms", cfg.slo_tpot_ms, "Time-per-output-token target in ms (0: none): steps are sized to keep it")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e9));
  f.option("--slo-min-ttft-ms", cfg.slo_min_ttft_ms,
           "Tightest TTFT target a request may set in its `slo` (0: --slo-ttft-ms; neither: requests cannot)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e9));
  f.option("--slo-min-tpot-ms", cfg.slo_min_tpot_ms,
           "Tightest TPOT target a request may set in its `slo` (0: --slo-tpot-ms; neither: requests cannot)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e9));
  f.remember(f.cmd()->add_option_function<std::string>(
                    "--slo-admission", [&cfg](const std::string& v) { cfg.slo_reject = v == "reject"; },
                    "A request that cannot meet --slo-ttft-ms: reject (429) or queue (behind the others)")
                 ->check(CLI::IsMember({"reject", "queue"}))
                 ->default_str("reject"),
             [&cfg] { return boost::json::value(cfg.slo_reject ? "reject" : "queue"); });
  f.option("--slo-admission-quantile", cfg.slo_admission_quantile,
           "Admission scales its TTFT estimate by this quantile of observed actual / estimated TTFT (higher: "
           "turns away more, misses fewer)")
      ->capture_default_str()
      ->check(CLI::Range(0.5, 0.99));
}

void add_scheduling_flag(FlagSet& f, Scheduling& s) {
  f.remember(f.cmd()->add_option_function<std::string>(
                    "--scheduling", [&s](const std::string& v) { s = v == "static" ? Scheduling::Static : Scheduling::Continuous; },
                    "continuous or static batching")
                 ->check(CLI::IsMember({"continuous", "static"}))
                 ->default_str("continuous"),
             [&s] { return boost::json::value(s == Scheduling::Static ? "static" : "continuous"); });
}

void add_speculative_flags(FlagSet& f, SpeculativeConfig& cfg) {
  f.option("--speculative-model", cfg.model,
           "Draft model (same vocabulary): a path, or self:int8 / self:int4 for a quantized copy of the target");
  f.option("--num-speculative-tokens", cfg.num_speculative_tokens,
           "K: most draft tokens per sequence and step (0 = no speculation)")
      ->capture_default_str();
  f.option("--speculative-method", cfg.method, "Proposer: draft (a draft model) or ngram (prompt lookup)")
      ->check(CLI::IsMember({"draft", "ngram"}));
  f.option("--ngram-min", cfg.ngram_min, "Shortest n-gram matched by --speculative-method ngram")->capture_default_str();
  f.option("--ngram-max", cfg.ngram_max, "Longest n-gram matched by --speculative-method ngram")->capture_default_str();
  // A count: "true" gives 1, "false" (from a config file) -1.
  f.remember(f.cmd()->add_flag("--no-adaptive-speculation", [&cfg](int64_t n) { cfg.adaptive = n <= 0; },
                               "Always draft K tokens instead of adapting k to acceptance and cost"),
             [&cfg] { return boost::json::value(!cfg.adaptive); });
  f.option("--speculative-min-gain", cfg.min_gain, "Speculate in a step only when the predicted speedup exceeds this")
      ->capture_default_str();
  f.option("--speculative-draft-threads", cfg.draft_threads, "Draft model threads (0 = as the target)")->capture_default_str();
}

void add_server_flags(FlagSet& f, ServerOptions& o) {
  f.option("--host", o.host, "Address to bind (loopback unless told otherwise)")->capture_default_str();
  f.option("--port", o.port, "Port (0: any free port)")->capture_default_str();
  // Printed as "<set>", never the key itself (resolve_api_key refuses that placeholder).
  f.remember(f.cmd()->add_option("--api-key", o.api_key,
                                 "Require 'Authorization: Bearer KEY' on /v1/* (visible in ps: prefer --api-key-file "
                                 "or the TROUPE_API_KEY environment variable)"),
             [&o] { return boost::json::value(o.api_key.empty() ? "" : "<set>"); });
  f.option("--api-key-file", o.api_key_file, "Read the API key from this file (its first line)");
  f.option("--max-body-bytes", o.max_body_bytes, "Largest request body / WebSocket message")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1024), int64_t(1) << 32));
  f.option("--max-connections", o.max_connections, "Open connections beyond which clients get 503")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  f.option("--max-connections-per-ip", o.max_connections_per_ip,
           "Open connections one client address may hold before it gets 503 (0: no limit)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  f.option("--io-threads", o.io_threads, "Network threads")->capture_default_str()->check(CLI::Range(1, 64));
  f.option("--ws-ping-interval", o.ws_ping_interval_s, "Seconds between WebSocket keepalive pings on an idle connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  f.option("--ws-max-inflight", o.ws_max_inflight, "Requests in flight per WebSocket connection")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  f.option("--idle-timeout", o.idle_timeout_s, "Seconds a keep-alive connection may wait for its next request")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  f.option("--header-timeout", o.header_timeout_s, "Seconds a request's headers may take once it has begun")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  f.option("--write-timeout", o.write_timeout_s, "Seconds a client may stop reading before it is dropped (HTTP)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  // --ws-max-queued-bytes: its name from before it covered HTTP streams too.
  f.option("--max-queued-output-bytes-per-connection,--ws-max-queued-bytes", o.max_queued_output_bytes_per_connection,
           "Output queued for one client that stops reading (SSE or WebSocket) before it is dropped")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(1024), int64_t(1) << 32));
  f.option("--max-queued-output-bytes", o.max_queued_output_bytes,
           "Output queued for slow readers across all connections; past it the largest are dropped first")
      ->capture_default_str()
      ->check(CLI::Range(int64_t(64 * 1024), int64_t(1) << 40));
  f.option("--shutdown-timeout", o.shutdown_timeout_s,
           "Seconds in-flight requests get to finish after SIGTERM/SIGINT before they are ended with an error")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  f.option("--allowed-origins", o.allowed_origins,
           "Browser origins (scheme://host[:port], comma-separated, or *) allowed besides same-origin and loopback; "
           "enables CORS for them")
      ->delimiter(',');
}

void add_service_flags(FlagSet& f, ServiceOptions& o) {
  f.option("--served-model-name", o.served_model_name, "Model name in the API (default: the model's directory or file name)");
  f.option("--chat-template", o.chat_template_path,
           "Jinja chat template overriding the model's: a file, a tokenizer_config.json, or the "
           "template text itself (an argument that is no file and contains {{ or {%)");
  f.option("--tool-call-parser", o.tool_call_parser,
           "How tool calls are read from chat output (and written when tool_choice forces one): none, hermes "
           "(<tool_call>{json}</tool_call>, Qwen / Hermes templates) or llama3_json ({\"name\", \"parameters\"})")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "hermes", "llama3_json"}));
  f.flag("--grammar-precompute,!--no-grammar-precompute", o.grammar_precompute,
         "Fill a new response_format/guided_* constraint's token-mask cache on a low-priority background thread "
         "when it is first seen (its first requests fill it lazily meanwhile; none waits for it; default on)");
  f.option("--warmup", o.warmup, "Synthetic requests to run before reporting ready (at least 1 catches a broken model at startup)")->capture_default_str()->check(CLI::Range(0, 10000));
  f.option("--heartbeat-interval", o.heartbeat_interval_s,
           "Seconds of idleness after which a tiny request keeps the engine warm (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  f.option("--log-stats-interval", o.log_stats_interval_s,
           "Seconds between engine stats lines on stderr while busy: throughput, queue, KV, prefix-cache and "
           "speculation rates (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
}

}  // namespace troupe::config
