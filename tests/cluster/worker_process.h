#pragma once
// A real `troupe worker` child process: started on a loopback port (0: any free one, read
// back from its log), killed with SIGKILL (a crash, as a lost node looks to the head) or
// stopped with SIGTERM, and restartable on the same port.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "config/engine_config.h"
#include "serve_process.h"
#include "test_util.h"

namespace troupe::test {

// A head's engine configuration for the cluster tests: one thread, a small batch, workers
// given a minute to load.
inline EngineConfig cluster_config(const std::string& model, int64_t max_model_len) {
  EngineConfig ec;
  ec.model = model;
  ec.threads = 1;
  ec.max_model_len = max_model_len;
  ec.scheduler.max_num_seqs = 16;
  ec.cluster.worker_timeout_s = 60;
  return ec;
}

class WorkerProcess {
 public:
  WorkerProcess(std::string log, std::vector<std::string> extra = {}, uint16_t port = 0)
      : log_(std::move(log)), extra_(std::move(extra)) {
    start(port);
  }
  ~WorkerProcess() { stop(); }
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log_text() const { return read_file(log_); }

  void kill9() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 200; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill9();
  }
  // Waits up to `limit` for it to exit by itself: its exit status, 128 + the signal that
  // killed it, or -1 while it still runs.
  int wait_exit(std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (pid_ > 0 && waitpid(pid_, &status, WNOHANG) != pid_) {
      if (std::chrono::steady_clock::now() >= end) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // Starts it again on the same port.
  void restart() {
    stop();
    start(port_);
  }

 private:
  void start(uint16_t port) {
    std::vector<std::string> all = {troupe_bin(), "worker", "--listen", "127.0.0.1:" + std::to_string(port),
                                    "--threads", "1"};
    all.insert(all.end(), extra_.begin(), extra_.end());
    pid_ = spawn_logged(std::move(all), log_);
    port_ = 0;
    for (int i = 0; i < 400 && port_ == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
      const std::string text = log_text();
      const auto at = text.find("listening on 127.0.0.1:");
      if (at != std::string::npos) port_ = uint16_t(std::stoi(text.substr(at + 23)));
    }
    INFO(log_text());
    REQUIRE(port_ != 0);
  }

  std::string log_;
  std::vector<std::string> extra_;
  pid_t pid_ = 0;
  uint16_t port_ = 0;
};

}  // namespace troupe::test
