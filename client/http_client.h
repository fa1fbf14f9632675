#pragma once
// A small blocking HTTP/1.1 client (Beast) for `troupe bench serve` and the tests: one
// keep-alive connection per HttpClient, bodies streamed to a callback as they arrive (SSE),
// timeouts on every operation. Not for use from the server's own network threads.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe {

struct HttpUrl {
  std::string host;
  uint16_t port = 80;
  std::string path;  // without a trailing slash; "" for the root
};
// "http://host[:port][/path]"; throws troupe::Error otherwise (https is not supported).
HttpUrl parse_http_url(const std::string& url);

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;                             // empty when streamed to on_data
  std::string header(const std::string& lower_name) const;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port, double timeout_s = 120);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request and reads the response. With `on_data`, body bytes go to it as they
  // arrive instead of into HttpResponse::body; returning false from it closes the
  // connection at once (a client walking away mid-stream). Throws troupe::Error on
  // connection failures and timeouts.
  HttpResponse request(std::string_view method, std::string_view target, std::string_view body = {},
                       const Headers& headers = {}, const std::function<bool(std::string_view)>& on_data = {});
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Opens a connection, writes `bytes` verbatim and returns everything the server sends until
// it closes the connection or `timeout_s` passes. For malformed-request tests.
std::string raw_http_exchange(const std::string& host, uint16_t port, std::string_view bytes, double timeout_s = 10);

// Incremental text/event-stream parser: complete events' `data:` payloads, in order.
class SseParser {
 public:
  void feed(std::string_view bytes, const std::function<void(const std::string&)>& on_data);

 private:
  std::string buf_, data_;
  bool has_data_ = false;
};

}  // namespace troupe
