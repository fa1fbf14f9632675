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
#include "test_util.h"

extern char** environ;

using namespace troupe;
namespace json = boost::json;

namespace {

std::string write(const std::string& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir + "/" + name) << text;
  return dir + "/" + name;
}

}  // namespace

TEST_CASE("serve: config file values apply unless a flag overrides them") {
  const std::string dir = test::temp_dir("serve-config");
  const std::string model = test::model_path("tinystories-656k");
  const std::string js = write(dir, "c.json",
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

  const std::string yml = write(dir, "c.yaml", "# serve config\nmodel: " + model +
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
  auto [rc, out] = test::run_troupe("serve --config " + write(dir, "u.json", R"({"max-num-sequences": 3})") + " --print-config");
  CHECK(rc == 1);
  CHECK(out.find("unknown key 'max-num-sequences'") != std::string::npos);
  auto [rc2, out2] = test::run_troupe("serve --config " + write(dir, "r.json", R"({"max-num-seqs": 0})") + " --print-config");
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
  const std::string log = dir + "/serve.log";
  const std::string bin = test::troupe_bin();
  const std::string model = test::model_path("tinystories-656k");
  std::vector<std::string> args = {bin, "serve", "--model", model, "--port", "0", "--warmup", "3", "--heartbeat-interval", "0.2"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&fa);

  uint16_t port = 0;
  for (int i = 0; i < 600 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const std::string text = test::read_file(log);
    const auto at = text.find("listening on http://127.0.0.1:");
    if (at != std::string::npos) port = uint16_t(std::stoi(text.substr(at + 30)));
  }
  REQUIRE(port != 0);
  int health = 0;
  for (int i = 0; i < 600 && health != 200; ++i) {
    HttpClient c("127.0.0.1", port, 10);
    health = c.request("GET", "/health").status;
    if (health != 200) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(health == 200);
  CHECK(test::read_file(log).find("cold-start ratio") != std::string::npos);
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

  REQUIRE(kill(pid, SIGTERM) == 0);
  int status = 0;
  bool exited = false;
  for (int i = 0; i < 200 && !exited; ++i) {
    exited = waitpid(pid, &status, WNOHANG) == pid;
    if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  INFO(test::read_file(log));
  CHECK(exited);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
