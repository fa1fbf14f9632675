#pragma once
// Internal to the server translation units (server.cpp: listener + HTTP sessions;
// ws_session.cpp: WebSocket sessions). Kept to two TUs because Beast is slow to compile.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <string>
#include <string_view>

#include "net/server.h"
#include "net/service.h"

namespace troupe::net_detail {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct ServerCtx {
  ServerOptions opts;
  Service& service;
  std::atomic<int> connections{0};
};

// Takes over an HTTP connection whose request asked to upgrade to /v1/stream.
void start_websocket(ServerCtx& ctx, beast::tcp_stream&& stream, http::request<http::string_body>&& req);

// Constant-time comparison of the presented key with the configured one.
bool key_matches(std::string_view presented, const std::string& expected);

// The playground page (net/static/playground.html, embedded at build time).
std::string_view playground_html();

}  // namespace troupe::net_detail
