#pragma once
// SIGINT/SIGTERM for the commands that run until stopped (`serve`, `worker`): they reach the
// main thread's wait below instead of killing the process on whichever thread they land.
#include <signal.h>

#include <chrono>

namespace troupe::app {

class StopSignals {
 public:
  // Blocks SIGINT and SIGTERM in the calling thread and ignores SIGPIPE. Construct it on the
  // main thread before any thread starts, so that every later thread inherits the mask.
  // Threads started earlier (OpenBLAS starts its pool when the library loads, TSan has its
  // own) do not block them and may take one whenever the main thread is not waiting; with the
  // default action that killed the process, so a handler keeps such a signal for wait_for.
  StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The SIGINT or SIGTERM received, waiting up to `limit` for one; -1 if none came.
  int wait_for(std::chrono::milliseconds limit);
  // Waits as long as it takes.
  int wait();

 private:
  sigset_t sigs_;
};

}  // namespace troupe::app
