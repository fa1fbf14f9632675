// --config / --print-config on the real commands (no model is loaded: --print-config
// stops before that).
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <fstream>

#include "test_util.h"

using namespace troupe;
namespace json = boost::json;

TEST_CASE("every configurable command round-trips --print-config through --config") {
  const std::string dir = test::temp_dir("config-cli");
  struct Case {
    const char* command;
    const char* flags;      // non-default values
    const char* key;        // one of them, checked in the output
    json::value expected;
  };
  const Case cases[] = {
      {"serve", "--model m --max-num-seqs 5 --scheduling static --port 0 --warmup 1", "max-num-seqs", 5},
      {"generate", "--model m --prompt 'Once upon' --temperature 0.5 --stop a --stop b --num-speculative-tokens 2",
       "stop", json::array{"a", "b"}},
      {"bench throughput", "--model m --num-prompts 3 --scheduling both --max-num-seqs 4 --quantization int8",
       "scheduling", "both"},
      {"bench decode", "--model m --tokens 9 --lm-head int8", "tokens", 9},
      {"eval", "--model m --data d.jsonl --max-len 64 --group-size 32", "max-len", 64},
  };
  for (const Case& c : cases) {
    INFO(c.command);
    auto [rc, out] = test::run_troupe(std::string(c.command) + " " + c.flags + " --print-config");
    INFO(out);
    REQUIRE(rc == 0);
    const json::object v = json::parse(out).as_object();
    CHECK(v.at(c.key) == c.expected);
    const std::string file = dir + "/c.json";
    std::ofstream(file) << out;
    auto [rc2, out2] = test::run_troupe(std::string(c.command) + " --config " + file + " --print-config");
    INFO(out2);
    REQUIRE(rc2 == 0);
    CHECK(json::parse(out2) == json::parse(out));
  }
}

TEST_CASE("command errors from --config name the key and the file") {
  const std::string dir = test::temp_dir("config-cli-bad");
  const std::string file = dir + "/bad.yaml";
  std::ofstream(file) << "model: m\nprompt: hi\nmax_tokens: lots\n";
  auto [rc, out] = test::run_troupe("generate --config " + file + " --print-config");
  CHECK(rc == 1);
  CHECK(out.find("bad value for 'max-tokens'") != std::string::npos);
  CHECK(out.find(file) != std::string::npos);
  std::ofstream(file) << "model: m\nnum_prompt: 3\n";
  auto [rc2, out2] = test::run_troupe("bench throughput --config " + file + " --print-config");
  CHECK(rc2 == 1);
  CHECK(out2.find("unknown key 'num-prompt'") != std::string::npos);
  auto [rc3, out3] = test::run_troupe("eval --model m --print-config");
  CHECK(rc3 == 1);
  CHECK(out3.find("--data is required") != std::string::npos);
}

TEST_CASE("a bad --kv-cache-dtype is an error naming the allowed values") {
  for (const char* cmd : {"generate --model m --prompt hi", "serve --model m", "bench decode --model m",
                          "eval --model m --data d.jsonl", "eval --model m --data d.jsonl --reference-kv-cache-dtype"}) {
    INFO(cmd);
    const std::string flag = std::string(cmd).find("reference") != std::string::npos ? " fp8" : " --kv-cache-dtype fp8";
    auto [rc, out] = test::run_troupe(std::string(cmd) + flag + " --print-config");
    INFO(out);
    CHECK(rc != 0);
    CHECK(out.find("fp8 not in {f32,f16,bf16,int8}") != std::string::npos);
  }
  // And a good one reaches the effective configuration.
  auto [rc, out] = test::run_troupe("generate --model m --prompt hi --kv-cache-dtype bf16 --print-config");
  REQUIRE(rc == 0);
  CHECK(json::parse(out).at("kv-cache-dtype") == "bf16");
}
