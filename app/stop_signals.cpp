#include "app/stop_signals.h"

#include <atomic>
#include <csignal>
#include <ctime>

namespace troupe::app {

namespace {

// A signal that reached a thread which does not block it. An atomic, not a volatile
// sig_atomic_t: the handler runs on another thread than the reader.
std::atomic<int> g_stray_signal{0};  // lock-free, so async-signal-safe
static_assert(std::atomic<int>::is_always_lock_free);
extern "C" void keep_stray_signal(int sig) { g_stray_signal.store(sig); }

}  // namespace

StopSignals::StopSignals() {
  sigemptyset(&sigs_);
  sigaddset(&sigs_, SIGINT);
  sigaddset(&sigs_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs_, nullptr);
  std::signal(SIGINT, keep_stray_signal);
  std::signal(SIGTERM, keep_stray_signal);
  std::signal(SIGPIPE, SIG_IGN);
}

int StopSignals::wait_for(std::chrono::milliseconds limit) {
  if (const int sig = g_stray_signal.load()) return sig;
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(limit);
  const timespec tick{time_t(s.count()), long(std::chrono::nanoseconds(limit - s).count())};
  const int sig = sigtimedwait(&sigs_, nullptr, &tick);
  if (sig >= 0) return sig;
  if (const int stray = g_stray_signal.load()) return stray;
  return -1;
}

int StopSignals::wait() {
  // In short steps: a stray signal sets only the flag, it does not end sigtimedwait.
  int sig = -1;
  while (sig < 0) sig = wait_for(std::chrono::milliseconds(200));
  return sig;
}

}  // namespace troupe::app
