#pragma once
// Command-line flags of the configuration structs, each registered once and shared by
// `troupe serve`, `generate`, `bench throughput`, `bench decode` and `eval`.
//
// A FlagSet wraps one CLI11 subcommand and remembers, for every flag registered through it,
// how to read the bound value back. That one registration gives the command `--config FILE`
// (JSON or YAML, keys are the flag names; flags on the command line win; an unknown key or
// a bad value is an error naming the key and the file) and `--print-config` (the effective
// configuration as JSON, which --config reads back to the same configuration).
#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "config/engine_config.h"
#include "config/server_config.h"

namespace troupe::config {

class FlagSet {
 public:
  explicit FlagSet(CLI::App* cmd) : cmd_(cmd) {}
  FlagSet(const FlagSet&) = delete;
  FlagSet& operator=(const FlagSet&) = delete;

  CLI::App* cmd() const { return cmd_; }

  // An option bound to `var` (anything boost::json::value_from takes).
  template <class T>
  CLI::Option* option(const std::string& name, T& var, const std::string& help = "") {
    return remember(cmd_->add_option(name, var, help), [&var] { return to_json(var); });
  }
  // A boolean flag: "--x", or "--x,!--no-x" for one that can be switched off.
  CLI::Option* flag(const std::string& names, bool& var, const std::string& help);
  // A flag or option CLI11 already has (custom parsing, enums), read back through `get`.
  CLI::Option* remember(CLI::Option* opt, std::function<boost::json::value()> get);
  // Checked once --config has been applied: `--NAME is required (on the command line or in
  // the config file)`.
  void require(CLI::Option* opt) { required_.push_back(opt); }

  // Registers --config FILE and --print-config on the command.
  void add_config_flags();
  // Call first in the command's callback: applies --config (flags given on the command line
  // win), checks required options, and with --print-config prints values() and returns
  // true (the command should then stop).
  bool finish();
  // Applies the entries of a config file (normally called by finish()).
  void apply_file(const std::string& path);
  // The effective configuration: flag name (without dashes) -> value, in registration order.
  boost::json::object values() const;

 private:
  template <class T>
  static boost::json::value to_json(const T& v) {
    return boost::json::value_from(v);
  }
  // The shortest decimal that reads back as the same float (0.9, not 0.89999997615814209).
  static boost::json::value to_json(const float& v);

  struct Remembered {
    CLI::Option* opt;
    std::function<boost::json::value()> get;
  };
  const Remembered* find(const std::string& key) const;

  CLI::App* cmd_;
  std::vector<Remembered> flags_;
  std::vector<CLI::Option*> required_;
  std::string config_path_;
  bool print_config_ = false;
};

// --pipeline-workers, --pipeline-layers, --pipeline-depth, --replica-workers, --worker-timeout and the TLS
// flags (part of add_engine_flags).
void add_cluster_flags(FlagSet& f, ClusterConfig& cfg);
// --tls-cert, --tls-key, --tls-ca (heads: part of add_cluster_flags; `troupe worker`).
void add_tls_flags(FlagSet& f, TlsFiles& tls);
// --threads (compute threads, 0: all cores).
CLI::Option* add_threads_flag(FlagSet& f, int& threads);
// --quantization, --group-size, --lm-head.
void add_quantization_flags(FlagSet& f, quant::Options& o);
// --model (required), --threads, --block-size, --kv-cache-memory, --kv-cache-dtype, --max-model-len,
// --max-waiting and the quantization flags.
void add_engine_flags(FlagSet& f, EngineConfig& cfg);
// --block-size, --kv-cache-memory, --kv-cache-dtype (part of add_engine_flags).
void add_kv_flags(FlagSet& f, KvCacheConfig& kv);
// The KV-cache element type flag alone, under `name` (add_kv_flags registers it as
// --kv-cache-dtype; eval also as --reference-kv-cache-dtype; bench decode, which sizes its
// own pool, takes just this one).
void add_kv_dtype_flag(FlagSet& f, const std::string& name, KvDtype& dtype);
// --fuse-linears (bench decode and bench peak: q/k/v and gate/up as one stacked matmul each).
void add_fuse_linears_flag(FlagSet& f, bool& fuse);
// --max-num-seqs, --max-num-batched-tokens, --batch-wait-ms, --enable-prefix-caching.
void add_scheduler_flags(FlagSet& f, SchedulerConfig& cfg);
// --scheduling continuous|static.
void add_scheduling_flag(FlagSet& f, Scheduling& s);
// --speculative-model PATH|self:int8|self:int4, --num-speculative-tokens K,
// --speculative-method draft|ngram, --ngram-min N, --ngram-max M, --no-adaptive-speculation,
// --speculative-min-gain, --speculative-draft-threads.
void add_speculative_flags(FlagSet& f, SpeculativeConfig& cfg);
// --host, --port, --api-key, --max-body-bytes, --max-connections, --max-connections-per-ip, --io-threads,
// --ws-ping-interval, --ws-max-inflight, --idle-timeout, --header-timeout, --write-timeout, --max-queued-output-bytes-per-connection,
// --max-queued-output-bytes, --shutdown-timeout, --allowed-origins.
void add_server_flags(FlagSet& f, ServerOptions& o);
// --served-model-name, --chat-template, --warmup, --heartbeat-interval.
void add_service_flags(FlagSet& f, ServiceOptions& o);

}  // namespace troupe::config
