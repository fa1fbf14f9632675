// A pipeline stage's worker crashes (kill -9) while 32 clients stream from `troupe serve`:
// every stream in flight ends with an error event naming the worker within 2 s, /health
// reports the pipeline degraded and requests get 503 + Retry-After; the worker restarts on
// the same port and the head, never restarted, rebuilds the stage and serves exact tokens.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "client/http_client.h"
#include "serve_process.h"
#include "test_util.h"
#include "worker_process.h"

using namespace troupe;
using Clock = std::chrono::steady_clock;
using troupe::test::WorkerProcess;

namespace {

std::string body(const std::string& prompt, int max_tokens, bool stream) {
  return std::string("{\"prompt\":\"") + prompt + "\",\"max_tokens\":" + std::to_string(max_tokens) +
         ",\"temperature\":0,\"ignore_eos\":true,\"stream\":" + (stream ? "true" : "false") + "}";
}

std::string complete_text(uint16_t port, const std::string& prompt) {
  HttpClient c("127.0.0.1", port, 60);
  const auto r = c.request("POST", "/v1/completions", body(prompt, 24, false), {{"content-type", "application/json"}});
  INFO(r.body);
  REQUIRE(r.status == 200);
  return r.body.substr(r.body.find("\"text\""), r.body.find("\"finish_reason\"") - r.body.find("\"text\""));
}

struct Stream {
  std::atomic<int> chunks{0};
  std::string error;
  Clock::time_point error_at{};
  bool done = false;
};

}  // namespace

TEST_CASE("kill -9 of a pipeline worker mid-stream, then its restart", "[cluster][faults]") {
  const std::string dir = test::temp_dir("cluster_loss");
  WorkerProcess w1(dir + "/w1.log"), w2(dir + "/w2.log");
  test::ServeProcess serve({"--model", test::model_path("tinystories-656k"), "--threads", "1", "--max-num-seqs", "32",
                            "--pipeline-workers", w1.address() + "," + w2.address()},
                           dir + "/serve.log");
  const std::string before = complete_text(serve.port(), "Once upon a time");

  std::vector<std::unique_ptr<Stream>> streams;
  std::vector<std::thread> clients;
  std::mutex mu;
  for (int i = 0; i < 32; ++i) {
    streams.push_back(std::make_unique<Stream>());
    clients.emplace_back([&, s = streams.back().get(), i] {
      try {
        HttpClient c("127.0.0.1", serve.port(), 60);
        SseParser sse;
        c.request("POST", "/v1/completions", body("Tom had a dog number " + std::to_string(i), 480, true),
                  {{"content-type", "application/json"}}, [&](std::string_view bytes) {
                    sse.feed(bytes, [&](const std::string& data) {
                      std::lock_guard lk(mu);
                      if (data == "[DONE]") {
                        s->done = true;
                      } else if (data.find("\"error\"") != std::string::npos && s->error.empty()) {
                        s->error = data;
                        s->error_at = Clock::now();
                      } else {
                        s->chunks++;
                      }
                    });
                    return true;
                  });
      } catch (const std::exception& e) {
        std::lock_guard lk(mu);
        if (s->error.empty()) s->error = std::string("client: ") + e.what();
      }
    });
  }
  // Every stream has tokens flowing, then the second stage's node dies.
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  auto all_streaming = [&] {
    for (auto& s : streams)
      if (s->chunks < 2) return false;
    return true;
  };
  while (!all_streaming() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  REQUIRE(all_streaming());
  const auto killed_at = Clock::now();
  w2.kill9();
  for (auto& t : clients) t.join();

  int failed = 0;
  for (auto& s : streams) {
    std::lock_guard lk(mu);
    if (s->error.empty()) continue;  // finished before the kill landed
    ++failed;
    INFO(s->error);
    CHECK_THAT(s->error, Catch::Contains(w2.address()));
    CHECK(std::chrono::duration<double>(s->error_at - killed_at).count() < 2.0);
    CHECK(s->done);  // the error event, then [DONE]
  }
  CHECK(failed > 0);

  {
    HttpClient c("127.0.0.1", serve.port(), 10);
    const auto h = c.request("GET", "/health");
    INFO(h.body);
    CHECK(h.status == 503);
    CHECK_THAT(h.body, Catch::Contains("\"status\":\"degraded\""));
    CHECK_THAT(h.body, Catch::Contains(w2.address()));
    const auto r = c.request("POST", "/v1/completions", body("Hi", 4, false), {{"content-type", "application/json"}});
    INFO(r.body);
    CHECK(r.status == 503);
    CHECK(r.header("retry-after") == "1");
    CHECK_THAT(r.body, Catch::Contains("degraded: stage 1 (layers 1:2) on " + w2.address()));
  }

  w2.restart();
  int health = 0;
  for (int i = 0; i < 600 && health != 200; ++i) {
    HttpClient c("127.0.0.1", serve.port(), 10);
    health = c.request("GET", "/health").status;
    if (health != 200) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(health == 200);
  CHECK(complete_text(serve.port(), "Once upon a time") == before);  // rebuilt stage, exact tokens
  CHECK(serve.stop());
}
