// Browser-origin safety (net/README.md "Safety"): the default daemon binds loopback without
// an API key, so web pages the user visits must not be able to drive it. WebSocket
// handshakes are checked against Origin (browsers send no preflight for them), CORS is off
// unless --allowed-origins asks for it and then answers preflights properly. (Host and
// Content-Type rejections are rows of the bad-input table.)
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "daemon.h"
#include "test_util.h"

using namespace troupe;
using namespace troupe::test;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

// The HTTP status of a WebSocket handshake to /v1/stream sending `origin` (none if empty)
// and `host` as the Host header: 101 when the upgrade is accepted.
int ws_handshake(uint16_t port, const std::string& origin, const std::string& host) {
  asio::io_context io;
  websocket::stream<tcp::socket> ws(io);
  ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  ws.set_option(websocket::stream_base::decorator([origin](websocket::request_type& r) {
    r.set(http::field::authorization, std::string("Bearer ") + kApiKey);
    if (!origin.empty()) r.set(http::field::origin, origin);
  }));
  websocket::response_type res;
  beast::error_code ec;
  ws.handshake(res, host, "/v1/stream", ec);
  return res.result_int();
}

HttpResponse request(uint16_t port, const std::string& method, const std::string& target, const Headers& headers,
                     const std::string& body = "") {
  HttpClient c("127.0.0.1", port, 30);
  return c.request(method, target, body, headers);
}

}  // namespace

TEST_CASE("WebSocket handshakes: same-origin, loopback and non-browser clients pass, other origins get 403",
          "[net][origin]") {
  Daemon& d = main_daemon();
  const std::string self = "127.0.0.1:" + std::to_string(d.port());
  CHECK(ws_handshake(d.port(), "", self) == 101);                              // not a browser
  CHECK(ws_handshake(d.port(), "http://" + self, self) == 101);                 // the playground page itself
  CHECK(ws_handshake(d.port(), "http://localhost:5173", self) == 101);          // a local dev server
  CHECK(ws_handshake(d.port(), "http://[::1]:3000", self) == 101);
  CHECK(ws_handshake(d.port(), "https://attacker.example", self) == 403);       // any web page
  CHECK(ws_handshake(d.port(), "null", self) == 403);                           // sandboxed frames, file://
  CHECK(ws_handshake(d.port(), "http://127.0.0.1.attacker.example", self) == 403);
  // DNS rebinding: the attacker's name resolves to 127.0.0.1, so the page is "same-origin",
  // but its Host names the attacker's domain.
  CHECK(ws_handshake(d.port(), "http://attacker.example:" + std::to_string(d.port()),
                     "attacker.example:" + std::to_string(d.port())) == 403);
}

TEST_CASE("without --allowed-origins there is no CORS: preflights get 403 and responses no CORS headers",
          "[net][origin]") {
  Daemon& d = main_daemon();
  HttpResponse pre = request(d.port(), "OPTIONS", "/v1/completions",
                             {{"Origin", "https://app.example"}, {"Access-Control-Request-Method", "POST"},
                              {"Access-Control-Request-Headers", "authorization, content-type"}});
  CHECK(pre.status == 403);
  CHECK(pre.header("access-control-allow-origin").empty());
  Headers h = auth_headers();
  h.push_back({"Origin", "https://app.example"});
  HttpResponse r = request(d.port(), "GET", "/v1/models", h);
  CHECK(r.status == 200);
  CHECK(r.header("access-control-allow-origin").empty());
}

TEST_CASE("--allowed-origins: those origins get CORS and WebSockets, others still do not", "[net][origin]") {
  auto daemon = own_daemon([](ServerOptions& o, EngineConfig&) {
    o.allowed_origins = {"https://app.example", "http://tools.example:8080"};
  });
  Daemon& d = *daemon;
  const std::string self = "127.0.0.1:" + std::to_string(d.port());

  HttpResponse pre = request(d.port(), "OPTIONS", "/v1/chat/completions",
                             {{"Origin", "https://app.example"}, {"Access-Control-Request-Method", "POST"},
                              {"Access-Control-Request-Headers", "authorization, content-type, x-stainless-os"}});
  CHECK(pre.status == 204);
  CHECK(pre.header("access-control-allow-origin") == "https://app.example");
  CHECK(pre.header("access-control-allow-methods").find("POST") != std::string::npos);
  CHECK(pre.header("access-control-allow-headers") == "authorization, content-type, x-stainless-os");
  CHECK(pre.header("vary") == "Origin");
  CHECK(!pre.header("access-control-max-age").empty());

  Headers h = auth_headers();
  h.push_back({"Origin", "https://app.example"});
  HttpResponse r = request(d.port(), "POST", "/v1/completions", h, R"({"prompt": "Once", "max_tokens": 2})");
  CHECK(r.status == 200);
  CHECK(r.header("access-control-allow-origin") == "https://app.example");

  HttpResponse other = request(d.port(), "OPTIONS", "/v1/completions",
                               {{"Origin", "https://attacker.example"}, {"Access-Control-Request-Method", "POST"}});
  CHECK(other.status == 403);
  CHECK(other.header("access-control-allow-origin").empty());

  CHECK(ws_handshake(d.port(), "https://app.example", self) == 101);
  CHECK(ws_handshake(d.port(), "http://tools.example:8080", self) == 101);
  CHECK(ws_handshake(d.port(), "http://tools.example:9090", self) == 403);  // another port is another origin
  CHECK(ws_handshake(d.port(), "https://attacker.example", self) == 403);
  // A listed origin's host may also be the Host (a reverse proxy that keeps it).
  CHECK(ws_handshake(d.port(), "https://app.example", "app.example") == 101);
}
