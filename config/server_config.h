#pragma once
// `troupe serve`'s network and service settings (net/server.h, net/service.h), and the
// whole of the command's configuration (ServeOpts).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "config/engine_config.h"

namespace troupe {

struct ServerOptions {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  uint16_t port = 8000;            // 0: any free port (see Server::port())
  std::string api_key;             // non-empty: /v1/* requires "Authorization: Bearer <key>"
  std::string api_key_file;        // the key's source instead of --api-key (see resolve_api_key)
  size_t max_body_bytes = 1 << 20; // request bodies and WebSocket messages (413 / close 1009)
  int io_threads = 1;
  int max_connections = 1024;      // beyond this: 503 + Retry-After
  int max_connections_per_ip = 0;  // > 0: one client address beyond this gets 503 too
  int idle_timeout_s = 60;         // keep-alive idle (waiting for a request to begin), and body reads
  int header_timeout_s = 10;       // a request's headers, from its first byte
  int write_timeout_s = 60;        // a client that stops reading is dropped (and cancelled)
  int ws_ping_interval_s = 20;     // WebSocket keepalive ping when idle
  int ws_max_inflight = 64;        // concurrent requests per WebSocket connection
  // A client this far behind (SSE data or WebSocket messages queued, not yet written) is
  // dropped and its requests cancelled.
  size_t max_queued_output_bytes_per_connection = 8u << 20;
  size_t max_queued_output_bytes = 64u << 20;  // all connections together; the largest slow readers are dropped
  double shutdown_timeout_s = 30;  // SIGTERM/SIGINT: in-flight requests get this long to finish
  // Browser origins (scheme://host[:port], or "*") allowed beyond same-origin and loopback
  // ones on /v1/stream; CORS headers are sent only for these.
  std::vector<std::string> allowed_origins;
};

struct ServiceOptions {
  std::string model_path;
  std::string served_model_name;   // empty: the model path's last component
  std::string chat_template_path;  // empty: the model's own template (or the fallback)
  std::string tool_call_parser = "none";  // none | hermes | llama3_json (chat/tool_parser.h)
  int warmup = 1;                  // synthetic requests before reporting ready (a broken model fails here)
  double heartbeat_interval_s = 0; // > 0: a tiny request whenever the server idled this long
  double log_stats_interval_s = 10;  // > 0: a stats line this often while the engine is busy
  // Fill a new constraint's mask cache on a low-priority background thread when it is
  // first compiled (grammar::set_background_precompute), so later requests of the same
  // schema find it warm; requests never wait for it.
  bool grammar_precompute = true;
};

// Settles ServerOptions::api_key from its sources, which keep the key out of `ps`: --api-key,
// else --api-key-file (its first line), else the TROUPE_API_KEY environment variable. Both
// flags at once, an unreadable or empty file, or the "<set>" placeholder --print-config
// writes are errors.
void resolve_api_key(ServerOptions& o);

}  // namespace troupe

namespace troupe::app {

// `troupe serve`: the engine, the network front and the service around it.
struct ServeOpts {
  ServerOptions server;
  ServiceOptions service;
  EngineConfig engine;
};

}  // namespace troupe::app
