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
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "config/server_config.h"

namespace troupe {

class Service;

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
  // Graceful stop (SIGTERM/SIGINT): requests get 503 and /health "stopping" from now on,
  // requests in flight get up to `timeout` to finish, the rest end with a terminal error
  // (counted as aborted by "shutdown"); then every connection closes once its last bytes
  // are written (a few seconds at most) and stop() runs. Returns the number ended early.
  int shutdown(std::chrono::duration<double> timeout);
  void stop();  // idempotent: closes the listener and every connection

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
