#pragma once
// A real `troupe serve` child process for tests that need the daemon as users run it:
// started on a free loopback port (--port 0, read back from its log), ready once /health
// answers 200 (unless told not to wait), stopped with SIGTERM (SIGKILL after 10 s) however
// the test ends.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "client/http_client.h"
#include "test_util.h"

extern char** environ;

namespace troupe::test {

// Starts `args` (args[0] the executable) with stdout and stderr into `log`; returns its pid.
inline pid_t spawn_logged(std::vector<std::string> args, const std::string& log) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0].c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  return pid;
}

// A thread of `pid` other than the main one that does not block SIGTERM (0 if none): one
// started before the process blocks the signals, such as OpenBLAS's pool.
inline pid_t thread_taking_sigterm(pid_t pid) {
  namespace fs = std::filesystem;
  for (const auto& t : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    const pid_t tid = std::stoi(t.path().filename().string());
    std::ifstream in(t.path() / "status");
    std::string line;
    while (tid != pid && std::getline(in, line)) {
      if (line.rfind("SigBlk:", 0) == 0 && !(std::stoull(line.substr(7), nullptr, 16) & (1ull << (SIGTERM - 1))))
        return tid;
    }
  }
  return 0;
}

// Sends SIGTERM to such a thread of `pid`, as the kernel does whenever the main thread is not
// waiting for the signal. False (with a warning naming `what`) when no thread leaves it
// unblocked: the test has nothing to check then.
inline bool send_stray_sigterm(pid_t pid, const std::string& what) {
  const pid_t tid = thread_taking_sigterm(pid);
  if (tid == 0) {
    WARN("no thread of " << what << " leaves SIGTERM unblocked here: nothing to test");
    return false;
  }
  ::syscall(SYS_tgkill, pid, tid, SIGTERM);
  return true;
}

class ServeProcess {
 public:
  // `args` follow `troupe serve` (without --port); stdout and stderr go to `log`. With
  // `wait_ready` false the constructor returns once the daemon listens.
  ServeProcess(const std::vector<std::string>& args, std::string log, bool wait_ready = true) : log_(std::move(log)) {
    std::vector<std::string> all = {troupe_bin(), "serve"};
    all.insert(all.end(), args.begin(), args.end());
    all.insert(all.end(), {"--port", "0"});
    pid_ = spawn_logged(std::move(all), log_);
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const std::string text = log_text();
      const auto at = text.find("listening on http://127.0.0.1:");
      if (at != std::string::npos) port_ = uint16_t(std::stoi(text.substr(at + 30)));
    }
    INFO(log_text());
    REQUIRE(port_ != 0);
    if (!wait_ready) return;
    int health = 0;
    for (int i = 0; i < 600 && health != 200; ++i) {
      try {
        HttpClient c("127.0.0.1", port_, 10);
        health = c.request("GET", "/health").status;
      } catch (const std::exception&) {
      }
      if (health != 200) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    REQUIRE(health == 200);
  }
  ~ServeProcess() { stop(); }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log_text() const { return read_file(log_); }

  void signal(int sig) const { kill(pid_, sig); }

  // Waits up to `limit` for the daemon to exit by itself; true if it did.
  bool wait_exit(std::chrono::duration<double> limit) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(limit);
    while (!exited_ && pid_ > 0) {
      exited_ = waitpid(pid_, &status_, WNOHANG) == pid_;
      if (exited_ || std::chrono::steady_clock::now() >= end) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return exited_ && !killed_;
  }
  // The exit status once exited by itself (-1 before, or when killed by a signal).
  int exit_code() const { return exited_ && !killed_ && WIFEXITED(status_) ? WEXITSTATUS(status_) : -1; }

  // SIGTERM and wait; true when the daemon exited by itself with status 0.
  bool stop() {
    if (!exited_ && pid_ > 0) {
      kill(pid_, SIGTERM);
      wait_exit(std::chrono::seconds(10));
      if (!exited_) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status_, 0);
        killed_ = true;
        exited_ = true;
      }
    }
    return exited_ && !killed_ && WIFEXITED(status_) && WEXITSTATUS(status_) == 0;
  }

 private:
  std::string log_;
  pid_t pid_ = 0;
  uint16_t port_ = 0;
  int status_ = -1;
  bool exited_ = false, killed_ = false;
};

}  // namespace troupe::test
