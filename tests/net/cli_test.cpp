// `troupe serve` as a process: config files (JSON and YAML) with flags overriding them,
// readiness after warmup, and a clean exit on SIGTERM.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "client/http_client.h"
#include "serve_process.h"
#include "test_util.h"

extern char** environ;

using namespace troupe;
namespace json = boost::json;

TEST_CASE("serve: config file values apply unless a flag overrides them") {
  const std::string dir = test::temp_dir("serve-config");
  const std::string model = test::model_path("tinystories-656k");
  const std::string js = test::write_file(dir, "c.json",
                               R"({"model": ")" + model + R"(", "port": 1234, "max_num_seqs": 7, "enable-prefix-caching": false,
                                   "served-model-name": "from-json", "scheduling": "static", "warmup": 3})");
  auto [rc, out] = test::run_troupe("serve --config " + js + " --port 4321 --print-config");
  INFO(out);
  REQUIRE(rc == 0);
  auto c = json::parse(out);
  CHECK(c.at("port") == 4321);  // the flag wins
  CHECK(c.at("max-num-seqs") == 7);
  CHECK(c.at("enable-prefix-caching") == false);
  CHECK(c.at("served-model-name") == "from-json");
  CHECK(c.at("scheduling") == "static");
  CHECK(c.at("warmup") == 3);
  CHECK(c.at("host") == "127.0.0.1");  // loopback unless told otherwise

  const std::string yml = test::write_file(dir, "c.yaml", "# serve config\nmodel: " + model +
                                                   "\nhost: 0.0.0.0\nmax-num-batched-tokens: 256\nheartbeat_interval: 2.5\n"
                                                   "enable_prefix_caching: no\n");
  auto [rc2, out2] = test::run_troupe("serve --config " + yml + " --max-num-batched-tokens 512 --print-config");
  INFO(out2);
  REQUIRE(rc2 == 0);
  auto y = json::parse(out2);
  CHECK(y.at("host") == "0.0.0.0");
  CHECK(y.at("max-num-batched-tokens") == 512);
  CHECK(y.at("heartbeat-interval") == 2.5);
  CHECK(y.at("enable-prefix-caching") == false);
}

TEST_CASE("serve: bad config files fail with a message naming the problem") {
  const std::string dir = test::temp_dir("serve-config-bad");
  auto [rc, out] = test::run_troupe("serve --config " + test::write_file(dir, "u.json", R"({"max-num-sequences": 3})") + " --print-config");
  CHECK(rc == 1);
  CHECK(out.find("unknown key 'max-num-sequences'") != std::string::npos);
  auto [rc2, out2] = test::run_troupe("serve --config " + test::write_file(dir, "r.json", R"({"max-num-seqs": 0})") + " --print-config");
  CHECK(rc2 == 1);
  CHECK(out2.find("max-num-seqs") != std::string::npos);
  auto [rc3, out3] = test::run_troupe("serve --config " + dir + "/missing.yaml --print-config");
  CHECK(rc3 == 1);
  CHECK(out3.find("cannot read config file") != std::string::npos);
  auto [rc4, out4] = test::run_troupe("serve --print-config");
  CHECK(rc4 == 1);
  CHECK(out4.find("--model is required") != std::string::npos);
}

TEST_CASE("serve: reports ready after warmup, serves, and exits cleanly on SIGTERM") {
  const std::string dir = test::temp_dir("serve-proc");
  const std::string model = test::model_path("tinystories-656k");
  test::ServeProcess serve({"--model", model, "--warmup", "3", "--heartbeat-interval", "0.2"}, dir + "/serve.log");
  const uint16_t port = serve.port();
  CHECK(serve.log_text().find("cold-start ratio") != std::string::npos);
  HttpClient c("127.0.0.1", port, 30);
  CHECK(c.request("POST", "/v1/completions", R"({"prompt": "Once", "max_tokens": 4})").status == 200);
  // Idle past the heartbeat interval: heartbeat requests keep the engine stepping.
  auto steps = [&] {
    const std::string m = c.request("GET", "/metrics").body;
    const auto at = m.find("\ntroupe_engine_steps_total{");
    REQUIRE(at != std::string::npos);
    return std::stod(m.substr(m.find("} ", at) + 2));
  };
  const double steps0 = steps();
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  CHECK(steps() > steps0);
  CHECK(c.request("GET", "/health").status == 200);

  const bool clean = serve.stop();
  INFO(serve.log_text());
  CHECK(clean);  // SIGTERM: exits by itself with status 0
}

TEST_CASE("serve: a chat template that fails on a probe conversation stops the server at startup") {
  const std::string dir = test::temp_dir("serve-bad-template");
  const std::string tmpl = test::write_file(dir, "bad.jinja", "{% for m in messages %}\n{{ m.content | shout }}{% endfor %}");
  auto [rc, out] = test::run_troupe("serve --model " + test::model_path("tinystories-656k") + " --port 0 --chat-template " + tmpl);
  INFO(out);
  CHECK(rc != 0);
  CHECK(out.find("bad.jinja") != std::string::npos);
  CHECK(out.find("line 2, column 4") != std::string::npos);
  CHECK(out.find("unknown filter 'shout'") != std::string::npos);
  CHECK(out.find("troupe serve: ready") == std::string::npos);
}
