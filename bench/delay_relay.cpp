// troupe-delay-relay: a TCP relay that holds every chunk it forwards for a fixed time, in
// each direction - a stand-in for `tc qdisc ... netem delay`, which this machine's kernel
// lacks (no sch_netem module; `tc` answers "Specified qdisc kind is unknown"). Used by
// bench/cluster_bench.sh to put a simulated network between a head and its workers.
//
//   troupe-delay-relay LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS
//
// Listens on 127.0.0.1:LISTEN_PORT (0: any free port, printed as "relay listening on
// 127.0.0.1:PORT"), connects each accepted connection to TARGET, and forwards bytes both
// ways, each chunk released DELAY_MS after it arrived (order kept, bandwidth unlimited), as
// netem's fixed delay does. Boost.Asio's timers are timerfd-based, so 0.2 ms is honoured.
#include <boost/asio.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <deque>
#include <iostream>
#include <memory>
#include <string>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

namespace {

// Both sockets of one relayed connection; a Pump per direction shares them.
struct Link {
  explicit Link(asio::io_context& io) : client(io), server(io) {}
  tcp::socket client, server;
  void close() {
    error_code ec;
    client.close(ec);
    server.close(ec);
  }
};

// Reads from one socket and writes to the other, each chunk held until its release time.
class Pump : public std::enable_shared_from_this<Pump> {
 public:
  Pump(std::shared_ptr<Link> link, tcp::socket& from, tcp::socket& to, Clock::duration delay)
      : link_(std::move(link)), from_(from), to_(to), delay_(delay), timer_(from.get_executor()) {}

  void start() { read(); }

 private:
  struct Held {
    Clock::time_point due;
    std::string bytes;
  };

  void read() {
    from_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](error_code ec, size_t n) {
      if (ec) {  // EOF or error: pass the end on once what is held has gone out
        self->eof_ = true;
        if (!self->writing_) self->finish();
        return;
      }
      self->held_.push_back({Clock::now() + self->delay_, std::string(self->buf_.data(), n)});
      if (!self->writing_) self->release();
      self->read();
    });
  }

  // Waits for the oldest chunk's release time, writes it, and goes on with the next.
  void release() {
    if (held_.empty()) {
      writing_ = false;
      if (eof_) finish();
      return;
    }
    writing_ = true;
    timer_.expires_at(held_.front().due);
    timer_.async_wait([self = shared_from_this()](error_code) {
      asio::async_write(self->to_, asio::buffer(self->held_.front().bytes), [self](error_code ec, size_t) {
        self->held_.pop_front();
        if (ec) return self->link_->close();
        self->release();
      });
    });
  }

  void finish() {
    error_code ec;
    to_.shutdown(tcp::socket::shutdown_send, ec);
  }

  std::shared_ptr<Link> link_;
  tcp::socket& from_;
  tcp::socket& to_;
  Clock::duration delay_;
  asio::steady_timer timer_;
  std::array<char, 1 << 16> buf_{};
  std::deque<Held> held_;
  bool writing_ = false;
  bool eof_ = false;
};

void accept_loop(tcp::acceptor& acceptor, tcp::endpoint target, Clock::duration delay) {
  auto link = std::make_shared<Link>(static_cast<asio::io_context&>(acceptor.get_executor().context()));
  acceptor.async_accept(link->client, [&acceptor, target, delay, link](error_code ec) {
    if (!ec) {
      link->server.async_connect(target, [link, delay](error_code cec) {
        if (cec) return link->close();
        link->client.set_option(tcp::no_delay(true));
        link->server.set_option(tcp::no_delay(true));
        std::make_shared<Pump>(link, link->client, link->server, delay)->start();
        std::make_shared<Pump>(link, link->server, link->client, delay)->start();
      });
    }
    accept_loop(acceptor, target, delay);
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: troupe-delay-relay LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS\n";
    return 2;
  }
  try {
    asio::io_context io;
    const auto port = static_cast<unsigned short>(std::stoi(argv[1]));
    const double delay_ms = std::stod(argv[4]);
    if (delay_ms < 0) throw std::invalid_argument("DELAY_MS must be >= 0");
    const auto delay = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(delay_ms));
    tcp::resolver resolver(io);
    const tcp::endpoint target = *resolver.resolve(argv[2], argv[3]).begin();
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    std::printf("relay listening on 127.0.0.1:%u -> %s:%s, %.3f ms each way\n", acceptor.local_endpoint().port(),
                argv[2], argv[3], delay_ms);
    std::fflush(stdout);
    accept_loop(acceptor, target, delay);
    io.run();
  } catch (const std::exception& e) {
    std::cerr << "troupe-delay-relay: " << e.what() << "\n";
    return 1;
  }
}
