#include "daemon.h"

#include <boost/json.hpp>

// Listener base classes (for the teardown below) are behind this switch in Catch2 v2.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#include <sstream>
#include <thread>
#include <chrono>

#include "test_util.h"

namespace troupe::test {

Daemon::Daemon(ServiceOptions so, ServerOptions o, EngineConfig ec, bool start_engine) {
  service = std::make_unique<Service>(std::move(so));
  server = std::make_unique<Server>(std::move(o), *service);
  server->start();
  if (start_engine) service->start(ec);
}

Daemon::~Daemon() {
  server.reset();  // stops the network threads, then the service
  service.reset();
}

Headers auth_headers() { return {{"Authorization", std::string("Bearer ") + kApiKey}}; }

HttpResponse Daemon::get(const std::string& target, bool auth) const {
  HttpClient c("127.0.0.1", port(), 60);
  return c.request("GET", target, {}, auth ? auth_headers() : Headers{});
}

HttpResponse Daemon::post(const std::string& target, const std::string& body, bool auth,
                          const std::function<bool(std::string_view)>& on_data) const {
  HttpClient c("127.0.0.1", port(), 120);
  return c.request("POST", target, body, auth ? auth_headers() : Headers{}, on_data);
}

std::string Daemon::metrics() const {
  HttpResponse r = get("/metrics", false);
  REQUIRE(r.status == 200);
  return r.body;
}

double metric_value(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series, 0) == 0 && line.size() > series.size() && line[series.size()] == ' ')
      return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

namespace {
std::unique_ptr<Daemon> g_main;
}

Daemon& main_daemon() {
  if (!g_main) {
    ServiceOptions so;
    so.model_path = model_path("tinystories-656k");
    so.warmup = 2;
    ServerOptions o;
    o.port = 0;
    o.api_key = kApiKey;
    o.max_body_bytes = 64 * 1024;
    o.io_threads = 2;  // strands must make a multi-threaded server safe too
    EngineConfig ec;
    ec.model = so.model_path;
    g_main = std::make_unique<Daemon>(so, o, ec);
  }
  return *g_main;
}

std::unique_ptr<Daemon> own_daemon(const std::function<void(ServerOptions&, EngineConfig&)>& tweak) {
  ServiceOptions so;
  so.model_path = model_path("tinystories-656k");
  ServerOptions o;
  o.port = 0;
  o.api_key = kApiKey;
  o.io_threads = 2;
  EngineConfig ec;
  ec.model = so.model_path;
  if (tweak) tweak(o, ec);
  return std::make_unique<Daemon>(so, o, ec);
}

std::string raw_completion_request(const std::string& body) {
  return "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + std::string(kApiKey) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Tears the shared daemon down before static destruction (its threads must be gone first).
struct DaemonTeardown : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testRunEnded(const Catch::TestRunStats&) override { g_main.reset(); }
};
CATCH_REGISTER_LISTENER(DaemonTeardown)

Streamed stream_completion(uint16_t port, const std::string& body, int stop_after) {
  Streamed s;
  SseParser sse;
  HttpClient c("127.0.0.1", port, 120);
  HttpResponse r = c.request("POST", "/v1/completions", body, auth_headers(), [&](std::string_view bytes) {
    sse.feed(bytes, [&](const std::string& data) {
      if (data == "[DONE]") {
        s.done = true;
        return;
      }
      boost::json::value v = boost::json::parse(data);
      if (auto* u = v.as_object().if_contains("usage"); u && u->is_object())
        s.completion_tokens = u->at("completion_tokens").as_int64();
      for (const auto& ch : v.at("choices").as_array()) {
        s.text += std::string(ch.at("text").as_string());
        if (ch.at("finish_reason").is_string()) {
          s.finish_reason = std::string(ch.at("finish_reason").as_string());
          s.finishes++;
        }
        s.events++;
      }
    });
    return stop_after == 0 || s.events < stop_after;
  });
  s.status = r.status;
  return s;
}

std::string completion_body(const std::string& prompt, int max_tokens, bool stream, bool ignore_eos) {
  boost::json::object o{{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", stream}};
  if (ignore_eos) o["ignore_eos"] = true;
  if (stream) o["stream_options"] = boost::json::object{{"include_usage", true}};
  return boost::json::serialize(o);
}

std::string label(const Daemon& d) { return "{model_name=\"" + d.service->model_name() + "\"}"; }

std::string wait_metrics(const Daemon& d, const std::function<bool(const std::string&)>& pred, double timeout_s) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  std::string m;
  while (std::chrono::steady_clock::now() < end) {
    m = d.metrics();
    if (pred(m)) return m;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return m;
}

}  // namespace troupe::test
