// The daemon end to end over real sockets: health and metrics (through promtool), 128
// concurrent streaming clients checked against single-request references, cancellation of
// a client that walks away, overload (429) and not-ready/too-many-connections (503).
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <poll.h>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <latch>
#include <thread>

#include "daemon.h"
#include "test_util.h"

using namespace troupe;
using namespace troupe::test;
namespace json = boost::json;

TEST_CASE("health and metrics: ready after warmup, vLLM names, passes promtool") {
  Daemon& d = main_daemon();
  HttpResponse h = d.get("/health", false);
  REQUIRE(h.status == 200);
  CHECK(json::parse(h.body).at("status") == "ready");
  REQUIRE(d.post("/v1/completions", completion_body("Once upon a time", 8, false)).status == 200);

  const std::string m = d.metrics();
  for (const char* name : {"vllm_num_requests_running", "vllm_num_requests_waiting", "vllm_kv_cache_usage_perc",
                           "vllm_gpu_cache_usage_perc", "vllm_num_preemptions_total", "vllm_gpu_prefix_cache_hit_rate",
                           "vllm_prefix_cache_queries_total", "vllm_prefix_cache_hits_total",
                           "vllm_time_to_first_token_seconds", "vllm_inter_token_latency_seconds",
                           "vllm_e2e_request_latency_seconds", "vllm_request_queue_time_seconds",
                           "vllm_request_success_total", "vllm_prompt_tokens_total", "vllm_generation_tokens_total"})
    CHECK(m.find(std::string("# TYPE ") + name + " ") != std::string::npos);
  CHECK(metric_value(m, "vllm_time_to_first_token_seconds_count" + label(d)) >= 1);
  CHECK(metric_value(m, "vllm_generation_tokens_total" + label(d)) >= 8);
  // The warmup measured the cold start.
  CHECK(metric_value(m, "troupe_cold_start_first_ttft_seconds" + label(d)) > 0);

  // promtool (Debian's prometheus package) lints the exposition.
  const std::string dir = temp_dir("promtool");
  std::ofstream(dir + "/metrics.txt") << m;
  const std::string cmd = "promtool check metrics < " + dir + "/metrics.txt > " + dir + "/out.txt 2>&1";
  const int rc = std::system(cmd.c_str());
  INFO("promtool: " << read_file(dir + "/out.txt"));
  if (WEXITSTATUS(rc) == 127) FAIL("promtool not found: install the prometheus package (scripts/install-deps.sh)");
  CHECK(rc == 0);

  // ?names=vllm keeps vLLM's exact names for dashboards built against vLLM.
  HttpResponse v = d.get("/metrics?names=vllm", false);
  CHECK(v.body.find("vllm:num_requests_running{") != std::string::npos);
}

TEST_CASE("models, the playground page and HEAD") {
  Daemon& d = main_daemon();
  HttpResponse r = d.get("/v1/models");
  REQUIRE(r.status == 200);
  CHECK(json::parse(r.body).at("data").at(0).at("id").as_string() == d.service->model_name());
  HttpResponse page = d.get("/", false);
  CHECK(page.status == 200);
  CHECK(page.header("content-type") == "text/html; charset=utf-8");
  CHECK(page.body.find("/v1/stream") != std::string::npos);
  HttpClient c("127.0.0.1", d.port());
  HttpResponse head = c.request("HEAD", "/health");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
}

TEST_CASE("128 simultaneous streaming clients all get complete, correct replies") {
  Daemon& d = main_daemon();
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Tom and his dog",
                                            "Lily wanted to", "One day, a big", "The sun was",
                                            "There was a girl named Sue", "A cat sat"};
  constexpr int kTokens = 40;
  // References: one request at a time, non-streaming.
  std::vector<std::string> ref;
  std::vector<std::string> ref_finish;
  for (const auto& p : prompts) {
    HttpResponse r = d.post("/v1/completions", completion_body(p, kTokens, false));
    REQUIRE(r.status == 200);
    auto v = json::parse(r.body);
    ref.emplace_back(v.at("choices").at(0).at("text").as_string());
    ref_finish.emplace_back(v.at("choices").at(0).at("finish_reason").as_string());
  }

  constexpr int kClients = 128;
  std::vector<Streamed> got(kClients);
  std::vector<std::string> errors(kClients);
  std::latch go(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      go.arrive_and_wait();  // all connect and send at once
      try {
        got[size_t(i)] = stream_completion(d.port(), completion_body(prompts[size_t(i) % prompts.size()], kTokens, true));
      } catch (const std::exception& e) {
        errors[size_t(i)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  int complete = 0;
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i << ": " << errors[size_t(i)]);
    const Streamed& s = got[size_t(i)];
    CHECK(errors[size_t(i)].empty());
    CHECK(s.status == 200);
    CHECK(s.done);
    CHECK(s.text == ref[size_t(i) % prompts.size()]);
    CHECK(s.finish_reason == ref_finish[size_t(i) % prompts.size()]);
    CHECK(s.completion_tokens > 0);
    complete += s.done && s.text == ref[size_t(i) % prompts.size()];
  }
  CHECK(complete == kClients);
  // Everything retired: nothing running, no KV held.
  std::string m = wait_metrics(d, [&](const std::string& t) {
    return metric_value(t, "vllm_num_requests_running" + label(d)) == 0;
  });
  CHECK(metric_value(m, "troupe_kv_cache_blocks_used" + label(d)) == 0);
}

TEST_CASE("a client that disconnects mid-stream has its request cancelled and its KV freed") {
  Daemon& d = main_daemon();
  const std::string before = d.metrics();
  const double aborted0 = metric_value(before, "troupe_requests_aborted_total{model_name=\"" + d.service->model_name() +
                                                   "\",cause=\"client_disconnect\"}");
  const double cancelled0 = metric_value(before, "troupe_engine_requests_cancelled_total" + label(d));
  // 8 long streams (n = 8) so the engine is still busy when the client leaves.
  json::object body{{"prompt", "Once upon a time"}, {"max_tokens", 500}, {"ignore_eos", true}, {"n", 8},
                    {"temperature", 0.7}, {"stream", true}};
  Streamed s = stream_completion(d.port(), json::serialize(body), /*stop_after=*/3);
  CHECK(s.status == 200);
  CHECK_FALSE(s.done);
  const std::string m = wait_metrics(d, [&](const std::string& t) {
    return metric_value(t, "troupe_engine_requests_cancelled_total" + label(d)) >= cancelled0 + 8 &&
           metric_value(t, "vllm_num_requests_running" + label(d)) == 0;
  });
  CHECK(metric_value(m, "troupe_engine_requests_cancelled_total" + label(d)) == cancelled0 + 8);
  CHECK(metric_value(m, "troupe_requests_aborted_total{model_name=\"" + d.service->model_name() +
                            "\",cause=\"client_disconnect\"}") == aborted0 + 8);
  CHECK(metric_value(m, "vllm_num_requests_running" + label(d)) == 0);
  CHECK(metric_value(m, "troupe_kv_cache_blocks_used" + label(d)) == 0);
  // And the daemon serves the next request normally.
  CHECK(stream_completion(d.port(), completion_body("The end", 4, true)).done);
}

TEST_CASE("overload: a full queue answers 429 with Retry-After; admitted requests complete") {
  ServiceOptions so;
  so.model_path = model_path("tinystories-656k");
  ServerOptions o;
  o.port = 0;
  o.api_key = kApiKey;
  EngineConfig ec;
  ec.model = so.model_path;
  ec.scheduler.max_num_seqs = 1;
  ec.max_waiting = 2;
  Daemon d(so, o, ec);

  constexpr int kClients = 24;
  std::vector<int> status(kClients);
  std::vector<std::string> retry_after(kClients), body(kClients);
  std::latch go(kClients);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      HttpClient c("127.0.0.1", d.port(), 120);
      HttpResponse r = c.request("POST", "/v1/completions", completion_body("Once upon a time", 200, true, true),
                                 auth_headers(), [&](std::string_view b) {
                                   body[size_t(i)].append(b);
                                   return true;
                                 });
      status[size_t(i)] = r.status;
      retry_after[size_t(i)] = r.header("retry-after");
    });
  }
  for (auto& t : threads) t.join();
  int rejected = 0, served = 0;
  for (int i = 0; i < kClients; ++i) {
    INFO("client " << i << " body " << body[size_t(i)].substr(0, 200));
    if (status[size_t(i)] == 429) {
      ++rejected;
      CHECK(retry_after[size_t(i)] == "1");
      auto e = json::parse(body[size_t(i)]).at("error");
      CHECK(e.at("type") == "rate_limit_error");
      CHECK(e.at("code") == "overloaded");
    } else {
      CHECK(status[size_t(i)] == 200);
      CHECK(body[size_t(i)].find("data: [DONE]") != std::string::npos);
      ++served;
    }
  }
  CHECK(rejected >= 1);
  CHECK(served >= 1);
  CHECK(d.post("/v1/completions", completion_body("Once", 4, false)).status == 200);
}

TEST_CASE("503 with Retry-After while loading and beyond the connection limit") {
  ServiceOptions so;
  so.model_path = model_path("tinystories-656k");
  ServerOptions o;
  o.port = 0;
  o.max_connections = 2;
  Daemon d(so, o, EngineConfig{}, /*start_engine=*/false);

  HttpResponse h = d.get("/health", false);
  CHECK(h.status == 503);
  CHECK(h.header("retry-after") == "1");
  CHECK(json::parse(h.body).at("status") == "loading");
  HttpResponse p = d.post("/v1/completions", R"({"prompt": "a"})", false);
  CHECK(p.status == 503);
  CHECK(p.header("retry-after") == "1");
  CHECK(json::parse(p.body).at("error").at("code") == "not_ready");
  CHECK(d.get("/metrics").status == 200);  // metrics work before the model is there

  // Two idle keep-alive connections fill the limit; a third is turned away.
  HttpClient a("127.0.0.1", d.port()), b("127.0.0.1", d.port());
  REQUIRE(a.request("GET", "/health").status == 503);
  REQUIRE(b.request("GET", "/health").status == 503);
  HttpClient c("127.0.0.1", d.port());
  HttpResponse r = c.request("GET", "/v1/models");
  CHECK(r.status == 503);
  CHECK(json::parse(r.body).at("error").at("code") == "too_many_connections");
  CHECK(r.header("retry-after") == "1");
}

TEST_CASE("HTTP/1.0 clients get a streamed reply that ends with the connection") {
  Daemon& d = main_daemon();
  const std::string body = completion_body("Once upon a time", 6, true);
  const std::string raw = raw_http_exchange("127.0.0.1", d.port(),
                                            "POST /v1/completions HTTP/1.0\r\nAuthorization: Bearer " + std::string(kApiKey) +
                                                "\r\nContent-Type: application/json\r\nContent-Length: " +
                                                std::to_string(body.size()) + "\r\n\r\n" + body);
  CHECK(raw.rfind("HTTP/1.0 200", 0) == 0);
  CHECK(raw.find("Transfer-Encoding: chunked") == std::string::npos);
  CHECK(raw.size() >= 14);
  CHECK(raw.substr(raw.size() - 14) == "data: [DONE]\n\n");
}

TEST_CASE("pipelined requests are answered in order, a stream first") {
  Daemon& d = main_daemon();
  auto req = [](const std::string& body, bool close) {
    return "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + std::string(kApiKey) +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + (close ? "\r\nConnection: close" : "") + "\r\n\r\n" +
           body;
  };
  const std::string raw = raw_http_exchange(
      "127.0.0.1", d.port(),
      req(completion_body("Once upon a time", 5, true), false) + req(completion_body("The dog", 5, false), true));
  const size_t first = raw.find("HTTP/1.1 200");
  const size_t done = raw.find("data: [DONE]");
  const size_t second = raw.find("HTTP/1.1 200", first + 1);
  CHECK(first == 0);
  CHECK(done != std::string::npos);
  CHECK(second != std::string::npos);
  CHECK(done < second);
  CHECK(raw.find("\"object\":\"text_completion\"", second) != std::string::npos);
}

TEST_CASE("a client that pipelined more bytes and then left has its non-streaming request cancelled") {
  Daemon& d = main_daemon();
  const std::string aborted = "troupe_requests_aborted_total{model_name=\"" + d.service->model_name() +
                              "\",cause=\"client_disconnect\"}";
  const double aborted0 = metric_value(d.metrics(), aborted);
  // 16 long choices (the most a request may ask for), not streamed: nothing is written until
  // they are all done. On the Zen 5 host 8 of them finished in ~113 ms, before the client
  // below had left (session 28), so the test asks for as much work as it can and leaves soon.
  constexpr int kChoices = 16;
  const std::string body = json::serialize(json::object{{"prompt", "Once upon a time"}, {"max_tokens", 500},
                                                        {"ignore_eos", true}, {"n", kChoices}, {"temperature", 0.7}});
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket s(io);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), d.port()});
  boost::asio::write(s, boost::asio::buffer(raw_completion_request(body)));
  // Once the request runs, the client pipelines the next one (read by the disconnect watch)...
  wait_metrics(d, [&](const std::string& m) { return metric_value(m, "vllm_num_requests_running" + label(d)) >= 1; });
  boost::asio::write(s, boost::asio::buffer(std::string("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the watch takes those bytes in
  s.close();  // ...and leaves
  const std::string m = wait_metrics(d, [&](const std::string& t) {
    return metric_value(t, aborted) >= aborted0 + kChoices && metric_value(t, "vllm_num_requests_running" + label(d)) == 0;
  });
  CHECK(metric_value(m, aborted) == aborted0 + kChoices);  // every choice cancelled, none ran to its end
  CHECK(metric_value(m, "vllm_num_requests_running" + label(d)) == 0);
  CHECK(metric_value(m, "troupe_kv_cache_blocks_used" + label(d)) == 0);
}

namespace {

// Reads until the server closes (true) or `limit` passes (false).
bool closed_within(boost::asio::ip::tcp::socket& s, std::chrono::duration<double> limit) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(limit);
  char buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    boost::system::error_code ec;
    if (s.available(ec) == 0) {
      pollfd p{s.native_handle(), POLLIN, 0};
      ::poll(&p, 1, 50);
      if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
    }
    s.read_some(boost::asio::buffer(buf), ec);
    if (ec) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("headers have --header-timeout once a request begins; an idle keep-alive connection waits longer") {
  auto daemon = own_daemon([](ServerOptions& o, EngineConfig&) {
    o.header_timeout_s = 1;
    o.idle_timeout_s = 60;
  });
  Daemon& d = *daemon;
  boost::asio::io_context io;
  const boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), d.port());

  // Slowloris: a request that begins and never ends is cut after the header timeout.
  boost::asio::ip::tcp::socket slow(io);
  slow.connect(ep);
  boost::asio::write(slow, boost::asio::buffer(std::string("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")));
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(closed_within(slow, std::chrono::seconds(15)));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(took < 15);

  // An idle connection outlives the header timeout: it may still send a whole request.
  boost::asio::ip::tcp::socket idle(io);
  idle.connect(ep);
  CHECK_FALSE(closed_within(idle, std::chrono::milliseconds(2500)));
  const std::string reply = [&] {
    boost::asio::write(idle, boost::asio::buffer(std::string("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")));
    std::string got;
    char buf[4096];
    boost::system::error_code e;
    for (size_t n; (n = idle.read_some(boost::asio::buffer(buf), e)) > 0 || !e;) got.append(buf, n);
    return got;
  }();
  CHECK(reply.rfind("HTTP/1.1 200", 0) == 0);
}

TEST_CASE("--max-connections-per-ip: one address beyond the limit gets 503, and a slot frees when a connection closes") {
  auto daemon = own_daemon([](ServerOptions& o, EngineConfig&) { o.max_connections_per_ip = 2; });
  Daemon& d = *daemon;
  auto a = std::make_unique<HttpClient>("127.0.0.1", d.port());
  HttpClient b("127.0.0.1", d.port());
  REQUIRE(a->request("GET", "/health").status == 200);  // two kept-alive connections from 127.0.0.1
  REQUIRE(b.request("GET", "/health").status == 200);
  {
    HttpClient c("127.0.0.1", d.port());
    HttpResponse r = c.request("GET", "/health");
    CHECK(r.status == 503);
    CHECK(json::parse(r.body).at("error").at("code") == "too_many_connections");
  }
  a.reset();  // closes one: the next connection is welcome again
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {  // the server notices the close asynchronously
    HttpClient c("127.0.0.1", d.port());
    served = c.request("GET", "/health").status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(served);
}
