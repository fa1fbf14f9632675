// Blocking client built on Beast's asynchronous operations: each operation runs the private
// io_context to completion, which lets tcp_stream enforce the timeout.
#include "client/http_client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <optional>

#include "core/error.h"

namespace troupe {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

HttpUrl parse_http_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) fail("URL must start with http:// (got '{}')", url);
  const std::string rest = url.substr(scheme.size());
  HttpUrl u;
  const size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  u.path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!u.path.empty() && u.path.back() == '/') u.path.pop_back();
  std::string port;
  if (!hostport.empty() && hostport[0] == '[') {  // [IPv6]:port
    const size_t close = hostport.find(']');
    if (close == std::string::npos) fail("bad host in URL '{}'", url);
    u.host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') fail("bad host in URL '{}'", url);
      port = hostport.substr(close + 2);
    }
  } else {
    const size_t colon = hostport.find(':');
    u.host = hostport.substr(0, colon);
    if (colon != std::string::npos) port = hostport.substr(colon + 1);
  }
  if (u.host.empty()) fail("no host in URL '{}'", url);
  if (!port.empty()) {
    char* end = nullptr;
    const long p = std::strtol(port.c_str(), &end, 10);
    if (*end != '\0' || p < 1 || p > 65535) fail("bad port in URL '{}'", url);
    u.port = uint16_t(p);
  }
  return u;
}

std::string HttpResponse::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? "" : it->second;
}

struct HttpClient::Impl {
  std::string host;
  uint16_t port;
  std::chrono::milliseconds timeout;
  asio::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buf;

  // Runs one asynchronous operation to completion and returns its error.
  template <class Start>
  beast::error_code run(Start&& start) {
    beast::error_code result = asio::error::would_block;
    stream->expires_after(timeout);
    start([&](beast::error_code ec, size_t = 0) { result = ec; });
    ioc.restart();
    ioc.run();
    return result;
  }

  void connect() {
    stream.emplace(ioc);
    buf.clear();
    tcp::resolver resolver(ioc);
    beast::error_code ec;
    auto eps = resolver.resolve(host, std::to_string(port), ec);
    if (ec) fail("cannot resolve {}: {}", host, ec.message());
    ec = run([&](auto h) {
      stream->async_connect(eps, [h](beast::error_code e, const tcp::endpoint&) { h(e); });
    });
    if (ec) {
      stream.reset();
      fail("cannot connect to {}:{}: {}", host, port, ec.message());
    }
    stream->socket().set_option(tcp::no_delay(true), ec);
  }
};

HttpClient::HttpClient(std::string host, uint16_t port, double timeout_s) : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->timeout = std::chrono::milliseconds(int64_t(timeout_s * 1000));
}

HttpClient::~HttpClient() { close(); }

void HttpClient::close() {
  if (!impl_->stream) return;
  beast::error_code ec;
  impl_->stream->socket().shutdown(tcp::socket::shutdown_both, ec);
  impl_->stream->socket().close(ec);
  impl_->stream.reset();
}

HttpResponse HttpClient::request(std::string_view method, std::string_view target, std::string_view body,
                                 const Headers& headers, const std::function<bool(std::string_view)>& on_data) {
  auto& I = *impl_;
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, I.host + ":" + std::to_string(I.port));
  req.set(http::field::user_agent, "troupe-client");
  for (const auto& [k, v] : headers) req.set(k, v);
  if (!body.empty() || method == "POST") {
    req.body() = std::string(body);
    if (req[http::field::content_type].empty()) req.set(http::field::content_type, "application/json");
  }
  req.prepare_payload();

  // A kept-alive connection the server closed meanwhile fails on first use: reconnect once.
  beast::error_code ec;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = I.stream.has_value();
    if (!reused) I.connect();
    ec = I.run([&](auto h) { http::async_write(*I.stream, req, h); });
    if (!ec) break;
    close();
    if (!reused) fail("cannot send to {}:{}: {}", I.host, I.port, ec.message());
  }
  if (ec) fail("cannot send to {}:{}: {}", I.host, I.port, ec.message());

  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  parser.skip(method == "HEAD");  // a HEAD response has headers only, whatever they announce
  ec = I.run([&](auto h) { http::async_read_header(*I.stream, I.buf, parser, h); });
  if (ec) {
    close();
    fail("no response from {}:{}: {}", I.host, I.port, ec.message());
  }
  HttpResponse res;
  res.status = int(parser.get().result_int());
  for (const auto& f : parser.get()) {
    std::string name(f.name_string());
    for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
    res.headers[name] = std::string(f.value());
  }
  char chunk[16384];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    // read_some: return with whatever arrived, so streamed bodies reach on_data as they come
    // (async_read would wait until the buffer is full or the message complete).
    ec = I.run([&](auto h) { http::async_read_some(*I.stream, I.buf, parser, h); });
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      close();
      fail("reading the response from {}:{} failed: {}", I.host, I.port, ec.message());
    }
    const size_t got = sizeof chunk - parser.get().body().size;
    if (got == 0) continue;
    if (on_data) {
      if (!on_data(std::string_view(chunk, got))) {
        close();
        return res;
      }
    } else {
      res.body.append(chunk, got);
    }
  }
  if (!parser.get().keep_alive()) close();
  return res;
}

std::string raw_http_exchange(const std::string& host, uint16_t port, std::string_view bytes, double timeout_s) {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  const auto timeout = std::chrono::milliseconds(int64_t(timeout_s * 1000));
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto eps = resolver.resolve(host, std::to_string(port), ec);
  if (ec) fail("cannot resolve {}: {}", host, ec.message());
  stream.expires_after(timeout);
  stream.async_connect(eps, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
  ioc.run();
  if (ec) fail("cannot connect to {}:{}: {}", host, port, ec.message());
  std::string out;
  char buf[8192];
  std::function<void(beast::error_code, size_t)> on_read = [&](beast::error_code e, size_t n) {
    out.append(buf, n);
    if (!e) stream.async_read_some(asio::buffer(buf), on_read);
  };
  stream.expires_after(timeout);
  asio::async_write(stream, asio::buffer(bytes.data(), bytes.size()), [&](beast::error_code e, size_t) {
    if (!e) stream.async_read_some(asio::buffer(buf), on_read);
  });
  ioc.restart();
  ioc.run();
  return out;
}

void SseParser::feed(std::string_view bytes, const std::function<void(const std::string&)>& on_data) {
  buf_.append(bytes);
  size_t pos = 0;
  while (true) {
    size_t nl = buf_.find('\n', pos);
    if (nl == std::string::npos) break;
    std::string_view line(buf_.data() + pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = nl + 1;
    if (line.empty()) {  // blank line: dispatch the event
      if (has_data_) on_data(data_);
      data_.clear();
      has_data_ = false;
    } else if (line.rfind("data:", 0) == 0) {
      std::string_view v = line.substr(5);
      if (!v.empty() && v[0] == ' ') v.remove_prefix(1);
      if (has_data_) data_ += '\n';
      data_.append(v);
      has_data_ = true;
    }  // comments (":...") and other fields are ignored
  }
  buf_.erase(0, pos);
}

}  // namespace troupe
