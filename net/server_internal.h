#pragma once
// Internal to the server translation units (server.cpp: listener + HTTP sessions;
// ws_session.cpp: WebSocket sessions). Kept to two TUs because Beast is slow to compile.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <utility>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "net/origin_policy.h"
#include "net/server.h"
#include "net/service.h"

namespace troupe::net_detail {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// The steps of a graceful shutdown (Server::shutdown), as each session hears them. Sessions
// are told on whatever thread runs the shutdown and post the work to their own strand.
enum class ShutdownStep {
  Drain,  // no new work: requests get 503, responses close their connection; WebSockets close
          // (1001) once their last request is done
  Abort,  // the timeout passed: unfinished requests end with a terminal error (SSE: an error
          // event and [DONE]; JSON: 503; WebSocket: an `error` each, then close 1001)
  Close,  // close idle connections; the rest close once their last bytes are written
};

class ShutdownListener {
 public:
  virtual ~ShutdownListener() = default;
  virtual void on_shutdown(ShutdownStep step) = 0;
};

// Every open session, so a shutdown can reach them. Weak: a session's lifetime is its own.
class SessionRegistry {
 public:
  void add(std::weak_ptr<ShutdownListener> s);
  void notify(ShutdownStep step);

 private:
  std::mutex mu_;
  std::vector<std::weak_ptr<ShutdownListener>> sessions_;
  size_t prune_at_ = 64;  // forget the expired ones when the list grows past this
};

// Counts a request the network layer is serving (from parsing until its last byte is
// written) in `n` for as long as the token lives: the drain waits for the count to fall to 0.
class InFlightToken {
 public:
  explicit InFlightToken(std::atomic<int>& n) : n_(&n) { n_->fetch_add(1); }
  InFlightToken(InFlightToken&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  InFlightToken& operator=(InFlightToken&&) = delete;
  ~InFlightToken() {
    if (n_) n_->fetch_sub(1);
  }

 private:
  std::atomic<int>* n_;
};

struct ServerCtx {
  ServerCtx(ServerOptions o, Service& s) : opts(std::move(o)), service(s), origins(opts.host, opts.allowed_origins) {}
  ServerOptions opts;
  Service& service;
  OriginPolicy origins;
  std::atomic<int> connections{0};
  std::atomic<int> requests_in_flight{0};
  std::atomic<bool> draining{false};  // a shutdown began: no new work, no keep-alive
  std::atomic<bool> closing{false};   // the shutdown's last step: idle connections close
  SessionRegistry sessions;
};

// The 503 every request gets once the server is shutting down.
ApiError shutting_down_error();

// Takes over an HTTP connection whose request asked to upgrade to /v1/stream.
void start_websocket(ServerCtx& ctx, beast::tcp_stream&& stream, http::request<http::string_body>&& req);

// Constant-time comparison of the presented key with the configured one.
bool key_matches(std::string_view presented, const std::string& expected);

// The playground page (net/static/playground.html, embedded at build time).
std::string_view playground_html();

}  // namespace troupe::net_detail
