// `troupe worker` stops cleanly on SIGTERM, whichever of its threads the kernel hands the
// signal to (app/stop_signals.h).
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "test_util.h"
#include "worker_process.h"

using namespace troupe::test;

TEST_CASE("a SIGTERM that lands on a worker thread not blocking it still stops the worker cleanly",
          "[cluster][signals]") {
  const std::string dir = temp_dir("worker-stray-signal");
  WorkerProcess worker(dir + "/worker.log");
  // The default action used to kill the worker (status 128 + 15) instead of stopping it.
  if (!send_stray_sigterm(worker.pid(), "troupe worker")) return;
  const int status = worker.wait_exit(std::chrono::milliseconds(5000));
  INFO(worker.log_text());
  CHECK(status == 0);
  CHECK(worker.log_text().find("signal 15: worker shutting down") != std::string::npos);
}
