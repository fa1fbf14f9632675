#pragma once
// The network front of `troupe serve`: Boost.Beast HTTP/1.1 + WebSocket on a few Asio
// threads. Routes:
//   GET  /                      playground page (streams over the WebSocket endpoint)
//   GET  /health                200 once warmed up, 503 before
//   GET  /metrics               Prometheus text format
//   GET  /v1/models
//   POST /v1/completions        OpenAI-compatible, JSON or SSE (stream: true)
//   POST /v1/chat/completions
//   GET  /v1/stream             WebSocket upgrade (docs/websocket.md)
// Requests reach the engine through Service; its token events are posted back to the
// connection's strand, so neither side ever blocks the other.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace troupe {

class Service;

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  uint16_t port = 8000;            // 0: any free port (see Server::port())
  std::string api_key;             // non-empty: /v1/* requires "Authorization: Bearer <key>"
  size_t max_body_bytes = 1 << 20; // request bodies and WebSocket messages (413 / close 1009)
  int io_threads = 1;
  int max_connections = 1024;      // beyond this: 503 + Retry-After
  int idle_timeout_s = 60;         // keep-alive idle and slow-header limit
  int write_timeout_s = 60;        // a client that stops reading is dropped (and cancelled)
  int ws_ping_interval_s = 20;     // WebSocket keepalive ping when idle
  int ws_max_inflight = 64;        // concurrent requests per WebSocket connection
};

class Server {
 public:
  Server(ServerOptions opts, Service& service);
  // Stops the network threads and then the Service: the engine must not post token events
  // into an io_context that is being destroyed.
  ~Server();

  // Binds and listens (throws troupe::Error naming host:port on failure), then starts the
  // network threads.
  void start();
  uint16_t port() const;
  void stop();  // idempotent: closes the listener and every connection

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
