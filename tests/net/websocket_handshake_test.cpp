// The WebSocket handshake at the HTTP edge: a handshake Beast would refuse gets an
// OpenAI-style JSON error counted under its real status (not 101), and frames a client
// sends right behind its handshake, without waiting for the 101, are not lost.
#include <poll.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "daemon.h"

using namespace troupe;
using namespace troupe::test;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

std::string handshake(uint16_t port, const std::string& key, const std::string& version) {
  return "GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
         "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer " + kApiKey +
         (key.empty() ? "" : "\r\nSec-WebSocket-Key: " + key) + "\r\nSec-WebSocket-Version: " + version + "\r\n\r\n";
}

// A client-to-server text frame (masked, as RFC 6455 requires of clients); payload < 126 bytes.
std::string text_frame(const std::string& payload) {
  const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
  std::string f;
  f += char(0x81);
  f += char(0x80 | payload.size());
  f.append(reinterpret_cast<const char*>(mask), 4);
  for (size_t i = 0; i < payload.size(); ++i) f += char(payload[i] ^ mask[i % 4]);
  return f;
}

// Reads until `needle` shows up or `limit` passes; everything read.
std::string read_for(tcp::socket& s, const std::string& needle, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  std::string got;
  char buf[4096];
  while (got.find(needle) == std::string::npos && std::chrono::steady_clock::now() < end) {
    pollfd p{s.native_handle(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    boost::system::error_code ec;
    const size_t n = s.read_some(asio::buffer(buf), ec);
    got.append(buf, n);
    if (ec) break;
  }
  return got;
}

double responses(const Daemon& d, int code) {
  const double v = metric_value(d.metrics(), "troupe_http_responses_total{model_name=\"" + d.service->model_name() +
                                                 "\",code=\"" + std::to_string(code) + "\"}");
  return v < 0 ? 0 : v;
}

}  // namespace

TEST_CASE("frames sent right behind the WebSocket handshake reach the session", "[net][websocket]") {
  Daemon& d = main_daemon();
  asio::io_context io;
  tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), d.port()});
  asio::write(s, asio::buffer(handshake(d.port(), "dGhlIHNhbXBsZSBub25jZQ==", "13") +
                              text_frame(R"({"type": "ping", "id": "early"})")));
  const std::string got = read_for(s, "\"pong\"", std::chrono::seconds(20));
  CHECK(got.rfind("HTTP/1.1 101", 0) == 0);
  CHECK(got.find(R"({"type":"pong","id":"early"})") != std::string::npos);
}

TEST_CASE("a handshake Beast would refuse gets a JSON error under its real status", "[net][websocket]") {
  Daemon& d = main_daemon();
  struct Case {
    const char* name;
    std::string key, version;
    int status;
  };
  for (const Case& c : {Case{"old version", "dGhlIHNhbXBsZSBub25jZQ==", "8", 426},
                        Case{"no key", "", "13", 400},
                        Case{"key too long", std::string(40, 'A'), "13", 400}}) {
    INFO(c.name);
    const double ws0 = responses(d, 101), st0 = responses(d, c.status);
    const std::string raw = raw_http_exchange("127.0.0.1", d.port(), handshake(d.port(), c.key, c.version));
    CHECK(raw.rfind("HTTP/1.1 " + std::to_string(c.status), 0) == 0);
    const std::string body = raw.substr(raw.find("\r\n\r\n") + 4);
    boost::system::error_code ec;
    const auto v = boost::json::parse(body, ec);
    REQUIRE(!ec);
    CHECK(v.at("error").at("message").is_string());
    CHECK(responses(d, 101) == ws0);
    CHECK(responses(d, c.status) == st0 + 1);
  }
}
