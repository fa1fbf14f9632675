// Listener and HTTP sessions: routing, auth, body limits, OpenAI endpoints with SSE
// streaming, and cancellation when a client goes away mid-request.
#include <boost/beast/websocket.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <chrono>
#include <ctime>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "core/error.h"
#include "net/access_log.h"
#include "net/prompt_logprobs.h"
#include "net/server_internal.h"
#include "net/tool_calls.h"

namespace troupe {

namespace net_detail {

namespace websocket = beast::websocket;
namespace json = boost::json;

// The peer's address, or an unspecified one if the socket already failed.
asio::ip::address peer_address(const tcp::socket& s) {
  beast::error_code ec;
  const auto ep = s.remote_endpoint(ec);
  return ec ? asio::ip::address() : ep.address();
}

ApiError shutting_down_error() {
  ApiError e(503, "the server is shutting down; retry on another instance", "", "server_error", "shutting_down");
  e.retry_after_s = 1;
  return e;
}

bool key_matches(std::string_view presented, const std::string& expected) {
  unsigned diff = presented.size() == expected.size() ? 0u : 1u;
  for (size_t i = 0; i < presented.size(); ++i)
    diff |= unsigned(presented[i]) ^ unsigned(i < expected.size() ? expected[i] : 0);
  return diff == 0;
}

namespace {

using namespace std::chrono_literals;

constexpr uint32_t kMaxHeaderBytes = 16 * 1024;

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

// A query parameter's raw value (no percent-decoding: API keys are plain tokens).
std::string_view query_param(std::string_view target, std::string_view name) {
  size_t q = target.find('?');
  while (q != std::string_view::npos) {
    std::string_view rest = target.substr(q + 1);
    size_t amp = rest.find('&');
    std::string_view kv = rest.substr(0, amp);
    if (kv.substr(0, kv.find('=')) == name && kv.find('=') != std::string_view::npos) return kv.substr(kv.find('=') + 1);
    q = amp == std::string_view::npos ? amp : q + 1 + amp;
  }
  return {};
}

// One HTTP connection. Its lifecycle is `Phase` (see `enter` for the transitions); facts
// about the current request's response live in `Exchange`, reset before each request.
class HttpSession : public std::enable_shared_from_this<HttpSession>, public SessionControl {
 public:
  HttpSession(tcp::socket&& socket, ServerCtx& ctx, bool over_limit)
      : stream_(std::move(socket)),
        ctx_(ctx),
        over_limit_(over_limit),
        ip_slot_(ctx.per_ip, peer_address(stream_.socket())),
        queued_(ctx.output, ctx.sessions, ctx.opts.max_queued_output_bytes_per_connection) {
    ctx_.connections++;
    ctx_.service.metrics().connection_opened(false);
  }
  ~HttpSession() {
    abandon_generation(AbortCause::ClientDisconnect);
    ctx_.connections--;
    ctx_.service.metrics().connection_closed(false);
  }

  void run() {
    ctx_.sessions.add(weak_from_this());
    asio::dispatch(stream_.get_executor(), beast::bind_front_handler(&HttpSession::do_read, shared_from_this()));
  }

  // Drain needs nothing here: while ctx_.draining, requests get 503 and every response
  // closes its connection (handle, send).
  void on_shutdown(ShutdownStep step) override {
    if (step == ShutdownStep::Drain) return;
    asio::post(stream_.get_executor(), [self = shared_from_this(), step] {
      if (step == ShutdownStep::Abort) return self->end_for_shutdown();
      if (self->phase_ == Phase::ReadingRequest) self->close();  // idle keep-alive (Close)
    });
  }

  size_t queued_output_bytes() const override { return queued_.bytes(); }
  bool dropping() const override { return dropping_; }
  void drop_slow_reader() override {
    if (dropping_.exchange(true)) return;
    asio::post(stream_.get_executor(), [self = shared_from_this()] { self->client_gone(); });
  }

 private:
  // One OpenAI request in flight on this connection (HTTP/1.1 answers in order, so at
  // most one). Choices are independent engine requests.
  struct Choice {
    int64_t engine_id = 0;
    std::string text;  // non-streaming: accumulated
    std::string finish_reason;
    Usage usage;
    SloOutcome slo;                       // from the final event
    std::vector<TokenLogprobs> logprobs;  // non-streaming, when asked: accumulated
    std::vector<TokenLogprobs> prompt_logprobs;  // non-streaming, when asked: from the first event
    size_t text_len = 0;                  // streaming: bytes of text sent (logprobs' text_offset)
    bool started = false, done = false, role_sent = false;
    bool started_text = false;  // the first event (which carries the echoed prompt) came
    std::unique_ptr<ToolCallParser> tools;  // streaming chat with a tool-call parser
  };
  // (Whether its SSE headers have gone out is the session's phase: Streaming.)
  struct Generation {
    explicit Generation(std::atomic<int>& in_flight_count) : in_flight(in_flight_count) {}
    InFlightToken in_flight;  // until the response's last byte is written (or it is abandoned)
    uint64_t seq = 0;
    ApiRequest req;
    std::string id;
    int64_t created = 0;
    std::vector<Choice> choices;
    int started = 0, done = 0;
    bool ending = false;  // every choice is done and the stream's tail ([DONE]) is queued
    // Keeps the session alive while the engine works, even when no socket operation is
    // pending (e.g. the disconnect watch already returned a pipelined request).
    std::shared_ptr<HttpSession> hold;
  };

  // Where the connection is in its lifecycle. HTTP/1.1 answers requests in order, so there
  // is one request at a time and the phases follow each other in a cycle per request.
  enum class Phase {
    ReadingRequest,  // reading a request's header and body, or waiting for one (keep-alive idle)
    Handling,        // a request is parsed and nothing is written yet: the engine is generating
                     // (a JSON reply, or SSE before every choice has started) or a /metrics
                     // scrape runs on the service's helper thread
    Responding,      // writing one whole response (status, headers, full body)
    Streaming,       // SSE: the headers are out and chunks follow as token events arrive
    Resuming,        // the response is done and the connection kept alive, but the disconnect
                     // watch still reads the socket: it is cancelled, and its completion reads
                     // the next request (the parser and the watch share `buffer_`)
    Draining,        // answered a request whose input was not read to its end (413, 431,
                     // malformed): the send side is shut, input is discarded briefly, then close
    Closed,          // the socket is closed, or was handed to the WebSocket session
  };

  // Every transition the session makes, and nothing else:
  //   ReadingRequest -> Handling        a request was parsed (on_read)
  //   ReadingRequest -> Responding      a read failure that gets an answer: 400/413/431 (read_failed)
  //   Handling       -> Responding      a whole response is ready: simple routes, errors (also an
  //                                     engine error before any byte went out), a finished JSON
  //                                     completion, a /metrics scrape (send)
  //   Handling       -> Streaming       every choice has produced an event: SSE headers go out
  //                                     (send_stream_headers)
  //   Responding, Streaming -> ReadingRequest  the response is written, keep-alive, no watch in
  //                                     flight (after_response -> do_read)
  //   Responding, Streaming -> Resuming the same, but the disconnect watch is still reading
  //                                     (after_response)
  //   Resuming       -> ReadingRequest  the cancelled watch returned (on_watch -> do_read)
  //   Responding     -> Draining        the answered request's input was left unread
  //                                     (after_response -> linger_close)
  //   any            -> Closed          end of stream, timeout, write or read error, the client
  //                                     leaving, Connection: close, the end of an HTTP/1.0 stream,
  //                                     or a WebSocket upgrade (close, handle)
  static constexpr bool legal(Phase from, Phase to) {
    switch (to) {
      case Phase::ReadingRequest:
        return from == Phase::ReadingRequest || from == Phase::Responding || from == Phase::Streaming ||
               from == Phase::Resuming;
      case Phase::Handling: return from == Phase::ReadingRequest;
      case Phase::Responding: return from == Phase::ReadingRequest || from == Phase::Handling;
      case Phase::Streaming: return from == Phase::Handling;
      case Phase::Resuming: return from == Phase::Responding || from == Phase::Streaming;
      case Phase::Draining: return from == Phase::Responding;
      case Phase::Closed: return from != Phase::Closed;
    }
    return false;
  }

  void enter(Phase next) {
    assert(legal(phase_, next) && "HttpSession: illegal phase transition");
    phase_ = next;
  }

  // Facts about the current request's response, decided while handling it. Reset (to the
  // defaults of an HTTP/1.1 keep-alive GET) before each request is read.
  struct Exchange {
    unsigned version = 11;      // the request's HTTP version; the response answers in kind
    bool keep_alive = true;     // the connection stays open after this response
    bool head_only = false;     // HEAD: the GET response's headers (Content-Length too), no body
    bool chunked = true;        // SSE framing: chunked (HTTP/1.1) or ended by closing (HTTP/1.0)
    bool input_unread = false;  // the request was not read to its end: drain before closing
    std::string allow;          // the Allow header of a 405
    std::string cors_origin;    // an --allowed-origins Origin: the response carries CORS headers for it
    std::string preflight_headers;  // a preflight's Access-Control-Request-Headers, allowed back
    AccessRecord access;        // its access-log line, written once the response is
  };

  void do_read() {
    if (phase_ == Phase::Closed) return;
    if (ctx_.closing) return close();  // the shutdown's last step: no further requests
    enter(Phase::ReadingRequest);
    ex_ = {};
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    parser_->body_limit(ctx_.opts.max_body_bytes);
    if (buffer_.size() > 0) return read_header();  // a pipelined request is already here
    // Keep-alive idle: the next request may take --idle-timeout to begin...
    stream_.expires_after(std::chrono::seconds(ctx_.opts.idle_timeout_s));
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      if (ec) return self->read_failed(ec);
      self->buffer_.commit(n);
      self->read_header();
    });
  }

  // ...but once it has begun, its headers must be complete within --header-timeout (a client
  // trickling them in, slowloris-style, cannot hold a connection for long).
  void read_header() {
    stream_.expires_after(std::chrono::seconds(ctx_.opts.header_timeout_s));
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&HttpSession::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, size_t) {
    if (ec) return read_failed(ec);
    stream_.expires_after(std::chrono::seconds(ctx_.opts.idle_timeout_s));  // the body: as long as an idle gap
    auto& req = parser_->get();
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      // curl and others wait for this before sending a large body.
      auto cont = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      asio::async_write(stream_, asio::buffer(*cont), [self = shared_from_this(), cont](beast::error_code e, size_t) {
        if (e) return self->close();
        http::async_read(self->stream_, self->buffer_, *self->parser_,
                         beast::bind_front_handler(&HttpSession::on_read, self));
      });
      return;
    }
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    if (ec) return read_failed(ec);
    enter(Phase::Handling);
    auto req = parser_->release();
    ex_.access.id = next_request_id();
    ex_.access.start = std::chrono::steady_clock::now();
    ex_.access.route = std::string(req.method_string()) + " " + printable(path_of(req.target()));
    handle(std::move(req));
  }

  // The request's access-log line (once: a response that ends twice logs the first end).
  void log_request(int status, const char* finish = nullptr) {
    if (ex_.access.status != 0) return;
    ex_.access.status = status;
    if (finish) ex_.access.finish = finish;
    log_access(ex_.access);
  }

  void read_failed(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof)
      return close();
    ex_.keep_alive = false;  // the stream is out of sync with the protocol now
    ex_.input_unread = true;
    ex_.version = 11;
    if (ec == http::error::body_limit)
      return send_error(ApiError(413, "request body exceeds the limit of " + std::to_string(ctx_.opts.max_body_bytes) +
                                          " bytes", "", "invalid_request_error", "request_too_large"));
    if (ec == http::error::header_limit) return send_error(ApiError(431, "request headers too large"));
    send_error(ApiError(400, "malformed HTTP request: " + ec.message()));
  }

  bool authorized(const http::request<http::string_body>& req, bool allow_query) const {
    const std::string& key = ctx_.opts.api_key;
    if (key.empty()) return true;
    std::string_view auth = req[http::field::authorization];
    if (auth.size() > 7 && beast::iequals(auth.substr(0, 7), "Bearer ")) return key_matches(auth.substr(7), key);
    // Browsers cannot set headers on a WebSocket handshake: the playground passes ?api_key=.
    if (allow_query) {
      std::string_view q = query_param(req.target(), "api_key");
      if (!q.empty()) return key_matches(q, key);
    }
    return false;
  }

  void handle(http::request<http::string_body>&& req) {
    ex_.keep_alive = req.keep_alive();
    ex_.version = req.version();
    if (over_limit_) {
      ex_.keep_alive = false;
      ApiError e(503, "too many open connections; retry later", "", "server_error", "too_many_connections");
      e.retry_after_s = 1;
      return send_error(e);
    }
    const std::string path(path_of(req.target()));
    const http::verb m = req.method();
    if (auto rejected = browser_check(req)) return send_error(*rejected);
    if (m == http::verb::options && !req[http::field::access_control_request_method].empty()) return preflight(req);
    if (ctx_.draining && path != "/health" && path != "/metrics") return send_error(shutting_down_error());
    const bool v1 = path.rfind("/v1/", 0) == 0;
    if (v1 && !authorized(req, path == "/v1/stream")) {
      return send_error(ApiError(401, "Incorrect or missing API key. Pass it as 'Authorization: Bearer <key>'.", "",
                                 "invalid_request_error", "invalid_api_key"));
    }
    if (path == "/v1/stream") {
      if (!websocket::is_upgrade(req)) {
        if (m != http::verb::get) return method_not_allowed("GET");
        return send_error(ApiError(426, "/v1/stream is a WebSocket endpoint: send an Upgrade request"));
      }
      if (!ctx_.origins.websocket_origin_allowed(req[http::field::origin], req[http::field::host]))
        return send_error(ApiError(403, "WebSocket connections from origin '" + printable(req[http::field::origin]) +
                                            "' are not allowed; start the server with --allowed-origins to permit it",
                                   "", "invalid_request_error", "origin_not_allowed"));
      if (auto bad = handshake_error(req)) {
        ex_.keep_alive = false;  // the client expected another protocol on this connection
        return send_error(*bad);
      }
      if (!ctx_.service.ready()) return not_ready();
      log_request(101);
      enter(Phase::Closed);  // the WebSocket session owns the socket from here
      // Whatever the client sent right behind the handshake (messages it did not wait for the
      // 101 to send) is already in buffer_: it goes along.
      start_websocket(ctx_, std::move(stream_), std::move(req), beast::buffers_to_string(buffer_.data()));
      return;
    }
    struct Route {
      const char* path;
      http::verb method;
      void (HttpSession::*fn)(http::request<http::string_body>&);
    };
    static const Route routes[] = {
        {"/", http::verb::get, &HttpSession::playground},
        {"/index.html", http::verb::get, &HttpSession::playground},
        {"/health", http::verb::get, &HttpSession::health},
        {"/metrics", http::verb::get, &HttpSession::metrics},
        {"/v1/models", http::verb::get, &HttpSession::models},
        {"/v1/completions", http::verb::post, &HttpSession::completions},
        {"/v1/chat/completions", http::verb::post, &HttpSession::chat},
        {"/tokenize", http::verb::post, &HttpSession::tokenize},
        {"/detokenize", http::verb::post, &HttpSession::detokenize},
        {"/version", http::verb::get, &HttpSession::version},
    };
    for (const auto& r : routes) {
      if (path != r.path) continue;
      if (m == r.method || (m == http::verb::head && r.method == http::verb::get)) {
        ex_.head_only = m == http::verb::head;
        if (m == http::verb::post && !is_json(req[http::field::content_type]))
          return send_error(ApiError(415, "Content-Type must be application/json", "", "invalid_request_error",
                                     "unsupported_media_type"));
        return (this->*r.fn)(req);
      }
      return method_not_allowed(r.method == http::verb::get ? "GET, HEAD" : "POST");
    }
    send_error(ApiError(404, "no route for " + std::string(req.method_string()) + " " + printable(path), "", "not_found_error",
                        "not_found"));
  }

  // Checks that protect browsers' users: a request without Host (HTTP/1.1 requires one), a
  // Host that is not a loopback name on a loopback bind (DNS rebinding). Also notes an
  // Origin allowed for CORS. Returns the error to send, if any.
  std::optional<ApiError> browser_check(const http::request<http::string_body>& req) {
    const std::string_view host = req[http::field::host];
    if (host.empty() && req.version() >= 11)
      return ApiError(400, "HTTP/1.1 requests must carry a Host header", "", "invalid_request_error", "missing_host");
    if (!host.empty() && !ctx_.origins.host_allowed(host))
      return ApiError(403, "Host '" + printable(host) + "' is not allowed on a loopback bind (DNS rebinding "
                      "protection); use localhost or 127.0.0.1, or list the origin in --allowed-origins",
                      "", "invalid_request_error", "host_not_allowed");
    const std::string_view origin = req[http::field::origin];
    if (ctx_.origins.cors_allowed(origin)) ex_.cors_origin = std::string(origin);
    return std::nullopt;
  }

  // A CORS preflight (OPTIONS with Access-Control-Request-Method). Allowed origins get 204
  // with what they asked for; without --allowed-origins (or from another origin) it is a 403,
  // so the browser never sends the real request.
  void preflight(const http::request<http::string_body>& req) {
    if (ex_.cors_origin.empty())
      return send_error(ApiError(403, "cross-origin requests from '" + printable(req[http::field::origin]) +
                                          "' are not allowed; see --allowed-origins",
                                 "", "invalid_request_error", "origin_not_allowed"));
    ex_.preflight_headers = std::string(req[http::field::access_control_request_headers]);
    send(http::status::no_content, "", "text/plain");
  }

  // What Beast's accept would refuse with a plain-text reply, refused here with a JSON body
  // and counted under its real status.
  static std::optional<ApiError> handshake_error(const http::request<http::string_body>& req) {
    const std::string_view key = req[http::field::sec_websocket_key];
    if (key.empty() || key.size() > 24)  // base64 of 16 bytes (RFC 6455 4.2.1)
      return ApiError(400, "WebSocket handshake without a valid Sec-WebSocket-Key");
    if (req[http::field::sec_websocket_version] != "13")
      return ApiError(426, "unsupported WebSocket version; this server speaks version 13");
    return std::nullopt;
  }

  static bool is_json(std::string_view content_type) {
    const std::string_view media = content_type.substr(0, content_type.find(';'));
    const size_t end = media.find_last_not_of(" \t");
    return end != std::string_view::npos && beast::iequals(media.substr(0, end + 1), "application/json");
  }

  // Header values echoed in error messages: printable ASCII only (the body must be valid UTF-8).
  static std::string printable(std::string_view v) {
    std::string out;
    for (char c : v.substr(0, 200)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
  }

  void method_not_allowed(const char* allow) {
    ex_.allow = allow;
    send_error(ApiError(405, std::string("method not allowed; use ") + allow, "", "invalid_request_error",
                        "method_not_allowed"));
  }

  void not_ready() {
    if (ctx_.draining) return send_error(shutting_down_error());
    ApiError e(503, ctx_.service.unavailable_reason() + "; retry shortly", "", "server_error", "not_ready");
    e.retry_after_s = 1;
    send_error(e);
  }

  // ---- simple routes ----
  void playground(http::request<http::string_body>&) {
    send(http::status::ok, std::string(playground_html()), "text/html; charset=utf-8");
  }
  void health(http::request<http::string_body>&) {
    const bool ready = ctx_.service.ready();
    send(ready ? http::status::ok : http::status::service_unavailable, ctx_.service.health_body(), "application/json",
         ready ? 0 : 1);
  }
  void metrics(http::request<http::string_body>& req) {
    // ?names=vllm: vLLM's exact "vllm:" names, for dashboards built against vLLM.
    const bool vllm_names = query_param(req.target(), "names") == "vllm";
    // The job holds the session: nothing else keeps it alive while the helper thread works.
    ctx_.service.scrape(
        [self = shared_from_this()](std::string text) {
          asio::post(self->stream_.get_executor(), [self, text = std::move(text)]() mutable {
            self->send(http::status::ok, std::move(text), "text/plain; version=0.0.4; charset=utf-8");
          });
        },
        vllm_names);
  }
  void models(http::request<http::string_body>&) {
    if (!ctx_.service.ready()) return not_ready();
    const auto& m = ctx_.service.model();
    send(http::status::ok, models_body(m.name, ctx_.service.started_unix(), m.max_model_len), "application/json");
  }
  const Tokenizer& tokenizer() const { return *ctx_.service.model().tokenizer; }

  // vLLM's /tokenize and /detokenize: the served model's tokenizer (and chat template).
  void tokenize(http::request<http::string_body>& req) {
    if (!ctx_.service.ready()) return not_ready();
    try {
      const TokenizeRequest r = parse_tokenize_request(req.body(), ctx_.service.model());
      const auto ids = tokenizer().encode(r.text, r.add_special_tokens);
      send(http::status::ok, tokenize_body(ids, ctx_.service.model(), r.return_token_strs), "application/json");
    } catch (const ApiError& e) {
      send_error(e);
    } catch (const std::exception& e) {  // the template or tokenizer rejecting the input
      send_error(ApiError(400, e.what()));
    }
  }
  void detokenize(http::request<http::string_body>& req) {
    if (!ctx_.service.ready()) return not_ready();
    try {
      const DetokenizeRequest r = parse_detokenize_request(req.body(), ctx_.service.model());
      send(http::status::ok, detokenize_body(tokenizer().decode(r.tokens, r.skip_special_tokens)), "application/json");
    } catch (const ApiError& e) {
      send_error(e);
    } catch (const std::exception& e) {
      send_error(ApiError(400, e.what()));
    }
  }
  void version(http::request<http::string_body>&) { send(http::status::ok, version_body(), "application/json"); }

  void completions(http::request<http::string_body>& req) { generate(Endpoint::Completions, req.body()); }
  void chat(http::request<http::string_body>& req) { generate(Endpoint::Chat, req.body()); }

  // ---- generation ----
  void generate(Endpoint ep, const std::string& body) {
    if (!ctx_.service.ready()) return not_ready();
    ApiRequest r;
    try {
      r = parse_openai_request(ep, body, ctx_.service.model());
    } catch (const ApiError& e) {
      return send_error(e);
    } catch (const std::exception& e) {  // e.g. the tokenizer rejecting something
      return send_error(ApiError(400, e.what()));
    }
    gen_ = std::make_unique<Generation>(ctx_.requests_in_flight);
    gen_->hold = shared_from_this();
    gen_->seq = ++gen_seq_;
    gen_->id = new_response_id(ep);
    ex_.access.id = gen_->id;
    gen_->created = int64_t(std::time(nullptr));
    gen_->choices.resize(r.choices.size());
    std::vector<GenerateRequest> reqs = std::move(r.choices);
    gen_->req = std::move(r);
    for (size_t i = 0; i < reqs.size(); ++i)
      gen_->choices[i].engine_id = ctx_.service.submit(std::move(reqs[i]), sink(gen_->seq, i));
    watch_disconnect();
  }

  TokenSink sink(uint64_t seq, size_t index) {
    return [w = weak_from_this(), ex = stream_.get_executor(), seq, index](const TokenEvent& ev) {
      asio::post(ex, [w, seq, index, ev] {
        if (auto s = w.lock()) s->on_event(seq, index, ev);
      });
    };
  }

  void on_event(uint64_t seq, size_t index, const TokenEvent& ev) {
    if (!gen_ || gen_->seq != seq || phase_ == Phase::Closed) return;  // a request this connection gave up on
    Generation& g = *gen_;
    Choice& c = g.choices[index];
    if (c.done) return;
    if (ev.finished && ev.finish_reason == FinishReason::Error) {
      // Admission's prompt errors name the field the prompt came from.
      const ApiError error = engine_error(ev, g.req.endpoint == Endpoint::Chat ? "messages" : "");
      if (phase_ != Phase::Streaming) {
        // Nothing sent yet: the whole request fails with the engine's status (400/429/500).
        c.done = true;
        abandon_generation(AbortCause::Error);  // ends `g`
        return send_error(error);
      }
      // Mid-stream: OpenAI-style error event for this choice, then it counts as done.
      append_sse(error_body(error));
      mark_done(g, c, "error");
      return after_event(g);
    }
    if (!c.started) {
      c.started = true;
      g.started++;
    }
    if (ex_.access.ttft_ms < 0 && !ev.token_ids.empty())
      ex_.access.ttft_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - ex_.access.start).count();
    c.usage = ev.finished ? ev.usage : c.usage;
    if (ev.finished) c.slo = ev.slo;
    const std::string* echo = !c.started_text && index < g.req.echo.size() ? &g.req.echo[index] : nullptr;
    c.started_text = true;
    if (!g.req.stream) {
      if (echo) c.text = *echo;
      c.text += ev.text;
      c.logprobs.insert(c.logprobs.end(), ev.logprobs.begin(), ev.logprobs.end());
      if (!ev.prompt_logprobs.empty()) c.prompt_logprobs = ev.prompt_logprobs;
      if (ev.finished) mark_done(g, c, to_string(ev.finish_reason));
      if (g.done == int(g.choices.size())) finish_json();
      return;
    }
    const bool chat = g.req.endpoint == Endpoint::Chat;
    if (chat && g.req.tool_parser != ToolParserKind::None) return stream_with_tools(g, c, index, ev);
    const bool role = chat && !c.role_sent;
    // The echoed prompt comes first, with its logprobs when asked (the first event has them).
    // vLLM's prompt_logprobs go with the choice's first chunk (the echo, when there is one;
    // chat's are the response's, shared by its choices: with choice 0's).
    bool prompt_pending = g.req.prompt_logprobs >= 0 && !ev.prompt_logprobs.empty() &&
                          (g.req.endpoint != Endpoint::Chat || index == 0);
    auto first_chunk = [&](std::string chunk) {
      if (!prompt_pending) return chunk;
      prompt_pending = false;
      return add_prompt_logprobs(chunk, g.req.endpoint, index,
                                 prompt_logprobs_json(ev.prompt_logprobs, tokenizer(), g.req.prompt_logprobs));
    };
    const bool echo_lps = echo && g.req.echo_logprobs >= 0 && !ev.prompt_logprobs.empty();
    if (echo && (!echo->empty() || echo_lps || prompt_pending)) {
      json::value lp = echo_lps ? echo_logprobs_json(ev.prompt_logprobs, tokenizer(), g.req.echo_logprobs, *echo,
                                                     !g.req.echo_from_ids.at(index))
                                : json::value(nullptr);
      append_sse(first_chunk(chunk_body(g.req.endpoint, g.id, g.created, ctx_.service.model_name(), int(index), *echo,
                                        "", false, std::move(lp))));
      c.text_len += echo->size();
    }
    // A token whose text is held back (part of a character or of a possible stop string)
    // still gets its chunk when logprobs were asked for, and so do pending prompt_logprobs.
    const bool with_logprobs = g.req.logprobs && !ev.logprobs.empty();
    if (!ev.text.empty() || role || with_logprobs || prompt_pending) {
      json::value lp = with_logprobs ? logprobs_json(g.req.endpoint, ev.logprobs, tokenizer(), c.text_len)
                                     : json::value(nullptr);
      append_sse(first_chunk(chunk_body(g.req.endpoint, g.id, g.created, ctx_.service.model_name(), int(index),
                                        ev.text, "", role, std::move(lp))));
      c.role_sent = true;
      c.text_len += ev.text.size();
    }
    if (ev.finished) {
      append_sse(chunk_body(g.req.endpoint, g.id, g.created, ctx_.service.model_name(), int(index), "",
                            to_string(ev.finish_reason), false, nullptr, &ev.slo));
      mark_done(g, c, to_string(ev.finish_reason));
    }
    after_event(g);
  }

  // A streamed chat choice whose output is parsed for tool calls: content deltas until a
  // call starts, then the call's delta.tool_calls: its start, then pieces of its arguments
  // as they are generated (net/tool_calls.h).
  void stream_with_tools(Generation& g, Choice& c, size_t index, const TokenEvent& ev) {
    if (!c.tools) c.tools = std::make_unique<ToolCallParser>(g.req.tool_parser);
    std::vector<ToolStreamEvent> evs = c.tools->feed(ev.text);
    if (ev.finished) {
      auto rest = c.tools->finish();
      evs.insert(evs.end(), std::make_move_iterator(rest.begin()), std::make_move_iterator(rest.end()));
    }
    bool role = !c.role_sent;
    json::value lp = g.req.logprobs && !ev.logprobs.empty()
                         ? logprobs_json(g.req.endpoint, ev.logprobs, tokenizer(), c.text_len)
                         : json::value(nullptr);
    const std::string& model = ctx_.service.model_name();
    if (evs.empty() && (role || !lp.is_null()))
      append_sse(chunk_body(g.req.endpoint, g.id, g.created, model, int(index), "", "", role, std::move(lp)));
    for (const auto& e : evs) {
      if (e.call < 0) {
        append_sse(chunk_body(g.req.endpoint, g.id, g.created, model, int(index), e.text, "", role, std::move(lp)));
      } else if (auto chunk = tool_call_chunk(g.id, g.created, model, int(index), e, role)) {
        append_sse(*chunk);
      } else {
        continue;  // nothing sent: the role still goes with the next chunk
      }
      role = false;
      lp = nullptr;
    }
    c.role_sent = true;
    c.text_len += ev.text.size();
    if (ev.finished) {
      std::string reason = to_string(ev.finish_reason);
      if (c.tools->calls() > 0 && reason == "stop") reason = "tool_calls";
      append_sse(chunk_body(g.req.endpoint, g.id, g.created, model, int(index), "", reason, false, nullptr, &ev.slo));
      mark_done(g, c, reason);
    }
    after_event(g);
  }

  void mark_done(Generation& g, Choice& c, const std::string& reason) {
    c.done = true;
    c.finish_reason = reason;
    g.done++;
    AccessRecord& a = ex_.access;
    a.prompt_tokens = std::max(a.prompt_tokens, c.usage.prompt_tokens);  // one prompt for all n choices
    a.output_tokens += c.usage.completion_tokens;
    a.finish = a.finish == "-" ? reason : a.finish + "," + reason;
    if (!c.started) {
      c.started = true;
      g.started++;
    }
  }

  void after_event(Generation& g) {
    if (g.done == int(g.choices.size()) && !g.ending) {
      if (g.req.include_usage) {
        std::vector<ChoiceResult> res;
        for (auto& c : g.choices) res.push_back({"", c.finish_reason, c.usage, nullptr, {}});
        append_sse(usage_chunk_body(g.req.endpoint, g.id, g.created, ctx_.service.model_name(),
                                    total_usage(res, g.req.n)));
      }
      queue_sse("data: [DONE]\n\n");
      g.ending = true;
    }
    // Headers go out once every choice has produced something, so an admission error on
    // any of them can still be a proper HTTP status.
    if (phase_ == Phase::Handling && g.started == int(g.choices.size())) send_stream_headers();
    else flush();
  }

  void append_sse(const std::string& json) {
    queue_sse("data: " + json + "\n\n");
  }

  void queue_sse(const std::string& bytes) {
    pending_ += bytes;
    // Over this connection's own cap: the client stopped reading long before the write
    // timeout would notice (a stream of many choices queues megabytes in a second).
    if (queued_.hold(bytes.size())) drop_slow_reader();
  }

  void finish_json() {
    std::vector<ChoiceResult> res;
    for (size_t i = 0; i < gen_->choices.size(); ++i) {
      Choice& c = gen_->choices[i];
      const size_t echo_len = i < gen_->req.echo.size() ? gen_->req.echo[i].size() : 0;
      json::value lp = gen_->req.logprobs ? logprobs_json(gen_->req.endpoint, c.logprobs, tokenizer(), echo_len)
                                          : json::value(nullptr);
      if (gen_->req.echo_logprobs >= 0 && !c.prompt_logprobs.empty()) {  // the prompt's, then the generated
        json::value all = echo_logprobs_json(c.prompt_logprobs, tokenizer(), gen_->req.echo_logprobs,
                                             gen_->req.echo[i], !gen_->req.echo_from_ids.at(i));
        append_completion_logprobs(all, lp);
        lp = std::move(all);
      }
      res.push_back({std::move(c.text), c.finish_reason, c.usage, std::move(lp), c.slo});
    }
    std::string body = completion_body(gen_->req.endpoint, gen_->id, gen_->created, ctx_.service.model_name(), res,
                                       gen_->req.n);
    if (gen_->req.prompt_logprobs >= 0)
      for (size_t i = 0; i < gen_->choices.size(); ++i) {
        if (gen_->choices[i].prompt_logprobs.empty() || (gen_->req.endpoint == Endpoint::Chat && i > 0)) continue;
        body = add_prompt_logprobs(body, gen_->req.endpoint, i,
                                   prompt_logprobs_json(gen_->choices[i].prompt_logprobs, tokenizer(),
                                                        gen_->req.prompt_logprobs));
      }
    if (gen_->req.tool_parser != ToolParserKind::None) body = with_tool_calls(body, gen_->req.tool_parser);
    end_generation();
    send(http::status::ok, std::move(body), "application/json");
  }

  void send_stream_headers() {
    enter(Phase::Streaming);
    auto res = std::make_shared<http::response<http::empty_body>>(http::status::ok, ex_.version);
    res->set(http::field::server, "troupe");
    res->set(http::field::content_type, "text/event-stream");
    res->set(http::field::cache_control, "no-cache");
    set_cors_headers(*res);
    // HTTP/1.0 has no chunked encoding: the stream then ends by closing the connection.
    ex_.chunked = ex_.version >= 11;
    if (!ex_.chunked || ctx_.draining) ex_.keep_alive = false;
    res->keep_alive(ex_.keep_alive);
    res->chunked(ex_.chunked);
    ctx_.service.metrics().http_response(200);
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    writing_ = true;
    stream_.expires_after(std::chrono::seconds(ctx_.opts.write_timeout_s));
    http::async_write_header(stream_, *sr, [self = shared_from_this(), res, sr](beast::error_code ec, size_t) {
      self->on_stream_written(ec);
    });
  }

  // Writes everything queued as one chunk; events that arrive meanwhile coalesce.
  void flush() {
    if (writing_ || phase_ != Phase::Streaming) return;
    if (pending_.empty()) {
      if (gen_->ending) write_last_chunk();
      return;
    }
    writing_ = true;
    auto data = std::make_shared<std::string>(std::move(pending_));
    pending_.clear();
    stream_.expires_after(std::chrono::seconds(ctx_.opts.write_timeout_s));
    auto done = [self = shared_from_this(), data](beast::error_code ec, size_t) {
      self->queued_.release(data->size());
      self->on_stream_written(ec);
    };
    if (ex_.chunked) asio::async_write(stream_, http::make_chunk(asio::buffer(*data)), std::move(done));
    else asio::async_write(stream_, asio::buffer(*data), std::move(done));
  }

  void write_last_chunk() {
    if (!ex_.chunked) {
      end_generation();
      log_request(200);
      return close();
    }
    writing_ = true;
    asio::async_write(stream_, http::make_chunk_last(), [self = shared_from_this()](beast::error_code ec, size_t) {
      self->writing_ = false;
      if (ec) return self->client_gone();
      self->end_generation();
      self->log_request(200);
      self->after_response(!self->ex_.keep_alive);
    });
  }

  void on_stream_written(beast::error_code ec) {
    writing_ = false;
    if (ec) return client_gone();
    flush();
  }

  // While a request runs, a read on the socket tells us when the client goes away (EOF or
  // reset) so its generation can be cancelled and its KV blocks freed at once.
  void watch_disconnect() {
    if (watching_ || phase_ == Phase::Closed) return;
    watching_ = true;
    stream_.socket().async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->on_watch(ec, n);
    });
  }

  void on_watch(beast::error_code ec, size_t n) {
    watching_ = false;
    if (!ec) {
      buffer_.commit(n);  // a pipelined request: parsed once this response is done
      // Keep watching: the client may still leave before the response is done. Past a
      // whole request's worth of pipelined bytes the socket is left unread (backpressure).
      const bool running = phase_ == Phase::Handling || phase_ == Phase::Responding || phase_ == Phase::Streaming;
      if (running && buffer_.size() < kMaxHeaderBytes + ctx_.opts.max_body_bytes) return watch_disconnect();
    } else if (ec != asio::error::operation_aborted) {
      return client_gone();
    }
    if (phase_ == Phase::Resuming) do_read();
  }

  // The shutdown timeout passed with this connection's request unfinished: it ends with a
  // terminal error the client can tell from a cut connection.
  void end_for_shutdown() {
    if (!gen_ || phase_ == Phase::Closed) return;
    Generation& g = *gen_;
    const ApiError error = shutting_down_error();
    if (!g.req.stream) {  // nothing written yet
      abandon_generation(AbortCause::Shutdown);
      return send_error(error);
    }
    for (auto& c : g.choices) {
      if (c.done) continue;
      ctx_.service.cancel(c.engine_id, AbortCause::Shutdown);
      append_sse(error_body(error));
      mark_done(g, c, "error");
    }
    after_event(g);  // [DONE]; the SSE headers first if they were not out yet
  }

  void client_gone() {
    // nginx's 499: the client closed the connection before the response was complete.
    if (gen_ || phase_ == Phase::Streaming || phase_ == Phase::Responding) log_request(499, "client_gone");
    abandon_generation(AbortCause::ClientDisconnect);
    close();
  }

  // Cancels every unfinished choice of the current request (counted under `cause`).
  void abandon_generation(AbortCause cause) {
    if (!gen_) return;
    for (auto& c : gen_->choices)
      if (!c.done) ctx_.service.cancel(c.engine_id, cause);
    end_generation();
    queued_.release(pending_.size());
    pending_.clear();
  }

  // Callers always hold another reference (a handler's `self`), so dropping `hold` here
  // never destroys the session under its own feet.
  void end_generation() { gen_.reset(); }

  // ---- plain responses ----
  void send_error(const ApiError& e) {
    if (e.status == 413 || e.status == 431) ex_.keep_alive = false;  // the body was never read
    send(http::status(e.status), error_body(e), "application/json", e.retry_after_s);
  }

  void send(http::status status, std::string body, const char* content_type, int retry_after_s = 0) {
    if (phase_ == Phase::Closed) return;
    enter(Phase::Responding);
    auto res = std::make_shared<http::response<http::string_body>>(status, ex_.version);
    res->set(http::field::server, "troupe");
    res->set(http::field::content_type, content_type);
    if (retry_after_s > 0) res->set(http::field::retry_after, std::to_string(retry_after_s));
    if (status == http::status::unauthorized) res->set(http::field::www_authenticate, "Bearer");
    if (status == http::status::method_not_allowed) res->set(http::field::allow, ex_.allow);
    if (status == http::status::upgrade_required) res->set(http::field::sec_websocket_version, "13");
    set_cors_headers(*res);
    if (ctx_.draining) ex_.keep_alive = false;
    res->keep_alive(ex_.keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
    if (ex_.head_only) res->body().clear();  // Content-Length still describes the GET body
    ctx_.service.metrics().http_response(int(status));
    stream_.expires_after(std::chrono::seconds(ctx_.opts.write_timeout_s));
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec) return self->client_gone();
      self->log_request(int(res->result_int()));
      self->after_response(!res->keep_alive());
    });
  }

  template <class Body>
  void set_cors_headers(http::response<Body>& res) const {
    if (ex_.cors_origin.empty()) return;
    res.set(http::field::access_control_allow_origin, ex_.cors_origin);
    res.set(http::field::vary, "Origin");
    if (res.result() != http::status::no_content) return;  // the rest answers a preflight
    res.set(http::field::access_control_allow_methods, "GET, POST, OPTIONS");
    res.set(http::field::access_control_allow_headers,
            ex_.preflight_headers.empty() ? "Authorization, Content-Type" : ex_.preflight_headers);
    res.set(http::field::access_control_max_age, "600");
  }

  // A response (whole or streamed) is fully written: close, drain, or go on to the next request.
  void after_response(bool close_now) {
    // The watch may have seen the client leave while the last bytes were being written.
    if (phase_ == Phase::Closed) return;
    if (close_now && ex_.input_unread) return linger_close();
    if (close_now) return close();
    if (watching_) {  // the disconnect watch must finish before the parser reads again
      enter(Phase::Resuming);
      beast::error_code ec;
      stream_.socket().cancel(ec);
      return;
    }
    do_read();
  }

  // After answering a request whose body we never read (413, 431, garbage), closing at once
  // would make the kernel reset the connection, and a reset can destroy our response in the
  // client's receive buffer before it reads it. So: stop sending, discard what the client is
  // still sending for a little while, then close.
  void linger_close() {
    enter(Phase::Draining);
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(std::chrono::seconds(2));
    auto sink = std::make_shared<std::array<char, 16384>>();
    drain(sink, 0);
  }
  void drain(std::shared_ptr<std::array<char, 16384>> sink, size_t total) {
    stream_.async_read_some(asio::buffer(*sink), [self = shared_from_this(), sink, total](beast::error_code ec, size_t n) {
      if (ec || total + n > (64u << 20)) return self->close();
      self->drain(sink, total + n);
    });
  }

  void close() {
    if (phase_ == Phase::Closed) return;
    enter(Phase::Closed);
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  ServerCtx& ctx_;
  const bool over_limit_;
  ConnectionsPerIp::Slot ip_slot_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::unique_ptr<Generation> gen_;
  uint64_t gen_seq_ = 0;
  std::string pending_;  // SSE bytes not yet written
  QueuedOutput queued_;  // pending_ and the SSE write in flight, in the global output budget
  std::atomic<bool> dropping_{false};  // over the output budget: being closed
  Phase phase_ = Phase::ReadingRequest;
  Exchange ex_;
  // Two socket operations that run alongside the phases rather than being phases of their
  // own, so they stay flags:
  // - writing_: an SSE write (headers, a chunk, the last chunk) is in flight. Only during
  //   Streaming, where events keep arriving meanwhile and coalesce in `pending_` until it
  //   completes (flush); at most one write may be outstanding on the stream.
  // - watching_: the disconnect watch's read is in flight. It starts in Handling and outlives
  //   it: it is still pending through Streaming or Responding (a JSON reply, an error) and,
  //   after a keep-alive response, Resuming waits for it. It may also have completed early
  //   (a pipelined request arrived), so neither flag follows from the phase.
  bool writing_ = false, watching_ = false;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(asio::io_context& ioc, ServerCtx& ctx) : ioc_(ioc), acceptor_(asio::make_strand(ioc)), ctx_(ctx) {}

  uint16_t listen(const std::string& host, uint16_t port) {
    beast::error_code ec;
    asio::ip::address addr = asio::ip::make_address(host, ec);
    if (ec) {  // a name such as "localhost"
      tcp::resolver res(ioc_);
      auto r = res.resolve(host, std::to_string(port), ec);
      if (ec || r.empty()) fail("cannot resolve --host {}: {}", host, ec.message());
      addr = r.begin()->endpoint().address();
    }
    tcp::endpoint ep(addr, port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) fail("cannot listen on {}:{}: {}", host, port, ec.message());
    return acceptor_.local_endpoint().port();
  }

  void accept() {
    acceptor_.async_accept(asio::make_strand(ioc_), beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }

  void close() {
    asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->acceptor_.close(ec);
    });
  }

 private:
  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);  // tokens are small writes: no Nagle delay
      const int per_ip = ctx_.opts.max_connections_per_ip;
      const bool over = ctx_.connections.load() >= ctx_.opts.max_connections ||
                        (per_ip > 0 && ctx_.per_ip.count(peer_address(socket)) >= per_ip);
      std::make_shared<HttpSession>(std::move(socket), ctx_, over)->run();
      return accept();
    }
    // Out of file descriptors and the like: back off instead of spinning.
    auto t = std::make_shared<asio::steady_timer>(acceptor_.get_executor(), 50ms);
    t->async_wait([self = shared_from_this(), t](beast::error_code) { self->accept(); });
  }

  asio::io_context& ioc_;
  tcp::acceptor acceptor_;
  ServerCtx& ctx_;
};

}  // namespace

}  // namespace net_detail

using namespace net_detail;

struct Server::Impl {
  Impl(ServerOptions o, Service& s) : ctx(std::move(o), s) {}
  ServerCtx ctx;  // declared first: sessions destroyed with ioc still use it
  asio::io_context ioc;
  std::shared_ptr<Listener> listener;
  std::vector<std::thread> threads;
  uint16_t port = 0;
  bool stopped = false;
};

Server::Server(ServerOptions opts, Service& service) : impl_(std::make_unique<Impl>(std::move(opts), service)) {}

Server::~Server() {
  stop();
  impl_->ctx.service.stop();
}

void Server::start() {
  auto& I = *impl_;
  I.listener = std::make_shared<Listener>(I.ioc, I.ctx);
  I.port = I.listener->listen(I.ctx.opts.host, I.ctx.opts.port);
  I.listener->accept();
  const int n = std::max(1, I.ctx.opts.io_threads);
  for (int i = 0; i < n; ++i) I.threads.emplace_back([&I] { I.ioc.run(); });
}

uint16_t Server::port() const { return impl_->port; }

namespace {

// Polls `done` every 20 ms until it holds or `limit` passes.
bool wait_until(std::chrono::duration<double> limit, const std::function<bool()>& done) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(limit);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

}  // namespace

int Server::shutdown(std::chrono::duration<double> timeout) {
  auto& I = *impl_;
  if (I.stopped) return 0;
  ServerCtx& ctx = I.ctx;
  // The listener stays open: load balancers probing /health see 503 "stopping", and new
  // clients get a 503 with Retry-After instead of a refused connection.
  ctx.draining = true;
  ctx.service.begin_shutdown();
  ctx.sessions.notify(ShutdownStep::Drain);
  spdlog::info("shutting down: {} requests in flight get up to {:g} s to finish", ctx.requests_in_flight.load(),
               timeout.count());
  int ended = 0;
  if (!wait_until(timeout, [&] { return ctx.requests_in_flight.load() == 0; })) {
    ended = ctx.requests_in_flight.load();
    spdlog::warn("shutdown timeout: ending {} unfinished requests with an error", ended);
    ctx.sessions.notify(ShutdownStep::Abort);
  }
  ctx.closing = true;
  ctx.sessions.notify(ShutdownStep::Close);
  // Connections close once their last bytes are out; a client that does not read them
  // does not hold the process up for long.
  if (!wait_until(5s, [&] { return ctx.connections.load() == 0; }))
    spdlog::warn("shutdown: closing {} connections whose last bytes were not read", ctx.connections.load());
  stop();
  return ended;
}

void Server::stop() {
  auto& I = *impl_;
  if (I.stopped) return;
  I.stopped = true;
  if (I.listener) I.listener->close();
  I.ioc.stop();
  for (auto& t : I.threads) t.join();
  I.threads.clear();
}

}  // namespace troupe
