// Stopping the daemon (net/README.md "Shutdown"): SIGTERM drains (requests in flight finish,
// /health says "stopping", new requests get 503), the shutdown timeout ends what is left with
// a terminal error the client can tell from a cut connection, a signal during warmup stops
// the process promptly and one while the model loads at once, and the default warmup keeps a
// broken model from ever serving.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <limits>
#include <string>
#include <thread>

#include "daemon.h"
#include "serve_process.h"
#include "test_util.h"

using namespace troupe;
using namespace troupe::test;
namespace asio = boost::asio;
namespace json = boost::json;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// How often `needle` occurs in `text`.
size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) n++;
  return n;
}

HttpResponse try_request(uint16_t port, const std::string& method, const std::string& target, const std::string& body = "") {
  try {
    HttpClient c("127.0.0.1", port, 10);
    return c.request(method, target, body);
  } catch (const std::exception& e) {
    return HttpResponse{0, {}, e.what()};  // refused or cut: the daemon is gone
  }
}

// Reads from `s` until `done(all bytes so far)` holds, EOF, or `limit` passes.
std::string read_until(tcp::socket& s, std::chrono::duration<double> limit,
                       const std::function<bool(const std::string&)>& done, std::string got = "") {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(limit);
  char buf[65536];
  while (!done(got) && Clock::now() < end) {
    boost::system::error_code ec;
    if (s.available(ec) == 0) {  // poll, so a daemon that never answers fails the test instead of hanging it
      pollfd p{s.native_handle(), POLLIN, 0};
      ::poll(&p, 1, 100);
      if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
    }
    const size_t n = s.read_some(asio::buffer(buf), ec);
    got.append(buf, n);
    if (ec) break;
  }
  return got;
}

// A copy of tinystories-656k whose every weight is NaN: it loads fine and produces NaN logits.
std::string nan_model(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path src = model_path("tinystories-656k"), dst = fs::path(dir) / "nan-model";
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src)) fs::copy_file(e.path(), dst / e.path().filename());
  std::string bytes = read_file((dst / "model.safetensors").string());
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (size_t at = 8 + header; at + 4 <= bytes.size(); at += 4) std::memcpy(&bytes[at], &nan, 4);
  std::ofstream(dst / "model.safetensors", std::ios::binary) << bytes;
  return dst.string();
}

}  // namespace

TEST_CASE("SIGTERM drains: streams in flight finish, /health says stopping, new requests get 503", "[net][shutdown]") {
  const std::string dir = temp_dir("shutdown-drain");
  // Every SSE chunk names the model: a long name makes the stream below far larger than
  // the socket buffers, so it stays in flight for as long as the client does not read.
  const std::string name = "drain-" + std::string(4000, 'x');
  // The ~31 MB of the stream stay queued while the client pauses: room for them, or the
  // per-connection cap (8 MiB by default) would drop this reader (slow_reader_test.cpp).
  ServeProcess serve({"--model", model_path("tinystories-656k"), "--served-model-name", name,
                      "--max-queued-output-bytes-per-connection", std::to_string(48 << 20)},
                     dir + "/serve.log");
  const uint16_t port = serve.port();

  asio::io_context io;
  tcp::socket s(io);
  s.open(tcp::v4());
  s.set_option(asio::socket_base::receive_buffer_size(4096));
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  const std::string body = json::serialize(json::object{
      {"prompt", "Once upon a time"}, {"n", 16}, {"max_tokens", 480}, {"ignore_eos", true}, {"stream", true}});
  asio::write(s, asio::buffer(raw_completion_request(body)));
  // The stream has started; the client now stops reading for a while.
  std::string got = read_until(s, std::chrono::seconds(30), [](const std::string& t) { return t.find("data: ") != std::string::npos; });
  REQUIRE(got.rfind("HTTP/1.1 200", 0) == 0);

  serve.signal(SIGTERM);
  // Draining: the daemon still answers, but only to say so.
  HttpResponse health;
  for (int i = 0; i < 100 && health.status != 503; ++i) {
    health = try_request(port, "GET", "/health");
    if (health.status != 503) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  INFO(serve.log_text().substr(0, 2000));
  CHECK(health.status == 503);
  CHECK(health.body.find("\"stopping\"") != std::string::npos);
  const HttpResponse late = try_request(port, "POST", "/v1/completions", R"({"prompt": "Once", "max_tokens": 2})");
  CHECK(late.status == 503);
  CHECK(late.body.find("shutting_down") != std::string::npos);
  CHECK(late.header("connection") == "close");
  CHECK_FALSE(serve.wait_exit(std::chrono::milliseconds(200)));  // still waiting for our stream

  // The client reads on: the whole stream, every choice finished normally, then [DONE].
  got = read_until(s, std::chrono::seconds(60), [](const std::string&) { return false; }, got);
  CHECK(count(got, "\"finish_reason\":\"length\"") == 16);
  CHECK(count(got, "\"error\"") == 0);
  CHECK(got.find("data: [DONE]") != std::string::npos);
  CHECK(serve.wait_exit(std::chrono::seconds(30)));
  CHECK(serve.exit_code() == 0);
}

TEST_CASE("the shutdown timeout ends unfinished requests with terminal errors, counted as shutdown aborts",
          "[net][shutdown]") {
  // A KV pool for ~1000 tokens: once the WebSocket's requests (priority 0) arrive, the
  // stream (priority 1) is preempted and waits behind ~30k tokens of their work.
  auto daemon = own_daemon([](ServerOptions&, EngineConfig& ec) { ec.kv.kv_cache_bytes = 1 << 20; });
  Daemon& d = *daemon;

  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), d.port()));
  const std::string body = json::serialize(json::object{
      {"prompt", "Once upon a time"}, {"max_tokens", 480}, {"ignore_eos", true}, {"priority", 1}, {"stream", true}});
  asio::write(s, asio::buffer(raw_completion_request(body)));
  std::string sse = read_until(s, std::chrono::seconds(30), [](const std::string& t) { return t.find("data: ") != std::string::npos; });
  REQUIRE(sse.rfind("HTTP/1.1 200", 0) == 0);

  websocket::stream<tcp::socket> ws(io);
  ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), d.port()));
  ws.set_option(websocket::stream_base::decorator([](websocket::request_type& r) {
    r.set(boost::beast::http::field::authorization, std::string("Bearer ") + kApiKey);
  }));
  ws.handshake("127.0.0.1", "/v1/stream");
  constexpr int kWsRequests = 64;
  for (int i = 0; i < kWsRequests; ++i)
    ws.write(asio::buffer(json::serialize(json::object{
        {"type", "generate"}, {"id", i}, {"prompt", "Once upon a time"}, {"max_tokens", 480}, {"ignore_eos", true}})));

  int ws_errors = 0, ws_done = 0;
  int close_code = 0;
  // Messages are handled in order: the pong says all 64 requests are in the engine.
  ws.write(asio::buffer(std::string(R"({"type": "ping"})")));
  for (bool pong = false; !pong;) {
    boost::beast::flat_buffer b;
    ws.read(b);
    const json::value m = json::parse(boost::beast::buffers_to_string(b.data()));
    pong = m.at("type") == "pong";
    ws_done += m.at("type") == "done";
  }

  // Timeout 0: everything still in flight is ended at once.
  auto ended = std::async(std::launch::async, [&d] { return d.server->shutdown(std::chrono::seconds(0)); });
  for (;;) {
    boost::beast::flat_buffer b;
    boost::system::error_code ec;
    ws.read(b, ec);
    if (ec) {
      if (ec == websocket::error::closed) close_code = int(ws.reason().code);
      break;
    }
    const json::value m = json::parse(boost::beast::buffers_to_string(b.data()));
    if (m.at("type") == "error") {
      CHECK(m.at("code") == 503);
      ws_errors++;
    }
    if (m.at("type") == "done") ws_done++;
  }
  sse = read_until(s, std::chrono::seconds(30), [](const std::string&) { return false; }, sse);
  const int ended_count = ended.get();

  INFO("SSE tail: " << sse.substr(sse.size() > 600 ? sse.size() - 600 : 0));
  CHECK(close_code == 1001);                        // going away
  CHECK(ws_errors + ws_done == kWsRequests);        // every request got a terminal message
  CHECK(ws_errors > 0);
  CHECK(count(sse, "\"code\":\"shutting_down\"") == 1);  // the stream's terminal error event...
  CHECK(sse.find("data: [DONE]") > sse.find("shutting_down"));  // ...then [DONE]
  CHECK(sse.find("data: [DONE]") != std::string::npos);
  CHECK(count(sse, "\"finish_reason\":\"length\"") == 0);
  CHECK(ended_count == ws_errors + 1);
  const std::string m = d.service->metrics().render(nullptr, false);
  CHECK(metric_value(m, "troupe_requests_aborted_total{model_name=\"" + d.service->model_name() +
                            "\",cause=\"shutdown\"}") == ws_errors + 1);
}

TEST_CASE("a signal during warmup stops the daemon promptly", "[net][shutdown]") {
  const std::string dir = temp_dir("shutdown-warmup");
  // Thousands of warmup requests: many seconds of warmup on any machine.
  ServeProcess serve({"--model", model_path("tinystories-656k"), "--warmup", "10000"}, dir + "/serve.log",
                     /*wait_ready=*/false);
  HttpResponse health;
  for (int i = 0; i < 600 && health.body.find("warming_up") == std::string::npos; ++i) {
    health = try_request(serve.port(), "GET", "/health");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(health.body.find("warming_up") != std::string::npos);
  const auto t0 = Clock::now();
  serve.signal(SIGTERM);
  const bool exited = serve.wait_exit(std::chrono::seconds(5));
  INFO(serve.log_text());
  INFO("exited after " << std::chrono::duration<double>(Clock::now() - t0).count() << " s");
  CHECK(exited);
  CHECK(serve.exit_code() == 0);
  CHECK(serve.log_text().find("cold-start ratio") == std::string::npos);  // the warmup did not run to its end
}

// A copy of tinystories-656k (links) whose config.json is a FIFO nobody writes to: loading it
// blocks in open() for good, like a load from a hung network disk. Deterministic and instant,
// where a model big enough to load slowly would cost seconds of disk in every run.
std::string hanging_model(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path dst = fs::path(dir) / "hanging-model";
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(model_path("tinystories-656k")))
    if (e.path().filename() != "config.json") fs::create_symlink(e.path(), dst / e.path().filename());
  REQUIRE(::mkfifo((dst / "config.json").c_str(), 0644) == 0);
  return dst.string();
}

TEST_CASE("a signal while the model loads stops the daemon at once", "[net][shutdown]") {
  const std::string dir = temp_dir("shutdown-loading");
  ServeProcess serve({"--model", hanging_model(dir)}, dir + "/serve.log", /*wait_ready=*/false);
  const HttpResponse health = try_request(serve.port(), "GET", "/health");
  REQUIRE(health.status == 503);
  REQUIRE(health.body.find("\"loading\"") != std::string::npos);
  const auto t0 = Clock::now();
  serve.signal(SIGTERM);
  // The load never ends, so the process must not wait for it (it used to wait 2 s first).
  const bool exited = serve.wait_exit(std::chrono::seconds(1));
  INFO(serve.log_text());
  INFO("exited after " << std::chrono::duration<double>(Clock::now() - t0).count() << " s");
  CHECK(exited);
  CHECK(serve.exit_code() == 0);
  CHECK(serve.log_text().find("signal 15 while the model loads: stopping") != std::string::npos);
}

TEST_CASE("a SIGTERM that lands on a thread not blocking it still stops the daemon cleanly", "[net][shutdown]") {
  const std::string dir = temp_dir("shutdown-stray");
  ServeProcess serve({"--model", hanging_model(dir)}, dir + "/serve.log", /*wait_ready=*/false);
  // That used to kill the process (the default action) instead of stopping it.
  if (!send_stray_sigterm(serve.pid(), "troupe serve")) return;
  const bool exited = serve.wait_exit(std::chrono::seconds(2));
  INFO(serve.log_text());
  CHECK(exited);
  CHECK(serve.exit_code() == 0);
  CHECK(serve.log_text().find("signal 15 while the model loads: stopping") != std::string::npos);
}

TEST_CASE("serve warms up by default: a model with NaN weights fails at startup", "[net][shutdown]") {
  const std::string dir = temp_dir("warmup-nan");
  ServeProcess serve({"--model", nan_model(dir)}, dir + "/serve.log", /*wait_ready=*/false);
  const bool exited = serve.wait_exit(std::chrono::seconds(60));
  INFO(serve.log_text());
  CHECK(exited);
  CHECK(serve.exit_code() == 1);
  CHECK(serve.log_text().find("warmup request failed") != std::string::npos);
  CHECK(serve.log_text().find("nan") != std::string::npos);
}
