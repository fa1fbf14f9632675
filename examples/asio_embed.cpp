// The engine inside a user's own Boost.Asio program, no troupe daemon: a line-based TCP
// service on loopback. Each line a client sends is a prompt; the tokens stream back as
// they are generated, then a line "[done <finish_reason> <n> tokens]". Engine callbacks run
// on pipeline threads, so they only post to the io_context; all socket work stays on it.
//
//   build/examples/asio_embed MODEL PORT [MAX_CLIENTS]
// Serves MAX_CLIENTS connections (default 1) one prompt each, then exits.
#include <boost/asio.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "actors/engine.h"

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, troupe::Engine& engine, std::function<void()> on_close)
      : socket_(std::move(socket)), engine_(engine), on_close_(std::move(on_close)) {}

  void start() {
    auto self = shared_from_this();
    asio::async_read_until(socket_, asio::dynamic_buffer(in_), '\n', [self](boost::system::error_code ec, size_t n) {
      if (ec) return self->close();
      std::string prompt = self->in_.substr(0, n - 1);
      self->submit(prompt);
    });
  }

 private:
  void submit(const std::string& prompt) {
    troupe::GenerateRequest req;
    req.prompt = prompt;
    req.params.temperature = 0;
    req.params.max_tokens = 32;
    auto self = shared_from_this();
    auto executor = socket_.get_executor();
    engine_.submit(req, [self, executor](const troupe::TokenEvent& ev) {
      // A pipeline thread: hand the event to the io_context and return at once.
      asio::post(executor, [self, ev] { self->on_event(ev); });
    });
  }

  void on_event(const troupe::TokenEvent& ev) {
    std::string out = ev.text;
    if (ev.finished)
      out += "\n[done " + std::string(troupe::to_string(ev.finish_reason)) + " " +
             std::to_string(ev.usage.completion_tokens) + " tokens]\n";
    queue_ += out;
    if (ev.finished) finished_ = true;
    flush();
  }

  void flush() {
    if (writing_ || queue_.empty()) {
      if (!writing_ && finished_) close();
      return;
    }
    writing_ = true;
    auto buf = std::make_shared<std::string>(std::move(queue_));
    queue_.clear();
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(*buf), [self, buf](boost::system::error_code ec, size_t) {
      self->writing_ = false;
      if (ec) return self->close();
      self->flush();
    });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    on_close_();
  }

  tcp::socket socket_;
  troupe::Engine& engine_;
  std::function<void()> on_close_;
  std::string in_, queue_;
  bool writing_ = false, finished_ = false, closed_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL PORT [MAX_CLIENTS]\n", argv[0]);
    return 2;
  }
  troupe::EngineConfig cfg;
  cfg.model = argv[1];
  troupe::Engine engine(cfg);
  const int max_clients = argc > 3 ? std::atoi(argv[3]) : 1;

  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), uint16_t(std::atoi(argv[2]))));
  std::printf("listening on 127.0.0.1:%d\n", int(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  // Engine events arrive from outside the io_context: keep it running until the last
  // session has closed, even while no socket operation is pending.
  auto work = asio::make_work_guard(io);
  int accepted = 0, closed = 0;
  std::function<void()> accept = [&] {
    acceptor.async_accept([&](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      std::make_shared<Session>(std::move(socket), engine, [&] {
        if (++closed == max_clients) {
          acceptor.close();
          work.reset();
        }
      })->start();
      if (++accepted < max_clients) accept();
    });
  };
  accept();
  io.run();  // returns once the last session has closed
  return 0;
}
