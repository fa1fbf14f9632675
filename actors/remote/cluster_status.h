#pragma once
// The head's view of its workers, written by the worker links (actor threads) and read by
// the engine at startup and by the daemon's /health (other threads): a mutex-guarded table.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace troupe {

enum class WorkerState : uint8_t {
  Connecting,  // not hosting yet (first connection or a reconnect in progress)
  Up,          // hosting its stage
  Down,        // lost; reconnecting with backoff
  Refused,     // the handshake failed (other model, quantization, protocol, busy); retrying
};
const char* to_string(WorkerState s);  // "connecting" | "up" | "down" | "refused"

struct WorkerStatus {
  std::string address;  // HOST:PORT, or "local"
  std::string role;     // "stage 0 (layers 0:6)"
  WorkerState state = WorkerState::Connecting;
  std::string detail;   // why it is down or refused; the backend's name when up
  int64_t losses = 0;   // times it went down after being up
  int64_t routed = 0;   // replicas: requests sent to it
};

class ClusterStatus {
 public:
  // `all_needed`: a pipeline, which serves only with every stage up; replicas serve while
  // any one is up.
  ClusterStatus(std::vector<WorkerStatus> workers, bool all_needed)
      : workers_(std::move(workers)), all_needed_(all_needed) {}

  void set(size_t i, WorkerState s, std::string detail);
  void add_routed(size_t i);
  // Requests can be served (all stages up; or at least one replica up).
  bool serving() const;
  std::vector<WorkerStatus> snapshot() const;
  bool all_up() const;
  // The first worker that is not up, as "stage 1 (layers 1:2) on 127.0.0.1:7001 is down: ..."
  // ("" when all are up).
  std::string first_problem() const;
  // Waits until every worker is up (true), or one is refused or `timeout` passes (false;
  // *why then says which worker and why).
  bool wait_all_up(std::chrono::milliseconds timeout, std::string* why) const;

 private:
  std::string describe(const WorkerStatus& w) const;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<WorkerStatus> workers_;
  bool all_needed_;
};

}  // namespace troupe
