#pragma once
// In-process daemons for the tests: a real Engine on a real model behind a real Server on
// a free loopback port, talked to over real sockets.
#include <functional>
#include <memory>
#include <string>

#include "client/http_client.h"
#include "net/server.h"
#include "net/service.h"

namespace troupe::test {

constexpr const char* kApiKey = "sk-test-key";

struct Daemon {
  Daemon(ServiceOptions so, ServerOptions o, EngineConfig ec, bool start_engine = true);
  ~Daemon();
  uint16_t port() const { return server->port(); }
  HttpResponse get(const std::string& target, bool auth = true) const;
  HttpResponse post(const std::string& target, const std::string& body, bool auth = true,
                    const std::function<bool(std::string_view)>& on_data = {}) const;
  std::string metrics() const;

  std::unique_ptr<Service> service;
  std::unique_ptr<Server> server;
};

// The shared daemon: tinystories-656k, API key, 64 KiB body limit, warmup 2.
Daemon& main_daemon();
// A daemon of a test's own: tinystories-656k, API key, 2 network threads, any free port;
// `tweak` changes what the test is about.
std::unique_ptr<Daemon> own_daemon(const std::function<void(ServerOptions&, EngineConfig&)>& tweak = {});
// The raw bytes of an authorized POST /v1/completions with a JSON `body`, for tests that
// drive the socket themselves.
std::string raw_completion_request(const std::string& body);
Headers auth_headers();
// One streamed (SSE) /v1/completions reply, as a client sees it.
struct Streamed {
  int status = 0;
  std::string text, finish_reason;
  int64_t completion_tokens = -1;  // from the usage chunk, if one came
  int events = 0;                  // choice chunks
  int finishes = 0;                // choice chunks carrying a finish_reason
  bool done = false;               // got [DONE]
};
// POSTs `body` to /v1/completions on `port` and reads the SSE stream; `stop_after` > 0
// walks away after that many choice chunks.
Streamed stream_completion(uint16_t port, const std::string& body, int stop_after = 0);

// A /v1/completions body: greedy, `max_tokens`, streamed with a usage chunk or not.
std::string completion_body(const std::string& prompt, int max_tokens, bool stream, bool ignore_eos = false);
// `{model_name="..."}`, the label every sample of this daemon carries.
std::string label(const Daemon& d);
// Polls /metrics until `pred` holds or `timeout_s` passes; returns the last exposition
// (the engine retires cancelled sequences asynchronously).
std::string wait_metrics(const Daemon& d, const std::function<bool(const std::string&)>& pred, double timeout_s = 20);

// A sample's value in a Prometheus exposition (first line starting with `series`), or -1.
double metric_value(const std::string& exposition, const std::string& series);

}  // namespace troupe::test
