// What an operator sees of `troupe serve` as a process: one access-log line per request and
// periodic stats lines on stderr, --log-level, the API key from a file or the environment
// (never on the command line), and --print-config read back by --config.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <thread>

#include "client/http_client.h"
#include "net/stats_log.h"
#include "serve_process.h"
#include "test_util.h"

using namespace troupe;
namespace json = boost::json;

namespace {

Headers bearer(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }

// The access-log line for request `id` in the log, or "".
std::string access_line(const std::string& log, const std::string& id) {
  const auto at = log.find("access id=" + id + " ");
  if (at == std::string::npos) return "";
  return log.substr(at, log.find('\n', at) - at);
}

}  // namespace

TEST_CASE("serve: access-log lines, stats lines while busy, API key from --api-key-file (not in the command line)") {
  const std::string dir = test::temp_dir("serve-ops");
  const std::string key = "k-" + std::to_string(::getpid()) + "-secret";
  const std::string key_file = test::write_file(dir, "key.txt", key + "\n");
  test::ServeProcess serve({"--model", test::model_path("tinystories-656k"), "--api-key-file", key_file,
                            "--log-stats-interval", "0.2", "--warmup", "1"},
                           dir + "/serve.log");
  // The key is nowhere in the process's command line (what ps shows).
  const std::string cmdline = test::read_file("/proc/" + std::to_string(serve.pid()) + "/cmdline");
  CHECK(cmdline.find(key_file) != std::string::npos);
  CHECK(cmdline.find(key) == std::string::npos);

  HttpClient c("127.0.0.1", serve.port(), 30);
  CHECK(c.request("POST", "/v1/completions", R"({"prompt": "Once", "max_tokens": 4})").status == 401);
  CHECK(c.request("POST", "/v1/completions", R"({"prompt": "Once", "max_tokens": 4})", bearer("wrong")).status == 401);
  const HttpResponse r = c.request("POST", "/v1/completions", R"({"prompt": "Once upon a time", "max_tokens": 6})", bearer(key));
  REQUIRE(r.status == 200);
  const json::object body = json::parse(r.body).as_object();
  const std::string id(body.at("id").as_string());
  const int64_t prompt_tokens = body.at("usage").at("prompt_tokens").as_int64();
  const HttpResponse chat = c.request("POST", "/v1/chat/completions",
                                      R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3, "n": 2, "stream": true})",
                                      bearer(key));
  REQUIRE(chat.status == 200);
  std::smatch chat_match;
  REQUIRE(std::regex_search(chat.body, chat_match, std::regex("chatcmpl-[0-9a-f]+")));
  const std::string chat_id = chat_match.str();
  CHECK(c.request("GET", "/no/such/route").status == 404);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // a stats interval or more

  const std::string log = serve.log_text();
  INFO(log);
  const std::string line = access_line(log, id);
  CHECK(line.find("route=\"POST /v1/completions\" status=200 prompt_tokens=" + std::to_string(prompt_tokens) +
                  " output_tokens=6 ") != std::string::npos);
  CHECK(std::regex_search(line, std::regex("ttft_ms=[0-9.]+ e2e_ms=[0-9.]+ finish=length$")));
  const std::string chat_line = access_line(log, chat_id);
  CHECK(chat_line.find("route=\"POST /v1/chat/completions\" status=200") != std::string::npos);
  CHECK(chat_line.find("output_tokens=6 ") != std::string::npos);  // 2 choices x 3
  CHECK(chat_line.find("finish=length,length") != std::string::npos);
  CHECK(std::regex_search(log, std::regex("access id=req-[0-9]+ route=\"POST /v1/completions\" status=401 .* finish=-")));
  CHECK(std::regex_search(log, std::regex("access id=req-[0-9]+ route=\"GET /no/such/route\" status=404")));
  // One stats line per busy interval: the requests above computed prompt and output tokens.
  CHECK(std::regex_search(log, std::regex("stats: prompt [0-9.]+ tok/s, generation [1-9][0-9.]* tok/s, running [0-9]+, "
                                          "waiting [0-9]+, KV cache [0-9.]+%, prefix-cache hits [-0-9.%]+, "
                                          "speculation acceptance -")));
  CHECK(serve.stop());
}

TEST_CASE("serve: the API key from TROUPE_API_KEY; --log-level warn silences the info lines") {
  const std::string dir = test::temp_dir("serve-env-key");
  ::setenv("TROUPE_API_KEY", "from-the-environment", 1);
  test::ServeProcess serve({"--model", test::model_path("tinystories-656k"), "--warmup", "1", "--log-level", "warn"},
                           dir + "/serve.log");
  ::unsetenv("TROUPE_API_KEY");
  HttpClient c("127.0.0.1", serve.port(), 30);
  CHECK(c.request("POST", "/v1/completions", R"({"prompt": "Once", "max_tokens": 2})").status == 401);
  CHECK(c.request("POST", "/v1/completions", R"({"prompt": "Once", "max_tokens": 2})", bearer("from-the-environment")).status == 200);
  const std::string log = serve.log_text();
  INFO(log);
  CHECK(log.find("[info]") == std::string::npos);
  CHECK(log.find("access id=") == std::string::npos);
  CHECK(serve.stop());
}

TEST_CASE("serve: bad API key sources and log levels are errors before anything starts") {
  const std::string dir = test::temp_dir("serve-bad-key");
  const std::string model = test::model_path("tinystories-656k");
  auto [rc, out] = test::run_troupe("serve --model " + model + " --port 0 --api-key-file " + dir + "/missing.txt");
  CHECK(rc != 0);
  CHECK(out.find("missing.txt: cannot read it") != std::string::npos);
  const std::string empty = test::write_file(dir, "empty.txt", "\n");
  std::tie(rc, out) = test::run_troupe("serve --model " + model + " --port 0 --api-key-file " + empty);
  CHECK(rc != 0);
  CHECK(out.find("the first line is empty") != std::string::npos);
  std::tie(rc, out) = test::run_troupe("serve --model " + model + " --port 0 --api-key a --api-key-file " + empty);
  CHECK(rc != 0);
  CHECK(out.find("both given") != std::string::npos);
  std::tie(rc, out) = test::run_troupe("serve --model " + model + " --port 0 --log-level chatty");
  CHECK(rc != 0);
  CHECK(out.find("--log-level") != std::string::npos);
}

TEST_CASE("serve --print-config: its output read back by --config prints the same, every flag included") {
  const std::string dir = test::temp_dir("serve-print-config");
  const std::string model = test::model_path("tinystories-656k");
  auto [rc, first] = test::run_troupe("serve --model " + model + " --speculative-method ngram --num-speculative-tokens 3 "
                                      "--api-key-file " + dir + "/k.txt --allowed-origins https://a.example,http://b.example "
                                      "--log-stats-interval 2.5 --chat-template '{{ messages[0].content }}' --print-config");
  INFO(first);
  REQUIRE(rc == 0);
  const json::object v = json::parse(first).as_object();
  CHECK(v.at("speculative-method") == "ngram");
  CHECK(std::string(v.at("api-key-file").as_string()) == dir + "/k.txt");
  CHECK(v.at("log-stats-interval") == 2.5);
  // Every flag of `serve --help` is in the printed configuration (but --config/--print-config).
  auto [hrc, help] = test::run_troupe("serve --help");
  std::smatch m;
  for (auto it = help.cbegin(); std::regex_search(it, help.cend(), m, std::regex("--([a-z][a-z0-9-]+)")); it = m.suffix().first) {
    const std::string flag = m[1].str();
    if (flag == "help" || flag == "config" || flag == "print-config" || flag == "log-level" || flag.rfind("no-", 0) == 0) continue;
    if (flag == "ws-max-queued-bytes") continue;  // the old name of --max-queued-output-bytes-per-connection
    INFO("--" << flag);
    CHECK(v.contains(flag));
  }
  const std::string path = test::write_file(dir, "c.json", first);
  auto [rc2, second] = test::run_troupe("serve --config " + path + " --print-config");
  CHECK(rc2 == 0);
  CHECK(second == first);
  // A key given on the command line prints as a placeholder, which is refused as a key.
  auto [rc3, with_key] = test::run_troupe("serve --model " + model + " --api-key hunter2 --print-config");
  CHECK(with_key.find("hunter2") == std::string::npos);
  const std::string keyed = test::write_file(dir, "keyed.json", with_key);
  auto [rc4, out4] = test::run_troupe("serve --config " + keyed + " --port 0");
  CHECK(rc4 != 0);
  CHECK(out4.find("placeholder") != std::string::npos);
}

TEST_CASE("stats line: rates over the interval, nothing when idle") {
  SchedulerStats a, b;
  CHECK_FALSE(stats_line(a, b, 10).has_value());
  b.prompt_tokens_computed = 500;
  b.generated_tokens = 100;
  b.running = 3;
  b.waiting = 1;
  b.kv.num_blocks = 8;
  b.kv.used_blocks = 2;
  b.kv.prefix_query_tokens = 400;
  b.kv.prefix_hit_tokens = 100;
  b.spec.num_draft_tokens = 50;
  b.spec.num_accepted_tokens = 40;
  CHECK(*stats_line(a, b, 10) ==
        "stats: prompt 50.0 tok/s, generation 10.0 tok/s, running 3, waiting 1, KV cache 25.0%, prefix-cache hits 25.0%, "
        "speculation acceptance 80.0%");
  SchedulerStats c = b;  // nothing new, but requests still waiting: still a line
  c.running = 0;
  CHECK(*stats_line(b, c, 10) ==
        "stats: prompt 0.0 tok/s, generation 0.0 tok/s, running 0, waiting 1, KV cache 25.0%, prefix-cache hits -, "
        "speculation acceptance -");
  c.waiting = 0;
  CHECK_FALSE(stats_line(b, c, 10).has_value());
}
