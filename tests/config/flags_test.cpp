// config/flags.h: one registration per configuration struct gives a command --config FILE
// and --print-config; the file's values apply unless a flag overrides them.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <fstream>
#include <memory>
#include <sstream>

#include "config/flags.h"
#include "core/error.h"
#include "test_util.h"

using namespace troupe;
namespace json = boost::json;

namespace {

// A command registered like `troupe serve`.
struct ServeLike {
  CLI::App app{"test"};
  app::ServeOpts o;
  std::unique_ptr<config::FlagSet> f;

  ServeLike() {
    auto* cmd = app.add_subcommand("serve");
    f = std::make_unique<config::FlagSet>(cmd);
    config::add_engine_flags(*f, o.engine);
    f->add_config_flags();
    config::add_scheduler_flags(*f, o.engine.scheduler);
    config::add_scheduling_flag(*f, o.engine.scheduler.scheduling);
    config::add_speculative_flags(*f, o.engine.speculative);
    config::add_server_flags(*f, o.server);
    config::add_service_flags(*f, o.service);
  }
  // Parses `args`, applies --config and returns the effective configuration.
  json::object run(const std::string& args) {
    app.parse("serve " + args, false);
    const bool printed = f->finish();  // throws on a bad file
    REQUIRE_FALSE(printed);
    return f->values();
  }
};

// The same configuration as a YAML mapping: key: <JSON scalar or flow list> per line.
std::string to_yaml(const json::object& o) {
  std::ostringstream y;
  y << "# written by flags_test\n";
  for (const auto& kv : o) y << std::string(kv.key()) << ": " << json::serialize(kv.value()) << "\n";
  return y.str();
}

const char* kNonDefaults =
    "--model m.gguf --threads 3 --block-size 32 --kv-cache-memory 1048576 --kv-cache-dtype int8 --max-model-len 256 --max-waiting 9 "
    "--quantization int4 --group-size 64 --lm-head float --max-num-seqs 7 --max-num-batched-tokens 333 --schedule-policy lof "
    "--batch-wait-ms 5 --slo-ttft-ms 500 --slo-tpot-ms 40 --slo-min-ttft-ms 200 --slo-min-tpot-ms 20 --slo-admission queue --slo-admission-quantile 0.75 --no-enable-prefix-caching --scheduling static --speculative-model self:int8 "
    "--num-speculative-tokens 3 --speculative-method draft --ngram-min 1 --ngram-max 5 --no-adaptive-speculation "
    "--speculative-min-gain 1.5 --speculative-draft-threads 2 --host 0.0.0.0 --port 1234 --max-body-bytes 4096 "
    "--max-connections 10 --max-connections-per-ip 3 --io-threads 2 --ws-ping-interval 7 --ws-max-inflight 8 --write-timeout 5 "
    "--ws-max-queued-bytes 65536 --idle-timeout 9 --header-timeout 4 --max-queued-output-bytes 1048576 --shutdown-timeout 5 --allowed-origins https://a.example,http://b.example:8080 "
    "--served-model-name tiny --api-key-file k.txt --log-stats-interval 5 "
    "--chat-template t.jinja --tool-call-parser hermes --no-grammar-precompute --warmup 2 --heartbeat-interval 2.5 --pipeline-workers local,h:1 "
    "--pipeline-layers 0:1,1:2 --pipeline-depth 3 --replica-workers h:2,local --worker-timeout 30 --tls-cert c.pem --tls-key k.pem "
    "--tls-ca ca.pem";

}  // namespace

TEST_CASE("print-config covers every registered flag and binds the structs") {
  ServeLike c;
  const json::object v = c.run(kNonDefaults);
  CHECK(v.at("max-num-seqs") == 7);
  CHECK(v.at("enable-prefix-caching") == false);
  CHECK(v.at("no-adaptive-speculation") == true);
  CHECK(v.at("quantization") == "int4");
  CHECK(v.at("scheduling") == "static");
  CHECK(v.at("heartbeat-interval") == 2.5);
  CHECK_FALSE(v.contains("config"));
  CHECK_FALSE(v.contains("print-config"));
  CHECK(c.o.engine.scheduler.max_num_seqs == 7);
  CHECK(c.o.engine.scheduler.scheduling == Scheduling::Static);
  CHECK(c.o.engine.scheduler.schedule_policy == SchedulePolicy::LongestOutputFirst);
  CHECK(v.at("schedule-policy") == "lof");
  CHECK_FALSE(c.o.engine.speculative.adaptive);
  CHECK(c.o.engine.quantization.method == quant::Method::Int4);
  CHECK(c.o.engine.kv.dtype == KvDtype::Int8);
  CHECK(c.o.engine.scheduler.slo_admission_quantile == 0.75);
  CHECK(v.at("kv-cache-dtype") == "int8");
  CHECK(c.o.server.port == 1234);
  CHECK(c.o.server.write_timeout_s == 5);
  CHECK(c.o.server.max_queued_output_bytes_per_connection == 65536);
  CHECK(c.o.server.shutdown_timeout_s == 5);
  CHECK(c.o.server.allowed_origins == std::vector<std::string>{"https://a.example", "http://b.example:8080"});
  CHECK(c.o.service.chat_template_path == "t.jinja");
  CHECK(c.o.service.tool_call_parser == "hermes");
  CHECK_FALSE(c.o.service.grammar_precompute);
  CHECK(v.at("grammar-precompute") == false);
  // Every value differs from the default, so the round trips below cannot pass by accident.
  const json::object d = ServeLike().run("--model m.gguf");
  CHECK(d.size() == v.size());
  for (const auto& kv : v)
    if (kv.key() != "model" && kv.key() != "api-key") CHECK_FALSE(d.at(kv.key()) == kv.value());
}

TEST_CASE("--kv-cache-memory takes a size with a unit") {
  CHECK(ServeLike().run("--model m.gguf --kv-cache-memory 512MiB").at("kv-cache-memory") == 536870912);
  ServeLike g;
  g.run("--model m.gguf --kv-cache-memory 2GiB");
  CHECK(g.o.engine.kv.kv_cache_bytes == (int64_t(2) << 30));
  ServeLike m;
  m.run("--model m.gguf --kv-cache-memory 64m");
  CHECK(m.o.engine.kv.kv_cache_bytes == (int64_t(64) << 20));
  CHECK_THROWS(ServeLike().run("--model m.gguf --kv-cache-memory 5parsecs"));
}

TEST_CASE("print-config -> JSON file -> --config gives the same configuration") {
  const std::string dir = test::temp_dir("config-json");
  const json::object v = ServeLike().run(kNonDefaults);
  const std::string path = test::write_file(dir, "c.json", json::serialize(v));
  const json::object back = ServeLike().run("--config " + path);
  CHECK(json::serialize(back) == json::serialize(v));
}

TEST_CASE("print-config -> YAML file -> --config gives the same configuration") {
  const std::string dir = test::temp_dir("config-yaml");
  const json::object v = ServeLike().run(kNonDefaults);
  const std::string path = test::write_file(dir, "c.yaml", to_yaml(v));
  const json::object back = ServeLike().run("--config " + path);
  CHECK(json::serialize(back) == json::serialize(v));
}

TEST_CASE("flags on the command line win over the file") {
  const std::string dir = test::temp_dir("config-override");
  const std::string js = test::write_file(dir, "c.json", R"({"model": "a", "port": 1234, "max_num_seqs": 7, "enable-prefix-caching": false})");
  ServeLike c;
  const json::object v = c.run("--config " + js + " --port 4321 --enable-prefix-caching");
  CHECK(v.at("port") == 4321);
  CHECK(v.at("max-num-seqs") == 7);
  CHECK(v.at("enable-prefix-caching") == true);
  CHECK(c.o.server.port == 4321);
  const std::string yml = test::write_file(dir, "c.yaml", "model: a\nmax-num-batched-tokens: 256\nenable_prefix_caching: no\nno-adaptive-speculation: yes\n");
  const json::object y = ServeLike().run("--config " + yml + " --max-num-batched-tokens 512");
  CHECK(y.at("max-num-batched-tokens") == 512);
  CHECK(y.at("enable-prefix-caching") == false);
  CHECK(y.at("no-adaptive-speculation") == true);
}

TEST_CASE("an unknown key is an error naming the key and the file") {
  const std::string dir = test::temp_dir("config-unknown");
  const std::string js = test::write_file(dir, "u.json", R"({"model": "a", "max-num-sequences": 3})");
  CHECK_THROWS_WITH(ServeLike().run("--config " + js), Catch::Contains("unknown key 'max-num-sequences'") && Catch::Contains(js));
  const std::string yml = test::write_file(dir, "u.yaml", "model: a\nprint_confg: true\n");
  CHECK_THROWS_WITH(ServeLike().run("--config " + yml), Catch::Contains("unknown key 'print-confg'") && Catch::Contains(yml));
  const std::string help = test::write_file(dir, "h.yaml", "help: true\n");
  CHECK_THROWS_WITH(ServeLike().run("--config " + help), Catch::Contains("unknown key 'help'"));
  const std::string cfg = test::write_file(dir, "c.yaml", "config: other.yaml\n");
  CHECK_THROWS_WITH(ServeLike().run("--config " + cfg), Catch::Contains("'config' cannot be set"));
}

TEST_CASE("a value of the wrong type or out of range is an error naming the key and the file") {
  const std::string dir = test::temp_dir("config-type");
  const std::string js = test::write_file(dir, "t.json", R"({"model": "a", "max-num-seqs": "many"})");
  CHECK_THROWS_WITH(ServeLike().run("--config " + js), Catch::Contains("bad value for 'max-num-seqs'") && Catch::Contains(js));
  const std::string yml = test::write_file(dir, "t.yaml", "model: a\nport: eighty\n");
  CHECK_THROWS_WITH(ServeLike().run("--config " + yml), Catch::Contains("bad value for 'port'") && Catch::Contains(yml));
  const std::string range = test::write_file(dir, "r.json", R"({"model": "a", "max-num-seqs": 0})");
  CHECK_THROWS_WITH(ServeLike().run("--config " + range), Catch::Contains("bad value for 'max-num-seqs'"));
  const std::string flag = test::write_file(dir, "f.yaml", "model: a\nenable-prefix-caching: maybe\n");
  CHECK_THROWS_WITH(ServeLike().run("--config " + flag), Catch::Contains("bad value for 'enable-prefix-caching'"));
  const std::string quant = test::write_file(dir, "q.yaml", "model: a\nquantization: int3\n");
  CHECK_THROWS_WITH(ServeLike().run("--config " + quant), Catch::Contains("bad value for 'quantization'"));
}

TEST_CASE("a required flag may come from the file, else it is an error") {
  const std::string dir = test::temp_dir("config-required");
  CHECK_THROWS_WITH(ServeLike().run("--port 1"), Catch::Contains("--model is required"));
  const std::string yml = test::write_file(dir, "m.yaml", "model: from-file\n");
  ServeLike c;
  c.run("--config " + yml);
  CHECK(c.o.engine.model == "from-file");
}

TEST_CASE("kv-cache-dtype flag: f16 by default, each dtype by name, a bad value names the allowed ones") {
  // The commands default to f16; the config struct itself (the library's default) keeps f32.
  CHECK(KvCacheConfig{}.dtype == KvDtype::F32);
  ServeLike d;
  CHECK(d.run("--model m.gguf").at("kv-cache-dtype") == "f16");
  CHECK(d.o.engine.kv.dtype == KvDtype::F16);
  for (KvDtype t : {KvDtype::F32, KvDtype::F16, KvDtype::BF16, KvDtype::Int8}) {
    const std::string name(kv_dtype_name(t));
    ServeLike c;
    CHECK(c.run("--model m.gguf --kv-cache-dtype " + name).at("kv-cache-dtype") == name.c_str());
    CHECK(c.o.engine.kv.dtype == t);
    CHECK(parse_kv_dtype(name) == t);
  }
  CHECK_THROWS_WITH(parse_kv_dtype("F16"), Catch::Contains("unknown KV cache dtype 'F16' (allowed: f32, f16, bf16, int8)"));
  const std::string dir = test::temp_dir("config-kv-dtype");
  const std::string yml = test::write_file(dir, "k.yaml", "model: a\nkv-cache-dtype: int4\n");
  CHECK_THROWS_WITH(ServeLike().run("--config " + yml), Catch::Contains("bad value for 'kv-cache-dtype'") && Catch::Contains(yml));
  const std::string ok = test::write_file(dir, "ok.yaml", "model: a\nkv-cache-dtype: bf16\n");
  ServeLike c;
  c.run("--config " + ok);
  CHECK(c.o.engine.kv.dtype == KvDtype::BF16);
}

TEST_CASE("KV bytes per token follow the dtype: 2x fewer for f16/bf16, ~4x for int8 (scales counted)") {
  // A llama-110m-like shape: 12 layers, 12 KV heads of 64.
  const int64_t f32 = kv_bytes_per_token(KvDtype::F32, 12, 12, 64);
  CHECK(f32 == 2 * 12 * 12 * 64 * 4);
  CHECK(kv_bytes_per_token(KvDtype::F16, 12, 12, 64) * 2 == f32);
  CHECK(kv_bytes_per_token(KvDtype::BF16, 12, 12, 64) * 2 == f32);
  CHECK(kv_bytes_per_token(KvDtype::Int8, 12, 12, 64) == 2 * 12 * (12 * 64 + 12 * 4));  // 1 byte + a float per head row
}
