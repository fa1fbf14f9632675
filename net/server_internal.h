#pragma once
// Internal to the server translation units (server.cpp: listener + HTTP sessions;
// ws_session.cpp: WebSocket sessions). Kept to two TUs because Beast is slow to compile
// (what needs no Beast is in session_registry.h).
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <string>
#include <string_view>
#include <utility>

#include "net/origin_policy.h"
#include "net/server.h"
#include "net/service.h"
#include "net/session_registry.h"

namespace troupe::net_detail {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct ServerCtx {
  ServerCtx(ServerOptions o, Service& s)
      : opts(std::move(o)), service(s), origins(opts.host, opts.allowed_origins), output(opts.max_queued_output_bytes) {}
  ServerOptions opts;
  Service& service;
  OriginPolicy origins;
  std::atomic<int> connections{0};
  ConnectionsPerIp per_ip;
  std::atomic<int> requests_in_flight{0};
  std::atomic<bool> draining{false};  // a shutdown began: no new work, no keep-alive
  std::atomic<bool> closing{false};   // the shutdown's last step: idle connections close
  OutputBudget output;
  SessionRegistry sessions;
};

asio::ip::address peer_address(const tcp::socket& s);

// The 503 every request gets once the server is shutting down.
ApiError shutting_down_error();

// Takes over an HTTP connection whose request asked to upgrade to /v1/stream; `early` holds
// bytes that arrived after the request (the client's first frames).
void start_websocket(ServerCtx& ctx, beast::tcp_stream&& stream, http::request<http::string_body>&& req,
                     std::string early);

// Constant-time comparison of the presented key with the configured one.
bool key_matches(std::string_view presented, const std::string& expected);

// The playground page (net/static/playground.html, embedded at build time).
std::string_view playground_html();

}  // namespace troupe::net_detail
