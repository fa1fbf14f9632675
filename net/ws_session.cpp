// WebSocket sessions: the multiplexed JSON streaming protocol of docs/websocket.md.
// One read loop, one write queue; engine events are posted onto the session's strand.
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <deque>
#include <sstream>
#include <unordered_map>

#include "net/access_log.h"
#include "net/server_internal.h"

namespace troupe::net_detail {

namespace websocket = beast::websocket;
namespace json = boost::json;

namespace {

class WsSession : public std::enable_shared_from_this<WsSession>, public SessionControl {
 public:
  WsSession(beast::tcp_stream&& stream, ServerCtx& ctx)
      : ws_(std::move(stream)),
        ctx_(ctx),
        ip_slot_(ctx.per_ip, peer_address(beast::get_lowest_layer(ws_).socket())),
        queued_(ctx.output, ctx.sessions, ctx.opts.max_queued_output_bytes_per_connection) {
    ctx_.connections++;
    ctx_.service.metrics().connection_opened(true);
  }
  ~WsSession() {
    cancel_all(AbortCause::ClientDisconnect);
    ctx_.connections--;
    ctx_.service.metrics().connection_closed(true);
  }

  void run(http::request<http::string_body>&& req, std::string early) {
    ctx_.sessions.add(weak_from_this());
    beast::get_lowest_layer(ws_).expires_never();  // the websocket stream has its own timeouts
    websocket::stream_base::timeout t;
    t.handshake_timeout = std::chrono::seconds(30);
    // Beast pings after half the idle timeout and closes if the peer stays silent for all of it.
    t.idle_timeout = std::chrono::seconds(2 * std::max(1, ctx_.opts.ws_ping_interval_s));
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "troupe"); }));
    ws_.read_message_max(ctx_.opts.max_body_bytes);
    // Beast reads the handshake again from these bytes, so what followed it stays in the
    // stream's read buffer for the first read instead of being lost.
    std::ostringstream handshake;
    handshake << req;
    auto bytes = std::make_shared<std::string>(handshake.str() + early);
    ws_.async_accept(asio::buffer(*bytes), [self = shared_from_this(), bytes](beast::error_code ec) { self->on_accept(ec); });
  }

 private:
  struct Inflight {
    json::value id;
    int64_t engine_id = 0;
    InFlightToken in_flight;  // a graceful shutdown waits for it
  };

 public:
  void on_shutdown(ShutdownStep step) override {
    asio::post(ws_.get_executor(), [self = shared_from_this(), step] {
      if (step == ShutdownStep::Abort) self->end_for_shutdown();
      if (step != ShutdownStep::Drain || self->inflight_.empty()) self->close_going_away();
    });
  }

  size_t queued_output_bytes() const override { return queued_.bytes(); }
  bool dropping() const override { return dropping_; }
  void drop_slow_reader() override {
    if (dropping_.exchange(true)) return;
    asio::post(ws_.get_executor(), [self = shared_from_this()] { self->drop(); });
  }

 private:
  void on_accept(beast::error_code ec) {
    if (ec) {  // timed out or cut (server.cpp checked the request): nothing was ever open or sent
      phase_ = Phase::Closed;
      return;
    }
    ctx_.service.metrics().http_response(101);
    phase_ = Phase::Open;
    do_read();
    if (ctx_.draining) close_going_away();  // accepted just as the shutdown began
  }

  // The shutdown timeout passed: each unfinished request gets an `error` (503).
  void end_for_shutdown() {
    const ApiError e = shutting_down_error();
    // Taken out first: a send_error() can drop a slow reader, which clears inflight_.
    auto ending = std::move(inflight_);
    inflight_.clear();
    for (auto& [key, f] : ending) {
      ctx_.service.cancel(f.engine_id, AbortCause::Shutdown);
      send_error(f.id, e.status, e.message);
    }
  }

  // Open -> Closing: a close frame (1001 going away) follows the queued messages.
  void close_going_away() {
    if (phase_ != Phase::Open) return;
    phase_ = Phase::Closing;
    if (!writing_) start_close();
  }

  void start_close() {
    ws_.async_close(websocket::close_reason(websocket::close_code::going_away, "server shutting down"),
                    [self = shared_from_this()](beast::error_code ec) {
                      if (ec) beast::get_lowest_layer(self->ws_).close();  // the read loop ends the session
                    });
  }

  void do_read() { ws_.async_read(buf_, beast::bind_front_handler(&WsSession::on_read, shared_from_this())); }

  void on_read(beast::error_code ec, size_t) {
    if (ec) {  // closed by the peer, timed out, or a protocol violation (Beast closes then)
      phase_ = Phase::Closed;
      cancel_all(AbortCause::ClientDisconnect);
      return;
    }
    if (!ws_.got_text()) {
      send_error(json::value(nullptr), 400, "binary messages are not supported; send JSON text");
    } else {
      handle(beast::buffers_to_string(buf_.data()));
    }
    buf_.consume(buf_.size());
    do_read();
  }

  void handle(const std::string& text) {
    const WsMessage m = parse_ws_message(text);
    switch (m.kind) {
      case WsMessage::Kind::Invalid: return send_error(m.id, 400, m.error);
      case WsMessage::Kind::Ping: return send(json::serialize(json::object{{"type", "pong"}, {"id", m.id}}));
      case WsMessage::Kind::Cancel: return cancel(m.body, m.id);
      case WsMessage::Kind::Generate: return generate(m.body, m.id);
    }
  }

  void generate(const json::object& o, const json::value& idv) {
    if (ctx_.draining) return send_error(idv, 503, shutting_down_error().message);
    if (!ctx_.service.ready()) return send_error(idv, 503, ctx_.service.unavailable_reason() + "; retry shortly");
    WsGenerate g;
    try {
      g = parse_ws_generate(o, ctx_.service.model());
    } catch (const ApiError& e) {
      return send_error(idv, e.status, e.message);
    } catch (const std::exception& e) {
      return send_error(idv, 400, e.what());
    }
    if (inflight_.count(g.id_json)) return send_error(idv, 409, "a request with this id is already in flight");
    if (int(inflight_.size()) >= ctx_.opts.ws_max_inflight)
      return send_error(idv, 429, "too many requests in flight on this connection (max " +
                                      std::to_string(ctx_.opts.ws_max_inflight) + ")");
    auto sink = [w = weak_from_this(), ex = ws_.get_executor(), key = g.id_json](const TokenEvent& ev) {
      asio::post(ex, [w, key, ev] {
        if (auto s = w.lock()) s->on_event(key, ev);
      });
    };
    const std::string key = g.id_json;
    auto& entry = inflight_.emplace(key, Inflight{idv, 0, InFlightToken(ctx_.requests_in_flight)}).first->second;
    entry.engine_id = ctx_.service.submit(std::move(g.req), std::move(sink));
  }

  void cancel(const json::object& o, const json::value& idv) {
    const json::value* id = o.if_contains("id");
    if (!id || !(id->is_string() || id->is_int64())) return send_error(idv, 400, "'id' must be a string or an integer");
    auto it = inflight_.find(json::serialize(*id));
    if (it == inflight_.end()) return send_error(idv, 404, "no request with this id is in flight");
    // The engine answers with a final "cancelled" event, which becomes the `done` message.
    ctx_.service.cancel(it->second.engine_id, AbortCause::ClientCancel);
  }

  void on_event(const std::string& key, const TokenEvent& ev) {
    auto it = inflight_.find(key);
    if (it == inflight_.end() || phase_ == Phase::Closed) return;
    // A copy, and the entry erased before the last send: any send() can drop the connection
    // (a slow reader past its cap), which clears inflight_ and so frees both (a finishing
    // event that carried text crashed here now and then).
    const json::value id = it->second.id;
    if (!ev.text.empty() || !ev.token_ids.empty()) {
      json::array ids;
      for (int32_t t : ev.token_ids) ids.push_back(t);
      send(json::serialize(json::object{{"type", "token"}, {"id", id}, {"text", ev.text}, {"token_ids", std::move(ids)}}));
      if (phase_ == Phase::Closed) return;  // dropped: cancel_all() ended this request too
    }
    if (!ev.finished) return;
    inflight_.erase(it);
    log_generate(id, ev);
    if (ev.finish_reason == FinishReason::Error) {
      ApiError e = engine_error(ev);
      send_error(id, e.status, e.message);
    } else {
      const auto& u = ev.usage;
      const auto& t = ev.timings;
      json::object usage{{"prompt_tokens", u.prompt_tokens},
                         {"completion_tokens", u.completion_tokens},
                         {"total_tokens", u.prompt_tokens + u.completion_tokens},
                         {"cached_tokens", u.cached_prompt_tokens}};
      if (ctx_.service.model().speculative) {
        usage["spec_decode"] = json::object{{"num_drafts", u.spec_num_drafts},
                                            {"num_draft_tokens", u.spec_num_draft_tokens},
                                            {"num_accepted_tokens", u.spec_num_accepted_tokens},
                                            {"mean_accepted_length", u.spec_mean_accepted_length()}};
      }
      json::object timings{{"queue_ms", t.queue_ms}, {"ttft_ms", t.ttft_ms}, {"e2e_ms", t.e2e_ms}, {"tpot_ms", t.tpot_ms}};
      json::object done{{"type", "done"},
                        {"id", id},
                        {"finish_reason", to_string(ev.finish_reason)},
                        {"usage", std::move(usage)},
                        {"timings", std::move(timings)}};
      if (ev.slo.judged()) done["slo"] = slo_json(ev.slo);
      send(json::serialize(done));
    }
    if (ctx_.draining && inflight_.empty()) close_going_away();
  }

  // A `generate` message's access-log line, as HTTP requests get theirs (net/access_log.h).
  void log_generate(const json::value& id, const TokenEvent& ev) {
    AccessRecord a;
    a.id = "ws:" + (id.is_string() ? std::string(id.get_string()) : json::serialize(id));
    a.route = "WS generate";
    a.status = ev.finish_reason == FinishReason::Error ? engine_error(ev).status : 200;
    a.prompt_tokens = ev.usage.prompt_tokens;
    a.output_tokens = ev.usage.completion_tokens;
    a.ttft_ms = ev.usage.completion_tokens > 0 ? ev.timings.ttft_ms : -1;
    a.start = std::chrono::steady_clock::now() -
              std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double, std::milli>(ev.timings.e2e_ms));
    a.finish = to_string(ev.finish_reason);
    log_access(a);
  }

  void send_error(const json::value& id, int code, const std::string& message) {
    send(json::serialize(json::object{{"type", "error"}, {"id", id}, {"code", code}, {"message", message}}));
  }

  void send(std::string msg) {
    if (phase_ == Phase::Closed || phase_ == Phase::Closing) return;
    const bool over_cap = queued_.hold(msg.size());
    outq_.push_back(std::move(msg));
    if (over_cap) return drop();  // the client stopped reading
    if (!writing_) do_write();
  }

  // Open or Closing -> Closed: a slow reader past its own cap or the global output budget.
  void drop() {
    if (phase_ == Phase::Closed) return;
    phase_ = Phase::Closed;
    cancel_all(AbortCause::ClientDisconnect);
    beast::get_lowest_layer(ws_).close();  // pending reads and writes fail; the session ends
  }

  void do_write() {
    writing_ = true;
    ws_.text(true);
    ws_.async_write(asio::buffer(outq_.front()), beast::bind_front_handler(&WsSession::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, size_t) {
    writing_ = false;
    if (ec) {  // Open -> Closed: the peer is gone (or the socket was closed above)
      phase_ = Phase::Closed;
      cancel_all(AbortCause::ClientDisconnect);
      return;
    }
    queued_.release(outq_.front().size());
    outq_.pop_front();
    if (phase_ == Phase::Closed) return;
    if (!outq_.empty()) do_write();
    else if (phase_ == Phase::Closing) start_close();
  }

  void cancel_all(AbortCause cause) {
    for (auto& [key, f] : inflight_) ctx_.service.cancel(f.engine_id, cause);
    inflight_.clear();
  }

  websocket::stream<beast::tcp_stream> ws_;
  ServerCtx& ctx_;
  ConnectionsPerIp::Slot ip_slot_;
  beast::flat_buffer buf_;
  std::unordered_map<std::string, Inflight> inflight_;  // by the client's id, serialized
  std::deque<std::string> outq_;
  QueuedOutput queued_;  // outq_, in the global output budget
  std::atomic<bool> dropping_{false};  // over the output budget: being dropped
  // Handshake -> Open when async_accept succeeds; Open -> Closing when a shutdown closes
  // the connection (a close frame follows what is queued; nothing new is queued);
  // Open or Closing -> Closed when a read or a write fails or the client falls
  // max_queued_output_bytes_per_connection behind (Handshake -> Closed when the handshake fails). Closed is
  // final: its requests are cancelled and nothing more is sent; the session ends when the
  // last pending operation returns.
  enum class Phase { Handshake, Open, Closing, Closed } phase_ = Phase::Handshake;
  // An async_write is in flight (at most one; the rest of outq_ waits). Independent of the
  // phase: a write can still be pending after the session is Closed.
  bool writing_ = false;
};

}  // namespace

void start_websocket(ServerCtx& ctx, beast::tcp_stream&& stream, http::request<http::string_body>&& req,
                     std::string early) {
  std::make_shared<WsSession>(std::move(stream), ctx)->run(std::move(req), std::move(early));
}

}  // namespace troupe::net_detail
