// The metrics' values, not just their names: each counter moves by what the documented
// behaviour says it should (net/README.md, net/metrics.cpp).
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "daemon.h"
#include "test_util.h"

using namespace troupe;
using namespace troupe::test;
namespace json = boost::json;

namespace {

double value(const Daemon& d, const std::string& m, const std::string& name) { return metric_value(m, name + label(d)); }

// Greedy completions that run to max_tokens.
std::string body(const std::string& prompt, int max_tokens, bool stream = false) {
  return completion_body(prompt, max_tokens, stream, /*ignore_eos=*/true);
}

const std::string kLongPrompt =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park "
    "with her friends. One day, she saw a big red ball under a tree and she ran to get it. "
    "Her brother Tom came too, and they played with the ball until the sun went down.";

// A WebSocket client of /v1/stream (docs/websocket.md): one JSON object per text frame.
struct WsClient {
  boost::asio::io_context io;
  boost::beast::websocket::stream<boost::asio::ip::tcp::socket> ws{io};
  explicit WsClient(uint16_t port) {
    namespace beast = boost::beast;
    boost::asio::ip::tcp::resolver resolver(io);
    boost::asio::connect(ws.next_layer(), resolver.resolve("127.0.0.1", std::to_string(port)));
    ws.set_option(beast::websocket::stream_base::decorator([](beast::websocket::request_type& req) {
      req.set(beast::http::field::authorization, std::string("Bearer ") + kApiKey);
    }));
    ws.handshake("127.0.0.1", "/v1/stream");
  }
  void send(const json::object& o) { ws.write(boost::asio::buffer(json::serialize(o))); }
  json::object next() {
    boost::beast::flat_buffer b;
    ws.read(b);
    return json::parse(boost::beast::buffers_to_string(b.data())).as_object();
  }
  void close() { ws.close(boost::beast::websocket::close_code::normal); }
};

ServerOptions server_opts() {
  ServerOptions o;
  o.port = 0;
  o.api_key = kApiKey;
  return o;
}

}  // namespace

TEST_CASE("metrics: a repeated prompt's full blocks count as prefix-cache hits", "[net][metrics]") {
  Daemon& d = main_daemon();
  // A prompt no other test sends, so the first request misses (apart from warmup prefixes).
  const std::string prompt = kLongPrompt + " The prefix metric test ends here.";
  auto r1 = d.post("/v1/completions", body(prompt, 2));
  REQUIRE(r1.status == 200);
  const int64_t n = json::parse(r1.body).at("usage").at("prompt_tokens").as_int64();
  REQUIRE(n >= 48);
  const std::string m1 = d.metrics();
  REQUIRE(d.post("/v1/completions", body(prompt, 2)).status == 200);
  const std::string m2 = d.metrics();
  const double hits = value(d, m2, "vllm_prefix_cache_hits_total") - value(d, m1, "vllm_prefix_cache_hits_total");
  const double queries =
      value(d, m2, "vllm_prefix_cache_queries_total") - value(d, m1, "vllm_prefix_cache_queries_total");
  INFO("prompt " << n << " tokens, hits +" << hits << ", queries +" << queries);
  CHECK(queries == double(n));
  // Every full block of the prompt, except that the last prompt token must be computed
  // (so an exact multiple of the block size loses its last block).
  const int64_t bs = 16;
  CHECK(hits == double((n - 1) / bs * bs));
  const double rate = value(d, m2, "vllm_gpu_prefix_cache_hit_rate");
  CHECK(rate > 0);
  CHECK(rate <= 1);
}

TEST_CASE("metrics: a tiny KV pool preempts, and every request still completes", "[net][metrics][preemption]") {
  ServiceOptions so;
  so.model_path = model_path("tinystories-656k");
  EngineConfig ec;
  ec.model = so.model_path;
  ec.kv.block_size = 4;
  ec.max_model_len = 200;
  // 384 KiB of KV: 96 blocks of 4 tokens (troupe_kv_cache_blocks) = 384 tokens, far less
  // than 6 sequences of ~180 tokens, even with their ~60-token prompt shared.
  ec.kv.kv_cache_bytes = 48 * 4 * 2048;
  Daemon d(so, server_opts(), ec);
  const std::string m0 = d.metrics();
  REQUIRE(value(d, m0, "vllm_num_preemptions_total") == 0);
  // One request with n = 6 choices: six sequences enter the engine together, whatever the
  // machine's load does to client threads.
  constexpr int kChoices = 6;
  json::object o{{"prompt", kLongPrompt}, {"max_tokens", 120}, {"temperature", 0.8}, {"seed", 7},
                 {"ignore_eos", true}, {"n", kChoices}};
  auto r = d.post("/v1/completions", json::serialize(o));
  REQUIRE(r.status == 200);
  const auto v = json::parse(r.body);
  REQUIRE(v.at("choices").as_array().size() == size_t(kChoices));
  for (const auto& ch : v.at("choices").as_array()) CHECK(ch.at("finish_reason") == "length");
  CHECK(v.at("usage").at("completion_tokens").as_int64() == 120 * kChoices);
  const std::string m = d.metrics();
  CHECK(value(d, m, "vllm_num_preemptions_total") > 0);
  CHECK(metric_value(m, "vllm_request_success_total{model_name=\"" + d.service->model_name() +
                            "\",finished_reason=\"length\"}") == kChoices);
  CHECK(value(d, m, "troupe_kv_cache_blocks_used") == 0);
}

TEST_CASE("metrics: a disconnected stream counts once, under client_disconnect only", "[net][metrics][abort]") {
  Daemon& d = main_daemon();
  const std::string by_cause = "troupe_requests_aborted_total{model_name=\"" + d.service->model_name() + "\",cause=\"";
  const std::string before = d.metrics();
  const double cancelled0 = value(d, before, "troupe_engine_requests_cancelled_total");
  const double abort0 = metric_value(before, "vllm_request_success_total{model_name=\"" + d.service->model_name() +
                                                 "\",finished_reason=\"abort\"}");
  Streamed s = stream_completion(d.port(), body("Once upon a time", 400, true), /*stop_after=*/2);
  CHECK(s.status == 200);
  CHECK_FALSE(s.done);
  // The final (cancelled) event reaches the service's sink after the scheduler retired the
  // sequence: wait for both, so later tests see no late observation either.
  const std::string m = wait_metrics(d, [&](const std::string& t) {
    return value(d, t, "troupe_engine_requests_cancelled_total") >= cancelled0 + 1 &&
           value(d, t, "vllm_num_requests_running") == 0 &&
           metric_value(t, "vllm_request_success_total{model_name=\"" + d.service->model_name() +
                               "\",finished_reason=\"abort\"}") >= abort0 + 1;
  });
  CHECK(metric_value(m, by_cause + "client_disconnect\"}") == metric_value(before, by_cause + "client_disconnect\"}") + 1);
  for (const char* c : {"client_cancel", "shutdown", "error"}) {
    INFO(c);
    CHECK(metric_value(m, by_cause + c + "\"}") == metric_value(before, by_cause + c + "\"}"));
  }
  CHECK(value(d, m, "troupe_engine_requests_cancelled_total") == cancelled0 + 1);
  CHECK(metric_value(m, "vllm_request_success_total{model_name=\"" + d.service->model_name() +
                            "\",finished_reason=\"abort\"}") == abort0 + 1);
}

TEST_CASE("metrics: a WebSocket cancel counts under client_cancel", "[net][metrics][abort]") {
  Daemon& d = main_daemon();
  const std::string by_cause = "troupe_requests_aborted_total{model_name=\"" + d.service->model_name() + "\",cause=\"";
  const std::string before = d.metrics();
  const double abort0 = metric_value(before, "vllm_request_success_total{model_name=\"" + d.service->model_name() +
                                                 "\",finished_reason=\"abort\"}");
  WsClient ws(d.port());
  ws.send({{"type", "generate"}, {"id", "c1"}, {"prompt", "Once upon a time"}, {"max_tokens", 400}, {"ignore_eos", true}});
  json::object msg = ws.next();
  REQUIRE(msg.at("type") == "token");
  ws.send({{"type", "cancel"}, {"id", "c1"}});
  while (msg.at("type") == "token") msg = ws.next();
  CHECK(msg.at("type") == "done");
  CHECK(msg.at("finish_reason") == "cancelled");
  ws.close();
  const std::string m = wait_metrics(d, [&](const std::string& t) {
    return metric_value(t, "vllm_request_success_total{model_name=\"" + d.service->model_name() +
                               "\",finished_reason=\"abort\"}") >= abort0 + 1 &&
           value(d, t, "vllm_num_requests_running") == 0;
  });
  CHECK(metric_value(m, by_cause + "client_cancel\"}") == metric_value(before, by_cause + "client_cancel\"}") + 1);
  for (const char* c : {"client_disconnect", "shutdown", "error"}) {
    INFO(c);
    CHECK(metric_value(m, by_cause + c + "\"}") == metric_value(before, by_cause + c + "\"}"));
  }
}

TEST_CASE("metrics: the TTFT histogram counts each completed request exactly once", "[net][metrics][ttft]") {
  Daemon& d = main_daemon();
  const std::string m0 = d.metrics();
  const double c0 = value(d, m0, "vllm_time_to_first_token_seconds_count");
  const double e0 = value(d, m0, "vllm_e2e_request_latency_seconds_count");
  REQUIRE(d.post("/v1/completions", body("The dog ran", 5)).status == 200);
  REQUIRE(stream_completion(d.port(), body("The cat sat", 5, true)).done);
  REQUIRE(d.post("/v1/completions", body("Tom had a ball", 1)).status == 200);  // first token = last
  const std::string m = d.metrics();
  CHECK(value(d, m, "vllm_time_to_first_token_seconds_count") == c0 + 3);
  CHECK(value(d, m, "vllm_e2e_request_latency_seconds_count") == e0 + 3);
  // The +Inf bucket agrees with _count, and the sum grew by something positive.
  CHECK(metric_value(m, "vllm_time_to_first_token_seconds_bucket{model_name=\"" + d.service->model_name() +
                            "\",le=\"+Inf\"}") == c0 + 3);
  CHECK(value(d, m, "vllm_time_to_first_token_seconds_sum") > value(d, m0, "vllm_time_to_first_token_seconds_sum"));
}

TEST_CASE("metrics: ngram speculation's accepted tokens are consistent with its drafts", "[net][metrics][spec]") {
  ServiceOptions so;
  so.model_path = model_path("tinystories-656k");
  EngineConfig ec;
  ec.model = so.model_path;
  ec.speculative.method = "ngram";
  ec.speculative.num_speculative_tokens = 3;
  ec.speculative.adaptive = false;  // always draft when the n-gram matches
  ec.speculative.calibrate = false;
  Daemon d(so, server_opts(), ec);
  const std::string m0 = d.metrics();
  REQUIRE(value(d, m0, "vllm_spec_decode_num_drafts_total") == 0);
  // A prompt that repeats itself: the n-gram proposer finds matches, and greedy TinyStories
  // text keeps repeating.
  // Over the WebSocket, whose `done` carries the request's own spec_decode usage.
  WsClient ws(d.port());
  ws.send({{"type", "generate"}, {"id", 1}, {"max_tokens", 120}, {"ignore_eos", true}, {"temperature", 0},
           {"prompt", "Lily said, \"I like the ball. I like the ball. I like the ball. I like the ball."}});
  json::object done = ws.next();
  while (done.at("type") == "token") done = ws.next();
  REQUIRE(done.at("type") == "done");
  ws.close();
  const json::object& usage = done.at("usage").as_object();
  const int64_t completion = usage.at("completion_tokens").as_int64();
  CHECK(completion == 120);
  const std::string m = d.metrics();
  const double drafts = value(d, m, "vllm_spec_decode_num_drafts_total");
  const double draft_tokens = value(d, m, "vllm_spec_decode_num_draft_tokens_total");
  const double accepted = value(d, m, "vllm_spec_decode_num_accepted_tokens_total");
  INFO("drafts " << drafts << ", draft tokens " << draft_tokens << ", accepted " << accepted);
  REQUIRE(drafts > 0);
  CHECK(draft_tokens >= drafts);
  CHECK(draft_tokens <= 3 * drafts);
  CHECK(accepted > 0);
  CHECK(accepted <= draft_tokens);
  CHECK(accepted < double(completion));  // each verification step also makes one token of its own
  // Per position: position i counts acceptances of the i-th draft, so they sum to the total
  // and never grow with the position (a draft is accepted only after all before it).
  double sum = 0, prev = accepted;
  for (int i = 0; i < 3; ++i) {
    const double a = metric_value(m, "vllm_spec_decode_num_accepted_tokens_per_pos_total{model_name=\"" +
                                         d.service->model_name() + "\",position=\"" + std::to_string(i) + "\"}");
    INFO("position " << i);
    CHECK(a >= 0);
    CHECK(a <= prev);
    prev = a;
    sum += a;
  }
  CHECK(sum == accepted);
  CHECK(value(d, m, "vllm_spec_decode_draft_acceptance_rate") == Approx(accepted / draft_tokens));
  // docs/websocket.md: /metrics has the same as the requests' usage, summed (one request here).
  REQUIRE(usage.contains("spec_decode"));
  const json::object& sd = usage.at("spec_decode").as_object();
  CHECK(sd.at("num_drafts").to_number<double>() == drafts);
  CHECK(sd.at("num_draft_tokens").to_number<double>() == draft_tokens);
  CHECK(sd.at("num_accepted_tokens").to_number<double>() == accepted);
  CHECK(sd.at("mean_accepted_length").to_number<double>() == Approx(1 + accepted / drafts));
}

TEST_CASE("metrics: --heartbeat-interval runs heartbeat requests while idle", "[net][metrics][heartbeat]") {
  ServiceOptions so;
  so.model_path = model_path("tinystories-656k");
  so.heartbeat_interval_s = 0.1;
  EngineConfig ec;
  ec.model = so.model_path;
  Daemon d(so, server_opts(), ec);
  const std::string m0 = d.metrics();
  // No client request at all: only heartbeats can step the engine.
  const std::string m = wait_metrics(d, [&](const std::string& t) {
    return value(d, t, "troupe_engine_steps_total") >= value(d, m0, "troupe_engine_steps_total") + 4;
  }, 10);
  CHECK(value(d, m, "troupe_engine_steps_total") >= value(d, m0, "troupe_engine_steps_total") + 4);
  // Heartbeats are the service's own requests: no client metric counts them.
  CHECK(value(d, m, "vllm_e2e_request_latency_seconds_count") == 0);
  CHECK(value(d, m, "vllm_generation_tokens_total") == 0);

  // Without the flag an idle daemon does not step.
  so.heartbeat_interval_s = 0;
  Daemon quiet(so, server_opts(), ec);
  const double s0 = value(quiet, quiet.metrics(), "troupe_engine_steps_total");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(value(quiet, quiet.metrics(), "troupe_engine_steps_total") == s0);
}
