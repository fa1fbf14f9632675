#pragma once
// What the server as a whole keeps about its connections, apart from Beast: the steps of a
// graceful shutdown, the registry that reaches every session, the global output budget,
// in-flight request counting and connections per client address.
#include <boost/asio/ip/address.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace troupe::net_detail {

namespace asio = boost::asio;

// The steps of a graceful shutdown (Server::shutdown), as each session hears them. Sessions
// are told on whatever thread runs the shutdown and post the work to their own strand.
enum class ShutdownStep {
  Drain,  // no new work: requests get 503, responses close their connection; WebSockets close
          // (1001) once their last request is done
  Abort,  // the timeout passed: unfinished requests end with a terminal error (SSE: an error
          // event and [DONE]; JSON: 503; WebSocket: an `error` each, then close 1001)
  Close,  // close idle connections; the rest close once their last bytes are written
};

// Output queued for clients across every connection (WebSocket queues, SSE data not yet
// written): bounded as a whole, so many slow readers cannot exhaust memory even when each
// stays under its own cap.
class OutputBudget {
 public:
  explicit OutputBudget(size_t limit) : limit_(limit) {}
  // Counts `n` more queued bytes; true when the total is now over the limit.
  bool add(size_t n) { return total_.fetch_add(n) + n > limit_; }
  void release(size_t n) { total_.fetch_sub(n); }
  size_t total() const { return total_.load(); }
  size_t limit() const { return limit_; }

 private:
  std::atomic<size_t> total_{0};
  const size_t limit_;
};

// What the server as a whole asks of a connection. Called from any thread; sessions post
// the work to their own strand.
class SessionControl {
 public:
  virtual ~SessionControl() = default;
  virtual void on_shutdown(ShutdownStep step) = 0;
  virtual size_t queued_output_bytes() const = 0;
  virtual bool dropping() const = 0;
  // Over the output budget: close the connection and cancel its requests (as a disconnect).
  virtual void drop_slow_reader() = 0;
};

// Every open session, so a shutdown or the output budget can reach them. Weak: a session's
// lifetime is its own.
class SessionRegistry {
 public:
  void add(std::weak_ptr<SessionControl> s);
  void notify(ShutdownStep step);
  // Drops the connections with the most queued output, largest first, until what the rest
  // hold fits `budget`.
  void shed_largest(const OutputBudget& budget);

 private:
  std::vector<std::shared_ptr<SessionControl>> live();

  std::mutex mu_;
  std::mutex shed_mu_;  // one shedding at a time, so two threads never drop for the same excess
  std::vector<std::weak_ptr<SessionControl>> sessions_;
  size_t prune_at_ = 64;  // forget the expired ones when the list grows past this
};

// A session's share of the OutputBudget: what it queued and has not written yet, under a
// cap of its own (--max-queued-output-bytes-per-connection). Used on the session's strand
// only; the count is atomic because shedding reads it from elsewhere.
class QueuedOutput {
 public:
  QueuedOutput(OutputBudget& budget, SessionRegistry& sessions, size_t cap)
      : budget_(budget), sessions_(sessions), cap_(cap) {}
  ~QueuedOutput() { budget_.release(bytes_.load()); }
  // Counts `n` more queued bytes (shedding the largest connections when the global budget is
  // exceeded); true when this connection is now over its own cap and must be dropped.
  [[nodiscard]] bool hold(size_t n) {
    bytes_ += n;
    if (budget_.add(n)) sessions_.shed_largest(budget_);
    return bytes_.load() > cap_;
  }
  void release(size_t n) {
    bytes_ -= n;
    budget_.release(n);
  }
  size_t bytes() const { return bytes_.load(); }

 private:
  OutputBudget& budget_;
  SessionRegistry& sessions_;
  const size_t cap_;
  std::atomic<size_t> bytes_{0};
};

// Counts a request the network layer is serving (from parsing until its last byte is
// written) in `n` for as long as the token lives: the drain waits for the count to fall to 0.
class InFlightToken {
 public:
  explicit InFlightToken(std::atomic<int>& n) : n_(&n) { n_->fetch_add(1); }
  InFlightToken(InFlightToken&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  InFlightToken& operator=(InFlightToken&&) = delete;
  ~InFlightToken() {
    if (n_) n_->fetch_sub(1);
  }

 private:
  std::atomic<int>* n_;
};

// Open connections by client address, for --max-connections-per-ip.
class ConnectionsPerIp {
 public:
  int count(const asio::ip::address& a);
  // Held by every session (HTTP and WebSocket) for its lifetime.
  class Slot {
   public:
    Slot(ConnectionsPerIp& table, asio::ip::address a);
    ~Slot();
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    ConnectionsPerIp& table_;
    asio::ip::address addr_;
  };

 private:
  std::mutex mu_;
  std::unordered_map<std::string, int> open_;  // by address, as text
};

}  // namespace troupe::net_detail
